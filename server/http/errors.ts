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
import { AspenError } from "../../shard/mod.ts";

/** A JSON error body as the API returns it (the contract's {@linkcode ApiErrorBody}). */
export type ErrorBody = ApiErrorBody;

/** The status and body for an expected error. */
export function errorResponse(error: AspenError): { status: number; body: ErrorBody } {
  const status: number = ERROR_STATUS[error.code];
  return {
    status,
    body: { error: { ...error.details, code: error.code, message: error.message } },
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
