/**
 * Cross-shard transactions over the HTTP API, in process with `app.request()` against a real
 * one-node cluster of SHARDS shards (real SQLite, real Raft): a single-shard reply keeps its
 * exact shape; a cross-shard txn and optimistic txn commit on every shard and reply with
 * `txnId` and `revisions`; a range op and more than TXN_SHARDS_MAX shards are 400s naming
 * them; `GET /v1/txn/{id}` shows the record and receipts (404 `txn_not_found`, 400 for a bad
 * id); and intents left by a coordinator that stopped (planted with raw shard commands) are
 * pushed by plain reads and writes: a committed one is finished (the reader sees the new
 * values, never half of them), an abandoned one is aborted (the reader sees the old ones).
 * The cross-shard answers go through the contract's drift guard (api/contract_keys.ts).
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  CLUSTER_STATUS_KEYS,
  keysOutsideContract,
  OPTIMISTIC_TXN_KEYS,
  TXN_KEYS,
  TXN_LIST_KEYS,
  TXN_STATUS_KEYS,
} from "../api/mod.ts";
import { INTENT_SWEEP_MS } from "../server/node/intent_sweeper.ts";
import {
  type ApplyResult,
  type Command,
  shardForKey,
  TXN_ID_CHARS_MAX,
  TXN_LIST_LIMIT_MAX,
  TXN_SHARDS_MAX,
} from "../shard/mod.ts";
import {
  callInProcess,
  type InProcessNode as Harness,
  startInProcessNode,
} from "./_in_process_node.ts";

/** More shards than a transaction may span, so that the limit can be hit. */
const SHARDS = TXN_SHARDS_MAX + 4;

const call = callInProcess;

/** One key on each of `count` different shards, named `prefix` + a number. */
function keysOnShards(prefix: string, count: number): string[] {
  const byShard = new Map<number, string>();
  for (let i = 0; byShard.size < count; i++) {
    const key = `${prefix}${i}`;
    const shard = shardForKey(key, SHARDS);
    if (!byShard.has(shard)) byShard.set(shard, key);
  }
  return [...byShard.values()].sort();
}

function errorOf(json: Record<string, unknown>): { code: string; message: string } {
  return json.error as { code: string; message: string };
}

/** Proposes a raw shard command (a coordinator's step) and returns its result. */
function propose(harness: Harness, shard: number, command: Command): Promise<ApplyResult> {
  return harness.node.service.run<ApplyResult>(shard, { kind: "propose", command });
}

async function value(harness: Harness, key: string, serializable = false): Promise<string> {
  const query = serializable ? "?consistency=serializable" : "";
  const { status, json } = await call(harness, "GET", `/v1/kv/${key}${query}`);
  equal(status, 200, JSON.stringify(json));
  return (json.kv as { value: string }).value;
}

/**
 * Plants the prepares of a transaction over `keys` (put `next` on each) as a coordinator
 * would, then stops: the keys stay locked by intents. `deadlineMs` is the record's.
 */
async function plantPrepared(
  harness: Harness,
  txn: {
    txnId: string;
    keys: readonly string[];
    next: string;
    deadlineMs: number;
    /** Prepares the home shard only: a coordinator that stopped before its other prepares. */
    homeOnly?: boolean;
  },
): Promise<{ home: number; participants: number[] }> {
  const shards = txn.keys.map((key) => shardForKey(key, SHARDS));
  const participants = [...new Set(shards)].sort((a, b) => a - b);
  const home = shardForKey([...txn.keys].sort()[0]!, SHARDS);
  for (const shard of participants) {
    if (txn.homeOnly === true && shard !== home) continue;
    const result = await propose(harness, shard, {
      type: "txnPrepare",
      txnId: txn.txnId,
      shard,
      home,
      participants,
      deadlineMs: txn.deadlineMs,
      leases: [],
      compare: [],
      reads: [],
      success: txn.keys.filter((_, i) => shards[i] === shard).map((key) => ({
        type: "put",
        key,
        value: txn.next,
        lease: 0,
        prevKv: false,
      })),
      failure: [],
    });
    ok(result.type === "txnPrepared" && result.ok, JSON.stringify(result));
  }
  return { home, participants };
}

Deno.test({
  name: "cross-shard txns over HTTP: replies, limits, records and pushed intents",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const harness = await startInProcessNode({ shards: SHARDS });
    try {
      await t.step("a single-shard txn and optimistic txn keep their reply shape", async () => {
        const key = "single/a";
        const txn = await call(harness, "POST", "/v1/txn", {
          compare: [],
          success: [{ put: { key, value: "1" } }],
          failure: [],
        });
        equal(txn.status, 200, JSON.stringify(txn.json));
        deepEqual(Object.keys(txn.json).sort(), ["results", "revision", "shard", "succeeded"]);
        equal(txn.json.shard, shardForKey(key, SHARDS));
        const kv = (await call(harness, "GET", `/v1/kv/${key}`)).json.kv as {
          modRevision: number;
        };
        const optimistic = await call(harness, "POST", "/v1/txn/optimistic", {
          reads: [{ key, modRevision: kv.modRevision }],
          writes: [{ op: "set", key, value: "2" }],
        });
        equal(optimistic.status, 200, JSON.stringify(optimistic.json));
        deepEqual(Object.keys(optimistic.json).sort(), ["committed", "revision", "shard"]);
      });

      let committedTxnId = "";
      let committedKeys: string[] = [];
      await t.step(
        "a txn over three shards commits on each, with txnId and revisions",
        async () => {
          const keys = keysOnShards("xs/", 3);
          committedKeys = keys;
          const shards = keys.map((key) => shardForKey(key, SHARDS));
          const { status, json } = await call(harness, "POST", "/v1/txn", {
            compare: [{ key: keys[0], target: "version", op: "=", value: 0 }],
            success: [
              { put: { key: keys[2], value: "c" } },
              { get: { key: keys[1] } },
              { put: { key: keys[0], value: "a", prevKv: true } },
              { put: { key: keys[1], value: "b" } },
            ],
            failure: [],
          });
          equal(status, 200, JSON.stringify(json));
          equal(json.succeeded, true);
          equal(typeof json.txnId, "string");
          deepEqual(keysOutsideContract(json, TXN_KEYS), [], "the contract names every field");
          committedTxnId = json.txnId as string;
          equal(json.shard, shards[0], "the home is the smallest key's shard");
          const revisions = json.revisions as Record<string, number>;
          deepEqual(Object.keys(revisions).sort(), shards.map(String).sort());
          equal(json.revision, revisions[String(shards[0])]);
          const results = json.results as { type: string; kv?: unknown; prevKv?: unknown }[];
          deepEqual(results.map((result) => result.type), ["put", "get", "put", "put"]);
          equal(results[1]!.kv, null, "the get ran before the put of the same key");
          equal(results[2]!.prevKv, null);
          for (const [i, key] of keys.entries()) equal(await value(harness, key), "abc"[i]);
        },
      );

      await t.step("a cross-shard txn whose compare fails runs its failure branch", async () => {
        const keys = committedKeys;
        const { status, json } = await call(harness, "POST", "/v1/txn", {
          compare: [{ key: keys[0], target: "value", op: "=", value: "nope" }],
          success: [{ put: { key: keys[1], value: "never" } }],
          failure: [{ put: { key: keys[2], value: "failed" } }, { get: { key: keys[0] } }],
        });
        equal(status, 200, JSON.stringify(json));
        equal(json.succeeded, false);
        equal(await value(harness, keys[1]!), "b");
        equal(await value(harness, keys[2]!), "failed");
      });

      await t.step("a cross-shard optimistic txn commits, then conflicts with 409", async () => {
        const keys = keysOnShards("xo/", 2);
        const reads = keys.map((key) => ({ key, modRevision: 0 }));
        const writes = keys.map((key) => ({ op: "set", key, value: "1" }));
        const first = await call(harness, "POST", "/v1/txn/optimistic", { reads, writes });
        equal(first.status, 200, JSON.stringify(first.json));
        equal(first.json.committed, true);
        deepEqual(keysOutsideContract(first.json, OPTIMISTIC_TXN_KEYS), []);
        equal(typeof first.json.txnId, "string");
        deepEqual(
          Object.keys(first.json.revisions as object).sort(),
          keys.map((key) => String(shardForKey(key, SHARDS))).sort(),
        );
        const again = await call(harness, "POST", "/v1/txn/optimistic", { reads, writes });
        equal(again.status, 409, JSON.stringify(again.json));
        equal(errorOf(again.json).code, "conflict");
        ok(keys.includes((again.json.error as { key: string }).key));
      });

      await t.step("a range op in a cross-shard txn is a 400 naming the op", async () => {
        const keys = keysOnShards("xr/", 2);
        const { status, json } = await call(harness, "POST", "/v1/txn", {
          compare: [],
          success: [
            { put: { key: keys[0], value: "1" } },
            { range: { prefix: "xr/" } },
            { put: { key: keys[1], value: "1" } },
          ],
          failure: [],
        });
        equal(status, 400, JSON.stringify(json));
        match(errorOf(json).message, /success\[1\] is a range operation/);
        equal((await call(harness, "GET", `/v1/kv/${keys[0]}`)).status, 404, "nothing written");
      });

      await t.step("a txn over more than TXN_SHARDS_MAX shards is a 400 naming it", async () => {
        const keys = keysOnShards("xm/", TXN_SHARDS_MAX + 1);
        for (const path of ["/v1/txn", "/v1/txn/optimistic"]) {
          const body = path === "/v1/txn"
            ? { compare: [], success: keys.map((key) => ({ put: { key, value: "1" } })) }
            : { reads: [], writes: keys.map((key) => ({ op: "set", key, value: "1" })) };
          const { status, json } = await call(harness, "POST", path, body);
          equal(status, 400, JSON.stringify(json));
          match(errorOf(json).message, /fall on 17 shards but .* at most 16 \(TXN_SHARDS_MAX\)/);
        }
        const fits = keys.slice(0, TXN_SHARDS_MAX);
        const { status } = await call(harness, "POST", "/v1/txn", {
          compare: [],
          success: fits.map((key) => ({ put: { key, value: "1" } })),
          failure: [],
        });
        equal(status, 200, "exactly TXN_SHARDS_MAX shards is allowed");
      });

      await t.step("GET /v1/txn/{id} shows the record and a receipt per shard", async () => {
        const { status, json } = await call(harness, "GET", `/v1/txn/${committedTxnId}`);
        equal(status, 200, JSON.stringify(json));
        const shards = committedKeys.map((key) => shardForKey(key, SHARDS)).sort((a, b) => a - b);
        equal(json.txnId, committedTxnId);
        deepEqual(keysOutsideContract(json, TXN_STATUS_KEYS), []);
        equal(json.status, "committed");
        equal(json.branch, "success");
        deepEqual(json.participants, shards);
        const receipts = json.receipts as { shard: number; status: string }[];
        deepEqual(receipts.map((receipt) => receipt.shard), shards);
        ok(receipts.every((receipt) => receipt.status === "committed"), JSON.stringify(json));
        const missing = await call(harness, "GET", "/v1/txn/1.1.424242");
        equal(missing.status, 404);
        equal(errorOf(missing.json).code, "txn_not_found");
        const long = await call(harness, "GET", `/v1/txn/${"x".repeat(TXN_ID_CHARS_MAX + 1)}`);
        equal(long.status, 400);
        match(errorOf(long.json).message, /TXN_ID_CHARS_MAX/);
      });

      await t.step("reads push a committed txn's intents: never half of it", async () => {
        const keys = keysOnShards("xp/", 2);
        for (const key of keys) await call(harness, "PUT", `/v1/kv/${key}`, { value: "old" });
        const txnId = "1.1.9001";
        const { home } = await plantPrepared(harness, {
          txnId,
          keys,
          next: "new",
          deadlineMs: Date.now() + 60_000,
        });
        const decided = await propose(harness, home, {
          type: "txnDecide",
          txnId,
          outcome: "commit",
          branch: "success",
          reason: "",
        });
        equal(decided.type, "txnDecided");
        // The coordinator "stopped" here: both keys are locked, neither resolved.
        const pending = await call(harness, "GET", `/v1/txn/${txnId}`);
        equal(pending.json.status, "committed");
        ok((pending.json.receipts as { status: string }[]).every((r) => r.status === "pending"));
        equal(await value(harness, keys[1]!), "new", "a linearizable get pushed and re-read");
        equal(await value(harness, keys[0]!, true), "new", "a serializable get too");
        const range = await call(harness, "GET", "/v1/kv?prefix=xp/");
        deepEqual((range.json.kvs as { value: string }[]).map((kv) => kv.value), ["new", "new"]);
        const done = await call(harness, "GET", `/v1/txn/${txnId}`);
        ok((done.json.receipts as { status: string }[]).every((r) => r.status === "committed"));
      });

      await t.step("reads and writes abort an abandoned txn's intents", async () => {
        const keys = keysOnShards("xa/", 2);
        for (const key of keys) await call(harness, "PUT", `/v1/kv/${key}`, { value: "old" });
        const txnId = "1.1.9002";
        // Only the home prepared: the pusher fences the other participant, so it aborts.
        const { home } = await plantPrepared(harness, {
          txnId,
          keys,
          next: "new",
          deadlineMs: Date.now() - 1,
          homeOnly: true,
        });
        const homeKey = keys.find((key) => shardForKey(key, SHARDS) === home)!;
        const otherKey = keys.find((key) => key !== homeKey)!;
        equal(await value(harness, homeKey), "old", "the get aborted the abandoned txn");
        const record = await call(harness, "GET", `/v1/txn/${txnId}`);
        equal(record.json.status, "aborted");
        equal(record.json.reason, "pushed");
        const put = await call(harness, "PUT", `/v1/kv/${otherKey}`, { value: "mine" });
        equal(put.status, 200, `the put went through: ${JSON.stringify(put.json)}`);
        equal(await value(harness, otherKey), "mine");
        const after = await call(harness, "GET", `/v1/txn/${txnId}`);
        ok((after.json.receipts as { status: string }[]).every((r) => r.status === "aborted"));
      });

      await t.step("a read commits an abandoned txn that every participant prepared", async () => {
        const keys = keysOnShards("xc/", 2);
        for (const key of keys) await call(harness, "PUT", `/v1/kv/${key}`, { value: "old" });
        const txnId = "1.1.9004";
        // Parallel commits: prepared everywhere means committed, though the record is staging.
        await plantPrepared(harness, { txnId, keys, next: "new", deadlineMs: Date.now() - 1 });
        // The status read says so without deciding anything: the record stays staging.
        const staging = await call(harness, "GET", `/v1/txn/${txnId}`);
        deepEqual(keysOutsideContract(staging.json, TXN_STATUS_KEYS), []);
        equal(staging.json.status, "committed", JSON.stringify(staging.json));
        equal(staging.json.recordStatus, "pending");
        equal(staging.json.branch, "success");
        const receipts = staging.json.receipts as { status: string; prepare: string }[];
        deepEqual(receipts.map((receipt) => [receipt.status, receipt.prepare]), [
          ["pending", "prepared"],
          ["pending", "prepared"],
        ]);
        const again = await call(harness, "GET", `/v1/txn/${txnId}`);
        equal(again.json.recordStatus, "pending", "a status read changes nothing");
        equal(await value(harness, keys[1]!), "new", "the get recovered the commit");
        equal(await value(harness, keys[0]!), "new");
        const record = await call(harness, "GET", `/v1/txn/${txnId}`);
        equal(record.json.status, "committed");
        equal(record.json.recordStatus, "committed");
        equal(record.json.branch, "success");
      });

      await t.step("the sweeper aborts an abandoned txn whose keys nobody touches", async () => {
        const keys = keysOnShards("xw/", 2);
        for (const key of keys) await call(harness, "PUT", `/v1/kv/${key}`, { value: "old" });
        const txnId = "1.1.9003";
        const { participants, home } = await plantPrepared(harness, {
          txnId,
          keys,
          next: "new",
          deadlineMs: Date.now() - 1,
          homeOnly: true,
        });
        const overdue = async () => {
          const response = await harness.app.request("/metrics", {
            headers: { authorization: `Bearer ${harness.root}` },
          });
          const text = await response.text();
          const line = new RegExp(`^aspen_txns_overdue\\{node="1",shard="${home}"\\} (\\d+)$`, "m");
          return Number(line.exec(text)?.[1]);
        };
        equal(await overdue(), 1, "the abandoned record is overdue on its home shard");
        const intents = () =>
          participants.reduce(
            (sum, id) => sum + harness.node.shards.get(id)!.stateMachine.intentCount(),
            0,
          );
        ok(intents() > 0, "planted intents");
        const deadline = Date.now() + 4 * INTENT_SWEEP_MS + 2_000;
        while (intents() > 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        equal(intents(), 0, "no intent left without any read or write");
        equal(await overdue(), 0, "and its record is no longer overdue");
        const record = await call(harness, "GET", `/v1/txn/${txnId}`);
        equal(record.json.status, "aborted");
        for (const key of keys) equal(await value(harness, key), "old");
      });

      await t.step("metrics count cross-shard transactions and intents", async () => {
        const response = await harness.app.request("/metrics", {
          headers: { authorization: `Bearer ${harness.root}` },
        });
        const text = await response.text();
        const committed = text.match(
          /^aspen_cross_shard_transactions_total\{node="1",outcome="committed"\} (\d+)$/m,
        );
        ok(committed !== null && Number(committed[1]) >= 4, "four cross-shard commits counted");
        match(text, /^aspen_cross_shard_transactions_total\{node="1",outcome="conflict"\} 1$/m);
        match(text, /^aspen_cross_shard_commit_seconds_count\{node="1"\} [4-9]/m);
        match(text, /^aspen_intents\{node="1",shard="0"\} 0$/m);
      });

      await t.step("GET /v1/txn lists the oldest pending txns with receipts", async () => {
        const keys = keysOnShards("xl/", 2);
        const older = await plantPrepared(harness, {
          txnId: "1.1.9101",
          keys,
          next: "new",
          deadlineMs: Date.now() + 30_000,
        });
        const stopped = await plantPrepared(harness, {
          txnId: "1.1.9102",
          keys: keysOnShards("xm/", 3),
          next: "new",
          deadlineMs: Date.now() + 60_000,
          homeOnly: true,
        });
        const listed = await call(harness, "GET", "/v1/txn?status=pending&limit=5");
        equal(listed.status, 200, JSON.stringify(listed.json));
        deepEqual(keysOutsideContract(listed.json, TXN_LIST_KEYS), []);
        const txns = listed.json.txns as {
          txnId: string;
          home: number;
          participants: number[];
          status: string;
          outcome: string;
          receipts: { shard: number; status: string; prepare: string }[];
        }[];
        deepEqual(txns.map((txn) => txn.txnId), ["1.1.9101", "1.1.9102"], "oldest first");
        equal(txns[0]!.home, older.home);
        deepEqual(txns[0]!.participants, older.participants);
        deepEqual(
          txns[0]!.receipts,
          older.participants.map((shard) => ({
            shard,
            status: "pending",
            resolvedRevision: null,
            prepare: "prepared",
          })),
        );
        // Every participant of the older one prepared: committed by its votes (parallel
        // commits), its record not decided yet. The other stopped after its home's prepare.
        deepEqual(txns.map((txn) => [txn.status, txn.outcome]), [
          ["pending", "committed"],
          ["pending", "pending"],
        ]);
        deepEqual(
          txns[1]!.receipts.map((receipt) => receipt.prepare),
          stopped.participants.map((shard) => shard === stopped.home ? "prepared" : "none"),
        );
        deepEqual(listed.json.unavailableShards, []);
        const one = await call(harness, "GET", "/v1/txn?limit=1");
        deepEqual((one.json.txns as { txnId: string }[]).map((txn) => txn.txnId), ["1.1.9101"]);
        const committed = await call(harness, "GET", "/v1/txn?status=committed");
        const decided = committed.json.txns as { status: string; receipts: { status: string }[] }[];
        ok(decided.length >= 4, "the commits of the steps above are listed");
        ok(decided.every((txn) => txn.status === "committed"));
        ok(decided[0]!.receipts.every((receipt) => receipt.status === "committed"));
        const status = await call(harness, "GET", "/v1/cluster/status");
        deepEqual(keysOutsideContract(status.json, CLUSTER_STATUS_KEYS), []);
        const shards = status.json.shards as { id: number; stats: { intents: number } }[];
        for (const shard of older.participants) {
          ok(shards.find((entry) => entry.id === shard)!.stats.intents >= 1, `intents on ${shard}`);
        }
        const counts =
          (status.json.nodes as { crossShardTxns: { committed: number; conflict: number } }[])[0]!
            .crossShardTxns;
        ok(counts.committed >= 4, JSON.stringify(counts));
        equal(counts.conflict, 1);
      });

      await t.step("GET /v1/txn refuses bad parameters with a 400 naming them", async () => {
        const cases = [
          ["status=done", "status"],
          ["limit=0", "limit"],
          [`limit=${TXN_LIST_LIMIT_MAX + 1}`, "limit"],
          ["limit=ten", "limit"],
          ["shard=1", "shard"],
        ];
        for (const [query, name] of cases) {
          const { status, json } = await call(harness, "GET", `/v1/txn?${query}`);
          equal(status, 400, query);
          equal(errorOf(json).code, "bad_request");
          match(errorOf(json).message, new RegExp(`"${name}"`), query);
        }
      });
    } finally {
      await harness.close();
    }
  },
});
