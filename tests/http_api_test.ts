/**
 * The HTTP API contract (API.md), in process with `app.request()` against a real one-node
 * cluster (real SQLite files, real Raft, real peer endpoint) with 4 shards: every route's
 * success shape, revisions and versions, transactions, leases, auth (401 and 403), and that
 * bad input gets a 4xx JSON error naming the problem and changes nothing.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { HTTP_BODY_BYTES_MAX } from "../server/http/mod.ts";
import { callInProcess, startInProcessNode } from "./_in_process_node.ts";

const call = callInProcess;

function errorCode(json: Record<string, unknown>): string {
  return (json.error as { code: string }).code;
}

Deno.test({
  name: "HTTP API: keys, ranges, transactions, leases, auth and bad input",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const harness = await startInProcessNode({ shards: 4 });
    try {
      await t.step("health needs no token", async () => {
        const { status, json } = await call(harness, "GET", "/v1/health", undefined, null);
        equal(status, 200);
        deepEqual(json, { status: "ok", node: 1 });
      });
      await t.step("put, get, versions and revisions", async () => {
        const first = await call(harness, "PUT", "/v1/kv/users%2F42", { value: "alice" });
        equal(first.status, 200);
        equal(first.json.version, 1);
        const second = await call(harness, "PUT", "/v1/kv/users/42", {
          value: "bob",
          prevKv: true,
        });
        equal(second.json.version, 2);
        equal((second.json.prevKv as { value: string }).value, "alice");
        const got = await call(harness, "GET", "/v1/kv/users/42");
        const kv = got.json.kv as Record<string, number | string>;
        equal(kv.value, "bob");
        equal(kv.version, 2);
        equal(kv.createRevision, first.json.revision);
        equal(kv.modRevision, second.json.revision);
        equal(got.json.shard, first.json.shard);
      });
      await t.step("a value of exactly the 1 MiB limit is stored whole", async () => {
        const value = "x".repeat(1024 * 1024);
        equal((await call(harness, "PUT", "/v1/kv/big", { value })).status, 200);
        equal(
          ((await call(harness, "GET", "/v1/kv/big")).json.kv as { value: string }).value,
          value,
        );
      });
      await t.step("a 1 MiB value of characters JSON escapes is stored whole", async () => {
        // `"` takes two bytes of JSON and a control character six: the body is far larger
        // than the encoded command, and HTTP_BODY_BYTES_MAX allows for it.
        for (const [name, character] of [["quotes", '"'], ["controls", "\u0001"]]) {
          const value = character!.repeat(1024 * 1024);
          const put = await call(harness, "PUT", `/v1/kv/escaped-${name}`, { value });
          equal(put.status, 200, JSON.stringify(put.json).slice(0, 200));
          const got = await call(harness, "GET", `/v1/kv/escaped-${name}`);
          equal((got.json.kv as { value: string }).value, value);
        }
      });
      await t.step("a body over HTTP_BODY_BYTES_MAX is 413 naming the limit", async () => {
        const body = JSON.stringify({ value: "x" }) + " ".repeat(HTTP_BODY_BYTES_MAX);
        const result = await call(harness, "PUT", "/v1/kv/too-big", body);
        equal(result.status, 413);
        equal((result.json.error as { name: string }).name, "HTTP_BODY_BYTES_MAX");
      });
      await t.step("a missing key is 404 key_not_found", async () => {
        const { status, json } = await call(harness, "GET", "/v1/kv/nope");
        equal(status, 404);
        equal(errorCode(json), "key_not_found");
      });
      await t.step("delete reports the count and the previous kv", async () => {
        await call(harness, "PUT", "/v1/kv/gone", { value: "x" });
        const { json } = await call(harness, "DELETE", "/v1/kv/gone?prevKv=true");
        equal(json.deleted, 1);
        equal((json.prevKv as { value: string }).value, "x");
        equal((await call(harness, "DELETE", "/v1/kv/gone")).json.deleted, 0);
      });
      await t.step("a range merges every shard in key order with a global limit", async () => {
        for (let i = 0; i < 30; i++) {
          await call(harness, "PUT", `/v1/kv/scan%2F${String(i).padStart(2, "0")}`, {
            value: `${i}`,
          });
        }
        const page1 = await call(harness, "GET", "/v1/kv?prefix=scan%2F&limit=12");
        const keys1 = (page1.json.kvs as { key: string }[]).map((kv) => kv.key);
        equal(keys1.length, 12);
        deepEqual(keys1, [...keys1].sort());
        equal(page1.json.more, true);
        const page2 = await call(
          harness,
          "GET",
          `/v1/kv?prefix=scan%2F&limit=100&after=${encodeURIComponent(page1.json.next as string)}`,
        );
        const keys2 = (page2.json.kvs as { key: string }[]).map((kv) => kv.key);
        equal(keys1.length + keys2.length, 30);
        equal(page2.json.more, false);
        const count = await call(harness, "GET", "/v1/kv?prefix=scan%2F&countOnly=true");
        equal(count.json.count, 30);
        const reverse = await call(harness, "GET", "/v1/kv?prefix=scan%2F&limit=3&reverse=true");
        deepEqual((reverse.json.kvs as { key: string }[]).map((kv) => kv.key), [
          "scan/29",
          "scan/28",
          "scan/27",
        ]);
        const removed = await call(harness, "DELETE", "/v1/kv?prefix=scan%2F");
        equal(removed.json.deleted, 30);
      });
      await t.step("a one-compare txn is a compare-and-swap", async () => {
        await call(harness, "PUT", "/v1/kv/cas", { value: "1" });
        const swap = (from: string, to: string) =>
          call(harness, "POST", "/v1/txn", {
            compare: [{ key: "cas", target: "value", op: "=", value: from }],
            success: [{ put: { key: "cas", value: to } }],
            failure: [{ get: { key: "cas" } }],
          });
        equal((await swap("1", "2")).json.succeeded, true);
        const lost = await swap("1", "3");
        equal(lost.json.succeeded, false);
        equal(((lost.json.results as { kv: { value: string } }[])[0]!).kv.value, "2");
      });
      await t.step("optimistic txn commits, then conflicts with 409 naming the key", async () => {
        const put = await call(harness, "PUT", "/v1/kv/occ", { value: "a" });
        const version = put.json.version as number;
        const body = (expected: number) => ({
          reads: [{ key: "occ", version: expected }],
          writes: [{ op: "set", key: "occ", value: "b" }],
        });
        const ok1 = await call(harness, "POST", "/v1/txn/optimistic", body(version));
        equal(ok1.json.committed, true);
        const clash = await call(harness, "POST", "/v1/txn/optimistic", body(version));
        equal(clash.status, 409);
        const error = clash.json.error as Record<string, unknown>;
        equal(error.code, "conflict");
        equal(error.key, "occ");
        equal(error.expected, version);
        equal(error.actual, version + 1);
      });
      await t.step("optimistic txn sees a key deleted and re-created since the read", async () => {
        // The reproduction of issue 12: the key comes back at the version that was read.
        await call(harness, "PUT", "/v1/kv/aba", { value: "first" });
        const read = await call(harness, "GET", "/v1/kv/aba");
        const seen = read.json.kv as { version: number; modRevision: number };
        equal(seen.version, 1);
        equal((await call(harness, "DELETE", "/v1/kv/aba")).json.deleted, 1);
        const again = await call(harness, "PUT", "/v1/kv/aba", { value: "second" });
        equal(again.json.version, 1, "back at the version that was read");
        const commit = (reads: unknown[]) =>
          call(harness, "POST", "/v1/txn/optimistic", {
            reads,
            writes: [{ op: "set", key: "aba", value: "edited" }],
          });
        const byModRevision = await commit([{ key: "aba", modRevision: seen.modRevision }]);
        equal(byModRevision.status, 409);
        deepEqual(byModRevision.json.error, {
          code: "conflict",
          message: `Cannot commit optimistic txn: key "aba" has modRevision ` +
            `${again.json.revision} but the transaction read modRevision ${seen.modRevision} ` +
            "(0: absent)",
          key: "aba",
          field: "modRevision",
          expected: null,
          actual: 1,
          expectedModRevision: seen.modRevision,
          actualModRevision: again.json.revision,
          readRevision: null,
        });
        const atRevision = await commit([
          { key: "aba", version: seen.version, revision: read.json.revision },
        ]);
        equal(atRevision.status, 409);
        const error = atRevision.json.error as Record<string, unknown>;
        equal(error.code, "conflict");
        equal(error.key, "aba");
        equal(error.field, "revision");
        deepEqual([error.expected, error.actual], [1, 1]);
        deepEqual([error.readRevision, error.actualModRevision], [
          read.json.revision,
          again.json.revision,
        ]);
        equal(
          ((await call(harness, "GET", "/v1/kv/aba")).json.kv as { value: string }).value,
          "second",
        );
        // The documented limit (README, optimistic transactions): a version alone cannot tell
        // the re-created key from the one that was read.
        const byVersion = await commit([{ key: "aba", version: seen.version }]);
        equal(byVersion.status, 200);
        const now = (await call(harness, "GET", "/v1/kv/aba")).json.kv as { modRevision: number };
        const current = await commit([{ key: "aba", modRevision: now.modRevision }]);
        equal(current.json.committed, true, "the current modRevision commits");
      });
      await t.step("txn results and lease errors name leases by their API id", async () => {
        const key = "leased/txn";
        const grant = await call(harness, "POST", "/v1/leases", { ttl: 60, key });
        const id = grant.json.id as number;
        const local = Math.floor(id / 1024);
        equal((await call(harness, "PUT", `/v1/kv/${key}`, { value: "v", lease: id })).status, 200);
        const txn = await call(harness, "POST", "/v1/txn", {
          success: [
            { get: { key } },
            { put: { key, value: "w", lease: id, prevKv: true } },
            { delete: { key, prevKv: true } },
          ],
        });
        equal(txn.status, 200, JSON.stringify(txn.json));
        const [got, put, removed] = txn.json.results as {
          kv?: { lease: number };
          prevKv?: { lease: number };
        }[];
        equal(got?.kv?.lease, id, "a get result");
        equal(put?.prevKv?.lease, id, "a put's prevKv");
        equal(removed?.prevKv?.lease, id, "a delete's prevKv");
        equal((await call(harness, "DELETE", `/v1/leases/${id}`)).status, 200);
        const requests: [string, string, unknown][] = [
          ["DELETE", `/v1/leases/${id}`, undefined],
          ["POST", `/v1/leases/${id}/keepalive`, undefined],
          ["GET", `/v1/leases/${id}`, undefined],
          ["PUT", `/v1/kv/${key}`, { value: "v", lease: id }],
          ["POST", "/v1/txn", { success: [{ put: { key, value: "v", lease: id } }] }],
        ];
        for (const [method, path, body] of requests) {
          const { status, json } = await call(harness, method, path, body);
          const error = json.error as { code: string; message: string; lease: number };
          const what = `${method} ${path}: ${JSON.stringify(json)}`;
          equal(status, 404, what);
          equal(error.code, "lease_not_found", what);
          equal(error.lease, id, what);
          match(error.message, new RegExp(`lease ${id}\\b`), what);
          ok(!new RegExp(`lease ${local}\\b`).test(error.message), what);
        }
      });
      await t.step("leases: grant, attach, keep alive, info, revoke deletes keys", async () => {
        const grant = await call(harness, "POST", "/v1/leases", { ttl: 60, key: "leased" });
        const id = grant.json.id as number;
        ok(id > 0);
        await call(harness, "PUT", "/v1/kv/leased", { value: "v", lease: id });
        equal(
          ((await call(harness, "GET", "/v1/kv/leased")).json.kv as { lease: number }).lease,
          id,
        );
        equal((await call(harness, "POST", `/v1/leases/${id}/keepalive`)).json.ttl, 60);
        deepEqual((await call(harness, "GET", `/v1/leases/${id}`)).json.keys, ["leased"]);
        equal((await call(harness, "DELETE", `/v1/leases/${id}`)).json.revoked, true);
        equal((await call(harness, "GET", "/v1/kv/leased")).status, 404);
        equal((await call(harness, "GET", `/v1/leases/${id}`)).status, 404);
      });
      await t.step("auth: no token 401, bad token 401, read-only token writes 403", async () => {
        equal((await call(harness, "GET", "/v1/kv/a", undefined, null)).status, 401);
        equal((await call(harness, "GET", "/v1/kv/a", undefined, "aspen_wrong")).status, 401);
        const denied = await call(harness, "PUT", "/v1/kv/a", { value: "x" }, harness.read);
        equal(denied.status, 403);
        equal(errorCode(denied.json), "forbidden");
        equal((await call(harness, "GET", "/v1/kv/a", undefined, harness.read)).status, 404);
      });
      await t.step("bad input: 4xx JSON errors that name the problem", async () => {
        const cases: [string, string, unknown, number, RegExp][] = [
          ["PUT", "/v1/kv/k", "{not json", 400, /not valid JSON/],
          [
            "PUT",
            "/v1/kv/k",
            { value: 5 },
            400,
            /field "value" \(or "valueBase64"\) must be a string/,
          ],
          ["PUT", "/v1/kv/k", { valu: "x" }, 400, /unknown field "valu"/],
          ["PUT", "/v1/kv/k", [], 400, /must be a JSON object/],
          ["PUT", `/v1/kv/${"k".repeat(5000)}`, { value: "x" }, 413, /limit is 4096/],
          ["PUT", "/v1/kv/k", { value: "x".repeat(1024 * 1024 + 1) }, 413, /limit/],
          ["PUT", "/v1/kv/%E0%A4%A", { value: "x" }, 400, /percent-encoding/],
          ["GET", "/v1/kv?prefix=a&limit=0", undefined, 400, /"limit"/],
          ["GET", "/v1/kv?start=a", undefined, 400, /both start and end/],
          ["GET", "/v1/kv/k?consistency=eventual", undefined, 400, /consistency/],
          [
            "POST",
            "/v1/txn",
            { compare: [{ key: "a", target: "size", op: "=", value: 1 }] },
            400,
            /target/,
          ],
          [
            "POST",
            "/v1/txn",
            { success: [{ put: { key: "a", value: "1" }, get: { key: "b" } }] },
            400,
            /exactly one/,
          ],
          [
            "POST",
            "/v1/txn/optimistic",
            { reads: [{ key: "a" }] },
            400,
            /"modRevision".*"version"/,
          ],
          [
            "POST",
            "/v1/txn/optimistic",
            { reads: [{ key: "a", revision: 4 }] },
            400,
            /reads\[0\]: name the "modRevision"/,
          ],
          [
            "POST",
            "/v1/txn/optimistic",
            { reads: [{ key: "a", modRevision: -1 }] },
            400,
            /"modRevision" must be a non-negative integer/,
          ],
          [
            "POST",
            "/v1/txn/optimistic",
            { reads: [{ key: "a", modRevision: 1, rev: 2 }] },
            400,
            /unknown field "rev"/,
          ],
          ["POST", "/v1/leases", { ttl: 0 }, 400, /ttl/],
          ["GET", "/v1/leases/abc", undefined, 400, /not a lease id/],
          ["GET", "/v1/nothing", undefined, 404, /No route/],
        ];
        for (const [method, path, body, status, expected] of cases) {
          const result = await call(harness, method, path, body);
          equal(
            result.status,
            status,
            `${method} ${path.slice(0, 40)}: ${JSON.stringify(result.json)}`,
          );
          match((result.json.error as { message: string }).message, expected);
        }
        equal((await call(harness, "GET", "/v1/kv/k")).status, 404, "nothing was written");
      });
      await t.step("a txn over keys of two shards commits with a txnId", async () => {
        const keys = ["a", "b", "c", "d", "e", "f"];
        const shards = keys.map((key) => harness.node.service.shardOf(key));
        const other = keys.find((_, i) => shards[i] !== shards[0])!;
        const { status, json } = await call(harness, "POST", "/v1/txn", {
          success: [{ put: { key: "a", value: "1" } }, { put: { key: other, value: "2" } }],
        });
        equal(status, 200, JSON.stringify(json));
        equal(typeof json.txnId, "string");
        equal(json.shard, shards[0]);
      });
      await t.step("status and metrics", async () => {
        const { json } = await call(harness, "GET", "/v1/cluster/status");
        equal((json.shards as unknown[]).length, 4);
        equal((json.nodes as { status: string }[])[0]!.status, "up");
        deepEqual((json.nodes as { alarms: unknown }[])[0]!.alarms, [], "no alarm on a fresh node");
        for (let i = 0; i < 100; i++) {
          if (harness.node.shards.get(0)!.stateMachine.getMeta("shardMap") !== null) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const recorded = JSON.parse(harness.node.shards.get(0)!.stateMachine.getMeta("shardMap")!);
        deepEqual(recorded, { epoch: 1, numShards: 4, members: [1], replicationFactor: 3 });
        const metrics = await harness.app.request("/metrics", {
          headers: { authorization: `Bearer ${harness.root}` },
        });
        const text = await metrics.text();
        match(text, /aspen_shard_leader\{node="1",shard="0"\} 1/);
        match(text, /^aspen_alarm\{node="1",type="no_space"\} 0$/m);
      });
    } finally {
      await harness.close();
    }
  },
});
