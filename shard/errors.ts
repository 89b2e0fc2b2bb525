/**
 * Typed errors for expected operating conditions (STYLE §7, kind 2).
 *
 * Every error a client can meet carries a stable snake_case `code` and structured details; the
 * server's single error handler maps the code to an HTTP status. Bugs are not `AspenError`s:
 * they are `AssertionError`s from raft/assert.ts and end the process.
 */

/**
 * Every stable error code, one per line: the single runtime list, shared by the state machine,
 * the server (HTTP statuses, the peer channel's error frames) and the CLI. Add a code here and
 * the compiler asks for its HTTP status; the peer channel carries it unchanged.
 */
export const ERROR_CODES = [
  "bad_request",
  "bad_config",
  "key_too_large",
  "value_too_large",
  "request_too_large",
  "unauthorized",
  "forbidden",
  "key_not_found",
  "lease_not_found",
  // No runtime client token has that id (DELETE /v1/auth/tokens/{id}).
  "token_not_found",
  "conflict",
  "compacted",
  "too_many_requests",
  "shard_unavailable",
  "not_leader",
  "unknown_shard",
  "proposal_dropped",
  "timeout",
  "storage_corrupt",
  // The disk is full or below the node's free-space reserve: writes wait until space returns.
  "no_space",
  // Writing to storage failed with an I/O error; the write is retried until it succeeds.
  "storage_error",
  "not_implemented",
  // A state-dependent bound was hit (keys in a delete-range, keys on a lease, leases, watchers).
  "limit_exceeded",
  // A watch stream was ended by the server: a slow watcher, or its shard closed.
  "watch_cancelled",
] as const;

/** A stable error code: one of {@linkcode ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[number];

const ERROR_CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

/** True when `code` is one of {@linkcode ERROR_CODES} (a code read off the wire, say). */
export function isErrorCode(code: string): code is ErrorCode {
  return ERROR_CODE_SET.has(code);
}

/** Structured details attached to an error; they reach clients as extra JSON fields. */
export type ErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

/**
 * The base class of every expected error: a code, a sentence-case message, and details.
 *
 * @example
 * ```ts
 * const message = 'Cannot put key "a": key is 5000 bytes but the limit is 4096';
 * throw new AspenError("key_too_large", message, { limit: 4096 });
 * ```
 */
export class AspenError extends Error {
  override readonly name = "AspenError";
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(
    code: ErrorCode,
    message: string,
    details: ErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}
