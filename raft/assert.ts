/**
 * Assertions that stay on in production.
 *
 * An assertion failure is a bug, never an operating condition: the process that hits one logs
 * it and exits, so that it restarts from durable state instead of carrying on with a broken
 * invariant. `node:assert` is for tests; production code uses this module.
 */

/** The error thrown by {@linkcode assert}; it marks a programmer error, never bad input. */
export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

/**
 * Checks one condition and throws {@linkcode AssertionError} with `message` when it is false.
 *
 * @throws {AssertionError} when `condition` is false.
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
