/**
 * The HTTP client of the Aspen API (the contract in API.md), used by the CLI, `aspen bench` and
 * the end-to-end tests.
 *
 * Reads try the endpoints in order and move to the next one when a node does not answer, so
 * reading keeps working while one node is down. A write that cannot reach its node fails with
 * `unavailable` instead, because it may have been applied (Deno's fetch resends a request
 * after a pooled connection dies); it is never sent to a second node. API errors come back as
 * {@linkcode ApiError} with the server's code and details.
 */
import type { Kv, OptimisticTxnRequest } from "../api_types.ts";

export type { Kv };

/** An error answered by the API, or a failure to reach any endpoint. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    status: number,
    code: string,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The default per-request deadline. */
export const CLIENT_TIMEOUT_MS = 10_000;

/** Options of an {@linkcode AspenClient}. */
export interface ClientOptions {
  /** Base URLs such as `http://127.0.0.1:8001`; tried in order. */
  readonly endpoints: readonly string[];
  readonly token: string | null;
  readonly timeoutMs?: number;
}

/** A request's method, path (with query) and optional JSON body. */
export interface ApiRequest {
  readonly method: "GET" | "PUT" | "POST" | "DELETE";
  readonly path: string;
  readonly body?: unknown;
}

/**
 * A small typed client of the HTTP API.
 *
 * @example
 * ```ts
 * const client = new AspenClient({ endpoints: ["http://127.0.0.1:8001"], token: "aspen_..." });
 * await client.put("users/42", "alice");
 * const { kv } = await client.get("users/42");
 * ```
 */
export class AspenClient {
  readonly #options: ClientOptions;
  #preferred = 0;

  constructor(options: ClientOptions) {
    if (options.endpoints.length === 0) {
      throw new ApiError(0, "bad_request", "Cannot create a client: no endpoints given");
    }
    this.#options = options;
  }

  /** Sends one request, failing over between endpoints when a node cannot be reached. */
  async request<T>(request: ApiRequest): Promise<T> {
    const endpoints = this.#options.endpoints;
    let lastError: unknown = null;
    for (let attempt = 0; attempt < endpoints.length; attempt++) {
      const index = (this.#preferred + attempt) % endpoints.length;
      let response: Response;
      try {
        response = await this.#send(endpoints[index]!, request);
      } catch (error) {
        if (error instanceof DOMException && error.name === "TimeoutError") {
          // The request may have reached the node: retrying elsewhere could apply it twice.
          throw new ApiError(0, "timeout", `No answer from ${endpoints[index]} in time`);
        }
        lastError = error;
        // Deno's fetch may have resent a write on a fresh connection before failing, so a
        // write that failed to connect may still have been applied: only reads fail over.
        if (request.method !== "GET") {
          const reason = error instanceof Error ? error.message : String(error);
          throw new ApiError(
            0,
            "unavailable",
            `Cannot reach ${endpoints[index]} (the write's outcome is unknown): ${reason}`,
          );
        }
        continue;
      }
      this.#preferred = index;
      return await this.#decode<T>(response);
    }
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new ApiError(
      0,
      "unavailable",
      `Cannot reach any endpoint (${endpoints.join(", ")}): ${reason}`,
    );
  }

  /** GET /v1/kv/{key}; `kv` is null when the key is absent. */
  async get(
    key: string,
    options: {
      consistency?: "linearizable" | "serializable";
      /** "base64": every kv carries `valueBase64` (binary values always do). */
      encoding?: "text" | "base64";
    } = {},
  ): Promise<{ kv: Kv | null; shard: number; revision: number }> {
    const parameters = [
      ...(options.consistency === "serializable" ? ["consistency=serializable"] : []),
      ...(options.encoding === "base64" ? ["encoding=base64"] : []),
    ];
    const query = parameters.length === 0 ? "" : `?${parameters.join("&")}`;
    try {
      return await this.request({ method: "GET", path: `/v1/kv/${encodeKey(key)}${query}` });
    } catch (error) {
      if (error instanceof ApiError && error.code === "key_not_found") {
        const shard = Number(error.details.shard ?? -1);
        const revision = Number(error.details.revision ?? 0);
        return { kv: null, shard, revision };
      }
      throw error;
    }
  }

  /** PUT /v1/kv/{key}: text as `value`, bytes as `valueBase64`. */
  put(
    key: string,
    value: string | Uint8Array,
    options: { lease?: number; prevKv?: boolean } = {},
  ): Promise<{ shard: number; revision: number; version: number; prevKv?: Kv }> {
    const field = typeof value === "string" ? { value } : { valueBase64: base64Of(value) };
    return this.request({
      method: "PUT",
      path: `/v1/kv/${encodeKey(key)}`,
      body: { ...field, ...options },
    });
  }

  /** DELETE /v1/kv/{key}. */
  delete(
    key: string,
    options: { prevKv?: boolean } = {},
  ): Promise<{ deleted: number; shard: number; revision: number; prevKv?: Kv }> {
    const query = options.prevKv === true ? "?prevKv=true" : "";
    return this.request({ method: "DELETE", path: `/v1/kv/${encodeKey(key)}${query}` });
  }

  /** GET /v1/kv with range parameters. */
  range(query: Readonly<Record<string, string | number | boolean | undefined>>): Promise<{
    kvs: Kv[];
    count: number;
    more: boolean;
    next?: string;
  }> {
    return this.request({ method: "GET", path: `/v1/kv${toQuery(query)}` });
  }

  /** POST /v1/txn with an etcd-style conditional batch. */
  txn(body: unknown): Promise<{ succeeded: boolean; results: unknown[]; shard: number }> {
    return this.request({ method: "POST", path: "/v1/txn", body });
  }

  /** POST /v1/txn/optimistic; name each read's `modRevision` to see every change. */
  optimistic(
    body: OptimisticTxnRequest,
  ): Promise<{ committed: boolean; shard: number; revision: number }> {
    return this.request({ method: "POST", path: "/v1/txn/optimistic", body });
  }

  async #send(endpoint: string, request: ApiRequest): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.#options.token !== null) headers.authorization = `Bearer ${this.#options.token}`;
    if (request.body !== undefined) headers["content-type"] = "application/json";
    return await fetch(`${endpoint.replace(/\/+$/, "")}${request.path}`, {
      method: request.method,
      headers,
      body: request.body === undefined ? null : JSON.stringify(request.body),
      signal: AbortSignal.timeout(this.#options.timeoutMs ?? CLIENT_TIMEOUT_MS),
    });
  }

  async #decode<T>(response: Response): Promise<T> {
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch (error) {
      throw new ApiError(
        response.status,
        "bad_response",
        `The server answered non-JSON: ${text.slice(0, 200)}`,
        {
          cause: String(error),
        },
      );
    }
    if (response.ok) return body as T;
    const error = (body as { error?: Record<string, unknown> } | null)?.error ?? {};
    const { code, message, ...details } = error;
    throw new ApiError(
      response.status,
      typeof code === "string" ? code : `http_${response.status}`,
      typeof message === "string" ? message : `The server answered ${response.status}`,
      details,
    );
  }
}

/** Percent-encodes a key for a path, slashes included. */
export function encodeKey(key: string): string {
  return encodeURIComponent(key);
}

function toQuery(query: Readonly<Record<string, string | number | boolean | undefined>>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) parts.push(`${name}=${encodeURIComponent(String(value))}`);
  }
  return parts.length === 0 ? "" : `?${parts.join("&")}`;
}

/** Base64 (RFC 4648, padded) of `bytes`, as `valueBase64` carries them. */
export function base64Of(bytes: Uint8Array): string {
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

/** The bytes of base64 text; null when it is not base64. */
export function bytesOfBase64(base64: string): Uint8Array | null {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(base64)) {
    return null;
  }
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}
