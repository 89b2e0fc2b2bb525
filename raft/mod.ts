/**
 * @module
 * The pure Raft consensus core: a deterministic state machine driven by ticks, messages and
 * proposals, whose only output is a `Ready` value that the caller persists, sends and applies.
 *
 * Allowed dependencies: none. This folder imports nothing of ours and no third-party package,
 * and never touches clocks, timers, randomness, I/O or Promises (see tests/tidy_test.ts).
 *
 * @example
 * ```ts
 * import { assert } from "./mod.ts";
 * assert(1 + 1 === 2, "arithmetic works");
 * ```
 */
export { assert, AssertionError } from "./assert.ts";
