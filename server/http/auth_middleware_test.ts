/**
 * Request authentication in process (`app.request()`), over a stand-in token authority (the
 * registry itself is tested in node/token_registry_test.ts, the whole path in
 * tests/runtime_tokens_e2e_test.ts): Hono's bearer-auth refusals keep Aspen's JSON error body
 * and 401 (a malformed header too, as before bearer-auth), an expired token is told so, a read
 * token may only read and may not manage tokens, and an authority that cannot check now is a
 * 503.
 */
import type { ClusterStatus } from "../../api/mod.ts";
import { equal, match } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import type { KvService, TokenVerdict } from "../node/mod.ts";
import { createApp } from "./app.ts";

const EXPIRES_AT_MS = Date.UTC(2030, 0, 2, 3, 4, 5);

const verdicts: Readonly<Record<string, TokenVerdict | "down">> = {
  aspen_root: { kind: "accepted", role: "root" },
  aspen_read: { kind: "accepted", role: "read" },
  aspen_expired: { kind: "expired", expiresAtMs: EXPIRES_AT_MS },
  aspen_down: "down",
};

function app() {
  return createApp({
    nodeId: 1,
    service: { shardCount: 1 } as KvService,
    tokens: {
      verify(token) {
        const verdict = verdicts[token] ?? { kind: "unknown" };
        if (verdict === "down") {
          return Promise.reject(new AspenError("shard_unavailable", "Cannot check: down"));
        }
        return Promise.resolve(verdict);
      },
      create: () => Promise.reject(new Error("not in this test")),
      list: () => Promise.resolve([]),
      revoke: () => Promise.reject(new Error("not in this test")),
    },
    logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now }),
    status: () => Promise.resolve({} as ClusterStatus),
    transferLeader: () => Promise.resolve({ shard: 0, leader: 1 }),
    metrics: () => Promise.resolve(""),
  });
}

async function call(method: string, path: string, authorization: string | null) {
  const response = await app().request(path, {
    method,
    headers: authorization === null ? {} : { authorization },
  });
  const body = await response.json();
  return {
    response,
    status: response.status,
    code: body.error?.code,
    message: body.error?.message,
  };
}

Deno.test("auth refusals are 401 with a JSON error body and a challenge", async (t) => {
  const cases: [string, string | null, RegExp][] = [
    ["no header", null, /send Authorization: Bearer <token>/],
    ["another scheme", "Basic dXNlcjpwYXNz", /send Authorization: Bearer <token>/],
    ["not a token", "Bearer a b", /send Authorization: Bearer <token>/],
    ["an unknown token", "Bearer aspen_nope", /the token is not valid/],
    ["an expired token", "Bearer aspen_expired", /the token expired at 2030-01-02T03:04:05\.000Z/],
  ];
  for (const [name, authorization, message] of cases) {
    await t.step(name, async () => {
      const answer = await call("GET", "/v1/cluster/status", authorization);
      equal(answer.status, 401);
      equal(answer.code, "unauthorized");
      match(answer.message, message);
      match(answer.response.headers.get("www-authenticate") ?? "", /^Bearer/);
    });
  }
});

Deno.test("roles: a read token reads, and gets 403 for writes and token routes", async () => {
  equal((await call("GET", "/v1/cluster/status", "bearer aspen_read")).status, 200);
  equal((await call("GET", "/v1/auth/tokens", "Bearer aspen_root")).status, 200);
  for (
    const [method, path] of [
      ["POST", "/v1/shards/0/transfer-leader"],
      ["GET", "/v1/auth/tokens"],
      ["POST", "/v1/auth/tokens"],
      ["DELETE", "/v1/auth/tokens/0123456789abcdef"],
    ]
  ) {
    const answer = await call(method!, path!, "Bearer aspen_read");
    equal(answer.status, 403, `${method} ${path}`);
    equal(answer.code, "forbidden");
  }
});

Deno.test("a token that cannot be checked now is 503 shard_unavailable", async () => {
  const answer = await call("GET", "/v1/cluster/status", "Bearer aspen_down");
  equal(answer.status, 503);
  equal(answer.code, "shard_unavailable");
});
