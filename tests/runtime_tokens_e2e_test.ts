/**
 * Runtime tokens on a real 3-node, 2-shard cluster (issue 17): a token created through one node
 * works on the others at once; a read token reads, gets 403 for writes and for the token routes;
 * bad create bodies get 400 naming the field; the list never shows secrets; a revoke through
 * node 1 is refused on nodes 2 and 3 within a node heartbeat plus one read (the meta stamp on
 * the heartbeats, meta_watch.ts; well before TOKENS_REFRESH_MS re-reads); an expired token
 * gets 401 saying it expired; RUNTIME_TOKENS_MAX is enforced; the CLI drives the same routes;
 * and after every node restarts the tokens still work and are still listed.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { runCli } from "../cli/run_cli.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import {
  NODE_HEARTBEAT_TICKS,
  TICK_MS,
  TOKENS_READ_TIMEOUT_MS,
  TOKENS_REFRESH_MS,
} from "../server/node/mod.ts";
import { RUNTIME_TOKENS_MAX } from "../server/runtime_tokens.ts";
import { captureCliIo } from "../cli/_capture_io.ts";
import { launchTestCluster } from "./_cluster.ts";

/**
 * The bound a revoke must meet on other nodes (see node/token_registry.ts): a node heartbeat
 * carrying the changed meta stamp, then a read (its whole deadline), with slack for a loaded
 * machine. It is below TOKENS_REFRESH_MS, so the periodic re-read alone would miss it most times.
 */
const REVOKE_BOUND_MS = NODE_HEARTBEAT_TICKS * TICK_MS + TOKENS_READ_TIMEOUT_MS + 1_000;
if (REVOKE_BOUND_MS >= TOKENS_REFRESH_MS) {
  throw new Error("REVOKE_BOUND_MS must be below TOKENS_REFRESH_MS to test the meta stamps");
}
/** The lifetime of the token that must expire. */
const SHORT_TTL_SECONDS = 2;

interface Answer {
  readonly status: number;
  // deno-lint-ignore no-explicit-any
  readonly json: any;
}

async function call(
  cluster: LocalCluster,
  options: { node: number; method: string; path: string; token: string; body?: unknown },
): Promise<Answer> {
  const response = await fetch(cluster.url(options.node) + options.path, {
    method: options.method,
    headers: {
      authorization: `Bearer ${options.token}`,
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === "" ? null : JSON.parse(text) };
}

Deno.test("runtime tokens: create, use, list, revoke across nodes; expiry; restart", async (t) => {
  const test = await launchTestCluster({ nodes: 3, shards: 2 });
  const { cluster } = test;
  const root = cluster.record.rootToken;
  const create = (node: number, body: unknown, token = root) =>
    call(cluster, { node, method: "POST", path: "/v1/auth/tokens", token, body });
  try {
    await cluster.waitForLeaders();
    const read = await create(1, { role: "read", name: "dashboards" });
    equal(read.status, 200, JSON.stringify(read.json));
    match(read.json.token, /^aspen_/);
    equal(read.json.role, "read");
    equal(read.json.expiresAt, null);
    const admin = await create(1, { role: "root", ttlSeconds: 3_600 });
    equal(admin.status, 200, JSON.stringify(admin.json));

    await t.step("a token made via node 1 works on nodes 2 and 3 at once", async () => {
      const put = { method: "PUT", path: "/v1/kv/tokens-e2e", body: { value: "v" } };
      equal((await call(cluster, { node: 2, token: admin.json.token, ...put })).status, 200);
      const get = { method: "GET", path: "/v1/kv/tokens-e2e", token: read.json.token };
      equal((await call(cluster, { node: 3, ...get })).status, 200);
    });

    await t.step("a read token: writes and token routes are 403", async () => {
      const token = read.json.token;
      const put = { method: "PUT", path: "/v1/kv/x", body: { value: "v" }, token };
      equal((await call(cluster, { node: 2, ...put })).status, 403);
      const created = await create(2, { role: "read" }, token);
      equal(created.status, 403);
      equal(created.json.error.code, "forbidden");
      const listed = await call(cluster, {
        node: 2,
        method: "GET",
        path: "/v1/auth/tokens",
        token,
      });
      equal(listed.status, 403);
      const path = `/v1/auth/tokens/${admin.json.id}`;
      equal((await call(cluster, { node: 2, method: "DELETE", path, token })).status, 403);
    });

    await t.step("bad bodies are 400 naming the field", async () => {
      for (
        const [body, field] of [
          [{ role: "admin" }, "role"],
          [{ role: "read", ttlSeconds: 0 }, "ttlSeconds"],
          [{ role: "read", ttlSeconds: "24h" }, "ttlSeconds"],
          [{ role: "read", name: "" }, "name"],
        ] as const
      ) {
        const answer = await create(3, body);
        equal(answer.status, 400, JSON.stringify(body));
        equal(answer.json.error.code, "bad_request");
        ok(answer.json.error.message.includes(field), answer.json.error.message);
      }
      const path = "/v1/auth/tokens/not-an-id";
      const bad = await call(cluster, { node: 1, method: "DELETE", path, token: root });
      equal(bad.status, 400);
      const unknown = "/v1/auth/tokens/0123456789abcdef";
      const missing = await call(cluster, {
        node: 1,
        method: "DELETE",
        path: unknown,
        token: root,
      });
      equal(missing.status, 404);
      equal(missing.json.error.code, "token_not_found");
    });

    await t.step("the list shows every token on every node, without secrets", async () => {
      for (const node of [1, 2, 3]) {
        const listed = await call(cluster, {
          node,
          method: "GET",
          path: "/v1/auth/tokens",
          token: admin.json.token,
        });
        equal(listed.status, 200);
        deepEqual(
          listed.json.tokens.map((item: { id: string }) => item.id).sort(),
          [
            read.json.id,
            admin.json.id,
          ].sort(),
        );
        const text = JSON.stringify(listed.json);
        equal(text.includes(read.json.token), false);
        equal(text.includes("hash"), false);
        equal(
          listed.json.tokens.find((item: { id: string }) => item.id === read.json.id).name,
          "dashboards",
        );
      }
    });

    await t.step("a revoke via node 1 is refused on nodes 2 and 3 in bound", async () => {
      const path = `/v1/auth/tokens/${read.json.id}`;
      const revoked = await call(cluster, { node: 1, method: "DELETE", path, token: root });
      equal(revoked.status, 200, JSON.stringify(revoked.json));
      const revokedAt = Date.now();
      const get = { method: "GET", path: "/v1/kv/tokens-e2e", token: read.json.token };
      equal((await call(cluster, { node: 1, ...get })).status, 401, "refused at once on node 1");
      for (const node of [2, 3]) {
        let status = 0;
        while (Date.now() - revokedAt < REVOKE_BOUND_MS) {
          status = (await call(cluster, { node, ...get })).status;
          if (status === 401) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        equal(status, 401, `node ${node} refuses the revoked token within ${REVOKE_BOUND_MS} ms`);
      }
    });

    await t.step("an expired token gets 401 saying it expired", async () => {
      const short = await create(2, { role: "read", ttlSeconds: SHORT_TTL_SECONDS });
      equal(short.status, 200);
      const get = { method: "GET", path: "/v1/kv/tokens-e2e", token: short.json.token };
      equal((await call(cluster, { node: 3, ...get })).status, 200);
      const expiresAtMs = Date.parse(short.json.expiresAt);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAtMs - Date.now())));
      const refused = await call(cluster, { node: 3, ...get });
      equal(refused.status, 401);
      equal(refused.json.error.code, "unauthorized");
      match(refused.json.error.message, /expired at/);
    });

    await t.step("the CLI creates, lists and revokes", async () => {
      const flags = ["--endpoints", cluster.url(2), "--token", root, "--json"];
      const created = await cli([
        "cluster",
        "token",
        "create",
        "--role",
        "read",
        "--ttl",
        "1h",
        ...flags,
      ]);
      equal(created.code, 0, created.stderr);
      const token = JSON.parse(created.stdout);
      ok(Date.parse(token.expiresAt) - Date.parse(token.createdAt) === 3_600_000);
      const listed = await cli(["cluster", "token", "list", ...flags]);
      ok(JSON.parse(listed.stdout).some((item: { id: string }) => item.id === token.id));
      const revoked = await cli(["cluster", "token", "revoke", token.id, ...flags]);
      equal(revoked.code, 0, revoked.stderr);
      const again = await cli(["cluster", "token", "revoke", token.id, ...flags]);
      equal(again.code, 1);
      match(again.stderr, /token_not_found/);
    });

    await t.step(`creating past RUNTIME_TOKENS_MAX (${RUNTIME_TOKENS_MAX}) is 429`, async () => {
      // Count the refusal, not the tokens before it: a short-lived token may expire meanwhile.
      let refused: Answer | null = null;
      for (let count = 0; count <= RUNTIME_TOKENS_MAX && refused === null; count++) {
        const answer = await create(1 + (count % 3), { role: "read" });
        if (answer.status !== 200) refused = answer;
      }
      ok(refused !== null, "a create was refused");
      equal(refused.status, 429, JSON.stringify(refused.json));
      equal(refused.json.error.code, "limit_exceeded");
      const path = "/v1/auth/tokens";
      const listed = await call(cluster, { node: 3, method: "GET", path, token: root });
      const live = listed.json.tokens.filter((item: { isExpired: boolean }) => !item.isExpired);
      equal(live.length, RUNTIME_TOKENS_MAX);
      match(refused.json.error.message, /RUNTIME_TOKENS_MAX/);
    });

    await t.step("after every node restarts, tokens still work and are listed", async () => {
      for (const node of cluster.nodes) await cluster.stopNode(node.id);
      for (const node of cluster.nodes) cluster.start(node.id);
      await cluster.waitForLeaders();
      for (const node of [1, 2, 3]) {
        const get = { method: "GET", path: "/v1/kv/tokens-e2e", token: admin.json.token };
        equal((await call(cluster, { node, ...get })).status, 200, `node ${node}`);
        const revoked = { method: "GET", path: "/v1/kv/tokens-e2e", token: read.json.token };
        equal((await call(cluster, { node, ...revoked })).status, 401, `node ${node}`);
      }
      const listed = await call(cluster, {
        node: 3,
        method: "GET",
        path: "/v1/auth/tokens",
        token: root,
      });
      ok(listed.json.tokens.some((item: { id: string }) => item.id === admin.json.id));
    });
  } catch (error) {
    console.error(test.lines.slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

/** Runs the `aspen` CLI in process. */
async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = captureCliIo();
  const code = await runCli(argv, run.io);
  return { code, stdout: run.out(), stderr: run.err() };
}
