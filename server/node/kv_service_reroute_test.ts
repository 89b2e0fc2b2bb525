/**
 * KvService's rerouting (shard moves): a request a shard keeps refusing with `wrong_shard`
 * (its keys fenced by a move) is routed again by a fresh shard map until its deadline, and
 * then answers a retryable `keys_moving` naming the moving shard and the key, never the
 * router's bare `wrong_shard`. The router is a stub; the clock moves 1 s per reading, so the
 * deadline comes after a few rounds without waiting for it.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
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
