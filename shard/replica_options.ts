/**
 * What a shard replica needs from its owner: the log storage it writes, the state machine it
 * applies to, and its options. Re-exported by replica.ts and shard/mod.ts.
 */
import type {
  ConfState,
  Entry,
  HardState,
  LogIndex,
  Message,
  RaftConfig,
  Snapshot,
  WritableLogStorage,
} from "../raft/mod.ts";
import type { ReplicaStatus } from "./replica_stats.ts";

/** The log storage a replica writes: the core's interface plus one-transaction persistence. */
export interface ReplicaLogStorage extends WritableLogStorage {
  /**
   * Writes the hard state, entries and snapshot of one Ready in one transaction. When
   * `mustSync`, they are durable on return, or, for a storage that syncs without blocking the
   * event loop, once the returned promise resolves (it rejects when the disk failed).
   */
  persist(
    write: {
      readonly hardState: HardState | null;
      readonly entries: readonly Entry[];
      readonly snapshot: Snapshot | null;
    },
    mustSync: boolean,
  ): Promise<void> | undefined;
  /**
   * {@linkcode WritableLogStorage.createSnapshot}, which a storage may do off the event loop:
   * it then returns a promise, and the snapshot is the log's once it resolves (it rejects with
   * the storage failure that stopped it).
   */
  storeSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): Promise<void> | undefined;
  /**
   * Optional: writes the data of a snapshot received from a leader off the event loop before
   * the Ready that carries it is persisted, so that `persist` of the same snapshot object does
   * not write it on the loop. The replica awaits it and persists nothing in between; it
   * rejects with the storage failure that stopped it.
   */
  stageSnapshot?(snapshot: Snapshot): Promise<void>;
  /** Write transactions committed so far (a `persist` that wrote nothing does not count). */
  readonly transactions: number;
  close(): void;
}

/** A snapshot being made off the event loop. */
export interface PendingSnapshot {
  /** The snapshot's bytes; rejects when making them failed or was cancelled. */
  readonly bytes: Promise<Uint8Array>;
  /** Stops making the bytes (a replica closing, or a newer snapshot installed). */
  cancel(): void;
}

/** The state machine a replica applies committed entries to. */
export interface ReplicaStateMachine<Result> {
  /** The index of the last entry applied (durable together with the state). */
  appliedIndex(): number;
  /**
   * Applies entries in index order in one transaction; entries at or below the applied index
   * are skipped. Entries with empty data (no-ops, membership changes) only advance the index.
   * Returns one result per entry, in the same order.
   */
  apply(
    entries: readonly { readonly index: number; readonly data: Uint8Array }[],
  ): readonly Result[];
  /**
   * The whole state as bytes, at the applied index: at once, or made in the background from
   * the state captured now (the index of the call stays the snapshot's).
   */
  snapshot(): Uint8Array | PendingSnapshot;
  /** Replaces the whole state with a snapshot's bytes taken at `index`. */
  restore(data: Uint8Array, index: number): void;
  /**
   * Optional: prepares `restore` of these bytes (the same array) off the event loop where it
   * can (checking them, writing their file). The replica awaits it before it persists the
   * Ready that carries the snapshot, and changes nothing in between; it rejects with the
   * storage failure or the check that stopped it.
   */
  stageRestore?(data: Uint8Array, index: number): Promise<void>;
  close(): void;
}

/** Everything a replica needs from its owner. */
export interface ReplicaOptions<Result> {
  readonly shard: number;
  readonly raft: Omit<RaftConfig, "applied">;
  readonly storage: ReplicaLogStorage;
  readonly stateMachine: ReplicaStateMachine<Result>;
  /** Sends messages to peers; called after the writes they depend on are durable. */
  readonly send: (messages: readonly Message[]) => void;
  /** Monotonic milliseconds, for stats and deadlines. */
  readonly nowMs: () => number;
  /** Length of one Raft tick in ms; 0 disables the timer (tests tick by hand). */
  readonly tickMs: number;
  /** Applied entries between snapshots; defaults to SNAPSHOT_INTERVAL_ENTRIES. */
  readonly snapshotIntervalEntries?: number;
  /** Called after a turn in which the role, term or leader changed. */
  readonly onLeaderChange?: (status: ReplicaStatus) => void;
  /**
   * Called after each turn that leaves the replica awake (see ShardReplica.isAsleep): a driver
   * that ticks many replicas from one timer ticks only those, so an idle node's timer does not
   * visit every quiesced replica. Absent: not called.
   */
  readonly onAwake?: () => void;
  /** Called after entries are applied, with the applied index (watch, leases). */
  readonly onApplied?: (appliedIndex: number) => void;
}
