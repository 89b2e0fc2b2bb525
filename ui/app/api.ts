/**
 * The console's HTTP client: one JSON request to the node that served the page, with the
 * session's bearer token, a timeout, and every failure turned into an {@linkcode ApiError} whose
 * message can be shown to an operator as it is. Error bodies follow API.md
 * (`{"error": {"code", "message", ...details}}`).
 */
import type { ApiErrorBody } from "../../server/api_types.ts";

/** Codes the console gives failures that never reached a server's error handler. */
export type ClientErrorCode = "unreachable" | "client_timeout" | "bad_response";

/** A failed request: the server's error code and message, or one of the client's own. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  /** A server error code (API.md) or a {@linkcode ClientErrorCode}. */
  readonly code: string;
  /** The HTTP status, or 0 when no response arrived. */
  readonly httpStatus: number;
  /** The error body's details, beside code and message. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    fields: { code: string; httpStatus: number; details?: Record<string, unknown> },
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = fields.code;
    this.httpStatus = fields.httpStatus;
    this.details = fields.details ?? {};
  }
}

/** What a request needs from its surroundings; tests pass fakes. */
export interface ApiTransport {
  readonly fetch: (input: string, init: RequestInit) => Promise<Response>;
  /** Prefix of every path: "" for the page's own origin. */
  readonly baseUrl: string;
  readonly timeoutMs: number;
}

/** One request. A null token sends no Authorization header (auth disabled). */
export interface ApiRequest {
  readonly method: "GET" | "PUT" | "POST" | "DELETE";
  readonly path: string;
  readonly token: string | null;
  readonly body?: unknown;
}

/**
 * Sends `request` and returns the parsed JSON body of a 2xx answer.
 *
 * @throws {ApiError} for a network failure, a timeout, a non-2xx answer or a body that is not
 * JSON.
 */
export async function requestJson(transport: ApiTransport, request: ApiRequest): Promise<unknown> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (request.token !== null && request.token !== "") {
    headers.authorization = `Bearer ${request.token}`;
  }
  const init: RequestInit = { method: request.method, headers };
  if (request.body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(request.body);
  }
  const controller = new AbortController();
  init.signal = controller.signal;
  const timer = setTimeout(() => controller.abort(), transport.timeoutMs);
  try {
    const response = await sendOnce(transport, request, init, controller);
    const text = await response.text();
    if (!response.ok) throw errorFromResponse(response, text);
    return parseBody(text, request.path);
  } finally {
    clearTimeout(timer);
  }
}

async function sendOnce(
  transport: ApiTransport,
  request: ApiRequest,
  init: RequestInit,
  controller: AbortController,
): Promise<Response> {
  try {
    return await transport.fetch(transport.baseUrl + request.path, init);
  } catch (error) {
    if (controller.signal.aborted) {
      const seconds = transport.timeoutMs / 1_000;
      throw new ApiError(
        { code: "client_timeout", httpStatus: 0 },
        `No answer from the node within ${seconds} s`,
        { cause: error },
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new ApiError(
      { code: "unreachable", httpStatus: 0 },
      `Cannot reach the node: ${reason}`,
      { cause: error },
    );
  }
}

function parseBody(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError(
      { code: "bad_response", httpStatus: 200 },
      `Cannot read the answer to "${path}": it is not JSON`,
      { cause: error },
    );
  }
}

function errorFromResponse(response: Response, text: string): ApiError {
  const httpStatus = response.status;
  const body = tryParse(text);
  if (isErrorBody(body)) {
    const { code, message, ...details } = body.error;
    return new ApiError({ code, httpStatus, details }, message);
  }
  const status = `${httpStatus} ${response.statusText}`.trim();
  return new ApiError({ code: "bad_response", httpStatus }, `The node answered ${status}`);
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // A non-JSON error body (a proxy's HTML page, say) is reported by its HTTP status instead.
    return null;
  }
}

function isErrorBody(body: unknown): body is ApiErrorBody {
  if (typeof body !== "object" || body === null) return false;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return false;
  const fields = error as { code?: unknown; message?: unknown };
  return typeof fields.code === "string" && typeof fields.message === "string";
}

/** Encodes a key for a `/v1/kv/{key}` path: every reserved character, `/` included. */
export function kvPath(key: string): string {
  return `/v1/kv/${encodeURIComponent(key)}`;
}
