/**
 * The console's HTTP client: one JSON request to the node that served the page, with the
 * session's bearer token and a timeout, sent by the API's own client (api/client.ts), so that
 * every failure is the contract's {@linkcode ApiError} whose message can be shown to an operator
 * as it is. Error bodies follow API.md (`{"error": {"code", "message", ...details}}`).
 */
import { AspenClient } from "../../api/mod.ts";

export { ApiError, type ClientErrorCode, kvPath } from "../../api/mod.ts";

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
  const client = new AspenClient({
    endpoints: [transport.baseUrl],
    token: request.token,
    timeoutMs: transport.timeoutMs,
    fetch: transport.fetch,
  });
  const { method, path } = request;
  return await client.request<unknown>(
    request.body === undefined ? { method, path } : { method, path, body: request.body },
  );
}
