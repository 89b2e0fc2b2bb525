/**
 * The synchronous driver of one replica (STYLE §1.8): inputs go in through methods, and all
 * output comes out as a {@linkcode Ready} that the caller drains and then acknowledges.
 */
import { assert } from "./assert.ts";
import type { RaftConfig } from "./config.ts";
import { checkRaftConfig, RaftConfigError } from "./config.ts";
import { COMMITTED_BYTES_PER_READY_MAX } from "./limits.ts";
import type { ProgressState, SnapshotTooLarge } from "./progress.ts";
import type { Role } from "./raft_core.ts";
import { Raft } from "./raft.ts";
import type { Ready } from "./ready.ts";
import type { ProposeResult, ReadIndexResult, TransferResult } from "./requests.ts";
import * as requests from "./requests.ts";
import * as replication from "./replication.ts";
import type { LogStorage } from "./storage.ts";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  LogIndex,
  Message,
  ReplicaId,
  Term,
} from "./types.ts";
import { isHardStateEqual } from "./types.ts";

/** A leader's view of one other replica, as reported by {@linkcode RawNode.status}. */
export interface ProgressStatus {
  readonly id: ReplicaId;
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: ProgressState;
  readonly isRecentActive: boolean;
  readonly isLearner: boolean;
  /** The snapshot this replica needs but that is over the limit, so it is not sent; or null. */
  readonly snapshotTooLarge: SnapshotTooLarge | null;
}

/** A snapshot of a replica's state for dashboards, tests and routing decisions. */
export interface Status {
  readonly id: ReplicaId;
  readonly role: Role;
  readonly term: Term;
  readonly vote: ReplicaId | null;
  readonly leader: ReplicaId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly confState: ConfState;
  /**
   * The membership at the commit index. `confState` is the latest in the log, in force from
   * its append (membership.ts); a replica in one and not the other is being added or removed,
   * and the change can still be truncated away.
   */
  readonly committedConfState: ConfState;
  readonly leadTransferee: ReplicaId | null;
  /** The group is quiet here: ticks do nothing until an input wakes it (quiesce.ts). */
  readonly quiesced: boolean;
  /** Empty unless this replica leads. */
  readonly progress: readonly ProgressStatus[];
}

/**
 * One replica's Raft core behind a Ready/advance handshake.
 *
 * @example
 * ```ts
 * const storage = new MemoryStorage({ voters: [replicaId(1)], learners: [] });
 * const node = new RawNode({
 *   id: replicaId(1), electionTicks: 10, heartbeatTicks: 1, prng: new SeededPrng(1),
 *   preVote: true, checkQuorum: true, leaseReads: false,
 * }, storage);
 * node.campaign();
 * const ready = node.ready();
 * // persist ready.hardState / entries / snapshot, send messages, apply committed...
 * node.advance(ready);
 * ```
 */
export class RawNode {
  readonly #raft: Raft;
  #previousHardState: HardState;
  #pendingReady: Ready | null = null;

  /** @throws {RaftConfigError} when the config is invalid. */
  constructor(config: RaftConfig, storage: LogStorage) {
    const problem = checkRaftConfig(config);
    if (problem !== null) throw new RaftConfigError(problem);
    this.#raft = new Raft(config, storage);
    this.#previousHardState = storage.initialState().hardState;
  }

  /** Advances logical time by one tick. */
  tick(): void {
    this.#checkIdle("tick");
    this.#raft.tick();
  }

  /** Handles a message from another replica (ignored when it is addressed elsewhere). */
  step(message: Message): void {
    this.#checkIdle("step");
    if (message.to !== this.#raft.id || message.from === this.#raft.id) return;
    this.#raft.step(message);
  }

  /** Proposes a client command; `ok` gives the index and term it will commit at, if it does. */
  propose(data: Uint8Array): ProposeResult {
    this.#checkIdle("propose");
    this.#wakeLeader();
    const result = requests.propose(this.#raft, data);
    this.#raft.checkInvariants();
    return result;
  }

  /**
   * Proposes several client commands at once: one append per follower for all of them (see
   * requests.proposeBatch); one result per command, in order.
   */
  proposeBatch(datas: readonly Uint8Array[]): ProposeResult[] {
    this.#checkIdle("proposeBatch");
    this.#wakeLeader();
    const results = requests.proposeBatch(this.#raft, datas);
    this.#raft.checkInvariants();
    return results;
  }

  /** Proposes a single-replica membership change. */
  proposeConfChange(change: ConfChange): ProposeResult {
    this.#checkIdle("proposeConfChange");
    this.#wakeLeader();
    return requests.proposeConfChange(this.#raft, change);
  }

  /**
   * Requests a linearizable read; a ReadState with `requestId` follows in a later Ready. Reads
   * pending when the leader loses its role are dropped silently: callers time them out.
   */
  readIndex(requestId: number): ReadIndexResult {
    this.#checkIdle("readIndex");
    this.#wakeLeader();
    return requests.readIndex(this.#raft, requestId);
  }

  /** Moves leadership to voter `to` via TimeoutNow once it has caught up. */
  transferLeadership(to: ReplicaId): TransferResult {
    this.#checkIdle("transferLeadership");
    this.#wakeLeader();
    return requests.transferLeadership(this.#raft, to);
  }

  /** Starts an election now (with a pre-vote round when enabled). */
  campaign(): void {
    this.#checkIdle("campaign");
    this.#raft.hup(false);
  }

  /** Tells a leader that a message to `id` failed: it falls back to probing. */
  reportUnreachable(id: ReplicaId): void {
    this.#checkIdle("reportUnreachable");
    const progress = this.#raft.progress.get(id);
    if (progress !== undefined && progress.state === "replicate") progress.becomeProbe();
  }

  /** Tells a leader how sending a snapshot to `id` ended; either way it probes again. */
  reportSnapshot(id: ReplicaId, isSuccess: boolean): void {
    this.#checkIdle("reportSnapshot");
    const progress = this.#raft.progress.get(id);
    if (progress === undefined || progress.state !== "snapshot") return;
    if (!isSuccess) progress.snapshotOffset = 0;
    progress.becomeProbe();
  }

  /**
   * Sends the commit index to every follower that could use it and has not been sent it
   * (RaftConfig.deferCommitNotices): the driver calls this when no append followed a commit
   * soon enough, or when a follower is waiting to apply (a follower read).
   */
  sendCommitNotices(): boolean {
    this.#checkIdle("sendCommitNotices");
    return replication.sendCommitNotices(this.#raft);
  }

  /** Whether {@linkcode sendCommitNotices} would send anything now; cheap. */
  get hasCommitNoticesDue(): boolean {
    return replication.hasCommitNoticesDue(this.#raft);
  }

  /** Whether this replica's group is quiet here (see quiesce.ts); cheap. */
  get isQuiesced(): boolean {
    return this.#raft.quiesced;
  }

  /**
   * Wakes a quiesced replica (an operator's call, or a driver that wants the group to tick
   * again). A woken leader heartbeats at its next heartbeat tick, which wakes its followers.
   */
  unquiesce(): void {
    this.#checkIdle("unquiesce");
    this.#raft.unquiesce();
  }

  /**
   * Tells a quiesced follower that the node of `leader` went quiet (the driver's node-level
   * liveness): unless it heard from that leader since it quiesced, it wakes with its election
   * timeout spent, so it campaigns (pre-vote first) within its jitter. Returns whether it woke.
   */
  reportLeaderDown(leader: ReplicaId): boolean {
    this.#checkIdle("reportLeaderDown");
    const raft = this.#raft;
    if (!raft.quiesced || raft.role !== "follower" || raft.leader !== leader) return false;
    raft.unquiesce();
    raft.electionElapsed = raft.config.electionTicks;
    return true;
  }

  /**
   * Tells a quiesced leader that the node of replica `peer` came back (a new connection after a
   * restart or a cut): if `peer` is in its group, it wakes and heartbeats at its next heartbeat
   * tick, so a replica there that restarted learns who leads. A voter would find out by
   * campaigning, but a learner never campaigns, and without this it learned its leader only at
   * the group's next write. Returns whether it woke.
   */
  reportPeerBack(peer: ReplicaId): boolean {
    this.#checkIdle("reportPeerBack");
    const raft = this.#raft;
    if (!raft.quiesced || raft.role !== "leader" || !raft.progress.has(peer)) return false;
    raft.unquiesce();
    return true;
  }

  /** The membership in force at `index` (at or after the applied index): for snapshots. */
  confStateAt(index: LogIndex): ConfState {
    return this.#raft.configHistory.at(index);
  }

  /** Whether {@linkcode ready} has anything to hand out. */
  hasReady(): boolean {
    const raft = this.#raft;
    if (this.#pendingReady !== null) return false;
    if (raft.messages.length > 0 || raft.readOnly.readStates.length > 0) return true;
    if (raft.readOnly.isRoundNeeded && raft.role === "leader") return true;
    if (raft.log.unstable.entries.length > 0 || raft.log.unstable.snapshot !== null) return true;
    if (!isHardStateEqual(this.#hardState(), this.#previousHardState)) return true;
    return raft.log.committed > this.#appliedFloor();
  }

  /** Collects the next Ready; see its doc comment for what the caller must do with it. */
  ready(): Ready {
    assert(this.#pendingReady === null, "ready() called again before advance()");
    const raft = this.#raft;
    if (raft.readOnly.isRoundNeeded && raft.role === "leader") {
      replication.broadcastHeartbeat(raft);
    }
    const hardState = this.#hardState();
    const isHardStateChanged = !isHardStateEqual(hardState, this.#previousHardState);
    const isVoteChanged = hardState.term !== this.#previousHardState.term ||
      hardState.vote !== this.#previousHardState.vote;
    const entries = raft.log.unstable.entries.slice();
    const snapshot = raft.log.unstable.snapshot;
    const ready: Ready = {
      hardState: isHardStateChanged ? hardState : null,
      entries,
      snapshot,
      committed: this.#committedToApply(),
      messages: raft.messages,
      readStates: raft.readOnly.takeReadStates(),
      mustSync: entries.length > 0 || snapshot !== null || isVoteChanged,
    };
    raft.messages = [];
    checkReady(ready, raft.log.applied);
    this.#pendingReady = ready;
    return ready;
  }

  /** Acknowledges that `ready` was persisted, sent and applied. */
  advance(ready: Ready): void {
    assert(this.#pendingReady === ready, "advance() needs the Ready from the last ready()");
    this.#pendingReady = null;
    const raft = this.#raft;
    if (ready.hardState !== null) this.#previousHardState = ready.hardState;
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) {
      raft.log.stableTo(lastEntry.index, lastEntry.term);
      // A leader's own entries count toward its commit quorum once persisted.
      if (raft.role === "leader" && replication.maybeCommit(raft)) {
        replication.noticeCommit(raft);
      }
    }
    if (ready.snapshot !== null) {
      raft.log.stableSnapshotTo(ready.snapshot.metadata.index);
      raft.log.appliedTo(ready.snapshot.metadata.index);
    }
    const lastApplied = ready.committed[ready.committed.length - 1];
    if (lastApplied !== undefined) raft.log.appliedTo(lastApplied.index);
    raft.configHistory.compactTo(Math.min(raft.log.firstIndex() - 1, raft.log.applied) as LogIndex);
  }

  /**
   * The leader this replica knows of, or null: `status().leader` without building the whole
   * status, for callers that ask on every request (routing).
   */
  get leader(): ReplicaId | null {
    return this.#raft.leader;
  }

  /** The current role: `status().role`, cheaply. */
  get role(): Role {
    return this.#raft.role;
  }

  /** The current term: `status().term`, cheaply. */
  get term(): Term {
    return this.#raft.term;
  }

  /** The voter a leadership transfer in progress hands over to, or null: cheaply. */
  get leadTransferee(): ReplicaId | null {
    return this.#raft.leadTransferee;
  }

  /** The replica's current state. */
  status(): Status {
    const raft = this.#raft;
    const confState = raft.confState();
    const progress: ProgressStatus[] = [];
    for (const [id, item] of raft.progress) {
      progress.push({
        id,
        match: item.match,
        next: item.next,
        state: item.state,
        isRecentActive: item.isRecentActive,
        isLearner: confState.learners.includes(id),
        snapshotTooLarge: item.snapshotTooLarge,
      });
    }
    return {
      id: raft.id,
      role: raft.role,
      term: raft.term,
      vote: raft.vote,
      leader: raft.leader,
      commit: raft.log.committed,
      applied: raft.log.applied,
      firstIndex: raft.log.firstIndex(),
      lastIndex: raft.log.lastIndex(),
      confState,
      // The commit index is never before the snapshot the history starts from; the guard keeps
      // a status call from ever asserting.
      committedConfState: raft.configHistory.at(
        Math.max(raft.log.committed, raft.log.firstIndex() - 1) as LogIndex,
      ),
      leadTransferee: raft.leadTransferee,
      quiesced: raft.quiesced,
      progress,
    };
  }

  #hardState(): HardState {
    const raft = this.#raft;
    return { term: raft.term, vote: raft.vote, commit: raft.log.committed };
  }

  /** Entries before this are applied or covered by a pending snapshot. */
  #appliedFloor(): LogIndex {
    const raft = this.#raft;
    const snapshotIndex = raft.log.unstable.snapshot?.metadata.index ?? 0;
    return Math.max(raft.log.applied, snapshotIndex) as LogIndex;
  }

  #committedToApply(): readonly Entry[] {
    const raft = this.#raft;
    const low = (this.#appliedFloor() + 1) as LogIndex;
    const countMax = raft.limits.committedEntriesPerReadyMax;
    const high = Math.min(raft.log.committed + 1, low + countMax) as LogIndex;
    if (low >= high) return [];
    const entries = raft.log.slice(low, high, COMMITTED_BYTES_PER_READY_MAX);
    assert(entries !== null, "committed entries past the applied index are never compacted");
    assert(entries.length <= countMax, "a Ready's committed entries are bounded");
    return entries;
  }

  /** A request for a leader wakes it; a follower stays asleep (its leader did not wake). */
  #wakeLeader(): void {
    if (this.#raft.role === "leader") this.#raft.unquiesce();
  }

  #checkIdle(method: string): void {
    assert(this.#pendingReady === null, `${method}() called between ready() and advance()`);
  }
}

/** Asserts the shape a Ready promises its caller: contiguous, ordered, nothing stale. */
function checkReady(ready: Ready, applied: LogIndex): void {
  const snapshotIndex = ready.snapshot?.metadata.index ?? 0;
  let expected = Math.max(applied, snapshotIndex) + 1;
  for (const entry of ready.committed) {
    assert(entry.index === expected, "committed entries follow the applied index in order");
    expected++;
  }
  const firstEntry = ready.entries[0];
  if (firstEntry !== undefined && ready.snapshot !== null) {
    assert(firstEntry.index > snapshotIndex, "entries to persist follow the snapshot");
  }
  if (ready.hardState !== null) {
    assert(ready.hardState.commit >= snapshotIndex, "the commit covers the snapshot");
  }
  if (ready.entries.length > 0 || ready.snapshot !== null) {
    assert(ready.mustSync, "new entries or a snapshot must be synced");
  }
}
