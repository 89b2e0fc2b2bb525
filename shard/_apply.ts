/**
 * Applying committed entries to a replica's state machine (private to shard/): one transaction
 * per Ready, then each entry's proposal settled with its result, the timings counted, and the
 * owner told the new applied index.
 */
import { assert, type Entry } from "../raft/mod.ts";
import type { Proposals } from "./_proposals.ts";
import type { ReplicaOptions } from "./replica_options.ts";
import { recordApply, type ReplicaStats } from "./replica_stats.ts";

const EMPTY = new Uint8Array(0);

/** What applying needs of the replica. */
export interface ApplyContext<Result> {
  readonly options: Pick<ReplicaOptions<Result>, "stateMachine" | "nowMs" | "onApplied">;
  readonly stats: ReplicaStats;
  readonly proposals: Proposals<Result>;
}

/**
 * Applies `entries` (committed, in index order) in one state-machine transaction. Entries
 * other than normal ones (membership changes) only advance the applied index.
 *
 * @throws the state machine's storage failure; it rolled back, so nothing was applied or
 *   answered and the caller retries the same entries.
 */
export function applyCommitted<Result>(
  context: ApplyContext<Result>,
  entries: readonly Entry[],
): void {
  assert(entries.length > 0, "apply needs entries");
  const { options, stats, proposals } = context;
  const started = options.nowMs();
  const input = entries.map((entry) => ({
    index: entry.index as number,
    data: entry.type === "normal" ? entry.data : EMPTY,
  }));
  const results = options.stateMachine.apply(input);
  assert(results.length === entries.length, "apply returns one result per entry");
  const last = entries[entries.length - 1]!;
  assert(options.stateMachine.appliedIndex() === last.index, "apply must reach the end");
  entries.forEach((entry, i) => proposals.settleApplied(entry, results[i]));
  recordApply(stats, { count: entries.length, elapsedMs: options.nowMs() - started });
  options.onApplied?.(last.index);
}
