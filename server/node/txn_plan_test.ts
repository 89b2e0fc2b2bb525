/**
 * Unit tests of planTxn and mergeResults: how a cross-shard transaction splits by shard (with a
 * made-up key-to-shard map, so each case states its shards) and merges back in request order.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { AspenError, TXN_SHARDS_MAX, type TxnOp } from "../../shard/mod.ts";
import { mergeResults, planTxn } from "./txn_plan.ts";

/** Keys name their shard: "<shard>/<name>". */
function shardOf(key: string): number {
  return Number(key.split("/")[0]);
}

function get(key: string): TxnOp {
  return { type: "get", key };
}

Deno.test("planTxn() splits by shard, keeps request order, and homes at the smallest key", () => {
  const plan = planTxn({
    compare: [{ key: "2/b", target: "version", op: "=", value: 1 }],
    reads: [],
    success: [get("2/c"), get("1/z"), get("2/a")],
    failure: [get("1/y")],
  }, shardOf);
  strictEqual(plan.home, 1); // "1/y" is the smallest key
  deepStrictEqual(plan.participants, [1, 2]);
  deepStrictEqual(plan.successShards, [2, 1, 2]);
  deepStrictEqual(plan.failureShards, [1]);
  deepStrictEqual(plan.parts.get(2)?.success, [get("2/c"), get("2/a")]);
  deepStrictEqual(plan.parts.get(2)?.compare.length, 1);
  deepStrictEqual(plan.parts.get(1)?.failure, [get("1/y")]);
});

Deno.test("planTxn() refuses range operations, no keys, and too many shards", async (t) => {
  const refused = (spec: Parameters<typeof planTxn>[0], text: string) =>
    throws(
      () => planTxn(spec, shardOf),
      (error: unknown) =>
        error instanceof AspenError && error.code === "bad_request" &&
        error.message.includes(text),
    );
  const empty = { compare: [], reads: [], success: [], failure: [] };
  await t.step("range", () =>
    refused({
      ...empty,
      success: [{
        type: "range",
        request: {
          range: { prefix: "1/" },
          limit: 1,
          after: null,
          keysOnly: false,
          countOnly: false,
          reverse: false,
        },
      }],
    }, "range operation"));
  await t.step("no key", () => refused(empty, "names no key"));
  await t.step("shards", () =>
    refused({
      ...empty,
      success: Array.from({ length: TXN_SHARDS_MAX + 1 }, (_, shard) => get(`${shard}/k`)),
    }, "TXN_SHARDS_MAX"));
});

Deno.test("mergeResults() puts each shard's results back in request order", () => {
  const plan = planTxn({
    compare: [],
    reads: [],
    success: [get("2/a"), get("1/b"), get("2/c")],
    failure: [],
  }, shardOf);
  const kv = (key: string) => ({
    type: "get" as const,
    kv: { key, value: "", version: 1, createRevision: 1, modRevision: 1, lease: 0 },
  });
  const merged = mergeResults(
    plan,
    "success",
    new Map([[2, [kv("2/a"), kv("2/c")]], [1, [kv("1/b")]]]),
  );
  deepStrictEqual(merged.map((item) => item.result.type === "get" && item.result.kv?.key), [
    "2/a",
    "1/b",
    "2/c",
  ]);
});

Deno.test("planTxn() places lease steps on their shards; without keys, homes at the first", () => {
  const attach = { action: "attach", id: 4, holder: 2, key: "2/k" } as const;
  const withKeys = planTxn({
    compare: [],
    reads: [],
    success: [{
      type: "put",
      key: "2/k",
      value: "v",
      lease: 2 ** 52 + 4 * 1024 + 3,
      prevKv: false,
    }],
    failure: [],
    leases: [{ shard: 3, step: attach }],
  }, shardOf);
  strictEqual(withKeys.home, 2, "the home is still the smallest key's shard");
  deepStrictEqual(withKeys.participants, [2, 3]);
  deepStrictEqual(withKeys.parts.get(3)?.leases, [attach]);
  deepStrictEqual(withKeys.parts.get(3)?.success, []);
  deepStrictEqual(withKeys.parts.get(2)?.leases, []);

  const revoke = planTxn({
    compare: [],
    reads: [],
    success: [],
    failure: [],
    leases: [
      { shard: 3, step: { action: "revoke", id: 4, holders: [0, 2] } },
      { shard: 0, step: { action: "revoke", id: 2 ** 52 + 4099, holders: [] } },
      { shard: 2, step: { action: "revoke", id: 2 ** 52 + 4099, holders: [] } },
    ],
  }, shardOf);
  strictEqual(revoke.home, 3, "a revocation homes at the lease's shard");
  deepStrictEqual(revoke.participants, [0, 2, 3]);
  deepStrictEqual(mergeResults(revoke, "success", new Map([[0, []], [2, []], [3, []]])), []);
});

Deno.test("planTxn() refuses a read or compare made on another shard than its key's", () => {
  const shardOf = (key: string) => key === "moved" ? 2 : 0;
  const read = { key: "moved", modRevision: 7, version: null, revision: null };
  const refusal = (error: unknown) => {
    strictEqual(error instanceof AspenError && error.code, "conflict");
    deepStrictEqual((error as AspenError).details, { key: "moved", readShard: 0, shard: 2 });
    return true;
  };
  const put: TxnOp = { type: "put", key: "a", value: "1", lease: 0, prevKv: false };
  const spec = { compare: [], reads: [{ ...read, shard: 0 }], success: [put], failure: [] };
  throws(() => planTxn(spec, shardOf), refusal);
  const compare = { key: "moved", target: "modRevision", op: "=", value: 7, shard: 0 } as const;
  throws(() => planTxn({ ...spec, reads: [], compare: [compare] }, shardOf), refusal);
  // The read's own shard, or none named: planned as before.
  deepStrictEqual(planTxn({ ...spec, reads: [{ ...read, shard: 2 }] }, shardOf).participants, [
    0,
    2,
  ]);
  deepStrictEqual(planTxn({ ...spec, reads: [read] }, shardOf).participants, [0, 2]);
});
