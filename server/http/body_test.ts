/**
 * The body limit of the API (limitBody, Hono's body-limit middleware with HTTP_BODY_BYTES_MAX),
 * in process with `app.request()`: a body over the limit is a 413 with the API's JSON error
 * whether it declares a Content-Length (refused unread) or streams without one (chunked, read
 * only up to the limit); a streamed body under the limit reaches the route whole; a body that
 * breaks off is a 400; and a route's own failure after the body was read is not mistaken for
 * a bad body.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { Hono } from "hono";
import type { AssertionError } from "../../raft/mod.ts";
import { createApp } from "./app.ts";
import { stubAppOptions } from "./_stub_app_options.ts";
import { HTTP_BODY_BYTES_MAX, readJsonObject, stringField } from "./body.ts";

const CHUNK_BYTES = 64 * 1024;

function echoApp(): Hono {
  const bugs: AssertionError[] = [];
  return createApp({
    ...stubAppOptions(),
    extend: (app) => {
      app.post("/v1/test/echo", async (c) => {
        const body = await readJsonObject(c.req.raw, "echo", ["value"]);
        return c.json({ bytes: stringField(body, "value", "echo").length });
      });
      app.post("/v1/test/fail-after-body", async (c) => {
        await readJsonObject(c.req.raw, "fail", ["value"]);
        throw new TypeError("the route failed after reading its body");
      });
    },
    onBug: (bug) => bugs.push(bug),
  });
}

/** A body of `total` bytes streamed in CHUNK_BYTES pieces, counting the bytes pulled. */
function countedStream(text: string): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      const end = Math.min(offset + CHUNK_BYTES, bytes.byteLength);
      controller.enqueue(bytes.slice(offset, end));
      offset = end;
    },
  });
  return { stream, pulled: () => offset };
}

function assertTooLarge(json: { error: Record<string, unknown> }): void {
  equal(json.error.code, "request_too_large");
  equal(json.error.name, "HTTP_BODY_BYTES_MAX");
  equal(json.error.limit, HTTP_BODY_BYTES_MAX);
  match(String(json.error.message), /^Cannot accept the body of POST \/v1\/test\/echo: .* over/);
}

Deno.test("limitBody() refuses a streamed body (no Content-Length) past the limit", async () => {
  const body = JSON.stringify({ value: "x".repeat(HTTP_BODY_BYTES_MAX) });
  const { stream, pulled } = countedStream(body);
  const response = await echoApp().request("/v1/test/echo", { method: "POST", body: stream });
  equal(response.status, 413);
  equal(response.headers.get("content-type"), "application/json");
  assertTooLarge(await response.json());
  ok(pulled() <= HTTP_BODY_BYTES_MAX + CHUNK_BYTES, "the body is read only up to the limit");
});

Deno.test("limitBody() refuses a declared Content-Length past the limit unread", async () => {
  const { stream, pulled } = countedStream(JSON.stringify({ value: "x" }));
  const response = await echoApp().request("/v1/test/echo", {
    method: "POST",
    body: stream,
    headers: { "content-length": String(HTTP_BODY_BYTES_MAX + 1) },
  });
  equal(response.status, 413);
  assertTooLarge(await response.json());
  ok(pulled() <= CHUNK_BYTES, "nothing past what the stream buffers ahead is pulled");
});

Deno.test("limitBody() passes a streamed body at the limit whole, in many chunks", async () => {
  const wrapper = JSON.stringify({ value: "" }).length;
  const value = "y".repeat(HTTP_BODY_BYTES_MAX - wrapper);
  const { stream } = countedStream(JSON.stringify({ value }));
  const response = await echoApp().request("/v1/test/echo", { method: "POST", body: stream });
  equal(response.status, 200);
  deepEqual(await response.json(), { bytes: value.length });
});

Deno.test("limitBody() answers a body that breaks off with 400 bad_request", async () => {
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) {
        controller.error(new Error("connection reset"));
        return;
      }
      sent = true;
      controller.enqueue(new TextEncoder().encode('{"value":"'));
    },
  });
  const response = await echoApp().request("/v1/test/echo", { method: "POST", body: stream });
  equal(response.status, 400);
  const json = await response.json();
  equal(json.error.code, "bad_request");
  match(json.error.message, /the body could not be read \(cut short\?\): connection reset$/);
});

Deno.test("limitBody() leaves a route failing after the body to the error handler", async () => {
  const { stream } = countedStream(JSON.stringify({ value: "z" }));
  const response = await echoApp().request("/v1/test/fail-after-body", {
    method: "POST",
    body: stream,
  });
  equal(response.status, 500);
  equal((await response.json()).error.code, "internal");
});
