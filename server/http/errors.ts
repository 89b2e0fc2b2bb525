/**
 * The single mapping from error codes to HTTP statuses and JSON error bodies (STYLE §7).
 *
 * Every failure a client sees is `{"error": {"code", "message", ...details}}`. Expected
 * conditions are `AspenError`s and keep their code; anything else is a bug or an unexpected
 * failure: it becomes a 500 carrying a request id, and the details stay in the server log.
 */
import {
  type ApiErrorBody,
  ERROR_STATUS,
  INTERNAL_ERROR_CODE,
  INTERNAL_ERROR_STATUS,
} from "../../api/mod.ts";
import { AspenError, keysMovingError } from "../../shard/mod.ts";

/** A JSON error body as the API returns it (the contract's {@linkcode ApiErrorBody}). */
export type ErrorBody = ApiErrorBody;

/**
 * The status, body and headers for an expected error. A shard's `wrong_shard` that reached the
 * edge (a path that does not reroute) is answered as `keys_moving`: clients never see the
 * router's internals. An error that names `retryAfterMs` gets a Retry-After header (seconds).
 */
export function errorResponse(
  error: AspenError,
): { status: number; body: ErrorBody; headers: Record<string, string> } {
  const answered = error.code === "wrong_shard" ? keysMovingError(error) : error;
  const status: number = ERROR_STATUS[answered.code];
  const retryAfterMs = answered.details.retryAfterMs;
  return {
    status,
    body: { error: { ...answered.details, code: answered.code, message: answered.message } },
    headers: typeof retryAfterMs === "number"
      ? { "Retry-After": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
      : {},
  };
}

/** The status and body for an unexpected error: no internals, a request id to find the log. */
export function internalErrorResponse(requestId: string): { status: number; body: ErrorBody } {
  return {
    status: INTERNAL_ERROR_STATUS,
    body: {
      error: {
        code: INTERNAL_ERROR_CODE,
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
