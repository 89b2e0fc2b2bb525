/**
 * A replica's state-machine snapshots (private to shard/): taking one every
 * `snapshotIntervalEntries` applied entries and compacting the log behind it, restoring one a
 * leader sent, and finishing a restore that a crash interrupted.
 */
import { assert, type ConfState, type LogIndex, type Snapshot } from "../raft/mod.ts";
import { storageFailureKind } from "./storage_failure.ts";
import {
  COMPACT_ENTRIES_PER_TURN_MAX,
  LOG_RETAINED_ENTRIES,
  SNAPSHOT_INTERVAL_ENTRIES,
  SNAPSHOT_RETRY_MS,
} from "./replica_limits.ts";
import type { PendingSnapshot, ReplicaOptions } from "./replica_options.ts";
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

/** A snapshot of the state at `index`: its bytes once made, the membership at that index. */
interface SnapshotAt {
  readonly index: LogIndex;
  readonly confState: ConfState;
}

/** The snapshots of one replica. */
export class Snapshots<Result> {
  readonly #options: SnapshotOptions<Result>;
  readonly #stats: ReplicaStats;
  /** Asks the replica for a turn (the bytes of a snapshot made in the background are ready). */
  readonly #wake: () => void;
  #lastSnapshotIndex: number;
  /** No snapshot or compaction is tried before this time (after one failed). */
  #retryAtMs = 0;
  /** A snapshot whose bytes are being made off the event loop. */
  #making: (SnapshotAt & { readonly pending: PendingSnapshot }) | null = null;
  /** A snapshot whose bytes were made, for the next turn to store. */
  #made: (SnapshotAt & { readonly data: Uint8Array }) | null = null;
  /** A snapshot the log is storing off the event loop (its file being written). */
  #storing: SnapshotAt | null = null;
  #isClosed = false;

  constructor(
    options: SnapshotOptions<Result>,
    state: {
      readonly stats: ReplicaStats;
      readonly snapshotIndex: number;
      readonly wake: () => void;
    },
  ) {
    this.#options = options;
    this.#stats = state.stats;
    this.#lastSnapshotIndex = state.snapshotIndex;
    this.#wake = state.wake;
  }

  /** Replaces the state machine with a snapshot's state. */
  restore(snapshot: Snapshot): void {
    // A snapshot of the state before this one is no use any more.
    this.#cancel();
    const index = snapshot.metadata.index;
    this.#options.stateMachine.restore(snapshot.data, index);
    assert(this.#options.stateMachine.appliedIndex() === index, "restore must set applied");
    this.#lastSnapshotIndex = index;
    this.#stats.snapshotsRestored++;
  }

  /** Stops making a snapshot in the background and forgets one made but not stored. */
  close(): void {
    this.#isClosed = true;
    this.#cancel();
  }

  #cancel(): void {
    this.#making?.pending.cancel();
    this.#making = null;
    this.#made = null;
    this.#storing = null;
  }

  /**
   * Takes a snapshot every `interval` applied entries and compacts the log behind it. Both are
   * optional: one that fails on storage is tried again SNAPSHOT_RETRY_MS later (a snapshot
   * copies the whole state machine, too costly to retry every turn).
   *
   * A state machine may make the bytes in the background: the turn that starts it captures
   * the state, and a later turn (the one it wakes) stores the bytes in the log, which may write
   * them off the event loop too. One snapshot is on its way at a time.
   *
   * @param confStateAt the membership at an index (the core knows it).
   */
  maybeSnapshot(confStateAt: (index: LogIndex) => ConfState): void {
    if (this.#options.nowMs() < this.#retryAtMs) return;
    const applied = this.#options.stateMachine.appliedIndex();
    const interval = this.#options.snapshotIntervalEntries ?? SNAPSHOT_INTERVAL_ENTRIES;
    try {
      if (this.#made !== null) {
        const made = this.#made;
        this.#made = null;
        this.#store(made);
      } else if (!this.#isBusy && applied - this.#lastSnapshotIndex >= interval) {
        this.#start({ index: applied as LogIndex, confState: confStateAt(applied as LogIndex) });
      }
      this.#compactSome(interval);
    } catch (error) {
      if (storageFailureKind(error) === null) throw error;
      this.#failed();
    }
  }

  /**
   * Compacts the log behind the last snapshot, keeping LOG_RETAINED_ENTRIES (or one interval)
   * for followers a little behind: at most COMPACT_ENTRIES_PER_TURN_MAX entries this turn, and
   * another turn is asked for while more remain.
   */
  #compactSome(interval: number): void {
    const storage = this.#options.storage;
    const target = this.#lastSnapshotIndex - Math.min(LOG_RETAINED_ENTRIES, interval);
    const first = storage.firstIndex();
    if (target <= first) return;
    const compactTo = Math.min(target, first - 1 + COMPACT_ENTRIES_PER_TURN_MAX);
    storage.compact(compactTo as LogIndex);
    if (compactTo < target) this.#wake();
  }

  #start(at: SnapshotAt): void {
    const data = this.#options.stateMachine.snapshot();
    if (data instanceof Uint8Array) return this.#store({ ...at, data });
    const making = { ...at, pending: data };
    this.#making = making;
    data.bytes.then(
      (bytes) => {
        if (this.#making !== making) return;
        this.#making = null;
        this.#made = { ...at, data: bytes };
        this.#wake();
      },
      () => {
        if (this.#making !== making) return;
        this.#making = null;
        this.#failed();
      },
    );
  }

  get #isBusy(): boolean {
    return this.#making !== null || this.#made !== null || this.#storing !== null;
  }

  /** Stores a snapshot's bytes in the log, unless a newer snapshot got there first. */
  #store(snapshot: SnapshotAt & { readonly data: Uint8Array }): void {
    const storage = this.#options.storage;
    if (snapshot.index <= storage.snapshot().metadata.index) return;
    const stored = storage.storeSnapshot(snapshot.index, snapshot.confState, snapshot.data);
    if (stored === undefined) return this.#stored(snapshot);
    const storing = { index: snapshot.index, confState: snapshot.confState };
    this.#storing = storing;
    stored.then(
      () => {
        if (this.#storing !== storing) return;
        this.#storing = null;
        this.#stored(snapshot);
        // The log behind it may be compacted now.
        this.#wake();
      },
      (error) => {
        if (this.#storing !== storing) return;
        this.#storing = null;
        if (storageFailureKind(error) === null) throw error;
        this.#failed();
      },
    );
  }

  /** A snapshot is in the log (unless a newer one overtook it): the log behind may go. */
  #stored(snapshot: SnapshotAt): void {
    if (this.#isClosed) return;
    if (this.#options.storage.snapshot().metadata.index !== snapshot.index) return;
    this.#lastSnapshotIndex = snapshot.index;
    this.#stats.snapshotsCreated++;
  }

  #failed(): void {
    this.#stats.snapshotFailures++;
    this.#retryAtMs = this.#options.nowMs() + SNAPSHOT_RETRY_MS;
  }
}
