/**
 * The benchmark's HTTP/1.1 connection: the response parser on byte streams cut at every
 * possible point (content-length, chunked, several pipelined answers, malformed input), a
 * large chunked answer cut at every awkward boundary (around each chunk-size line and CRLF,
 * and where the parser's buffer must grow) and fed one byte at a time, and
 * the connection against a real local `Deno.serve` (answers in order on one socket, a refused
 * connection and a server that closes both failing the requests in flight, then reconnecting).
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  CHUNK_LINE_BYTES_MAX,
  HttpConnection,
  HttpConnectionError,
  ResponseParser,
} from "./http_connection.ts";

const encoder = new TextEncoder();

function parseAll(chunks: readonly string[]): { status: number; body: string }[] {
  const parser = new ResponseParser();
  const answers = [];
  for (const chunk of chunks) {
    parser.push(encoder.encode(chunk));
    for (let answer = parser.next(); answer !== null; answer = parser.next()) answers.push(answer);
  }
  return answers;
}

const LENGTH =
  'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{"a":"é"}';
const CHUNKED = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n" +
  '4\r\n{"b"\r\n3\r\n:1}\r\n0\r\n\r\n';

Deno.test("ResponseParser reads pipelined answers cut at every byte", async (t) => {
  const stream = LENGTH + CHUNKED + LENGTH;
  const expected = [
    { status: 200, body: '{"a":"é"}' },
    { status: 404, body: '{"b":1}' },
    { status: 200, body: '{"a":"é"}' },
  ];
  const bytes = encoder.encode(stream);
  await t.step("in one piece", () => deepEqual(parseAll([stream]), expected));
  await t.step("cut anywhere", () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      const parser = new ResponseParser();
      const answers = [];
      for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
        parser.push(part);
        for (let answer = parser.next(); answer !== null; answer = parser.next()) {
          answers.push(answer);
        }
      }
      deepEqual(answers, expected, `cut at byte ${cut}`);
    }
  });
});

Deno.test("ResponseParser waits for a body that has not fully arrived", () => {
  const parser = new ResponseParser();
  parser.push(encoder.encode(LENGTH.slice(0, -1)));
  equal(parser.next(), null);
  parser.push(encoder.encode(LENGTH.slice(-1)));
  deepEqual(parser.next(), { status: 200, body: '{"a":"é"}' });
});

Deno.test("ResponseParser rejects malformed answers", async (t) => {
  const cases: [string, string][] = [
    ["a bad status line", "HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n"],
    ["a bad length", "HTTP/1.1 200 OK\r\ncontent-length: -3\r\n\r\n"],
    ["no length at all", "HTTP/1.1 200 OK\r\n\r\n"],
    ["a bad chunk size", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
    [
      "a chunk longer than its size",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    ],
    [
      "trailers after the last chunk",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-t: 1\r\n\r\n",
    ],
    [
      "a chunk-size line without an end",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" +
      "1".repeat(CHUNK_LINE_BYTES_MAX + 1),
    ],
  ];
  for (const [name, text] of cases) {
    await t.step(name, () => throws(() => parseAll([text]), HttpConnectionError));
  }
});

/**
 * A chunked answer of over 1 MiB whose chunks straddle the parser's 64 KiB starting buffer
 * (sizes from 1 byte to 300 KiB, upper- and lower-case hex, a chunk extension), followed by a
 * small answer on the same connection; and the offsets where a cut is awkward: on both sides of
 * every byte of every chunk-size line and CRLF, and around each multiple of 64 KiB.
 */
function bigChunkedStream(): { bytes: Uint8Array; body: string; cuts: number[] } {
  const sizes = [1, 15, 16, 255, 4096, 65_535, 65_536, 65_537, 300 * 1024, 7, 200_000, 500_000];
  const head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
  const framing: [number, number][] = [[head.length - 4, head.length]];
  let text = head;
  let body = "";
  sizes.forEach((size, i) => {
    const data = String.fromCharCode(97 + i % 26).repeat(size);
    const hex = i % 2 === 0 ? size.toString(16) : size.toString(16).toUpperCase();
    const line = `${hex}${i === 3 ? ";name=value" : ""}\r\n`;
    framing.push([text.length, text.length + line.length]);
    text += line + data;
    framing.push([text.length, text.length + 2]);
    text += "\r\n";
    body += data;
  });
  framing.push([text.length, text.length + 5]);
  text += "0\r\n\r\n" + LENGTH;
  const cuts = new Set<number>();
  for (const [start, end] of framing) {
    for (let at = start - 1; at <= end + 1; at++) cuts.add(at);
  }
  for (let at = 65_536; at < text.length; at += 65_536) {
    for (const near of [at - 1, at, at + 1]) cuts.add(near);
  }
  const inside = [...cuts].filter((at) => at > 0 && at < text.length).sort((a, b) => a - b);
  return { bytes: encoder.encode(text), body, cuts: inside };
}

function parsePieces(pieces: readonly Uint8Array[]): { status: number; body: string }[] {
  const parser = new ResponseParser();
  const answers = [];
  for (const piece of pieces) {
    parser.push(piece);
    for (let answer = parser.next(); answer !== null; answer = parser.next()) answers.push(answer);
  }
  return answers;
}

Deno.test("ResponseParser reads a big chunked answer cut at every awkward boundary", async (t) => {
  const { bytes, body, cuts } = bigChunkedStream();
  const expected = [{ status: 200, body }, { status: 200, body: '{"a":"é"}' }];
  const check = (answers: { status: number; body: string }[], what: string) => {
    equal(answers.length, 2, what);
    equal(answers[0]!.status, 200, what);
    ok(answers[0]!.body === body, `${what}: the large body comes back whole`);
    deepEqual(answers[1], expected[1], what);
  };
  await t.step("cut in two at each awkward offset", () => {
    for (const cut of cuts) {
      check(parsePieces([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at byte ${cut}`);
    }
  });
  await t.step("cut at every awkward offset at once", () => {
    const bounds = [0, ...cuts, bytes.length];
    const pieces = bounds.slice(1).map((end, i) => bytes.subarray(bounds[i]!, end));
    check(parsePieces(pieces), "all cuts");
  });
  await t.step("one byte at a time", () => {
    const pieces = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    check(parsePieces(pieces), "single bytes");
  });
});

Deno.test("HttpConnection pipelines requests on one socket and answers them in order", async () => {
  const seen: string[] = [];
  const remotePorts = new Set<number>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request, info) => {
      remotePorts.add(info.remoteAddr.port);
      const path = new URL(request.url).pathname;
      seen.push(`${request.method} ${path} ${request.headers.get("authorization")}`);
      const body = request.method === "PUT" ? await request.text() : "";
      return Response.json({ path, body }, { status: path === "/missing" ? 404 : 200 });
    },
  );
  const connection = new HttpConnection(`http://127.0.0.1:${server.addr.port}`, "Bearer t");
  try {
    const answers = await Promise.all([
      connection.request("GET", "/a", null),
      connection.request("PUT", "/b", '{"value":"x"}'),
      connection.request("GET", "/missing", null),
    ]);
    deepEqual(answers.map((answer) => answer.status), [200, 200, 404]);
    deepEqual(answers.map((answer) => JSON.parse(answer.body).path), ["/a", "/b", "/missing"]);
    equal(JSON.parse(answers[1]!.body).body, '{"value":"x"}');
    deepEqual(seen, ["GET /a Bearer t", "PUT /b Bearer t", "GET /missing Bearer t"]);
    equal(remotePorts.size, 1, "every request used the same connection");
  } finally {
    connection.close();
    await server.shutdown();
  }
});

Deno.test("HttpConnection fails requests while the server is gone, then reconnects", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const connection = new HttpConnection(`http://127.0.0.1:${port}`, null);
  try {
    await rejects(connection.request("GET", "/", null), HttpConnectionError);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port, onListen: () => {} },
      () => new Response("{}"),
    );
    try {
      const answer = await connection.request("GET", "/", null);
      equal(answer.status, 200);
    } finally {
      await server.shutdown();
    }
    await rejects(connection.request("GET", "/", null), HttpConnectionError);
  } finally {
    connection.close();
  }
});

Deno.test("HttpConnection fails the requests in flight when it is closed", async () => {
  const { promise: held, resolve: release } = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      if (new URL(request.url).pathname === "/held") await held;
      return new Response("{}");
    },
  );
  const connection = new HttpConnection(`http://127.0.0.1:${server.addr.port}`, null);
  try {
    equal((await connection.request("GET", "/ok", null)).status, 200);
    const pending = connection.request("GET", "/held", null);
    connection.close();
    await rejects(pending, HttpConnectionError);
    await rejects(connection.request("GET", "/ok", null), /closed/);
  } finally {
    release();
    await server.shutdown();
  }
});
