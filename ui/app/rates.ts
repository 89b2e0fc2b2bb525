/**
 * Rates derived from successive status snapshots. The status carries counters (optimistic
 * transactions, conflicts) and gauges (proposals per second, p99 apply latency); the console
 * turns counters into rates by differencing snapshots over time.
 *
 * A counter that goes down has been reset (a new leader or a restarted node counts from zero),
 * so its increase over that step is its new value, as a Prometheus `rate()` would take it. A
 * step whose time does not advance contributes nothing. A rate over no elapsed time, or a
 * conflict rate over no transactions, is unknown (null), never zero.
 */
import type { ClusterStatus, ShardStatus } from "../../api/mod.ts";
import { assert } from "./assert.ts";

/** One status snapshot and the time it describes, in milliseconds since the Unix epoch. */
export interface Sample {
  readonly atMs: number;
  readonly status: ClusterStatus;
}

/** The numbers shown per shard, over a window of snapshots. */
export interface ShardRates {
  readonly proposalsPerSecond: number | null;
  readonly optimisticTxnsPerSecond: number | null;
  /** Conflicts divided by optimistic transactions in the window. */
  readonly conflictRate: number | null;
  readonly applyLatencyP99Ms: number | null;
}

/** The increase of a counter from `older` to `newer`, counting a decrease as a reset. */
export function counterIncrease(older: number, newer: number): number {
  assert(older >= 0 && newer >= 0, "counters are non-negative");
  return newer < older ? newer : newer - older;
}

/** Optimistic transactions and conflicts added over the window, and the seconds it spans. */
interface Totals {
  txns: number;
  conflicts: number;
  seconds: number;
}

function shardTotals(samples: readonly Sample[], shardId: number): Totals {
  const totals: Totals = { txns: 0, conflicts: 0, seconds: 0 };
  for (let i = 1; i < samples.length; i++) {
    const older = findShard(samples[i - 1]!.status, shardId);
    const newer = findShard(samples[i]!.status, shardId);
    const seconds = (samples[i]!.atMs - samples[i - 1]!.atMs) / 1_000;
    if (older === undefined || newer === undefined || seconds <= 0) continue;
    totals.txns += counterIncrease(older.stats.optimisticTxns, newer.stats.optimisticTxns);
    totals.conflicts += counterIncrease(older.stats.conflicts, newer.stats.conflicts);
    totals.seconds += seconds;
  }
  return totals;
}

/**
 * The rates of shard `shardId` over `samples` (oldest first): counters differenced over the
 * whole window, gauges taken from the newest snapshot.
 */
export function shardRates(samples: readonly Sample[], shardId: number): ShardRates {
  const newest = samples.length === 0 ? undefined : samples[samples.length - 1];
  const shard = newest === undefined ? undefined : findShard(newest.status, shardId);
  const totals = shardTotals(samples, shardId);
  return {
    proposalsPerSecond: shard === undefined ? null : shard.stats.proposalsPerSecond,
    optimisticTxnsPerSecond: totals.seconds > 0 ? totals.txns / totals.seconds : null,
    conflictRate: totals.txns > 0 ? totals.conflicts / totals.txns : null,
    applyLatencyP99Ms: shard === undefined ? null : shard.stats.applyLatencyP99Ms,
  };
}

/**
 * The cluster-wide numbers over `samples`: sums of the per-shard rates, the conflict rate of
 * all shards' transactions together, and the worst p99 apply latency of any shard.
 */
export function clusterRates(samples: readonly Sample[]): ShardRates {
  const newest = samples.length === 0 ? undefined : samples[samples.length - 1];
  if (newest === undefined) {
    return {
      proposalsPerSecond: null,
      optimisticTxnsPerSecond: null,
      conflictRate: null,
      applyLatencyP99Ms: null,
    };
  }
  const all: Totals = { txns: 0, conflicts: 0, seconds: 0 };
  let proposals = 0;
  let latencyMax: number | null = null;
  for (const shard of newest.status.shards) {
    const totals = shardTotals(samples, shard.id);
    all.txns += totals.txns;
    all.conflicts += totals.conflicts;
    all.seconds = Math.max(all.seconds, totals.seconds);
    proposals += shard.stats.proposalsPerSecond;
    const latency = shard.stats.applyLatencyP99Ms;
    if (latency !== null) latencyMax = Math.max(latencyMax ?? 0, latency);
  }
  return {
    proposalsPerSecond: proposals,
    optimisticTxnsPerSecond: all.seconds > 0 ? all.txns / all.seconds : null,
    conflictRate: all.txns > 0 ? all.conflicts / all.txns : null,
    applyLatencyP99Ms: latencyMax,
  };
}

/** A metric the charts draw per shard. */
export type ChartMetric =
  | "proposalsPerSecond"
  | "optimisticTxnsPerSecond"
  | "conflictRate"
  | "applyLatencyP99Ms";

/** One point of a chart line; a null value is a gap in the line. */
export interface SeriesPoint {
  readonly atMs: number;
  readonly value: number | null;
}

/**
 * The points of `metric` for shard `shardId` at each snapshot of `samples` (oldest first).
 * Counter-based metrics use the step from the previous snapshot; the first snapshot has none.
 */
export function shardSeries(
  samples: readonly Sample[],
  shardId: number,
  metric: ChartMetric,
): SeriesPoint[] {
  const points: SeriesPoint[] = [];
  for (let i = 0; i < samples.length; i++) {
    const sample = samples[i]!;
    const isGauge = metric === "proposalsPerSecond" || metric === "applyLatencyP99Ms";
    const window = isGauge ? [sample] : samples.slice(Math.max(0, i - 1), i + 1);
    points.push({ atMs: sample.atMs, value: shardRates(window, shardId)[metric] });
  }
  return points;
}

/** The shard `shardId` in `status`, if the status lists it. */
export function findShard(status: ClusterStatus, shardId: number): ShardStatus | undefined {
  return status.shards.find((shard) => shard.id === shardId);
}
