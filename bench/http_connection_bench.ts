/**
 * The benchmark client's response parser on large answers delivered in small pieces, as a
 * socket hands them over: a 1 MiB chunked answer (4 KiB chunks, the way a server streams a big
 * range) and a 1 MiB content-length answer, each pushed in 1,460-byte reads (one TCP segment).
 * A parser that copies its buffer on every read or re-scans the chunks it has already seen is
 * quadratic here; 1,000 small pipelined answers (the usual load) check that the common case
 * stays cheap. Run with `deno bench -A bench/http_connection_bench.ts`.
 */
import { ResponseParser } from "./http_connection.ts";

const BODY_BYTES = 1024 * 1024;
const CHUNK_BYTES = 4 * 1024;
const READ_BYTES = 1_460;
const encoder = new TextEncoder();

function chunkedAnswer(): Uint8Array {
  const body = "x".repeat(CHUNK_BYTES);
  let text =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
  for (let sent = 0; sent < BODY_BYTES; sent += CHUNK_BYTES) {
    text += `${CHUNK_BYTES.toString(16)}\r\n${body}\r\n`;
  }
  return encoder.encode(text + "0\r\n\r\n");
}

function lengthAnswer(): Uint8Array {
  return encoder.encode(
    `HTTP/1.1 200 OK\r\ncontent-length: ${BODY_BYTES}\r\n\r\n${"y".repeat(BODY_BYTES)}`,
  );
}

function pieces(bytes: Uint8Array): Uint8Array[] {
  const result = [];
  for (let offset = 0; offset < bytes.length; offset += READ_BYTES) {
    result.push(bytes.subarray(offset, offset + READ_BYTES));
  }
  return result;
}

function parse(parts: readonly Uint8Array[]): void {
  const parser = new ResponseParser();
  let answers = 0;
  for (const part of parts) {
    parser.push(part);
    for (let answer = parser.next(); answer !== null; answer = parser.next()) {
      if (answer.body.length !== BODY_BYTES) throw new Error("the body came back short");
      answers++;
    }
  }
  if (answers !== 1) throw new Error(`expected one answer, got ${answers}`);
}

const chunkedParts = pieces(chunkedAnswer());
const lengthParts = pieces(lengthAnswer());

Deno.bench("ResponseParser: 1 MiB chunked answer in 1,460-byte reads", () => parse(chunkedParts));
Deno.bench("ResponseParser: 1 MiB content-length answer in 1,460-byte reads", () => {
  parse(lengthParts);
});

const SMALL_ANSWERS = 1_000;
const smallAnswers = encoder.encode(
  `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n${"z".repeat(64)}`
    .repeat(SMALL_ANSWERS),
);
const smallParts = pieces(smallAnswers);

Deno.bench("ResponseParser: 1,000 pipelined 64-byte answers in 1,460-byte reads", () => {
  const parser = new ResponseParser();
  let answers = 0;
  for (const part of smallParts) {
    parser.push(part);
    for (let answer = parser.next(); answer !== null; answer = parser.next()) answers++;
  }
  if (answers !== SMALL_ANSWERS) throw new Error(`expected ${SMALL_ANSWERS}, got ${answers}`);
});
