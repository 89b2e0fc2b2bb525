/**
 * The tenant routes in process (`app.request()`): bad bodies and names are 400 naming the
 * problem and never reach the node, a create that finished is 201 and one still running 202, a
 * move is 202, the node's refusals (tenant_exists, tenant_not_found, move_in_progress) keep
 * their status, and a read token may list tenants but not change them.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import type { TenantMoveResponse } from "../../api/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import type { TokenVerdict } from "../node/mod.ts";
import { createApp } from "./app.ts";
import { stubAppOptions } from "./_stub_app_options.ts";

const MOVE: TenantMoveResponse["move"] = {
  fromCount: 2,
  toCount: 2,
  phase: "done",
  startedAtMs: 0,
  updatedAtMs: 0,
  sources: [],
  tenant: { name: "acme", to: 1, isNew: true },
};

function appWithTenants(calls: unknown[], refusal: AspenError | null = null) {
  const answer = (name: string, shard: number, phase: "copy" | "done") => ({
    name,
    shard,
    move: { ...MOVE, phase },
  });
  return createApp({
    ...stubAppOptions(),
    tokens: {
      verify: (token) =>
        Promise.resolve<TokenVerdict>(
          token === "root"
            ? { kind: "accepted", role: "root" }
            : token === "read"
            ? { kind: "accepted", role: "read" }
            : { kind: "unknown" },
        ),
      create: () => Promise.reject(new Error("not here")),
      list: () => Promise.resolve([]),
      revoke: () => Promise.reject(new Error("not here")),
    },
    tenants: {
      create: (request) => {
        if (refusal !== null) return Promise.reject(refusal);
        calls.push(request);
        const isDone = request.name !== "slow";
        return Promise.resolve({
          answer: answer(request.name, request.to ?? 0, isDone ? "done" : "copy"),
          isDone,
        });
      },
      move: (request) => {
        if (refusal !== null) return Promise.reject(refusal);
        calls.push(request);
        return Promise.resolve(answer(request.name, request.to, "copy"));
      },
      list: () =>
        Promise.resolve({ epoch: 3, tenants: [{ name: "acme", shard: 1, keys: 2, bytes: 9 }] }),
    },
  });
}

function post(body: string, token = "root") {
  return {
    method: "POST",
    body,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
  };
}

Deno.test("POST /v1/tenants checks its body; 201 when done, 202 while running", async () => {
  const calls: unknown[] = [];
  const app = appWithTenants(calls);
  const bad: [string, RegExp][] = [
    ["", /the body must be/],
    ["[1]", /the body must be/],
    ["{}", /non-empty string/],
    ['{"name": ""}', /non-empty string/],
    ['{"name": "a/b"}', /'\/'/],
    [`{"name": "${"x".repeat(65)}"}`, /65 characters but the limit is 64/],
    ['{"name": "a", "shard": -1}', /"shard" must be a shard id/],
    ['{"name": "a", "shard": "1"}', /"shard" must be a shard id/],
    ['{"name": "a", "to": 1}', /unknown field "to"/],
  ];
  for (const [body, message] of bad) {
    const response = await app.request("/v1/tenants", post(body));
    equal(response.status, 400, body);
    const error = (await response.json()).error;
    equal(error.code, "bad_request");
    match(error.message, message);
  }
  equal(calls.length, 0, "no bad body reached the node");
  equal((await app.request("/v1/tenants", post('{"name": "acme", "shard": 1}'))).status, 201);
  equal((await app.request("/v1/tenants", post('{"name": "slow"}'))).status, 202);
  deepEqual(calls, [{ name: "acme", to: 1 }, { name: "slow", to: null }]);
  const forbidden = await app.request("/v1/tenants", post('{"name": "b"}', "read"));
  equal(forbidden.status, 403);
  const listed = await app.request("/v1/tenants", { headers: { authorization: "Bearer read" } });
  equal(listed.status, 200);
  deepEqual((await listed.json()).tenants, [{ name: "acme", shard: 1, keys: 2, bytes: 9 }]);
});

Deno.test("POST /v1/tenants/{name}/move checks input, keeps the node.s refusals", async () => {
  const calls: unknown[] = [];
  const app = appWithTenants(calls);
  for (
    const [path, body, message] of [
      ["/v1/tenants/acme/move", "{}", /"to" \(the new shard\) is missing/],
      ["/v1/tenants/acme/move", '{"to": 1.5}', /"to" must be a shard id/],
      ["/v1/tenants/acme/move", '{"to": 1, "x": 2}', /unknown field "x"/],
      ["/v1/tenants/a%20b/move", '{"to": 1}', /may hold only letters/],
    ] as const
  ) {
    const response = await app.request(path, post(body));
    equal(response.status, 400, `${path} ${body}`);
    match((await response.json()).error.message, message);
  }
  equal(calls.length, 0);
  equal((await app.request("/v1/tenants/acme/move", post('{"to": 1}'))).status, 202);
  deepEqual(calls, [{ name: "acme", to: 1, isNew: false }]);
  equal((await app.request("/v1/tenants/acme/move", post('{"to": 1}', "read"))).status, 403);
  const refusals: [AspenError, number][] = [
    [new AspenError("tenant_not_found", "Cannot move tenant: no such tenant"), 404],
    [new AspenError("tenant_exists", "Cannot create tenant: it exists"), 409],
    [new AspenError("move_in_progress", "Cannot move tenant: a move is running"), 409],
  ];
  for (const [refusal, status] of refusals) {
    const refusing = appWithTenants([], refusal);
    const moved = await refusing.request("/v1/tenants/acme/move", post('{"to": 1}'));
    equal(moved.status, status, refusal.code);
    equal((await moved.json()).error.code, refusal.code);
    const created = await refusing.request("/v1/tenants", post('{"name": "acme"}'));
    equal(created.status, status, refusal.code);
  }
});
