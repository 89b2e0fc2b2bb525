/**
 * The error half of the client contract: every stable error code with its HTTP status (the one
 * list, STYLE §7), the codes a client gives failures that never reached a server, and the one
 * {@linkcode ApiError} class that the CLI, the bench runner and the console throw.
 */

/**
 * Every stable error code a server sends, one per line, with its HTTP status: the single runtime
 * list, shared by the state machine (shard/ re-exports it), the server's error handler, the
 * peer channel's error frames and every client. Add a code here and it has a status.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  bad_config: 400,
  unauthorized: 401,
  forbidden: 403,
  key_not_found: 404,
  // No route for the method and path.
  not_found: 404,
  lease_not_found: 404,
  // No runtime client token has that id (DELETE /v1/auth/tokens/{id}).
  token_not_found: 404,
  unknown_shard: 404,
  // No record of that cross-shard transaction (GET /v1/txn/{id}); it may have been forgotten.
  txn_not_found: 404,
  // No tenant of that name (POST /v1/tenants/{name}/move).
  tenant_not_found: 404,
  // No member of the cluster has that node id (POST /v1/cluster/nodes/{id}/remove).
  node_not_found: 404,
  conflict: 409,
  // A shard move (POST /v1/shards) is already running; wait for it (GET /v1/shards/moves).
  move_in_progress: 409,
  // A tenant of that name exists already (POST /v1/tenants).
  tenant_exists: 409,
  // A commit reached a shard where the cross-shard transaction was never prepared (a bug).
  txn_not_prepared: 409,
  // Removing the node would leave fewer healthy nodes than the replication factor.
  insufficient_capacity: 409,
  // The node was removed from the cluster: its id and certificate are refused for good.
  node_removed: 409,
  compacted: 410,
  // A watch stream was ended by the server: a slow watcher, or its shard closed.
  watch_cancelled: 410,
  key_too_large: 413,
  value_too_large: 413,
  request_too_large: 413,
  too_many_requests: 429,
  // A state-dependent bound was hit (keys in a delete-range, keys on a lease, leases, watchers).
  limit_exceeded: 429,
  storage_corrupt: 500,
  not_implemented: 501,
  not_leader: 503,
  proposal_dropped: 503,
  // Writing to storage failed with an I/O error; the write is retried until it succeeds.
  storage_error: 503,
  shard_unavailable: 503,
  // The shard does not serve that key (it moved, or the shard is new): route by the new map.
  // Nodes reroute it themselves; on the client API it is always keys_moving.
  wrong_shard: 503,
  // A shard move kept the request's keys fenced past its deadline (it carries `shard`, the
  // moving shard, and `retryAfterMs`; the answer has a Retry-After header): retry.
  keys_moving: 503,
  timeout: 504,
  // The disk is full or below the node's free-space reserve: writes wait until space returns.
  no_space: 507,
} as const;

/** A stable error code: a key of {@linkcode ERROR_STATUS}. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** Every stable error code, in the order of {@linkcode ERROR_STATUS}. */
export const ERROR_CODES: readonly ErrorCode[] = Object.keys(ERROR_STATUS) as ErrorCode[];

/** True when `code` is one of {@linkcode ERROR_CODES} (a code read off the wire, say). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_STATUS, code);
}

/**
 * The code of a 500 for an unexpected failure (a bug, or an error that is not an expected
 * condition): the body carries a `requestId` to find the details in the server's log. It is not
 * one of {@linkcode ERROR_CODES}: no component raises it on purpose.
 */
export const INTERNAL_ERROR_CODE = "internal";

/** The HTTP status of {@linkcode INTERNAL_ERROR_CODE}. */
export const INTERNAL_ERROR_STATUS = 500;

/** A code in an error body: a stable code, or `internal` for an unexpected failure. */
export type ApiErrorCode = ErrorCode | typeof INTERNAL_ERROR_CODE;

/**
 * Codes a client gives failures that never reached a server's error handler, each with an
 * `httpStatus` of 0 except `bad_response` (the status that came with the unreadable answer).
 * `unreachable`: no answer, so the outcome of a write is unknown; `client_timeout`: no answer
 * within the client's deadline; `bad_response`: an answer that is not the JSON the API sends.
 */
export const CLIENT_ERROR_CODES = ["unreachable", "client_timeout", "bad_response"] as const;

/** One of {@linkcode CLIENT_ERROR_CODES}. */
export type ClientErrorCode = typeof CLIENT_ERROR_CODES[number];

/**
 * A failed request, as every client of the API reports it: the server's code, message and
 * details, or a {@linkcode ClientErrorCode} when no usable answer arrived.
 *
 * @example
 * ```ts
 * const error = new ApiError({ code: "key_not_found", httpStatus: 404 }, 'No key "a"');
 * if (error.code === "key_not_found") console.log(error.message);
 * ```
 */
export class ApiError extends Error {
  override readonly name = "ApiError";
  /** An {@linkcode ApiErrorCode} or a {@linkcode ClientErrorCode}; any string a server sent. */
  readonly code: string;
  /** The HTTP status, or 0 when no answer arrived. */
  readonly httpStatus: number;
  /** The error body's details, beside code and message. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    fields: {
      readonly code: string;
      readonly httpStatus: number;
      readonly details?: Readonly<Record<string, unknown>>;
    },
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = fields.code;
    this.httpStatus = fields.httpStatus;
    this.details = fields.details ?? {};
  }
}

/**
 * The error an answer that is not a 2xx stands for: its body's code, message and details when
 * the body is an error body of the contract, else `bad_response` naming the status.
 */
export function apiErrorOf(
  answer: { readonly httpStatus: number; readonly body: unknown },
): ApiError {
  const { httpStatus, body } = answer;
  const error = typeof body === "object" && body !== null
    ? (body as { error?: unknown }).error
    : undefined;
  if (typeof error === "object" && error !== null) {
    const { code, message, ...details } = error as Record<string, unknown>;
    if (typeof code === "string" && typeof message === "string") {
      return new ApiError({ code, httpStatus, details }, message);
    }
  }
  return new ApiError(
    { code: "bad_response", httpStatus },
    `The node answered ${httpStatus} without an error body of the API`,
  );
}
