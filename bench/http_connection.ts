/**
 * A lean HTTP/1.1 client connection for the benchmark: one keep-alive TCP connection on which
 * requests are pipelined and answered in order (RFC 9112 §9.3.2).
 *
 * Why not `fetch`: on this 2-core machine `fetch` with 256 concurrent clients tops out near 16k
 * requests/s against a server that does nothing, because each call builds Request, Headers,
 * Response and stream objects. The benchmark client shares the cores with the nodes it
 * measures, so its own cost is subtracted from every figure; this connection writes one
 * pre-built byte string per request and parses only the status line and the body length.
 *
 * Scope: what the Aspen API answers (`content-length` or `chunked` bodies, UTF-8 JSON). A
 * response it cannot parse closes the connection and fails every request in flight.
 */

/** The largest response head (status line and headers) accepted. */
export const RESPONSE_HEAD_BYTES_MAX = 64 * 1024;
/** The largest response body accepted. */
export const RESPONSE_BODY_BYTES_MAX = 64 * 1024 * 1024;
/** The most requests waiting for their answer on one connection. */
export const PIPELINE_REQUESTS_MAX = 10_000;

/** One answer. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** A request that failed below HTTP: refused, reset, closed, or an unparsable answer. */
export class HttpConnectionError extends Error {
  override readonly name = "HttpConnectionError";
}

interface Waiter {
  readonly resolve: (answer: HttpAnswer) => void;
  readonly reject: (error: HttpConnectionError) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CR = 13;
const LF = 10;

/**
 * One pipelined keep-alive connection to `http://host:port`.
 *
 * @example
 * ```ts
 * const connection = new HttpConnection("http://127.0.0.1:8001", "Bearer token");
 * const answer = await connection.request("GET", "/v1/health", null);
 * connection.close();
 * ```
 */
export class HttpConnection {
  readonly #hostname: string;
  readonly #port: number;
  readonly #fixedHeaders: string;
  readonly #waiters: Waiter[] = [];
  #conn: Deno.TcpConn | null = null;
  #opening: Promise<Deno.TcpConn> | null = null;
  #outbox: Uint8Array[] = [];
  #isWriting = false;
  #isClosed = false;

  /** `authorization` is the whole header value, or null for none. */
  constructor(endpoint: string, authorization: string | null) {
    const url = new URL(endpoint);
    if (url.protocol !== "http:") {
      throw new HttpConnectionError(`Cannot benchmark "${endpoint}": only http:// is supported`);
    }
    this.#hostname = url.hostname;
    this.#port = Number(url.port || "80");
    this.#fixedHeaders = `host: ${url.host}\r\n` +
      (authorization === null ? "" : `authorization: ${authorization}\r\n`);
  }

  /** Requests in flight on this connection. */
  get inflight(): number {
    return this.#waiters.length;
  }

  /**
   * Sends one request and resolves with its answer. Requests are answered in the order sent.
   *
   * @throws {HttpConnectionError} when the connection fails or the answer is malformed.
   */
  request(method: string, path: string, body: string | null): Promise<HttpAnswer> {
    if (this.#isClosed) {
      return Promise.reject(new HttpConnectionError("Cannot send: the connection is closed"));
    }
    if (this.#waiters.length >= PIPELINE_REQUESTS_MAX) {
      return Promise.reject(
        new HttpConnectionError(`Cannot send: ${PIPELINE_REQUESTS_MAX} requests are in flight`),
      );
    }
    const bodyBytes = body === null ? null : encoder.encode(body);
    const head = `${method} ${path} HTTP/1.1\r\n${this.#fixedHeaders}` +
      (bodyBytes === null
        ? "\r\n"
        : `content-type: application/json\r\ncontent-length: ${bodyBytes.length}\r\n\r\n`);
    const { promise, resolve, reject } = Promise.withResolvers<HttpAnswer>();
    this.#waiters.push({ resolve, reject });
    this.#outbox.push(encoder.encode(head));
    if (bodyBytes !== null) this.#outbox.push(bodyBytes);
    if (!this.#isWriting) this.#writeLoop();
    return promise;
  }

  /** Closes the connection; requests in flight fail. */
  close(): void {
    this.#isClosed = true;
    this.#fail(new HttpConnectionError("Cannot finish the request: the connection was closed"));
  }

  async #writeLoop(): Promise<void> {
    this.#isWriting = true;
    try {
      const conn = await this.#connection();
      while (this.#outbox.length > 0) {
        const bytes = concat(this.#outbox);
        this.#outbox = [];
        for (let written = 0; written < bytes.length;) {
          written += await conn.write(bytes.subarray(written));
        }
      }
    } catch (error) {
      this.#fail(new HttpConnectionError(`Cannot send the request: ${describe(error)}`));
    } finally {
      this.#isWriting = false;
    }
  }

  #connection(): Promise<Deno.TcpConn> {
    if (this.#conn !== null) return Promise.resolve(this.#conn);
    this.#opening ??= Deno.connect({ hostname: this.#hostname, port: this.#port }).then(
      (conn) => {
        this.#opening = null;
        if (this.#isClosed) {
          conn.close();
          throw new HttpConnectionError("the connection was closed while it opened");
        }
        conn.setNoDelay(true);
        this.#conn = conn;
        this.#readLoop(conn);
        return conn;
      },
      (error: unknown) => {
        this.#opening = null;
        throw error;
      },
    );
    return this.#opening;
  }

  async #readLoop(conn: Deno.TcpConn): Promise<void> {
    const parser = new ResponseParser();
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const count = await conn.read(chunk);
        if (count === null) throw new HttpConnectionError("the server closed the connection");
        parser.push(chunk.subarray(0, count));
        for (let answer = parser.next(); answer !== null; answer = parser.next()) {
          const waiter = this.#waiters.shift();
          if (waiter === undefined) throw new HttpConnectionError("an answer nobody asked for");
          waiter.resolve(answer);
        }
      }
    } catch (error) {
      // After close() or a failed write, the socket is already dropped and its waiters failed.
      const isStale = this.#isClosed || this.#conn !== conn;
      if (!isStale) {
        this.#fail(new HttpConnectionError(`Cannot read the answer: ${describe(error)}`));
      }
    }
  }

  /** Fails every request in flight and drops the socket; the next request reconnects. */
  #fail(error: HttpConnectionError): void {
    const conn = this.#conn;
    this.#conn = null;
    this.#outbox = [];
    if (conn !== null) conn.close();
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }
}

/** The longest chunk-size line accepted (hex size, optional extensions). */
export const CHUNK_LINE_BYTES_MAX = 1024;
/** The buffer a parser starts with; it grows (doubling) to hold the largest answer. */
const BUFFER_BYTES_INITIAL = 64 * 1024;

/** What is known of the answer being parsed once its head has arrived. */
type Framing =
  | { readonly kind: "length"; readonly status: number; readonly size: number }
  | { readonly kind: "chunked"; readonly status: number };

/**
 * Incremental parser of HTTP/1.1 responses, linear in the bytes received: received bytes go
 * into one growable buffer with a read offset (a read copies only its own bytes, plus an
 * amortised compaction), a head is scanned once, and a chunked body is taken chunk by chunk
 * into a body buffer, each chunk once, whatever the pieces the socket hands over.
 *
 * Invariant: 0 <= start <= end <= buffer.length; the unread bytes are buffer[start, end).
 */
export class ResponseParser {
  #buffer = new Uint8Array(BUFFER_BYTES_INITIAL);
  #start = 0;
  #end = 0;
  /** How far past `start` the search for the end of the head has looked. */
  #headScanned = 0;
  /** The answer whose head was read (`start` is then in its body), or null between answers. */
  #framing: Framing | null = null;
  /** The chunked body so far: `#body[0, #bodyLength)`. */
  #body = new Uint8Array(0);
  #bodyLength = 0;

  /** Appends received bytes. */
  push(bytes: Uint8Array): void {
    if (this.#end + bytes.length > this.#buffer.length) this.#makeRoom(bytes.length);
    this.#buffer.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /**
   * The next complete response, or null until more bytes arrive.
   *
   * @throws {HttpConnectionError} for a malformed or oversized response.
   */
  next(): HttpAnswer | null {
    if (this.#framing === null && !this.#readHead()) return null;
    const framing = this.#framing;
    if (framing === null) return null;
    const body = framing.kind === "length" ? this.#lengthBody(framing.size) : this.#chunkedBody();
    if (body === null) return null;
    this.#framing = null;
    return { status: framing.status, body };
  }

  /** Makes room for `incoming` more bytes: moves the unread bytes down, or grows the buffer. */
  #makeRoom(incoming: number): void {
    const unread = this.#end - this.#start;
    const needed = unread + incoming;
    // Compacting only while at most half is unread frees at least half the buffer for every
    // byte it moves, so each received byte is moved a bounded number of times.
    if (needed <= this.#buffer.length && unread <= this.#buffer.length / 2) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(needed, this.#buffer.length * 2));
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
    }
    this.#start = 0;
    this.#end = unread;
  }

  /** Reads the head of the next answer into `#framing`; false until it has all arrived. */
  #readHead(): boolean {
    const buffer = this.#buffer;
    const from = this.#start + Math.max(0, this.#headScanned - 3);
    const headEnd = indexOfHeadEnd(buffer, from, this.#end);
    if (headEnd === -1) {
      this.#headScanned = this.#end - this.#start;
      if (this.#headScanned > RESPONSE_HEAD_BYTES_MAX) {
        throw new HttpConnectionError("the response head is too large");
      }
      return false;
    }
    const head = decoder.decode(buffer.subarray(this.#start, headEnd));
    this.#headScanned = 0;
    this.#start = headEnd + 4;
    this.#framing = framingOf(head);
    this.#bodyLength = 0;
    return true;
  }

  #lengthBody(size: number): string | null {
    if (this.#end - this.#start < size) return null;
    const body = decoder.decode(this.#buffer.subarray(this.#start, this.#start + size));
    this.#start += size;
    return body;
  }

  /** Takes every complete chunk into the body; the body once the last chunk has arrived. */
  #chunkedBody(): string | null {
    const buffer = this.#buffer;
    for (;;) {
      const lineEnd = indexOfCrlf(buffer, this.#start, this.#end);
      if (lineEnd === -1) {
        if (this.#end - this.#start > CHUNK_LINE_BYTES_MAX) {
          throw new HttpConnectionError("a chunk-size line is too long");
        }
        return null;
      }
      const size = parseInt(decoder.decode(buffer.subarray(this.#start, lineEnd)), 16);
      if (!Number.isSafeInteger(size) || size < 0) {
        throw new HttpConnectionError("a chunk size is malformed");
      }
      if (this.#bodyLength + size > RESPONSE_BODY_BYTES_MAX) {
        throw new HttpConnectionError("the body is too large");
      }
      const dataStart = lineEnd + 2;
      // The chunk waits whole in the buffer (its line is read again when it is complete).
      if (this.#end < dataStart + size + 2) return null;
      if (buffer[dataStart + size] !== CR || buffer[dataStart + size + 1] !== LF) {
        // After the last chunk, that is where trailers would be: none are expected.
        throw new HttpConnectionError("a chunk is not followed by CRLF");
      }
      this.#start = dataStart + size + 2;
      if (size === 0) return decoder.decode(this.#body.subarray(0, this.#bodyLength));
      this.#appendBody(buffer.subarray(dataStart, dataStart + size));
    }
  }

  #appendBody(data: Uint8Array): void {
    const length = this.#bodyLength + data.length;
    if (length > this.#body.length) {
      const grown = new Uint8Array(Math.max(length, this.#body.length * 2, BUFFER_BYTES_INITIAL));
      grown.set(this.#body.subarray(0, this.#bodyLength));
      this.#body = grown;
    }
    this.#body.set(data, this.#bodyLength);
    this.#bodyLength = length;
  }
}

/** How the body of an answer with this head is delimited. */
function framingOf(head: string): Framing {
  const status = parseStatus(head);
  const length = headerValue(head, "content-length");
  if (length !== null) {
    const size = Number(length);
    if (!Number.isSafeInteger(size) || size < 0 || size > RESPONSE_BODY_BYTES_MAX) {
      throw new HttpConnectionError(`the content-length "${length}" is not acceptable`);
    }
    return { kind: "length", status, size };
  }
  if (headerValue(head, "transfer-encoding")?.toLowerCase() === "chunked") {
    return { kind: "chunked", status };
  }
  if (status === 204 || status === 304) return { kind: "length", status, size: 0 };
  throw new HttpConnectionError("the response has neither a length nor chunked encoding");
}

function parseStatus(head: string): number {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (match === null) throw new HttpConnectionError("the status line is malformed");
  return Number(match[1]);
}

function headerValue(head: string, name: string): string | null {
  const lower = head.toLowerCase();
  const at = lower.indexOf(`\r\n${name}:`);
  if (at === -1) return null;
  const start = at + name.length + 3;
  const end = head.indexOf("\r\n", start);
  return head.slice(start, end === -1 ? head.length : end).trim();
}

function indexOfHeadEnd(buffer: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 3 < end; i++) {
    if (buffer[i] === CR && buffer[i + 1] === LF && buffer[i + 2] === CR && buffer[i + 3] === LF) {
      return i;
    }
  }
  return -1;
}

function indexOfCrlf(buffer: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 1 < end; i++) {
    if (buffer[i] === CR && buffer[i + 1] === LF) return i;
  }
  return -1;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let length = 0;
  for (const part of parts) length += part.length;
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
