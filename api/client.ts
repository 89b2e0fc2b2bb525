/**
 * The one small fetch-based client of the Aspen API (the contract in API.md and api/types.ts),
 * used by the CLI, the web console and the end-to-end tests. It runs in Deno and in browsers:
 * it needs nothing but `fetch`, which a caller may pass in (the console's tests pass a fake).
 *
 * Reads try the endpoints in order and move to the next one when a node does not answer, so
 * reading keeps working while one node is down. A write that cannot reach its node fails with
 * `unreachable` instead, because it may have been applied (Deno's fetch resends a request
 * after a pooled connection dies); it is never sent to a second node. Every failure is an
 * {@linkcode ApiError}: the server's code and details, or a client code (api/errors.ts).
 */
import { ApiError, apiErrorOf } from "./errors.ts";
import type {
  DeleteKvResponse,
  GetKvResponse,
  Kv,
  OptimisticTxnRequest,
  OptimisticTxnResponse,
  PutKvResponse,
  RangeQuery,
  RangeResponse,
  TxnRequest,
  TxnResponse,
  TxnStatusResponse,
  WatchEvent,
} from "./types.ts";

/** The default per-request deadline. */
export const CLIENT_TIMEOUT_MS = 10_000;

/** What {@linkcode AspenClient.watch} follows: one key, or a prefix over every shard. */
export type WatchQuery =
  | { readonly key: string; readonly fromRevision?: number }
  | {
    readonly prefix: string;
    /** Where each shard starts (shard id to revision); shards not named start now. */
    readonly fromRevisions?: Readonly<Record<number, number>>;
  };

/** The most characters of a non-JSON answer quoted in an error message. */
const QUOTED_ANSWER_CHARS_MAX = 200;

/** Options of an {@linkcode AspenClient}. */
export interface ClientOptions {
  /**
   * Base URLs such as `http://127.0.0.1:8001`, tried in order; "" names the origin of the
   * page that runs the client (the console).
   */
  readonly endpoints: readonly string[];
  /** The bearer token; null (or "") sends no Authorization header (auth disabled). */
  readonly token: string | null;
  readonly timeoutMs?: number;
  /** The fetch to send with; absent: the global one. */
  readonly fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

/** A request's method, path (with query) and optional JSON body. */
export interface ApiRequest {
  readonly method: "GET" | "PUT" | "POST" | "DELETE";
  readonly path: string;
  readonly body?: unknown;
}

/** `GET /v1/kv/{key}` as the client returns it: `kv` is null when the key is absent. */
export type GetKvResult = Omit<GetKvResponse, "kv"> & { readonly kv: Kv | null };

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
      throw new RangeError("Cannot create a client: no endpoints given");
    }
    this.#options = options;
  }

  /**
   * Sends one request, failing reads over between endpoints when a node cannot be reached,
   * and returns the parsed JSON body of a 2xx answer.
   *
   * @throws {ApiError} for an error answer, an unreadable one, a timeout, or no answer.
   */
  async request<T>(request: ApiRequest): Promise<T> {
    const endpoints = this.#options.endpoints;
    let lastError: unknown = null;
    for (let attempt = 0; attempt < endpoints.length; attempt++) {
      const index = (this.#preferred + attempt) % endpoints.length;
      const endpoint = endpoints[index]!;
      const controller = new AbortController();
      const timeoutMs = this.#options.timeoutMs ?? CLIENT_TIMEOUT_MS;
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      try {
        let response: Response;
        try {
          response = await this.#send(endpoint, request, controller.signal);
        } catch (error) {
          // Past the deadline the request may have reached the node: retrying elsewhere could
          // apply it twice. Deno's fetch may also have resent a write on a fresh connection
          // before failing, so a write that failed to connect may have been applied too.
          if (controller.signal.aborted) throw timedOut(endpoint, timeoutMs, error);
          if (request.method !== "GET") {
            throw unreachable(`${nodeName(endpoint)} (the write's outcome is unknown)`, error);
          }
          lastError = error;
          continue;
        }
        this.#preferred = index;
        return await decode<T>(response, request.path).catch((error: unknown) => {
          // The deadline can also pass while the body arrives.
          if (error instanceof ApiError || !controller.signal.aborted) throw error;
          throw timedOut(endpoint, timeoutMs, error);
        });
      } finally {
        clearTimeout(timer);
      }
    }
    const where = endpoints.length === 1
      ? nodeName(endpoints[0]!)
      : `any of ${endpoints.join(", ")}`;
    throw unreachable(where, lastError);
  }

  /** GET /v1/kv/{key}; `kv` is null when the key is absent. */
  async get(
    key: string,
    options: {
      consistency?: "linearizable" | "serializable";
      /** "base64": every kv carries `valueBase64` (binary values always do). */
      encoding?: "text" | "base64";
    } = {},
  ): Promise<GetKvResult> {
    const parameters = [
      ...(options.consistency === "serializable" ? ["consistency=serializable"] : []),
      ...(options.encoding === "base64" ? ["encoding=base64"] : []),
    ];
    const query = parameters.length === 0 ? "" : `?${parameters.join("&")}`;
    try {
      return await this.request<GetKvResponse>({ method: "GET", path: `${kvPath(key)}${query}` });
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
  ): Promise<PutKvResponse> {
    const field = typeof value === "string" ? { value } : { valueBase64: base64Of(value) };
    return this.request({ method: "PUT", path: kvPath(key), body: { ...field, ...options } });
  }

  /** DELETE /v1/kv/{key}. */
  delete(key: string, options: { prevKv?: boolean } = {}): Promise<DeleteKvResponse> {
    const query = options.prevKv === true ? "?prevKv=true" : "";
    return this.request({ method: "DELETE", path: `${kvPath(key)}${query}` });
  }

  /** GET /v1/kv with range parameters; an undefined one is left out. */
  range(query: { readonly [Name in keyof RangeQuery]?: RangeQuery[Name] | undefined }): Promise<
    RangeResponse
  > {
    return this.request({ method: "GET", path: `/v1/kv${toQuery(query)}` });
  }

  /** POST /v1/txn with an etcd-style conditional batch. */
  txn(body: TxnRequest): Promise<TxnResponse> {
    return this.request({ method: "POST", path: "/v1/txn", body });
  }

  /** POST /v1/txn/optimistic; name each read's `modRevision` to see every change. */
  optimistic(body: OptimisticTxnRequest): Promise<OptimisticTxnResponse> {
    return this.request({ method: "POST", path: "/v1/txn/optimistic", body });
  }

  /** GET /v1/txn/{id}: a cross-shard transaction's record and its participants' receipts. */
  txnStatus(id: string): Promise<TxnStatusResponse> {
    return this.request({ method: "GET", path: `/v1/txn/${encodeURIComponent(id)}` });
  }

  /**
   * GET /v1/watch as events (Server-Sent Events), until `signal` aborts (the generator then
   * returns) or the node ends the stream. Connecting tries the endpoints in order within the
   * client's timeout; once connected the stream stays with that node, and a caller resumes
   * after a failure from the revisions it last saw (`fromRevision`, `fromRevisions`).
   *
   * @throws {ApiError} for an error answer (400, 410 `compacted`, ...) or when no node answers.
   */
  async *watch(query: WatchQuery, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    const response = await this.#openWatch(watchPath(query), signal);
    if (response === null) return;
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const stop = () => reader.cancel().catch(() => {});
    signal.addEventListener("abort", stop, { once: true });
    try {
      let buffer = "";
      while (!signal.aborted) {
        const { value, done } = await reader.read().catch((error: unknown) => {
          if (signal.aborted) return { value: undefined, done: true as const };
          throw unreachable(`the watch stream of ${this.#describeEndpoints()}`, error);
        });
        if (done) return;
        buffer += value;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trimStart()).join("\n");
          if (data !== "") yield JSON.parse(data) as WatchEvent;
        }
      }
    } finally {
      signal.removeEventListener("abort", stop);
      await stop();
    }
  }

  /** Opens a watch on the first endpoint that answers; null when `signal` aborted first. */
  async #openWatch(path: string, signal: AbortSignal): Promise<Response | null> {
    let lastError: unknown = null;
    for (const endpoint of this.#options.endpoints) {
      const controller = new AbortController();
      const abort = () => controller.abort();
      signal.addEventListener("abort", abort, { once: true });
      const timeoutMs = this.#options.timeoutMs ?? CLIENT_TIMEOUT_MS;
      const timer = setTimeout(abort, timeoutMs);
      try {
        const response = await this.#send(endpoint, { method: "GET", path }, controller.signal);
        if (!response.ok) return await decode<never>(response, path);
        // The listener stays: the stream lives as long as the caller's signal.
        return response;
      } catch (error) {
        signal.removeEventListener("abort", abort);
        if (error instanceof ApiError) throw error;
        if (signal.aborted) return null;
        if (controller.signal.aborted) throw timedOut(endpoint, timeoutMs, error);
        lastError = error;
      } finally {
        clearTimeout(timer);
      }
    }
    throw unreachable(this.#describeEndpoints(), lastError);
  }

  #describeEndpoints(): string {
    const endpoints = this.#options.endpoints;
    return endpoints.length === 1 ? nodeName(endpoints[0]!) : `any of ${endpoints.join(", ")}`;
  }

  async #send(endpoint: string, request: ApiRequest, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    const token = this.#options.token;
    if (token !== null && token !== "") headers.authorization = `Bearer ${token}`;
    if (request.body !== undefined) headers["content-type"] = "application/json";
    const send = this.#options.fetch ?? fetch;
    return await send(`${endpoint.replace(/\/+$/, "")}${request.path}`, {
      method: request.method,
      headers,
      body: request.body === undefined ? null : JSON.stringify(request.body),
      signal,
    });
  }
}

/** Encodes a key for a `/v1/kv/{key}` path: every reserved character, `/` included. */
export function kvPath(key: string): string {
  return `/v1/kv/${encodeURIComponent(key)}`;
}

async function decode<T>(response: Response, path: string): Promise<T> {
  const text = await response.text();
  let body: unknown;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch (error) {
    const quoted = text.slice(0, QUOTED_ANSWER_CHARS_MAX);
    if (!response.ok) throw apiErrorOf({ httpStatus: response.status, body: null });
    throw new ApiError(
      { code: "bad_response", httpStatus: response.status },
      `Cannot read the answer to "${path}": it is not JSON: ${quoted}`,
      { cause: error },
    );
  }
  if (response.ok) return body as T;
  throw apiErrorOf({ httpStatus: response.status, body });
}

/** The path and query of a watch. */
export function watchPath(query: WatchQuery): string {
  const parts: string[] = [];
  if ("key" in query) {
    parts.push(`key=${encodeURIComponent(query.key)}`);
    if (query.fromRevision !== undefined) parts.push(`fromRevision=${query.fromRevision}`);
  } else {
    parts.push(`prefix=${encodeURIComponent(query.prefix)}`);
    const starts = Object.entries(query.fromRevisions ?? {});
    if (starts.length > 0) {
      parts.push(`fromRevisions=${starts.map(([shard, rev]) => `${shard}:${rev}`).join(",")}`);
    }
  }
  return `/v1/watch?${parts.join("&")}`;
}

function nodeName(endpoint: string): string {
  return endpoint === "" ? "the node" : endpoint;
}

function timedOut(endpoint: string, timeoutMs: number, cause: unknown): ApiError {
  return new ApiError(
    { code: "client_timeout", httpStatus: 0 },
    `No answer from ${nodeName(endpoint)} within ${timeoutMs / 1_000} s`,
    { cause },
  );
}

function unreachable(where: string, cause: unknown): ApiError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ApiError({ code: "unreachable", httpStatus: 0 }, `Cannot reach ${where}: ${reason}`, {
    cause,
  });
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
