/**
 * One shard replica hosted by this node: its SQLite log, its SQLite state machine, its lessor
 * and its driver. The jobs around it live beside it: the integrity checks run when its files
 * open (shard_integrity.ts), request dispatch (shard_dispatch.ts), the status view
 * (shard_status_view.ts), the lease timer (lease_timer.ts) and remote watches
 * (remote_watch.ts).
 *
 * Files live in `<data_dir>/shard-<id>/`: `raft-log.db`, its latest snapshot
 * `raft-log.db.snapshot-<index>-<random>` and `state-machine.db`.
 */
import { type Message, type RaftConfig, replicaId, type Term } from "../../raft/mod.ts";
import {
  type ApplyResult,
  applyResultError,
  AspenError,
  type Command,
  encodeCommand,
  Lessor,
  type ReplicaStatus,
  ShardReplica,
  type SqliteLogStorage,
  type StateMachine,
} from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import { DueSchedule } from "./due_schedule.ts";
import { type CrossShardExpiry, LeaseTimer } from "./lease_timer.ts";
import { RemoteWatchStreams } from "./remote_watch.ts";
import { dispatchShardRequest, type ShardDispatchContext } from "./shard_dispatch.ts";
import { openCheckedShardFiles } from "./shard_integrity.ts";
import type { ShardRequest } from "./shard_request.ts";
import { ProposalRate, type ShardStatusView, shardStatusView } from "./shard_status_view.ts";
import { MetaSwaps } from "./meta_swaps.ts";

/** The most reads waiting for this replica to apply an index (follower reads). */
export const APPLIED_WAITERS_MAX = 16_384;

/** What opening a local shard needs. */
export interface LocalShardOptions {
  readonly shard: number;
  readonly nodeId: number;
  readonly dir: string;
  /** The initial membership, used only when the shard's storage is new. */
  readonly voters: readonly number[];
  /**
   * The term an empty replica (no voters, no log) starts at, so that a leader of an earlier
   * term (one that still counts on an older incarnation of this replica, whose log was
   * dropped) is refused as stale. Absent or 0: the storage's own term.
   */
  readonly termFloor?: number;
  readonly raft: Omit<RaftConfig, "id" | "applied">;
  readonly tickMs: number;
  /** Applied entries between snapshots; absent: the replica's default. */
  readonly snapshotIntervalEntries?: number;
  readonly send: (messages: readonly Message[]) => void;
  readonly nowMs: () => number;
  /** Whether the peer link to `node` is up (for replica status). */
  readonly isPeerUp: (node: number) => boolean;
  /**
   * The error for a client write this node must refuse while it leads the shard (its disk is
   * below the reserve), or null to propose it. Absent: every write is proposed.
   */
  readonly refuseWrite?: (command: Command) => AspenError | null;
  /** Called when the replica's role, term or known leader changed. Absent: not called. */
  readonly onLeaderChange?: () => void;
  /** Called after each turn that leaves the replica awake (ReplicaOptions.onAwake). */
  readonly onAwake?: () => void;
  /**
   * The node's schedule for the lease timers of all its shards (see LeaseTimer). Absent: the
   * shard's own, on `nowMs`.
   */
  readonly leaseSchedule?: DueSchedule;
  /**
   * Called after an apply, a snapshot install or the opening that leaves the state machine
   * holding intents (the node's intent sweeper visits only such shards). Absent: not called.
   */
  readonly onIntents?: () => void;
  readonly logger: Logger;
}

/** A shard replica hosted here. */
export class LocalShard {
  readonly shard: number;
  readonly replica: ShardReplica<ApplyResult>;
  readonly stateMachine: StateMachine;
  readonly #lessor = new Lessor();
  readonly #options: LocalShardOptions;
  readonly #leaseTimer: LeaseTimer;
  readonly #dispatch: ShardDispatchContext;
  readonly #rate = new ProposalRate();
  readonly #remoteWatches: RemoteWatchStreams;
  /** Waiters for an applied index, released in index order as entries apply. */
  #appliedWaiters: { index: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  readonly #metaSwaps = new MetaSwaps({
    read: (read) => this.replica.read(read),
    getMeta: (name) => this.stateMachine.getMeta(name),
    propose: (command) => this.proposeChecked({ kind: "propose", command }),
  });

  private constructor(
    options: LocalShardOptions,
    stateMachine: StateMachine,
    storage: SqliteLogStorage,
  ) {
    this.shard = options.shard;
    this.#options = options;
    this.stateMachine = stateMachine;
    this.#lessor.load(stateMachine.leases(), Math.floor(options.nowMs()));
    this.replica = new ShardReplica<ApplyResult>({
      shard: options.shard,
      raft: { ...options.raft, id: replicaId(options.nodeId) },
      storage,
      stateMachine: this.#observedStateMachine(),
      send: options.send,
      nowMs: options.nowMs,
      tickMs: options.tickMs,
      ...(options.snapshotIntervalEntries === undefined
        ? {}
        : { snapshotIntervalEntries: options.snapshotIntervalEntries }),
      onLeaderChange: (status) => this.#onLeaderChange(status),
      onAwake: () => {
        this.#leaseTimer.noteAwake();
        options.onAwake?.();
      },
    });
    this.#remoteWatches = new RemoteWatchStreams(stateMachine);
    this.#dispatch = {
      shard: options.shard,
      nodeId: options.nodeId,
      replica: this.replica,
      stateMachine,
      lessor: this.#lessor,
      remoteWatches: this.#remoteWatches,
      nowMs: () => this.#lessorNow(),
      statusView: () => this.statusView(),
      refuseWrite: options.refuseWrite,
      metaSwaps: this.#metaSwaps,
      waitApplied: (index) => this.waitApplied(index),
    };
    this.#leaseTimer = new LeaseTimer({
      shard: options.shard,
      replica: () => this.replica,
      lessor: this.#lessor,
      nowMs: () => this.#lessorNow(),
      holdersOf: (id) => this.stateMachine.leaseHolders(id),
      schedule: options.leaseSchedule ?? new DueSchedule(options.nowMs),
      logger: options.logger,
    });
    this.#noteIntents();
  }

  /**
   * Opens (or creates) the shard's files and starts its replica.
   *
   * @throws {AspenError} `storage_corrupt` when a file is damaged.
   */
  static async open(options: LocalShardOptions): Promise<LocalShard> {
    const { storage, stateMachine } = await openCheckedShardFiles(options);
    const floor = options.termFloor ?? 0;
    const { hardState } = storage.initialState();
    if (options.voters.length === 0 && storage.lastIndex() === 0 && hardState.term < floor) {
      storage.setHardState({ term: floor as Term, vote: null, commit: hardState.commit });
    }
    const shard = new LocalShard(options, stateMachine, storage);
    shard.replica.start();
    return shard;
  }

  /**
   * Executes a request against this replica (as the leader, unless it is serializable).
   *
   * @throws {AspenError} `not_leader` with a hint when this replica cannot serve it.
   */
  execute(request: ShardRequest): Promise<unknown> {
    return dispatchShardRequest(this.#dispatch, request);
  }

  /**
   * Resolves once this replica has applied `index` (at once when it has).
   *
   * @throws {AspenError} `too_many_requests` past APPLIED_WAITERS_MAX, `shard_unavailable`
   * when the shard closes first.
   */
  waitApplied(index: number): Promise<void> {
    if (this.stateMachine.appliedIndex() >= index) return Promise.resolve();
    if (this.#appliedWaiters.length >= APPLIED_WAITERS_MAX) {
      return Promise.reject(
        new AspenError(
          "too_many_requests",
          `Cannot wait for shard ${this.shard} to apply index ${index}: ` +
            `${this.#appliedWaiters.length} reads wait and the limit is ${APPLIED_WAITERS_MAX}`,
          { shard: this.shard },
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#appliedWaiters.push({ index, resolve, reject });
    return promise;
  }

  /** Proposes and turns an error result into a thrown `AspenError`. */
  async proposeChecked(request: Extract<ShardRequest, { kind: "propose" }>): Promise<ApplyResult> {
    const result = await this.execute(request) as ApplyResult;
    const error = applyResultError(result);
    if (error !== null) throw error;
    return result;
  }

  /** This replica's view of the shard; a leader knows every replica's progress. */
  statusView(): ShardStatusView {
    return shardStatusView({
      shard: this.shard,
      status: this.replica.status(),
      stateMachine: this.stateMachine,
      isPeerUp: this.#options.isPeerUp,
      rate: this.#rate,
      nowMs: this.#lessorNow(),
    });
  }

  /**
   * Moves leadership to the most caught-up other voter, if this replica leads; used on a
   * graceful shutdown so that the shard does not wait an election timeout.
   */
  handOverLeadership(): void {
    const status = this.replica.status();
    if (status.role !== "leader" || status.stall !== null) return;
    const candidates = status.progress
      .filter((progress) => progress.id !== status.id && !progress.isLearner)
      .sort((a, b) => b.match - a.match);
    const target = candidates[0];
    if (target === undefined) return;
    // Not awaited: the node closes after a grace period whether or not the replica's loop
    // got to it (a replica waiting for a stalled disk never would).
    this.replica.transferLeadership(target.id).catch((error: unknown) => {
      this.#options.logger.warn("Cannot hand over leadership", {
        shard: this.shard,
        reason: error instanceof Error ? error.message : String(error),
      });
    });
  }

  /** Stops the driver and closes both databases. */
  /** Sets how this shard's leases with keys on other shards expire (see LeaseTimer). */
  useCrossShardExpiry(expire: CrossShardExpiry): void {
    this.#leaseTimer.useCrossShardExpiry(expire);
  }

  close(): void {
    this.#leaseTimer.close();
    this.#remoteWatches.close();
    const error = new AspenError("shard_unavailable", `Cannot read shard ${this.shard}: closed`, {
      shard: this.shard,
    });
    for (const waiter of this.#appliedWaiters.splice(0)) waiter.reject(error);
    this.replica.close();
  }

  /** The lessor counts whole milliseconds. */
  #lessorNow(): number {
    return Math.floor(this.#options.nowMs());
  }

  /** The state machine as the driver sees it, feeding apply results to the lessor. */
  #observedStateMachine() {
    const machine = this.stateMachine;
    const lessor = this.#lessor;
    const nowMs = () => this.#lessorNow();
    return {
      appliedIndex: () => machine.appliedIndex(),
      apply: (entries: readonly { index: number; data: Uint8Array }[]) => {
        const results = machine.apply(entries.map(asCommandEntry));
        let isGranted = false;
        for (const result of results) {
          lessor.observe(result, nowMs());
          if (result.type === "leaseGrant") isGranted = true;
        }
        // Only a grant can bring the next lease deadline earlier.
        if (isGranted) this.#rescheduleLeases();
        this.#noteIntents();
        this.#releaseApplied();
        return results;
      },
      snapshot: () => machine.snapshotInBackground(),
      stageRestore: (data: Uint8Array) => machine.stageRestore(data),
      restore: (data: Uint8Array) => {
        machine.restore(data);
        lessor.load(machine.leases(), nowMs());
        // The replica's constructor may restore (finishing an interrupted snapshot install)
        // before `this.replica` is set; a replica being built is no leader yet.
        const replica = this.replica as ShardReplica<ApplyResult> | undefined;
        if (replica?.status().role === "leader") lessor.onBecomeLeader(nowMs());
        this.#rescheduleLeases();
        this.#noteIntents();
        this.#options.logger.info("Installed a snapshot", {
          shard: this.#options.shard,
          index: machine.appliedIndex(),
        });
        this.#releaseApplied();
      },
      close: () => machine.close(),
    };
  }

  /** Resolves the waiters whose index is applied (their reads run after this turn). */
  #releaseApplied(): void {
    if (this.#appliedWaiters.length === 0) return;
    const applied = this.stateMachine.appliedIndex();
    const waiting = [];
    for (const waiter of this.#appliedWaiters) {
      if (waiter.index <= applied) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#appliedWaiters = waiting;
  }

  /**
   * Re-arms the lease timer; it does not exist yet while the replica's constructor restores
   * a snapshot (the timer's constructor arms it after).
   */
  #rescheduleLeases(): void {
    (this.#leaseTimer as LeaseTimer | undefined)?.reschedule();
  }

  /** Tells the node that this shard holds intents (LocalShardOptions.onIntents). */
  #noteIntents(): void {
    const onIntents = this.#options.onIntents;
    if (onIntents !== undefined && this.stateMachine.intentCount() > 0) onIntents();
  }

  #onLeaderChange(status: ReplicaStatus): void {
    const now = this.#lessorNow();
    if (status.role === "leader") {
      this.#lessor.onBecomeLeader(now);
      this.#options.logger.info("Became leader", { shard: this.shard, term: status.term });
    } else {
      this.#lessor.onBecomeFollower();
      this.#options.logger.debug("Leadership changed", {
        shard: this.shard,
        role: status.role,
        term: status.term,
        leader: status.leader,
      });
    }
    this.#rescheduleLeases();
    this.#options.onLeaderChange?.();
  }
}

const NOOP = encodeCommand({ type: "noop" });

/** Empty entries (a leader's no-op, a membership change) apply as the `noop` command. */
function asCommandEntry(entry: { index: number; data: Uint8Array }) {
  return entry.data.byteLength === 0 ? { index: entry.index, data: NOOP } : entry;
}
