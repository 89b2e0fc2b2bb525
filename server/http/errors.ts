/**
 * The single mapping from error codes to HTTP statuses and JSON error bodies (STYLE §7).
 *
 * Every failure a client sees is `{"error": {"code", "message", ...details}}`. Expected
 * conditions are `AspenError`s and keep their code; anything else is a bug or an unexpected
 * failure: it becomes a 500 carrying a request id, and the details stay in the server log.
 */
import { AspenError, type ErrorCode } from "../../shard/mod.ts";

/** The HTTP status of each error code. */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  bad_config: 400,
  unauthorized: 401,
  forbidden: 403,
  key_not_found: 404,
  lease_not_found: 404,
  token_not_found: 404,
  unknown_shard: 404,
  conflict: 409,
  compacted: 410,
  key_too_large: 413,
  value_too_large: 413,
  request_too_large: 413,
  too_many_requests: 429,
  limit_exceeded: 429,
  watch_cancelled: 410,
  storage_corrupt: 500,
  not_implemented: 501,
  not_leader: 503,
  proposal_dropped: 503,
  storage_error: 503,
  shard_unavailable: 503,
  timeout: 504,
  no_space: 507,
};

/** A JSON error body as the API returns it. */
export interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly [detail: string]: string | number | boolean | null;
  };
}

/** The status and body for an expected error. */
export function errorResponse(error: AspenError): { status: number; body: ErrorBody } {
  const status = ERROR_STATUS[error.code] ?? 500;
  return {
    status,
    body: { error: { ...error.details, code: error.code, message: error.message } },
  };
}

/** The status and body for an unexpected error: no internals, a request id to find the log. */
export function internalErrorResponse(requestId: string): { status: number; body: ErrorBody } {
  return {
    status: 500,
    body: {
      error: {
        code: "internal",
        message: `Cannot complete the request: internal error (request id ${requestId})`,
        requestId,
      },
    },
  };
}

/** Shorthand for a `bad_request` error. */
export function badRequest(message: string, details?: AspenError["details"]): AspenError {
  return new AspenError("bad_request", message, details);
}
