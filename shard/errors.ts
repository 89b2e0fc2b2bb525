/**
 * Typed errors for expected operating conditions (STYLE §7, kind 2).
 *
 * Every error a client can meet carries a stable snake_case `code` and structured details; the
 * server's single error handler maps the code to an HTTP status. The codes and their statuses
 * are part of the client contract, so their one list lives in api/errors.ts; this module
 * re-exports it for the rest of shard/. Bugs are not `AspenError`s: they are `AssertionError`s
 * from raft/assert.ts and end the process.
 */
import type { ErrorCode } from "../api/mod.ts";

export { ERROR_CODES, type ErrorCode, isErrorCode } from "../api/mod.ts";

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

/**
 * The error for a request that reached a replica that does not lead its shard: the one
 * `not_leader` error, whose `leader` detail (null when none is known) lets the caller retry at
 * the leader.
 *
 * @param action what failed, as in "keep lease 7 alive"; "serve shard N" when not given.
 * @example
 * ```ts
 * const error = notLeaderError(3, 2);
 * // error.message: "Cannot serve shard 3 here: this replica is not the leader (node 2 is)"
 * ```
 */
export function notLeaderError(shard: number, leader: number | null, action?: string): AspenError {
  const failed = action === undefined ? `serve shard ${shard}` : `${action} on shard ${shard}`;
  return new AspenError(
    "not_leader",
    `Cannot ${failed} here: this replica is not the leader` +
      (leader === null ? " and no leader is known" : ` (node ${leader} is)`),
    { shard, leader },
  );
}

/**
 * The error of a node that cannot listen because another socket holds the address: a
 * `bad_config` error with the `address` and `addressInUse: true` details, so that the CLI exits
 * with its own code and a launcher can start the node again on other ports.
 *
 * @param what what could not listen, as in "serve HTTP" or "listen for peers".
 * @example
 * ```ts
 * const error = addressInUseError("serve HTTP", "127.0.0.1:7001");
 * // error.message: 'Cannot serve HTTP on "127.0.0.1:7001": the address is in use'
 * ```
 */
export function addressInUseError(what: string, address: string, cause?: unknown): AspenError {
  return new AspenError(
    "bad_config",
    `Cannot ${what} on "${address}": the address is in use`,
    { address, addressInUse: true },
    cause === undefined ? undefined : { cause },
  );
}

/** Whether `error` is an {@linkcode addressInUseError}. */
export function isAddressInUseError(error: unknown): boolean {
  return error instanceof AspenError && error.details.addressInUse === true;
}
