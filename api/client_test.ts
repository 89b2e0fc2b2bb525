/**
 * AspenClient against real local HTTP servers: a read moves on from a node that cannot be
 * reached, a write never does (its outcome is unknown, so it must not be sent twice); error
 * answers become ApiErrors with the server's code, status and details; an answer that is not
 * JSON, or none in time (no headers, or a body that stalls), gets a client code.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { AspenClient } from "./client.ts";
import { ApiError } from "./errors.ts";

async function withServer(
  handler: (request: Request) => Response | Promise<Response>,
  run: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  try {
    await run(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("AspenClient fails over reads but never writes", async () => {
  const methods: string[] = [];
  await withServer((request) => {
    methods.push(request.method);
    return Response.json({ kv: null, shard: 0, revision: 1, version: 1 });
  }, async (live) => {
    const client = new AspenClient({ endpoints: ["http://127.0.0.1:1", live], token: null });
    await client.request({ method: "GET", path: "/v1/kv/a" });
    equal(methods.join(","), "GET");
    const writer = new AspenClient({ endpoints: ["http://127.0.0.1:1", live], token: null });
    await rejects(writer.put("a", "1"), (error: ApiError) => {
      equal(error.code, "unreachable");
      equal(error.httpStatus, 0);
      return /outcome is unknown/.test(error.message);
    });
    equal(methods.join(","), "GET", "the write was not sent to the second node");
  });
});

Deno.test("AspenClient turns error bodies, bad answers and silence into ApiErrors", async () => {
  const conflict = { code: "conflict", message: 'Cannot commit: key "a" changed', key: "a" };
  let isSilent = false;
  const release = Promise.withResolvers<void>();
  await withServer(async (request) => {
    if (isSilent) {
      // Answers only after the client gave up, so that the client's timeout fires first.
      await release.promise;
      return new Response("late");
    }
    const path = new URL(request.url).pathname;
    if (path === "/v1/kv/slow") {
      // Headers at once, then a body that stalls past the client's deadline.
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("{"));
          await release.promise;
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }
    if (path === "/v1/txn/optimistic") return Response.json({ error: conflict }, { status: 409 });
    if (path === "/v1/kv/html") return new Response("<html>", { status: 502 });
    return new Response("not json", { status: 200 });
  }, async (url) => {
    const client = new AspenClient({ endpoints: [url], token: "aspen_x", timeoutMs: 200 });
    await rejects(client.optimistic({ reads: [], writes: [] }), (error: ApiError) => {
      deepEqual([error.code, error.httpStatus, error.details], ["conflict", 409, { key: "a" }]);
      return error.message === conflict.message;
    });
    await rejects(client.request({ method: "GET", path: "/v1/kv/html" }), (error: ApiError) => {
      deepEqual([error.code, error.httpStatus], ["bad_response", 502]);
      return true;
    });
    await rejects(client.request({ method: "GET", path: "/v1/kv/a" }), (error: ApiError) => {
      deepEqual([error.code, error.httpStatus], ["bad_response", 200]);
      return /not JSON: not json/.test(error.message);
    });
    await rejects(client.request({ method: "GET", path: "/v1/kv/slow" }), (error: ApiError) => {
      deepEqual([error.code, error.httpStatus], ["client_timeout", 0]);
      return true;
    });
    isSilent = true;
    await rejects(client.request({ method: "GET", path: "/v1/kv/a" }), (error: ApiError) => {
      deepEqual([error.code, error.httpStatus], ["client_timeout", 0]);
      return /within 0.2 s/.test(error.message);
    });
    release.resolve();
  });
});
