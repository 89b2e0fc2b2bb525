/**
 * Assertions that stay on in the console. ui/ may not import raft/ (STYLE §2), so the console
 * keeps its own copy of the one-function contract of raft/assert.ts: a failed assertion is a
 * bug in the console, never a condition of the cluster it shows.
 */

/** The error thrown by {@linkcode assert}: a programmer error in the console. */
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
