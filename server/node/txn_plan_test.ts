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
