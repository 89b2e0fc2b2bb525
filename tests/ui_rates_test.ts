/**
 * Rates from snapshots (ui/app/rates.ts): counters differenced over time give the fake
 * cluster's known rates exactly; a counter reset counts its new value, not a negative step; no
 * elapsed time or no transactions gives null, never zero; cluster totals add shards up; chart
 * series have one point per snapshot with a gap where a rate cannot be known.
 */
import { deepEqual, equal } from "node:assert/strict";
import {
  clusterRates,
  counterIncrease,
  type Sample,
  shardRates,
  shardSeries,
} from "../ui/app/rates.ts";
import {
  FakeCluster,
  fakeConflictsPerSecond,
  fakeProposalsPerSecond,
  fakeTxnsPerSecond,
} from "./fixtures/ui_cluster.ts";
import type { ClusterStatus } from "../api/mod.ts";

function samplesOf(cluster: FakeCluster, count: number): Sample[] {
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) {
    cluster.tick();
    samples.push({ atMs: cluster.nowMs, status: cluster.status() });
  }
  return samples;
}

function withCounters(status: ClusterStatus, txns: number, conflicts: number): ClusterStatus {
  const shards = status.shards.map((shard) => ({
    ...shard,
    stats: { ...shard.stats, optimisticTxns: txns, conflicts },
  }));
  return { ...status, shards };
}

Deno.test("counterIncrease() treats a decrease as a reset", () => {
  equal(counterIncrease(10, 25), 15);
  equal(counterIncrease(10, 10), 0);
  equal(counterIncrease(100, 7), 7);
});

Deno.test("shardRates() recovers the fake cluster's rates exactly", () => {
  const cluster = new FakeCluster({ nodeCount: 3, shardCount: 4, replicationFactor: 3 });
  const samples = samplesOf(cluster, 6);
  for (const id of [0, 1, 2, 3]) {
    const rates = shardRates(samples, id);
    equal(rates.optimisticTxnsPerSecond, fakeTxnsPerSecond(id));
    equal(rates.conflictRate, fakeConflictsPerSecond(id) / fakeTxnsPerSecond(id));
    equal(rates.proposalsPerSecond, fakeProposalsPerSecond(id));
    equal(rates.applyLatencyP99Ms, 1.5 + id * 0.75);
  }
});

Deno.test("shardRates() counts a reset as the new value and skips steps without time", () => {
  const base = new FakeCluster({ nodeCount: 1, shardCount: 1, replicationFactor: 1 }).status();
  const samples: Sample[] = [
    { atMs: 0, status: withCounters(base, 100, 10) },
    { atMs: 1_000, status: withCounters(base, 130, 13) },
    { atMs: 2_000, status: withCounters(base, 20, 5) },
    { atMs: 2_000, status: withCounters(base, 25, 6) },
  ];
  const rates = shardRates(samples, 0);
  equal(rates.optimisticTxnsPerSecond, (30 + 20) / 2);
  equal(rates.conflictRate, (3 + 5) / (30 + 20));
});

Deno.test("shardRates() is null, not zero, when it cannot know", async (t) => {
  const base = new FakeCluster({ nodeCount: 1, shardCount: 1, replicationFactor: 1 }).status();
  await t.step("one snapshot has no elapsed time", () => {
    const rates = shardRates([{ atMs: 0, status: base }], 0);
    equal(rates.optimisticTxnsPerSecond, null);
    equal(rates.conflictRate, null);
  });
  await t.step("no transactions give no conflict rate", () => {
    const samples = [{ atMs: 0, status: base }, { atMs: 1_000, status: base }];
    equal(shardRates(samples, 0).optimisticTxnsPerSecond, 0);
    equal(shardRates(samples, 0).conflictRate, null);
  });
  await t.step("an unknown shard and no snapshots", () => {
    deepEqual(shardRates([{ atMs: 0, status: base }], 9).proposalsPerSecond, null);
    deepEqual(clusterRates([]).optimisticTxnsPerSecond, null);
  });
});

Deno.test("clusterRates() adds shards up and takes the worst latency", () => {
  const cluster = new FakeCluster({ nodeCount: 3, shardCount: 4, replicationFactor: 3 });
  const rates = clusterRates(samplesOf(cluster, 3));
  const ids = [0, 1, 2, 3];
  const txns = ids.reduce((sum, id) => sum + fakeTxnsPerSecond(id), 0);
  const conflicts = ids.reduce((sum, id) => sum + fakeConflictsPerSecond(id), 0);
  equal(rates.optimisticTxnsPerSecond, txns);
  equal(rates.conflictRate, conflicts / txns);
  equal(rates.proposalsPerSecond, ids.reduce((sum, id) => sum + fakeProposalsPerSecond(id), 0));
  equal(rates.applyLatencyP99Ms, 1.5 + 3 * 0.75);
});

Deno.test("shardSeries() gives one point per snapshot, the first counter point a gap", () => {
  const cluster = new FakeCluster({ nodeCount: 3, shardCount: 2, replicationFactor: 3 });
  const samples = samplesOf(cluster, 3);
  const txns = shardSeries(samples, 1, "optimisticTxnsPerSecond");
  deepEqual(txns.map((point) => point.value), [null, 15, 15]);
  deepEqual(txns.map((point) => point.atMs), samples.map((sample) => sample.atMs));
  const proposals = shardSeries(samples, 1, "proposalsPerSecond");
  deepEqual(proposals.map((point) => point.value), [52, 52, 52]);
});
