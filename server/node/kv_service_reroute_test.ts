/**
 * KvService's rerouting (shard moves): a request a shard keeps refusing with `wrong_shard`
 * (its keys fenced by a move) is routed again by a fresh shard map until its deadline, and
 * then answers a retryable `keys_moving` naming the moving shard and the key, never the
 * router's bare `wrong_shard`. A read that names the shard it was made on is committed there
 * only: a key on another shard now (after the map was read again once) is a 409 `conflict`.
 * The router is a stub; the clock moves 1 s per reading, so the deadline comes after a few
 * rounds without waiting for it.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { AspenError, shardForKey } from "../../shard/mod.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import { KvService } from "./kv_service.ts";

function refusingService(counts: { executed: number; refreshed: number }): KvService {
  let clockMs = 0;
  const router = {
    nodeId: 1,
    execute: () => {
      counts.executed++;
      return Promise.reject(
        new AspenError("wrong_shard", 'Cannot serve key "k" on shard 1: it moved', {
          shard: 1,
          key: "k",
          numShards: 2,
        }),
      );
    },
  } as unknown as ClusterRouter;
  return new KvService({
    router,
    shardCount: 2,
    refreshShardMap: () => {
      counts.refreshed++;
      return Promise.resolve();
    },
    nowMs: () => clockMs += 1_000,
    requestTimeoutMs: 5_000,
    coordinator: {
      txn: () => Promise.reject(new Error("no cross-shard txn here")),
      optimistic: () => Promise.reject(new Error("no cross-shard txn here")),
      push: () => Promise.reject(new Error("no push here")),
    },
  });
}

Deno.test("a request whose keys stay fenced past its deadline answers keys_moving", async () => {
  const counts = { executed: 0, refreshed: 0 };
  const service = refusingService(counts);
  await rejects(service.put("k", "v", 0, false), (error: unknown) => {
    ok(error instanceof AspenError);
    equal(error.code, "keys_moving");
    equal(error.details.shard, 1);
    equal(error.details.key, "k");
    equal(error.details.retryAfterMs, 1_000);
    return true;
  });
  ok(counts.executed >= 2, `rerouted before giving up: ${counts.executed} tries`);
  equal(counts.refreshed, counts.executed - 1, "the map was read again before each retry");
});

Deno.test("an optimistic read naming another shard than its key's now is a conflict", async () => {
  // A key that moves from shard 0 to shard 2 when the cluster grows from 2 to 3 shards.
  const key = Array.from({ length: 200 }, (_, i) => `k${i}`)
    .find((name) => shardForKey(name, 3) === 2)!;
  const map = { numShards: 2 };
  const proposed: number[] = [];
  const router = {
    nodeId: 1,
    execute: (shard: number) => {
      proposed.push(shard);
      return Promise.resolve({ type: "optimisticTxn", revision: 9 });
    },
  } as unknown as ClusterRouter;
  const service = new KvService({
    router,
    get shardCount() {
      return map.numShards;
    },
    // The flip reaches this node when it reads the map again.
    refreshShardMap: () => Promise.resolve(void (map.numShards = 3)),
    nowMs: () => 0,
    requestTimeoutMs: 5_000,
    coordinator: {
      txn: () => Promise.reject(new Error("no cross-shard txn here")),
      optimistic: () => Promise.reject(new Error("no cross-shard txn here")),
      push: () => Promise.reject(new Error("no push here")),
    },
  });
  const commit = (shard: number) =>
    service.optimistic({
      type: "optimisticTxn",
      reads: [{ key, modRevision: 5, version: null, revision: null, shard }],
      writes: [{ op: "set", key, value: "v" }],
    });
  // Read on the new shard through a node that has not seen the flip: it reads the map first.
  equal((await commit(2)).shard, 2);
  equal(map.numShards, 3);
  await rejects(commit(0), (error: unknown) => {
    ok(error instanceof AspenError);
    equal(error.code, "conflict");
    equal(error.details.key, key);
    equal(error.details.readShard, 0);
    equal(error.details.shard, 2);
    return true;
  });
  equal(proposed.join(), "2", "the refused commit reached no shard");
});
