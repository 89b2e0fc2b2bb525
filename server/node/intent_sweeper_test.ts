/**
 * IntentSweeper against stand-in shards (a mock of the two state machine reads and the leader)
 * and a recording push: what it pushes, that it visits only the shards noted in IntentShards
 * and runs its timer only while one is; tests/cross_shard_txn_http_test.ts shows a real node
 * finishing an abandoned transaction that nobody reads, tests/idle_shards_test.ts one among
 * many idle shards.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { TxnHolder } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import {
  INTENT_SWEEP_KEYS_MAX,
  INTENT_SWEEP_MS,
  IntentShards,
  IntentSweeper,
  type SweptShard,
} from "./intent_sweeper.ts";

function shard(leader: number, intents: { key: string; holder: TxnHolder }[]): SweptShard {
  return {
    replica: { leader: () => leader },
    stateMachine: {
      intentCount: () => intents.length,
      intentsIn: (_range, limit) => intents.slice(0, limit),
    },
  };
}

/** A sweeper over `shards`, every one of them noted unless `noted` says which are. */
function sweeper(
  shards: Map<number, SweptShard>,
  failing: ReadonlySet<string> = new Set(),
  noted: readonly number[] = [...shards.keys()],
) {
  const pushes: string[] = [];
  const candidates = new IntentShards();
  for (const id of noted) candidates.note(id);
  const sweeps = new IntentSweeper({
    nodeId: 1,
    shards,
    candidates,
    push: (shardId, key, holder) => {
      pushes.push(`${shardId}:${key}:${holder.txnId}`);
      return failing.has(holder.txnId)
        ? Promise.reject(new Error("still pending"))
        : Promise.resolve();
    },
    nowMs: () => 0,
    logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: () => 0 }),
  });
  return { sweeps, pushes, candidates };
}

const T1 = { txnId: "2.100.1", home: 0 };
const T2 = { txnId: "2.100.2", home: 1 };

Deno.test("IntentSweeper pushes a transaction whose intents outlived one sweep", async () => {
  const intents = [{ key: "a", holder: T1 }, { key: "b", holder: T1 }];
  const shards = new Map([[0, shard(1, intents)]]);
  const { sweeps, pushes } = sweeper(shards);
  deepEqual(await sweeps.sweep(), [], "first seen: left to its coordinator");
  intents.push({ key: "c", holder: T2 });
  deepEqual(await sweeps.sweep(), ["0:2.100.1"], "seen twice: pushed once, by its first key");
  deepEqual(pushes, ["0:a:2.100.1"]);
  deepEqual(await sweeps.sweep(), ["0:2.100.1", "0:2.100.2"]);
});

Deno.test("IntentSweeper sweeps only shards this node leads and that hold intents", async () => {
  const shards = new Map([
    [0, shard(2, [{ key: "a", holder: T1 }])],
    [1, shard(1, [])],
  ]);
  const { sweeps, pushes } = sweeper(shards);
  await sweeps.sweep();
  await sweeps.sweep();
  deepEqual(pushes, []);
});

Deno.test("IntentSweeper keeps sweeping past a push that failed", async () => {
  const shards = new Map([
    [0, shard(1, [{ key: "a", holder: T1 }, { key: "b", holder: T2 }])],
  ]);
  const { sweeps, pushes } = sweeper(shards, new Set([T1.txnId]));
  await sweeps.sweep();
  deepEqual(await sweeps.sweep(), ["0:2.100.1", "0:2.100.2"]);
  equal(pushes.length, 2);
  deepEqual(await sweeps.sweep(), ["0:2.100.1", "0:2.100.2"], "the failed one is tried again");
});

Deno.test("IntentSweeper reads at most INTENT_SWEEP_KEYS_MAX intents per shard", async () => {
  const intents = Array.from({ length: INTENT_SWEEP_KEYS_MAX + 10 }, (_, i) => ({
    key: `k${i}`,
    holder: { txnId: `3.1.${i}`, home: 0 },
  }));
  const { sweeps } = sweeper(new Map([[0, shard(1, intents)]]));
  await sweeps.sweep();
  equal((await sweeps.sweep()).length, INTENT_SWEEP_KEYS_MAX);
});

Deno.test("IntentSweeper visits only noted shards, drops those without intents", async () => {
  const intents = [{ key: "a", holder: T1 }];
  const shards = new Map([[0, shard(1, intents)], [1, shard(1, [{ key: "b", holder: T2 }])]]);
  const { sweeps, pushes, candidates } = sweeper(shards, new Set(), [0]);
  await sweeps.sweep();
  deepEqual(await sweeps.sweep(), ["0:2.100.1"], "shard 1 was never noted: not visited");
  intents.length = 0;
  await sweeps.sweep();
  deepEqual([...candidates.ids], [], "shard 0 holds no intent any more: dropped");
  intents.push({ key: "c", holder: T1 });
  candidates.note(0);
  deepEqual(await sweeps.sweep(), [], "noted again: seen once, left to its coordinator");
  deepEqual(await sweeps.sweep(), ["0:2.100.1"]);
  deepEqual(pushes, ["0:a:2.100.1", "0:c:2.100.1"]);
});

Deno.test("IntentSweeper runs its timer only while some shard may hold intents", async () => {
  const intents = [{ key: "a", holder: T1 }];
  const { sweeps, pushes, candidates } = sweeper(new Map([[0, shard(1, intents)]]), new Set(), []);
  try {
    sweeps.start();
    equal(sweeps.isTimerRunning, false, "no shard noted: no timer");
    candidates.note(0);
    equal(sweeps.isTimerRunning, true, "a shard noted: the timer runs");
    const deadline = Date.now() + 3 * INTENT_SWEEP_MS + 2_000;
    while (pushes.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    deepEqual(pushes, ["0:a:2.100.1"], "pushed by the timer's second sweep");
    intents.length = 0;
    while (sweeps.isTimerRunning && Date.now() < deadline + INTENT_SWEEP_MS) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    equal(sweeps.isTimerRunning, false, "stopped after a sweep found no intent");
    ok(candidates.ids.size === 0);
  } finally {
    await sweeps.close();
  }
});
