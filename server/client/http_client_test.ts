/**
 * AspenClient failover against a real local HTTP server: a read moves on from a node that
 * cannot be reached, a write never does (its outcome is unknown, so it must not be sent twice).
 */
import { equal, rejects } from "node:assert/strict";
import { ApiError, AspenClient } from "./http_client.ts";

Deno.test("AspenClient fails over reads but never writes", async () => {
  const methods: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    methods.push(request.method);
    return Response.json({ kv: null, shard: 0, revision: 1, version: 1 });
  });
  try {
    const live = `http://127.0.0.1:${server.addr.port}`;
    const client = new AspenClient({ endpoints: ["http://127.0.0.1:1", live], token: null });
    await client.request({ method: "GET", path: "/v1/kv/a" });
    equal(methods.join(","), "GET");
    const writer = new AspenClient({ endpoints: ["http://127.0.0.1:1", live], token: null });
    await rejects(writer.put("a", "1"), (error: ApiError) => {
      equal(error.code, "unavailable");
      return /outcome is unknown/.test(error.message);
    });
    equal(methods.join(","), "GET", "the write was not sent to the second node");
  } finally {
    await server.shutdown();
  }
});
