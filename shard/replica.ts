/**
 * The driver of one shard replica: it owns a Raft core, its log storage and its state machine,
 * and runs them at its own pace (STYLE §1.8).
 *
 * Inputs (messages from peers, proposals, reads, ticks, admin calls) go into bounded queues;
 * each loop turn drains them into the core, then handles every Ready in the contract's order:
 * persist (one SQLite transaction), send, apply (one SQLite transaction), advance. Proposals
 * that arrive in the same turn are committed together (group commit). Nothing outside the loop
 * calls into the core but its read-only getters: between `ready()` and `advance()` (while a
 * Ready waits for its flush) any other call would break the Ready contract, and the core
 * asserts that it does not happen.
 *
 * ```text
 *  peers ────deliver()────────▶ inbound ───┐
 *  clients ──propose()────────▶ proposals ─┤
 *  clients ──read()───────────▶ reads ─────┼─▶ turn: admin calls, tick/step/propose/readIndex
 *  operators ─transferLeadership()         │    ─▶ Ready: persist ─▶ send ─▶ apply ─▶ advance
 *             campaign() ─────▶ admin ─────┤
 *  timer ─────────────────────▶ ticks ─────┘
 * ```
 *
 * A proposal's promise settles when the entry at its (index, term) is applied: with the
 * state machine's result, or as dropped when another entry took that index. A linearizable
 * read waits for its ReadIndex and for the applied index to reach it (Raft thesis §6.4).
 *
 * A storage may write without waiting for the disk and sync off the event loop's thread
 * (`persist` then returns a promise). A Ready that must be durable then waits for that flush
 * before anything that depends on it: its messages go out (a follower's acknowledgements,
 * votes), its entries apply, and the core advances; the turn stops there and resumes when the
 * flush resolves, with every input that arrived meanwhile (which therefore batches into the
 * next Ready). A leader's own messages (appends, heartbeats) go out before its flush, so that
 * the followers write while the leader does (Raft thesis §10.2.1): nothing commits on them
 * until the leader has resumed, and it resumes only after its flush, because acknowledgements
 * are stepped in turns.
 */
import {
  assert,
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type ProposeResult,
  type RaftConfig,
  RawNode,
  type Ready,
  type ReplicaId,
  type Snapshot,
  type Status,
  type WritableLogStorage,
} from "../raft/mod.ts";
import { clearImmediate, setImmediate } from "node:timers";
import { AspenError, notLeaderError } from "./errors.ts";
import { FatalStorageError, storageFailureKind, syncFailedError } from "./storage_failure.ts";
import { type StallStage, StorageStall, type StorageStallStatus } from "./_storage_stall.ts";
import { TransferWaiters } from "./_transfers.ts";

/** Most messages from peers waiting for a turn; more are dropped (Raft tolerates loss). */
export const INBOUND_MESSAGES_MAX = 16_384;
/** Most proposals waiting for a turn or for their entry to apply. */
export const PROPOSALS_PENDING_MAX = 16_384;
/** Most linearizable reads waiting. */
export const READ_WAITERS_MAX = 16_384;
/**
 * Most admin calls (leadership transfers, elections) waiting for a turn; more are refused with
 * `too_many_requests`. Operators make them by hand, a handful at a time: a long queue means a
 * replica whose loop is stuck, and piling more on it helps nobody.
 */
export const ADMIN_CALLS_PENDING_MAX = 64;
/** Most Ready rounds handled in one turn before yielding to the event loop. */
export const READY_ROUNDS_PER_TURN_MAX = 64;
/**
 * Milliseconds of Ready rounds after which a turn yields to the event loop and goes on in the
 * next one. Every shard of a node shares one event loop: a follower catching up on 100,000
 * entries applied them 4,096 a round for up to 64 rounds in one turn, holding the loop for
 * seconds, and the shards this node led missed their heartbeats and elected new leaders.
 */
export const TURN_WORK_MS_MAX = 25;
/**
 * Most entries of inbound appends stepped in one turn; the rest wait for the next. A leader
 * pipelines up to 64 appends of up to 1,024 entries to a follower that catches up: stepped at
 * once, they made one Ready whose log write alone held the event loop for hundreds of ms.
 */
export const INBOUND_ENTRIES_PER_TURN_MAX = 4_096;
/**
 * Applied entries between two state-machine snapshots. A snapshot copies the whole state
 * machine (keys and watch history: 28 MB for 10,000 keys of 256 bytes with a full history) and
 * writes it into the Raft log with an fsync, holding the event loop 100-400 ms. Every 10,000
 * entries that was 5-9% of every node's CPU under a put load; the state machine is durable on
 * its own, so snapshots only bound the log (as etcd's default of 100,000 does).
 */
export const SNAPSHOT_INTERVAL_ENTRIES = 100_000;
/** Entries kept behind a snapshot so that slightly lagging followers need no snapshot. */
export const LOG_RETAINED_ENTRIES = 2_000;
/** How long after a failed snapshot or compaction the next attempt waits, ms. */
export const SNAPSHOT_RETRY_MS = 30_000;

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
  close(): void;
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
  /** The whole state as bytes, at the applied index. */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot's bytes taken at `index`. */
  restore(data: Uint8Array, index: number): void;
  close(): void;
}

/** What a replica reports of itself, for status, metrics and routing. */
export interface ReplicaStatus extends Status {
  readonly shard: number;
  readonly stats: ReplicaStats;
  /** The write this replica keeps retrying because storage failed, or null. */
  readonly stall: StorageStallStatus | null;
}

/** Counters of one replica since it started. */
export interface ReplicaStats {
  proposals: number;
  proposalsDropped: number;
  applied: number;
  readsServed: number;
  /** Driver turns run. */
  turns: number;
  /** Ready rounds handled: each one log write (entries, hard state or snapshot) and its sends. */
  readyRounds: number;
  /** Ready rounds whose log write was fsynced (entries or a changed term/vote). */
  logSyncs: number;
  /** Time spent writing the log, ms: the commit, plus the wait for a deferred fsync. */
  logWriteMs: number;
  /** Time spent applying committed entries to the state machine, ms. */
  applyMs: number;
  messagesDroppedInbound: number;
  snapshotsCreated: number;
  snapshotsRestored: number;
  /** Log writes, restores and applies that failed on storage (each retry counts). */
  storageFailures: number;
  /** Snapshots and compactions that failed on storage. */
  snapshotFailures: number;
  /** The longest loop turn, in ms: how long this shard held the event loop at once. */
  turnMsMax: number;
  /** The longest apply of one Ready's committed entries, in ms. */
  applyMsMax: number;
  /** Recent apply latencies per entry batch, ms, newest last (bounded). */
  readonly applyMsRecent: number[];
}

/** How many recent apply durations a replica keeps for percentiles. */
export const APPLY_SAMPLES_MAX = 512;

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
  /** Called after entries are applied, with the applied index (watch, leases). */
  readonly onApplied?: (appliedIndex: number) => void;
}

interface ProposalWaiter<Result> {
  readonly term: number;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: AspenError) => void;
}

interface QueuedProposal<Result> {
  readonly data: Uint8Array;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: AspenError) => void;
}

/** A call into the core on an operator's behalf, run by the driver at the start of a turn. */
interface AdminCall {
  /** Runs the call against the core: null when it took effect, or the refusal. */
  readonly run: () => AspenError | null;
  readonly resolve: () => void;
  readonly reject: (error: AspenError) => void;
}

interface ReadWaiter {
  readonly run: () => void;
  readonly reject: (error: AspenError) => void;
}

/**
 * One shard replica and its driver loop.
 *
 * @example
 * ```ts
 * const replica = new ShardReplica(options);
 * replica.start();
 * const result = await replica.propose(encodeCommand({ type: "put", key: "a", value: "1" }));
 * const value = await replica.read(() => stateMachine.get("a"));
 * await replica.close();
 * ```
 */
export class ShardReplica<Result> {
  readonly shard: number;
  readonly #options: ReplicaOptions<Result>;
  readonly #node: RawNode;
  readonly #inbound: Message[] = [];
  readonly #proposals: QueuedProposal<Result>[] = [];
  readonly #waiters = new Map<number, ProposalWaiter<Result>>();
  readonly #reads: ReadWaiter[] = [];
  readonly #adminCalls: AdminCall[] = [];
  readonly #transfers: TransferWaiters;
  /** ReadIndex requests in flight, by request id: the term they were made in, and waiters. */
  readonly #readBatches = new Map<number, { term: number; waiters: ReadWaiter[] }>();
  readonly #readyReads: { index: number; waiters: ReadWaiter[] }[] = [];
  readonly #stats: ReplicaStats;
  #pendingTicks = 0;
  #readRequestId = 0;
  #scheduled: ReturnType<typeof setImmediate> | null = null;
  #isInTurn = false;
  #isClosed = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  #lastSnapshotIndex: number;
  #lastLeadership = "";
  /** A persisted Ready waiting for its flush; no turn runs until it is handled. */
  #flushing: { readonly ready: Ready; readonly isSent: boolean } | null = null;
  /** The term and vote last persisted (a leader's Ready that keeps them may send early). */
  #persistedVote: { term: number; vote: number | null };
  /** A Ready whose write failed on storage; no input reaches the core until it succeeds. */
  #stall: StorageStall | null = null;
  /** No snapshot or compaction is tried before this time (after one failed). */
  #snapshotRetryAtMs = 0;

  constructor(options: ReplicaOptions<Result>) {
    this.shard = options.shard;
    this.#options = options;
    const snapshot = options.storage.snapshot();
    const snapshotIndex = snapshot.metadata.index;
    if (options.stateMachine.appliedIndex() < snapshotIndex) {
      // A crash between persisting a received snapshot (the log forgets the entries it covers)
      // and restoring the state machine from it leaves the machine behind: finish the restore,
      // or the replica would apply later entries on top of a state that lacks the snapshot.
      options.stateMachine.restore(snapshot.data, snapshotIndex);
    }
    const applied = options.stateMachine.appliedIndex();
    assert(applied >= snapshotIndex, "state machine is behind the log snapshot");
    this.#lastSnapshotIndex = snapshotIndex;
    this.#transfers = new TransferWaiters(options.shard, options.raft.id);
    const { term, vote } = options.storage.initialState().hardState;
    this.#persistedVote = { term, vote };
    this.#node = new RawNode(
      { ...options.raft, applied: Math.max(applied, snapshotIndex) as LogIndex },
      options.storage,
    );
    this.#stats = {
      proposals: 0,
      proposalsDropped: 0,
      applied: 0,
      turns: 0,
      readyRounds: 0,
      logSyncs: 0,
      logWriteMs: 0,
      applyMs: 0,
      readsServed: 0,
      messagesDroppedInbound: 0,
      snapshotsCreated: 0,
      snapshotsRestored: 0,
      storageFailures: 0,
      snapshotFailures: 0,
      turnMsMax: 0,
      applyMsMax: 0,
      applyMsRecent: [],
    };
  }

  /** Starts the tick timer. */
  start(): void {
    assert(this.#timer === null, "replica started twice");
    if (this.#options.tickMs > 0) {
      this.#timer = setInterval(() => {
        this.#pendingTicks++;
        this.#schedule();
      }, this.#options.tickMs);
    }
  }

  /** Queues a message from a peer; dropped when the queue is full. */
  deliver(message: Message): void {
    if (this.#isClosed) return;
    if (this.#inbound.length >= INBOUND_MESSAGES_MAX) {
      this.#stats.messagesDroppedInbound++;
      return;
    }
    this.#inbound.push(message);
    this.#schedule();
  }

  /**
   * Advances logical time by one tick and runs a turn now. The node ticks all its replicas
   * from one timer this way and then flushes the peer channel once, so that the heartbeats of
   * every shard bound for a peer leave in one frame.
   */
  tickNow(): void {
    if (this.#isClosed) return;
    this.#pendingTicks++;
    if (this.#flushing !== null) return;
    if (this.#scheduled !== null) {
      clearImmediate(this.#scheduled);
      this.#scheduled = null;
    }
    this.#turn();
  }

  /** Advances logical time by `ticks` ticks at the next turn (tests and simulations). */
  tick(ticks = 1): void {
    this.#pendingTicks += ticks;
    this.#schedule();
  }

  /**
   * Proposes an encoded command; resolves with its result once applied.
   *
   * @throws {AspenError} `not_leader` (with `leader`), `too_many_requests`,
   * `proposal_dropped`, `request_too_large`; `no_space` or `storage_error` at once while the
   * storage is stalled.
   */
  propose(data: Uint8Array): Promise<Result> {
    if (this.#isClosed) return Promise.reject(closedError(this.shard));
    if (this.#stall !== null) {
      this.#stats.proposalsDropped++;
      return Promise.reject(this.#stallRefusal("write to"));
    }
    const pending = this.#proposals.length + this.#waiters.size;
    if (pending >= PROPOSALS_PENDING_MAX) {
      return Promise.reject(
        new AspenError(
          "too_many_requests",
          `Cannot propose to shard ${this.shard}: ` +
            `${pending} proposals are pending and the limit is ${PROPOSALS_PENDING_MAX}`,
        ),
      );
    }
    return new Promise<Result>((resolve, reject) => {
      this.#proposals.push({ data, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Runs `read` against the state machine once it reflects every write acknowledged before
   * this call (ReadIndex); only a leader can serve it. While the storage is stalled no ReadIndex
   * round can run: a leader that is its group's only voter serves the read at once (no other
   * replica can have committed anything), any other refuses it.
   *
   * @throws {AspenError} `not_leader` (with `leader`), `too_many_requests`; `no_space` or
   * `storage_error` while the storage is stalled.
   */
  read<T>(read: () => T): Promise<T> {
    if (this.#isClosed) return Promise.reject(closedError(this.shard));
    if (this.#reads.length >= READ_WAITERS_MAX) {
      return Promise.reject(
        new AspenError(
          "too_many_requests",
          `Cannot read shard ${this.shard}: ` +
            `${this.#reads.length} reads are pending and the limit is ${READ_WAITERS_MAX}`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.#reads.push({
        run: () => {
          try {
            resolve(read());
          } catch (error) {
            reject(error);
          }
        },
        reject,
      });
      this.#schedule();
    });
  }

  /** The leader this replica knows of, or null; cheap enough to ask on every request. */
  leader(): number | null {
    return this.#node.leader;
  }

  /** The write this replica keeps retrying because storage failed, or null (cheap). */
  storageStall(): StorageStallStatus | null {
    return this.#stall?.status() ?? null;
  }

  /** The replica's Raft status and counters. */
  status(): ReplicaStatus {
    return {
      ...this.#node.status(),
      shard: this.shard,
      stats: this.#stats,
      stall: this.storageStall(),
    };
  }

  /**
   * Moves leadership to `to` (Raft thesis §3.10). The driver runs the call at the start of its
   * next turn, as it does every input; the core then waits for `to` to catch up and tells it to
   * campaign. Resolves with the leader once another replica leads (`to`, or whoever won the
   * election it started).
   *
   * @throws {AspenError} `not_leader` (with `leader`), `bad_request` for an invalid target,
   * `timeout` when the core abandoned the transfer and this replica still leads,
   * `too_many_requests`, `shard_unavailable` when the replica is or gets closed first.
   */
  async transferLeadership(to: ReplicaId): Promise<number> {
    await this.#queueAdminCall(`transfer leadership of shard ${this.shard}`, () => {
      const result = this.#node.transferLeadership(to);
      if (result.kind === "not_leader") return notLeaderError(this.shard, result.leader);
      if (result.kind === "invalid_target") {
        return new AspenError(
          "bad_request",
          `Cannot transfer leadership of shard ${this.shard} to node ${to}: ${result.reason}`,
        );
      }
      return null;
    });
    if (this.#isClosed) throw closedError(this.shard);
    const outcome = this.#transfers.add(to);
    this.#settleTransfers();
    return await outcome;
  }

  /**
   * Starts an election (tests, and a node that wants to lead after a restart): resolves once
   * the driver has run it, at the start of its next turn.
   *
   * @throws {AspenError} `too_many_requests`, `shard_unavailable` when the replica is or gets
   * closed first.
   */
  campaign(): Promise<void> {
    return this.#queueAdminCall(`start an election in shard ${this.shard}`, () => {
      this.#node.campaign();
      return null;
    });
  }

  /** Runs one turn now; tests use it to drive the loop without the event loop. */
  runTurn(): void {
    this.#turn();
  }

  /** Stops the timer, fails every waiter and closes the storages. */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    const error = closedError(this.shard);
    for (const proposal of this.#proposals.splice(0)) proposal.reject(error);
    for (const waiter of this.#waiters.values()) waiter.reject(error);
    this.#waiters.clear();
    for (const read of this.#reads.splice(0)) read.reject(error);
    for (const call of this.#adminCalls.splice(0)) call.reject(error);
    this.#transfers.rejectAll(error);
    for (const batch of this.#readBatches.values()) {
      for (const read of batch.waiters) read.reject(error);
    }
    this.#readBatches.clear();
    for (const batch of this.#readyReads.splice(0)) {
      for (const read of batch.waiters) read.reject(error);
    }
    this.#options.stateMachine.close();
    this.#options.storage.close();
  }

  /** Queues `run` for the next turn; the promise settles with its outcome. */
  #queueAdminCall(action: string, run: () => AspenError | null): Promise<void> {
    if (this.#isClosed) return Promise.reject(closedError(this.shard));
    // A transfer waiting for its outcome counts: it holds its caller as a queued call does.
    const pending = this.#adminCalls.length + this.#transfers.size;
    if (pending >= ADMIN_CALLS_PENDING_MAX) {
      return Promise.reject(
        new AspenError(
          "too_many_requests",
          `Cannot ${action}: ${pending} admin calls are pending and the limit is ` +
            `${ADMIN_CALLS_PENDING_MAX}`,
          { shard: this.shard },
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#adminCalls.push({ run, resolve, reject });
    this.#schedule();
    return promise;
  }

  /**
   * Runs a turn after the I/O that is ready now has been handled (setImmediate), so that
   * everything arriving together is batched into one turn. Not setTimeout(0): Deno clamps it
   * to 1 ms, and to 4 ms once nested, which was most of a single write's latency.
   */
  #schedule(): void {
    if (this.#scheduled !== null || this.#isClosed) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = null;
      if (!this.#isClosed) this.#turn();
    });
  }

  /**
   * One turn of the driver loop. Invariant: never re-entered, and never run while a Ready
   * waits for its flush (the flush resumes the loop).
   */
  #turn(): void {
    assert(!this.#isInTurn, "the replica loop was re-entered");
    if (this.#flushing !== null) return;
    this.#isInTurn = true;
    const started = this.#options.nowMs();
    this.#stats.turns++;
    try {
      if (this.#stall !== null) this.#whileStalled(this.#stall);
      if (this.#stall === null && this.#flushing === null) {
        this.#drainInputs();
        let rounds = 0;
        while (this.#node.hasReady() && rounds < READY_ROUNDS_PER_TURN_MAX) {
          rounds++;
          if (!this.#handleReady()) break;
          // The rest goes on in the next turn (#endTurn schedules it while a Ready is due).
          if (this.#options.nowMs() - started >= TURN_WORK_MS_MAX) break;
        }
      }
      this.#endTurn();
    } finally {
      this.#isInTurn = false;
    }
    this.#stats.turnMsMax = Math.max(this.#stats.turnMsMax, this.#options.nowMs() - started);
    this.#noticeLeadership();
    this.#settleTransfers();
  }

  /** What every turn does after its Ready rounds (some of it waits for a flush or a stall). */
  #endTurn(): void {
    const isWaiting = this.#flushing !== null || this.#stall !== null;
    if (!isWaiting && this.#node.hasReady()) this.#schedule();
    this.#failOrphanedReads();
    // The batch in flight came back: the reads that waited for it get the next round.
    if (!isWaiting && this.#reads.length > 0 && this.#readBatches.size === 0) this.#schedule();
    this.#serveReadyReads();
    if (!isWaiting) this.#maybeSnapshot();
  }

  /** The flush of `ready` resolved: finish it, then run the turn the flush held back. */
  #flushed(ready: Ready): void {
    const flushing = this.#flushing;
    assert(flushing?.ready === ready, "the flush resolved for the Ready that waits");
    this.#flushing = null;
    if (this.#isClosed) return;
    this.#isInTurn = true;
    try {
      this.#finishReady(ready, !flushing.isSent);
    } finally {
      this.#isInTurn = false;
    }
    this.#turn();
  }

  #drainInputs(): void {
    // Admin calls first: an operator's call acts on the state it was made against, before
    // this turn's messages and proposals change it.
    for (const call of this.#adminCalls.splice(0)) {
      const refusal = call.run();
      if (refusal === null) call.resolve();
      else call.reject(refusal);
    }
    for (; this.#pendingTicks > 0; this.#pendingTicks--) this.#node.tick();
    this.#stepInbound();
    if (this.#proposals.length > 0) this.#proposeAll(this.#proposals.splice(0));
    // One ReadIndex request in flight at a time: reads that arrive meanwhile wait and share
    // the next one. Each request costs a heartbeat round on every replica; issuing one per
    // turn under a read load meant thousands of rounds a second with a few reads each.
    if (this.#reads.length > 0 && this.#readBatches.size === 0) {
      this.#requestRead(this.#reads.splice(0));
    }
  }

  /**
   * Steps the queued messages in order, up to INBOUND_ENTRIES_PER_TURN_MAX entries of appends
   * (at least one message); the rest stay queued for the next turn, which is scheduled.
   */
  #stepInbound(): void {
    let entries = 0;
    let stepped = 0;
    for (const message of this.#inbound) {
      const count = message.type === "append" ? message.entries.length : 0;
      if (stepped > 0 && entries + count > INBOUND_ENTRIES_PER_TURN_MAX) break;
      entries += count;
      stepped++;
      this.#node.step(message);
    }
    this.#inbound.splice(0, stepped);
    if (this.#inbound.length > 0) this.#schedule();
  }

  /**
   * Fails the reads whose ReadIndex request the core dropped: it forgets pending reads when
   * this replica stops leading or the term changes (they would otherwise wait forever, and
   * hold back every read after them).
   */
  #failOrphanedReads(): void {
    for (const [requestId, batch] of this.#readBatches) {
      const isOrphaned = this.#node.role !== "leader" || this.#node.term !== batch.term;
      if (!isOrphaned) continue;
      this.#readBatches.delete(requestId);
      const error = notLeaderError(this.shard, this.#node.leader);
      for (const waiter of batch.waiters) waiter.reject(error);
    }
  }

  /** Proposes everything queued since the last turn: one append per follower for them all. */
  #proposeAll(proposals: readonly QueuedProposal<Result>[]): void {
    const results = this.#node.proposeBatch(proposals.map((proposal) => proposal.data));
    assert(results.length === proposals.length, "one propose result per proposal");
    proposals.forEach((proposal, i) => this.#settleProposal(proposal, results[i]!));
  }

  #settleProposal(proposal: QueuedProposal<Result>, result: ProposeResult): void {
    if (result.kind === "ok") {
      this.#stats.proposals++;
      assert(!this.#waiters.has(result.index), "two proposals at one index");
      this.#waiters.set(result.index, {
        term: result.term,
        resolve: proposal.resolve,
        reject: proposal.reject,
      });
      return;
    }
    this.#stats.proposalsDropped++;
    proposal.reject(proposeError(this.shard, result));
  }

  #requestRead(waiters: ReadWaiter[]): void {
    const requestId = ++this.#readRequestId;
    const result = this.#node.readIndex(requestId);
    if (result.kind === "ok") {
      this.#readBatches.set(requestId, { term: this.#node.term, waiters });
      return;
    }
    const error = result.kind === "not_leader"
      ? notLeaderError(this.shard, result.leader)
      : new AspenError("too_many_requests", `Cannot read shard ${this.shard}: too many reads`);
    for (const waiter of waiters) waiter.reject(error);
  }

  /** Handles one Ready; false when it waits for a flush or stalled (the turn must stop). */
  #handleReady(): boolean {
    const ready = this.#node.ready();
    this.#stats.readyRounds++;
    if (ready.mustSync) this.#stats.logSyncs++;
    return this.#persistReady(ready);
  }

  /**
   * Persists `ready`, then finishes it now or once its flush resolves; false when it waits
   * for the flush or stalled on storage (the turn must stop).
   */
  #persistReady(ready: Ready): boolean {
    const started = this.#options.nowMs();
    const storage = this.#options.storage;
    // Decided before this Ready's hard state counts as persisted.
    const isLeader = this.#isLeaderReady(ready);
    let durable: Promise<void> | undefined;
    try {
      durable = storage.persist(
        { hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot },
        ready.mustSync,
      );
    } catch (error) {
      // Nothing was written and nothing sent: the same Ready is persisted again later.
      this.#stallOn(error, ready, "persist");
      return false;
    }
    if (ready.hardState !== null) {
      this.#persistedVote = { term: ready.hardState.term, vote: ready.hardState.vote };
    }
    this.#stats.logWriteMs += this.#options.nowMs() - started;
    if (durable === undefined) return this.#finishReady(ready, true);
    if (isLeader && ready.messages.length > 0) this.#options.send(ready.messages);
    this.#flushing = { ready, isSent: isLeader };
    const flushStarted = this.#options.nowMs();
    durable.then(
      () => {
        this.#stats.logWriteMs += this.#options.nowMs() - flushStarted;
        this.#flushed(ready);
      },
      (error: unknown) => {
        // A replica closed meanwhile no longer cares. A failed sync is fatal, unlike a failed
        // write: what is durable is unknown, and a retried fsync may succeed without the lost
        // pages (see storage_failure.ts), so the node must stop.
        if (this.#isClosed) return;
        const fatal = error instanceof FatalStorageError
          ? error
          : syncFailedError(`the Raft log of shard ${this.shard}`, error);
        queueMicrotask(() => {
          throw fatal;
        });
      },
    );
    return false;
  }

  /**
   * Whether `ready` is a leader's whose term and vote are already durable: its messages are
   * appends and heartbeats that may leave before its new entries are. Not when the Ready
   * itself changes the term or vote (a single voter elects itself in one step): a message of a
   * term the node could forget must never leave.
   */
  #isLeaderReady(ready: Ready): boolean {
    const hardState = ready.hardState;
    const persisted = this.#persistedVote;
    const isVoteDurable = hardState === null ||
      (hardState.term === persisted.term && hardState.vote === persisted.vote);
    return this.#node.role === "leader" && isVoteDurable;
  }

  /**
   * Sends (unless already sent), restores, applies and advances a persisted Ready; false when
   * the restore or apply stalled on storage.
   */
  #finishReady(ready: Ready, isSendNeeded: boolean): boolean {
    if (isSendNeeded && ready.messages.length > 0) this.#options.send(ready.messages);
    return this.#applyReady(ready, "restore");
  }

  /**
   * Restores (from `stage` "restore"), applies and advances a persisted Ready whose messages
   * are out; false when a step failed on storage: the stall retries it from that step.
   */
  #applyReady(ready: Ready, from: "restore" | "apply"): boolean {
    let stage: "restore" | "apply" = from;
    try {
      if (stage === "restore" && ready.snapshot !== null) this.#restore(ready.snapshot);
      stage = "apply";
      if (ready.committed.length > 0) this.#apply(ready.committed);
    } catch (error) {
      // The state machine rolled back: nothing of the batch was applied or answered.
      this.#stallOn(error, ready, stage);
      return false;
    }
    for (const state of ready.readStates) {
      const batch = this.#readBatches.get(state.requestId);
      if (batch === undefined) continue;
      this.#readBatches.delete(state.requestId);
      this.#readyReads.push({ index: state.index, waiters: batch.waiters });
    }
    this.#node.advance(ready);
    return true;
  }

  /**
   * Holds `ready` after its `stage` failed: a storage failure (full disk, I/O error) stalls the
   * replica and is retried; anything else (a bug, corruption, a failed sync) is rethrown and
   * stops the node. Proposals that have not reached the core are refused from now on.
   */
  #stallOn(error: unknown, ready: Ready, stage: StallStage): void {
    const kind = storageFailureKind(error);
    if (kind === null) throw error;
    this.#stats.storageFailures++;
    assert(this.#stall === null, "one stall at a time");
    this.#stall = new StorageStall({ ready, stage, kind, error, nowMs: this.#options.nowMs() });
    this.#refuseWhileStalled();
  }

  /**
   * A turn's work while stalled: count ticks down and retry the held Ready's failed step when
   * due. The core gets no input meanwhile (it holds the Ready until advance()), so the ticks
   * are used up here: its logical time stands still until the write succeeds.
   */
  #whileStalled(stall: StorageStall): void {
    assert(this.#flushing === null, "a stalled Ready is not flushing");
    const isDue = stall.countTicks(this.#pendingTicks);
    this.#pendingTicks = 0;
    if (isDue) {
      this.#stall = null;
      const stage = stall.stage;
      if (stage === "persist") this.#persistReady(stall.ready);
      else this.#applyReady(stall.ready, stage);
      const next = this.#stall as StorageStall | null;
      if (next === null) return;
      // Failed again (perhaps at a later step): one stall, continued, waiting longer.
      stall.continueAs(next);
    }
    this.#refuseWhileStalled();
  }

  /**
   * Answers what cannot wait for the storage: queued proposals are refused (they never reached
   * the log), and so are linearizable reads, unless this replica leads as its group's only
   * voter: then no other replica can have committed anything, and its state machine holds
   * every acknowledged write, so they are served from it.
   */
  #refuseWhileStalled(): void {
    for (const proposal of this.#proposals.splice(0)) {
      this.#stats.proposalsDropped++;
      proposal.reject(this.#stallRefusal("write to"));
    }
    if (this.#reads.length === 0) return;
    const status = this.#node.status();
    const voters = status.confState.voters;
    const isSoleVoter = voters.length === 1 && voters[0] === status.id;
    for (const read of this.#reads.splice(0)) {
      if (status.role === "leader" && isSoleVoter) {
        this.#stats.readsServed++;
        read.run();
      } else {
        read.reject(this.#stallRefusal("read"));
      }
    }
  }

  /**
   * The error for a request refused while stalled: the storage failure's own code on a leader;
   * `not_leader`, as without a stall, elsewhere (so that the request is sent to the leader).
   */
  #stallRefusal(action: string): AspenError {
    const stall = this.#stall;
    assert(stall !== null, "a stall refusal needs a stall");
    if (this.#node.role !== "leader") return notLeaderError(this.shard, this.#node.leader);
    return stall.refusal(this.shard, action);
  }

  #restore(snapshot: Snapshot): void {
    const index = snapshot.metadata.index;
    this.#options.stateMachine.restore(snapshot.data, index);
    assert(this.#options.stateMachine.appliedIndex() === index, "restore must set applied");
    this.#lastSnapshotIndex = index;
    this.#stats.snapshotsRestored++;
    // Entries up to the snapshot were applied inside it: their outcome is unknown here.
    for (const [waiterIndex, waiter] of this.#waiters) {
      if (waiterIndex > index) continue;
      this.#waiters.delete(waiterIndex);
      waiter.reject(
        new AspenError(
          "timeout",
          `Cannot tell the outcome of a write to shard ${this.shard}: ` +
            "the replica was replaced by a snapshot",
        ),
      );
    }
  }

  #apply(entries: readonly Entry[]): void {
    const started = this.#options.nowMs();
    const input = entries.map((entry) => ({
      index: entry.index as number,
      data: entry.type === "normal" ? entry.data : EMPTY,
    }));
    const results = this.#options.stateMachine.apply(input);
    assert(results.length === entries.length, "apply returns one result per entry");
    const last = entries[entries.length - 1]!;
    assert(this.#options.stateMachine.appliedIndex() === last.index, "apply must reach the end");
    entries.forEach((entry, i) => this.#settle(entry, results[i]));
    this.#stats.applied += entries.length;
    const elapsed = this.#options.nowMs() - started;
    this.#stats.applyMs += elapsed;
    this.#stats.applyMsMax = Math.max(this.#stats.applyMsMax, elapsed);
    this.#stats.applyMsRecent.push(elapsed);
    if (this.#stats.applyMsRecent.length > APPLY_SAMPLES_MAX) this.#stats.applyMsRecent.shift();
    this.#options.onApplied?.(last.index);
  }

  #settle(entry: Entry, result: Result | undefined): void {
    const waiter = this.#waiters.get(entry.index);
    if (waiter === undefined) return;
    this.#waiters.delete(entry.index);
    if (waiter.term !== entry.term) {
      waiter.reject(
        new AspenError(
          "proposal_dropped",
          `Cannot write to shard ${this.shard}: leadership ` +
            `changed and the proposal at index ${entry.index} was replaced`,
        ),
      );
      return;
    }
    assert(result !== undefined, "an applied proposal has a result");
    waiter.resolve(result);
  }

  #serveReadyReads(): void {
    const applied = this.#options.stateMachine.appliedIndex();
    while (this.#readyReads.length > 0 && this.#readyReads[0]!.index <= applied) {
      for (const waiter of this.#readyReads.shift()!.waiters) {
        this.#stats.readsServed++;
        waiter.run();
      }
    }
  }

  /**
   * Takes a snapshot every `interval` applied entries and compacts the log behind it. Both are
   * optional: one that fails on storage is tried again SNAPSHOT_RETRY_MS later (a snapshot
   * copies the whole state machine, too costly to retry every turn).
   */
  #maybeSnapshot(): void {
    if (this.#options.nowMs() < this.#snapshotRetryAtMs) return;
    const applied = this.#options.stateMachine.appliedIndex();
    const interval = this.#options.snapshotIntervalEntries ?? SNAPSHOT_INTERVAL_ENTRIES;
    const storage = this.#options.storage;
    try {
      if (applied - this.#lastSnapshotIndex >= interval) {
        const confState: ConfState = this.#node.confStateAt(applied as LogIndex);
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
      this.#snapshotRetryAtMs = this.#options.nowMs() + SNAPSHOT_RETRY_MS;
    }
  }

  /** Settles the transfers whose outcome the core shows now. */
  #settleTransfers(): void {
    if (this.#transfers.size === 0) return;
    const node = this.#node;
    this.#transfers.settle({
      isLeader: node.role === "leader",
      leader: node.leader,
      leadTransferee: node.leadTransferee,
    });
  }

  #noticeLeadership(): void {
    if (this.#options.onLeaderChange === undefined) return;
    const node = this.#node;
    const key = `${node.role}/${node.term}/${node.leader}`;
    if (key === this.#lastLeadership) return;
    this.#lastLeadership = key;
    this.#options.onLeaderChange(this.status());
  }
}

const EMPTY = new Uint8Array(0);

function closedError(shard: number): AspenError {
  return new AspenError("shard_unavailable", `Cannot use shard ${shard}: its replica is closed`, {
    shard,
  });
}

function proposeError(shard: number, result: Exclude<ProposeResult, { kind: "ok" }>): AspenError {
  switch (result.kind) {
    case "not_leader":
      return notLeaderError(shard, result.leader);
    case "dropped":
    case "conf_change_pending":
    case "invalid_conf_change":
      return new AspenError(
        "proposal_dropped",
        `Cannot write to shard ${shard}: ${result.reason}`,
        {
          shard,
        },
      );
    case "entry_too_large":
      return new AspenError(
        "request_too_large",
        `Cannot write to shard ${shard}: the entry is ${result.bytes} bytes but the limit is ` +
          `${result.bytesMax}`,
        { bytes: result.bytes, limit: result.bytesMax },
      );
    case "uncommitted_too_large":
      return new AspenError(
        "too_many_requests",
        `Cannot write to shard ${shard}: ${result.bytes} bytes would be uncommitted but the ` +
          `limit is ${result.bytesMax}`,
        { shard },
      );
  }
}
