/**
 * A replica's state-machine snapshots (private to shard/): taking one every
 * `snapshotIntervalEntries` applied entries and compacting the log behind it, restoring one a
 * leader sent, and finishing a restore that a crash interrupted.
 */
import { assert, type ConfState, type LogIndex, type Snapshot } from "../raft/mod.ts";
import { storageFailureKind } from "./storage_failure.ts";
import {
  LOG_RETAINED_ENTRIES,
  SNAPSHOT_INTERVAL_ENTRIES,
  SNAPSHOT_RETRY_MS,
} from "./replica_limits.ts";
import type { ReplicaOptions } from "./replica_options.ts";
import type { ReplicaStats } from "./replica_stats.ts";

type SnapshotOptions<Result> = Pick<
  ReplicaOptions<Result>,
  "storage" | "stateMachine" | "nowMs" | "snapshotIntervalEntries"
>;

/**
 * Brings the state machine up to the log's snapshot when it is behind, and returns the index
 * of that snapshot and the applied index to start the core at.
 *
 * A crash between persisting a received snapshot (the log forgets the entries it covers) and
 * restoring the state machine from it leaves the machine behind: finish the restore, or the
 * replica would apply later entries on top of a state that lacks the snapshot.
 */
export function recoverStateMachine<Result>(
  options: SnapshotOptions<Result>,
): { readonly snapshotIndex: number; readonly applied: number } {
  const snapshot = options.storage.snapshot();
  const snapshotIndex = snapshot.metadata.index;
  if (options.stateMachine.appliedIndex() < snapshotIndex) {
    options.stateMachine.restore(snapshot.data, snapshotIndex);
  }
  const applied = options.stateMachine.appliedIndex();
  assert(applied >= snapshotIndex, "state machine is behind the log snapshot");
  return { snapshotIndex, applied };
}

/** The snapshots of one replica. */
export class Snapshots<Result> {
  readonly #options: SnapshotOptions<Result>;
  readonly #stats: ReplicaStats;
  #lastSnapshotIndex: number;
  /** No snapshot or compaction is tried before this time (after one failed). */
  #retryAtMs = 0;

  constructor(
    options: SnapshotOptions<Result>,
    state: { readonly stats: ReplicaStats; readonly snapshotIndex: number },
  ) {
    this.#options = options;
    this.#stats = state.stats;
    this.#lastSnapshotIndex = state.snapshotIndex;
  }

  /** Replaces the state machine with a snapshot's state. */
  restore(snapshot: Snapshot): void {
    const index = snapshot.metadata.index;
    this.#options.stateMachine.restore(snapshot.data, index);
    assert(this.#options.stateMachine.appliedIndex() === index, "restore must set applied");
    this.#lastSnapshotIndex = index;
    this.#stats.snapshotsRestored++;
  }

  /**
   * Takes a snapshot every `interval` applied entries and compacts the log behind it. Both are
   * optional: one that fails on storage is tried again SNAPSHOT_RETRY_MS later (a snapshot
   * copies the whole state machine, too costly to retry every turn).
   *
   * @param confStateAt the membership at an index (the core knows it).
   */
  maybeSnapshot(confStateAt: (index: LogIndex) => ConfState): void {
    if (this.#options.nowMs() < this.#retryAtMs) return;
    const applied = this.#options.stateMachine.appliedIndex();
    const interval = this.#options.snapshotIntervalEntries ?? SNAPSHOT_INTERVAL_ENTRIES;
    const storage = this.#options.storage;
    try {
      if (applied - this.#lastSnapshotIndex >= interval) {
        const confState: ConfState = confStateAt(applied as LogIndex);
        const data = this.#options.stateMachine.snapshot();
        storage.createSnapshot(applied as LogIndex, confState, data);
        this.#lastSnapshotIndex = applied;
        this.#stats.snapshotsCreated++;
      }
      const compactTo = this.#lastSnapshotIndex - Math.min(LOG_RETAINED_ENTRIES, interval);
      if (compactTo > storage.firstIndex()) storage.compact(compactTo as LogIndex);
    } catch (error) {
      if (storageFailureKind(error) === null) throw error;
      this.#stats.snapshotFailures++;
      this.#retryAtMs = this.#options.nowMs() + SNAPSHOT_RETRY_MS;
    }
  }
}
