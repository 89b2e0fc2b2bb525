/**
 * A replica's view of its shard for `/v1/cluster/status`: Raft progress, replicas and the
 * shard's recent statistics.
 */
import type { ShardStatus } from "../../api/mod.ts";
import type { ReplicaStatus, StateMachine } from "../../shard/mod.ts";
import { replicaViews } from "./replica_view.ts";

/** The window over which proposals per second are measured. */
export const RATE_WINDOW_MS = 1_000;

/** A replica's view of the shard for `/v1/cluster/status`: the contract's shard status. */
export type ShardStatusView = ShardStatus;

/** What a status view is built from. */
export interface StatusViewSources {
  readonly shard: number;
  readonly status: ReplicaStatus;
  readonly stateMachine: StateMachine;
  /** Whether the peer link to `node` is up (for replica status). */
  readonly isPeerUp: (node: number) => boolean;
  readonly rate: ProposalRate;
  /** The lessor's clock, whole milliseconds. */
  readonly nowMs: number;
}

/** This replica's view of the shard; a leader knows every replica's progress. */
export function shardStatusView(sources: StatusViewSources): ShardStatusView {
  const status = sources.status;
  const stats = sources.stateMachine.stats();
  const replicas = replicaViews(status, sources.isPeerUp);
  const recent = status.stats.applyMsRecent;
  const applyBatchMsP99 = recent.length === 0 ? null : percentile(recent, 0.99);
  return {
    id: sources.shard,
    leader: status.leader,
    term: status.term,
    commitIndex: status.commit,
    appliedIndex: sources.stateMachine.appliedIndex(),
    lastIndex: status.lastIndex,
    replicas,
    committedReplicas: [...status.committedConfState.voters, ...status.committedConfState.learners]
      .sort((a, b) => a - b),
    stats: {
      proposalsPerSecond: sources.rate.perSecond(status, sources.nowMs),
      optimisticTxns: stats.optimisticTxns,
      conflicts: stats.conflicts,
      applyBatchMsP99,
      applyLatencyP99Ms: applyBatchMsP99,
      turnMsMax: status.stats.turnMsMax,
      intents: sources.stateMachine.intentCount(),
    },
  };
}

/** Proposals per second, measured over windows of at least RATE_WINDOW_MS. */
export class ProposalRate {
  #sample = { atMs: 0, proposals: 0, perSecond: 0 };

  /** The rate of the last full window, to one decimal. */
  perSecond(status: ReplicaStatus, now: number): number {
    const sample = this.#sample;
    const elapsed = now - sample.atMs;
    if (elapsed >= RATE_WINDOW_MS) {
      const perSecond = (status.stats.proposals - sample.proposals) * 1000 / elapsed;
      this.#sample = { atMs: now, proposals: status.stats.proposals, perSecond };
    }
    return Math.round(this.#sample.perSecond * 10) / 10;
  }
}

/** The p-th percentile of `samples` (0 when empty). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, index)]! * 100) / 100;
}
