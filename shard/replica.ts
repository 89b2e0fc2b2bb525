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
 *
 * A Ready that carries a snapshot from the leader is staged before it is persisted: the log
 * and the state machine write (and check) the snapshot's files off the event loop while the
 * turn waits, as for a flush, so that its persist and restore only swap files in.
 */
import {
  assert,
  type ConfChange,
  DEFAULT_RAFT_LIMITS,
  type LogIndex,
  type Message,
  RawNode,
  type Ready,
  type ReplicaId,
} from "../raft/mod.ts";
import { clearImmediate, setImmediate } from "node:timers";
import { AspenError, notLeaderError } from "./errors.ts";
import { FatalStorageError, storageFailureKind, syncFailedError } from "./storage_failure.ts";
import { type StallStage, StorageStall, type StorageStallStatus } from "./_storage_stall.ts";
import { TransferWaiters } from "./_transfers.ts";
import { AdminCalls } from "./_admin_calls.ts";
import { applyCommitted } from "./_apply.ts";
import { Proposals } from "./_proposals.ts";
import { Reads } from "./_reads.ts";
import { closedError } from "./_replica_errors.ts";
import { recoverStateMachine, Snapshots } from "./_snapshots.ts";
import {
  ADMIN_CALLS_PENDING_MAX,
  APPLY_ENTRIES_PER_READY_MAX,
  COMMIT_NOTICE_DELAY_MS,
  INBOUND_ENTRIES_PER_TURN_MAX,
  INBOUND_MESSAGES_MAX,
  READY_ROUNDS_PER_TURN_MAX,
  TURN_WORK_MS_MAX,
} from "./replica_limits.ts";
import type { ReplicaOptions } from "./replica_options.ts";
import { newReplicaStats, type ReplicaStats, type ReplicaStatus } from "./replica_stats.ts";

// The replica's limits and its owner's interfaces live in their own files; they are exported
// from here too, where the replica's users have always found them.
export {
  ADMIN_CALLS_PENDING_MAX,
  APPLY_ENTRIES_PER_READY_MAX,
  APPLY_SAMPLES_MAX,
  COMMIT_NOTICE_DELAY_MS,
  COMPACT_ENTRIES_PER_TURN_MAX,
  INBOUND_ENTRIES_PER_TURN_MAX,
  INBOUND_MESSAGES_MAX,
  LOG_RETAINED_ENTRIES,
  PROPOSAL_HOLD_MS,
  PROPOSALS_PENDING_MAX,
  READ_WAITERS_MAX,
  READY_ROUNDS_PER_TURN_MAX,
  SNAPSHOT_INTERVAL_ENTRIES,
  SNAPSHOT_RETRY_MS,
  TURN_WORK_MS_MAX,
} from "./replica_limits.ts";
export type {
  PendingSnapshot,
  ReplicaLogStorage,
  ReplicaOptions,
  ReplicaStateMachine,
} from "./replica_options.ts";
export type { ReplicaStats, ReplicaStatus } from "./replica_stats.ts";

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
  readonly #proposals: Proposals<Result>;
  readonly #reads: Reads;
  readonly #adminCalls = new AdminCalls();
  readonly #transfers: TransferWaiters;
  readonly #snapshots: Snapshots<Result>;
  readonly #stats: ReplicaStats = newReplicaStats();
  #pendingTicks = 0;
  #scheduled: ReturnType<typeof setImmediate> | null = null;
  #isInTurn = false;
  #isClosed = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  #lastLeadership = "";
  /** A peer node went quiet: its replica may have led this shard (see reportLeaderDown). */
  #leaderDown: ReplicaId | null = null;
  /** Peers whose node came back, for a quiesced leader to wake for (see reportPeerBack). */
  readonly #peersBack = new Set<ReplicaId>();
  /** A persisted Ready waiting for its flush; no turn runs until it is handled. */
  #flushing: { readonly ready: Ready; readonly isSent: boolean } | null = null;
  /** A Ready whose snapshot is being staged (see #stageSnapshot); no turn runs meanwhile. */
  #staging: Ready | null = null;
  /** The Ready whose snapshot was staged, until it is advanced. */
  #staged: Ready | null = null;
  /** A stall whose retry went on to stage again: a failure continues it (see #stagingEnded). */
  #restagedStall: StorageStall | null = null;
  /** The term and vote last persisted (a leader's Ready that keeps them may send early). */
  #persistedVote: { term: number; vote: number | null };
  /** A Ready whose write failed on storage; no input reaches the core until it succeeds. */
  #stall: StorageStall | null = null;
  /** Runs COMMIT_NOTICE_DELAY_MS after a turn that left followers behind on the commit. */
  #commitNoticeTimer: ReturnType<typeof setTimeout> | null = null;
  /** The next turn sends the commit index to the followers behind on it. */
  #isCommitNoticeDue = false;
  /** Runs when the oldest held proposal's PROPOSAL_HOLD_MS ends. */
  #holdTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(options: ReplicaOptions<Result>) {
    this.shard = options.shard;
    this.#options = options;
    const { snapshotIndex, applied } = recoverStateMachine(options);
    this.#snapshots = new Snapshots(options, {
      stats: this.#stats,
      snapshotIndex,
      wake: () => this.#schedule(),
    });
    this.#proposals = new Proposals(options.shard, this.#stats);
    this.#reads = new Reads(options.shard, this.#stats);
    this.#transfers = new TransferWaiters(options.shard, options.raft.id);
    const { term, vote } = options.storage.initialState().hardState;
    this.#persistedVote = { term, vote };
    const limits = options.raft.limits ?? DEFAULT_RAFT_LIMITS;
    const perReady = Math.min(limits.committedEntriesPerReadyMax, APPLY_ENTRIES_PER_READY_MAX);
    this.#node = new RawNode(
      {
        ...options.raft,
        limits: { ...limits, committedEntriesPerReadyMax: perReady },
        applied: Math.max(applied, snapshotIndex) as LogIndex,
      },
      options.storage,
    );
  }

  /** Starts the tick timer. */
  start(): void {
    assert(this.#timer === null, "replica started twice");
    if (this.#options.tickMs > 0) {
      this.#timer = setInterval(() => {
        if (this.isAsleep()) return;
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
    if (this.#isClosed || this.isAsleep()) return;
    this.#pendingTicks++;
    if (this.#isHeldBack()) return;
    if (this.#scheduled !== null) {
      clearImmediate(this.#scheduled);
      this.#scheduled = null;
    }
    this.#turn();
  }

  /** Whether the group is quiet here (raft/quiesce.ts): ticks cost nothing then. */
  isQuiesced(): boolean {
    return this.#node.isQuiesced;
  }

  /**
   * Tells this replica that the node of replica `leader` went quiet: if it is a quiesced
   * follower of that leader, it wakes at its next turn and campaigns within its jitter.
   */
  reportLeaderDown(leader: ReplicaId): void {
    if (this.#isClosed || !this.#node.isQuiesced || this.#node.leader !== leader) return;
    this.#leaderDown = leader;
    this.#schedule();
  }

  /**
   * Tells this replica that the node of replica `peer` came back (a new peer connection): if it
   * is a quiesced leader with `peer` in its group, it wakes at its next turn and heartbeats, so
   * that a replica there that restarted learns its leader (RawNode.reportPeerBack).
   */
  reportPeerBack(peer: ReplicaId): void {
    if (this.#isClosed || !this.#node.isQuiesced || this.#node.leader !== this.#options.raft.id) {
      return;
    }
    this.#peersBack.add(peer);
    this.#schedule();
  }

  /**
   * Whether ticks cost nothing here: quiesced, with no stalled write to retry and no leader-down
   * report to act on (a turn would do nothing). Any input wakes it within a turn.
   */
  isAsleep(): boolean {
    return this.#node.isQuiesced && this.#stall === null && this.#leaderDown === null &&
      this.#peersBack.size === 0;
  }

  /** Advances logical time by `ticks` ticks at the next turn (tests and simulations). */
  tick(ticks = 1): void {
    this.#pendingTicks += ticks;
    this.#schedule();
  }

  /**
   * Proposes an encoded command; resolves with its result once applied. A held proposal
   * (`isHeld`) waits up to PROPOSAL_HOLD_MS for another proposal to share its round (see
   * _proposals.ts), unless {@linkcode ShardReplica.releaseHeld} lets it go sooner.
   *
   * @throws {AspenError} `not_leader` (with `leader`), `too_many_requests`,
   * `proposal_dropped`, `request_too_large`; `no_space` or `storage_error` at once while the
   * storage is stalled.
   */
  propose(data: Uint8Array, options?: { readonly isHeld?: boolean }): Promise<Result> {
    if (this.#isClosed) return Promise.reject(closedError(this.shard));
    if (this.#stall !== null) {
      this.#stats.proposalsDropped++;
      return Promise.reject(this.#stallRefusal("write to"));
    }
    const refusal = this.#proposals.limitError();
    if (refusal !== null) return Promise.reject(refusal);
    if (options?.isHeld !== true) {
      const applied = this.#proposals.enqueue(data);
      this.#schedule();
      return applied;
    }
    const held = this.#proposals.enqueue(data, this.#options.nowMs());
    this.#armHoldTimer();
    return held;
  }

  /**
   * Lets the held proposals go at the next turn: someone waits for them (a reader that met an
   * intent a held resolve would remove). Settles once they applied or failed.
   */
  async releaseHeld(): Promise<void> {
    if (this.#isClosed || this.#proposals.heldDueMs() === null) return;
    const settled = this.#proposals.releaseHeld();
    this.#schedule();
    await settled;
  }

  /** Arms the timer for the oldest held proposal's deadline, unless it is armed. */
  #armHoldTimer(): void {
    const dueMs = this.#proposals.heldDueMs();
    if (this.#holdTimer !== null || dueMs === null || this.#isClosed) return;
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = null;
      this.#schedule();
    }, Math.max(0, dueMs - this.#options.nowMs()));
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
    const refusal = this.#reads.limitError();
    if (refusal !== null) return Promise.reject(refusal);
    const value = this.#reads.enqueue(read);
    this.#schedule();
    return value;
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
   * Proposes one membership change (raft/membership.ts: add a learner, promote a learner with
   * `addVoter`, remove a replica), run by the driver at the start of its next turn. Resolves
   * with the index of the change's entry once it is in the leader's log; the caller waits for
   * that index to apply to know it committed.
   *
   * @throws {AspenError} `not_leader` (with `leader`), `conflict` while an earlier change is
   * uncommitted (try again), `bad_request` for a change the configuration refuses,
   * `proposal_dropped`, `too_many_requests`, `shard_unavailable` when the replica is or gets
   * closed first.
   */
  async changeMembership(change: ConfChange): Promise<number> {
    let index = 0;
    const what = `${change.type} ${change.replicaId} in shard ${this.shard}`;
    await this.#queueAdminCall(`propose ${what}`, () => {
      const result = this.#node.proposeConfChange(change);
      if (result.kind === "ok") {
        index = result.index;
        return null;
      }
      if (result.kind === "not_leader") return notLeaderError(this.shard, result.leader);
      if (result.kind === "conf_change_pending") {
        return new AspenError("conflict", `Cannot propose ${what}: ${result.reason}`, {
          shard: this.shard,
        });
      }
      if (result.kind === "invalid_conf_change") {
        return new AspenError("bad_request", `Cannot propose ${what}: ${result.reason}`, {
          shard: this.shard,
        });
      }
      const reason = "reason" in result ? result.reason : result.kind;
      return new AspenError("proposal_dropped", `Cannot propose ${what}: ${reason}`, {
        shard: this.shard,
      });
    });
    assert(index > 0, "an accepted membership change has an index");
    this.#schedule();
    return index;
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

  /**
   * Sends the commit index to the followers behind on it at the next turn, without waiting for
   * COMMIT_NOTICE_DELAY_MS: a follower read waits for its replica to apply the index this
   * leader answered, and so for the commit to reach it.
   */
  noticeCommitNow(): void {
    if (this.#isClosed) return;
    this.#isCommitNoticeDue = true;
    this.#schedule();
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
    if (this.#commitNoticeTimer !== null) clearTimeout(this.#commitNoticeTimer);
    if (this.#holdTimer !== null) clearTimeout(this.#holdTimer);
    const error = closedError(this.shard);
    this.#proposals.rejectAll(error);
    this.#reads.rejectQueued(error);
    this.#adminCalls.rejectAll(error);
    this.#transfers.rejectAll(error);
    this.#reads.rejectStarted(error);
    this.#snapshots.close();
    this.#options.stateMachine.close();
    this.#options.storage.close();
  }

  /** Queues `run` for the next turn; the promise settles with its outcome. */
  #queueAdminCall(action: string, run: () => AspenError | null): Promise<void> {
    if (this.#isClosed) return Promise.reject(closedError(this.shard));
    // A transfer waiting for its outcome counts: it holds its caller as a queued call does.
    const pending = this.#adminCalls.size + this.#transfers.size;
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
    const outcome = this.#adminCalls.enqueue(run);
    this.#schedule();
    return outcome;
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
    if (this.#isHeldBack()) return;
    this.#isInTurn = true;
    const started = this.#options.nowMs();
    this.#stats.turns++;
    try {
      if (this.#stall !== null) this.#whileStalled(this.#stall);
      if (this.#stall === null && !this.#isHeldBack()) {
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
    if (!this.isAsleep()) this.#options.onAwake?.();
  }

  /** What every turn does after its Ready rounds (some of it waits for a flush or a stall). */
  #endTurn(): void {
    const isWaiting = this.#isHeldBack() || this.#stall !== null;
    if (!isWaiting && this.#node.hasReady()) this.#schedule();
    this.#reads.failOrphaned(this.#node);
    // The batch in flight came back: the reads that waited for it get the next round.
    if (!isWaiting && this.#reads.isRoundDue) this.#schedule();
    this.#reads.serveApplied(this.#options.stateMachine.appliedIndex());
    if (!isWaiting) this.#snapshots.maybeSnapshot((index) => this.#node.confStateAt(index));
    this.#armHoldTimer();
    if (this.#commitNoticeTimer === null && this.#node.hasCommitNoticesDue) {
      this.#commitNoticeTimer = setTimeout(() => {
        this.#commitNoticeTimer = null;
        this.noticeCommitNow();
      }, COMMIT_NOTICE_DELAY_MS);
    }
  }

  /** Whether a Ready waits for its flush or for its snapshot's staging: no turn runs. */
  #isHeldBack(): boolean {
    return this.#flushing !== null || this.#staging !== null;
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
    this.#adminCalls.runAll();
    if (this.#leaderDown !== null) {
      if (this.#node.reportLeaderDown(this.#leaderDown)) this.#stats.leaderDownWakes++;
      this.#leaderDown = null;
    }
    for (const peer of this.#peersBack) this.#node.reportPeerBack(peer);
    this.#peersBack.clear();
    for (; this.#pendingTicks > 0; this.#pendingTicks--) this.#node.tick();
    this.#stepInbound();
    this.#proposals.proposeQueued(this.#node, this.#options.nowMs());
    // One ReadIndex request in flight at a time (see _reads.ts).
    this.#reads.requestQueued(this.#node);
    // After the proposals: their appends carry the commit index, and need no notice.
    if (this.#isCommitNoticeDue) {
      this.#isCommitNoticeDue = false;
      if (this.#node.sendCommitNotices()) this.#stats.commitNotices++;
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
    if (ready.snapshot !== null && this.#staged !== ready) return this.#stageSnapshot(ready);
    const started = this.#options.nowMs();
    const storage = this.#options.storage;
    // Decided before this Ready's hard state counts as persisted.
    const isLeader = this.#isLeaderReady(ready);
    let durable: Promise<void> | undefined;
    const transactions = storage.transactions;
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
    this.#stats.logWrites += storage.transactions - transactions;
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
   * Stages the snapshot that `ready` carries before the Ready is persisted: the log writes its
   * file and the state machine checks the bytes and writes its new file, both syncing on Deno's
   * thread pool instead of on the event loop that every shard of the node shares (for 30 MiB,
   * 120-260 ms of a quiet loop's 200-300 ms install, bench/NOTES.md). The turn stops; when the
   * staging ends the Ready is persisted (the log and the state machine then only swap files),
   * or, when it failed on storage, the replica stalls and stages again when the retry is due.
   * Returns false unless neither stages anything (then the Ready is persisted now).
   */
  #stageSnapshot(ready: Ready): boolean {
    const snapshot = ready.snapshot;
    assert(snapshot !== null, "a Ready with a snapshot is staged");
    const { storage, stateMachine } = this.#options;
    const data = snapshot.data;
    const staging = [
      storage.stageSnapshot?.(snapshot),
      stateMachine.stageRestore?.(data, snapshot.metadata.index),
    ].filter((step) => step !== undefined);
    if (staging.length === 0) {
      this.#staged = ready;
      return this.#persistReady(ready);
    }
    this.#staging = ready;
    this.#stats.snapshotsStaged++;
    Promise.all(staging).then(
      () => this.#stagingEnded(ready, null),
      (error: unknown) => this.#stagingEnded(ready, error ?? new Error("staging failed")),
    );
    return false;
  }

  /** The staging of `ready`'s snapshot ended: persist the Ready, or stall on the failure. */
  #stagingEnded(ready: Ready, error: unknown): void {
    assert(this.#staging === ready, "the staging ended for the Ready that waits");
    this.#staging = null;
    const restaged = this.#restagedStall;
    this.#restagedStall = null;
    if (this.#isClosed) return;
    this.#isInTurn = true;
    try {
      if (error === null) {
        this.#staged = ready;
        this.#persistReady(ready);
      } else {
        // A storage failure stalls the replica (retried later); anything else (bytes that are
        // not a healthy state machine) stops the node, as a failed restore always has.
        this.#stallOn(error, ready, "persist");
        if (restaged !== null && this.#stall !== null) restaged.continueAs(this.#stall);
      }
    } catch (fatal) {
      queueMicrotask(() => {
        throw fatal;
      });
      return;
    } finally {
      this.#isInTurn = false;
    }
    this.#turn();
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
      if (stage === "restore" && ready.snapshot !== null) {
        this.#snapshots.restore(ready.snapshot);
        this.#proposals.rejectRestored(ready.snapshot.metadata.index);
      }
      stage = "apply";
      if (ready.committed.length > 0) {
        const context = { options: this.#options, stats: this.#stats, proposals: this.#proposals };
        applyCommitted(context, ready.committed);
      }
    } catch (error) {
      // The state machine rolled back: nothing of the batch was applied or answered.
      this.#stallOn(error, ready, stage);
      return false;
    }
    this.#reads.confirm(ready.readStates);
    if (this.#staged === ready) this.#staged = null;
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
      // The retry stages a snapshot again: its end says whether it failed again.
      if (this.#staging !== null) this.#restagedStall = stall;
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
    this.#proposals.refuseQueued(() => this.#stallRefusal("write to"));
    if (!this.#reads.hasQueued) return;
    const status = this.#node.status();
    const voters = status.confState.voters;
    const isSoleVoter = voters.length === 1 && voters[0] === status.id;
    for (const read of this.#reads.takeQueued()) {
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
