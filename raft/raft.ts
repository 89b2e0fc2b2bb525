/**
 * The Raft state machine of one replica: roles, terms, elections and message dispatch.
 * Replication (leader side) lives in replication.ts, the follower's handling of appends and
 * snapshots in follower.ts, and linearizable reads in read_only.ts; they all operate on this
 * class, which is private to raft/ (callers use RawNode).
 *
 * ```text
 *              timeout, preVote on          pre-vote quorum
 *   follower ---------------------> preCandidate ---------> candidate --vote quorum--> leader
 *      ^   \____________ timeout, preVote off / TimeoutNow ____^  |                      |
 *      |                                                          |                      |
 *      +------ higher term, a leader of this term, lost vote -----+----------------------+
 *              (a leader also steps down on lost quorum or on its own removal)
 * ```
 */
import { assert } from "./assert.ts";
import type { RaftConfig, RaftLimits } from "./config.ts";
import { DEFAULT_RAFT_LIMITS } from "./config.ts";
import { RaftLog } from "./log.ts";
import { ConfigHistory, decodeConfChange } from "./membership.ts";
import type { Progress } from "./progress.ts";
import { voteResult } from "./quorum.ts";
import { ReadOnly } from "./read_only.ts";
import type { RaftCore, Role, SnapshotAssembly } from "./raft_core.ts";
import type { LogStorage } from "./storage.ts";
import type {
  ConfState,
  Entry,
  LogIndex,
  Message,
  ReplicaId,
  Term,
  VoteMessage,
  VoteResponseMessage,
} from "./types.ts";
import { LOG_SCAN_BYTES_MAX } from "./limits.ts";
import * as follower from "./follower.ts";
import { canQuiesce, noteRound, quiesce } from "./quiesce.ts";
import * as replication from "./replication.ts";

/** The core state machine. Fields are internal to raft/; RawNode is the public driver. */
export class Raft implements RaftCore {
  readonly id: ReplicaId;
  readonly config: RaftConfig;
  readonly limits: RaftLimits;
  readonly log: RaftLog;
  readonly configHistory: ConfigHistory;
  readonly readOnly = new ReadOnly();
  term: Term;
  vote: ReplicaId | null;
  leader: ReplicaId | null = null;
  role: Role = "follower";
  /** Leader only: one progress per member other than this replica. */
  progress = new Map<ReplicaId, Progress>();
  votes = new Map<ReplicaId, boolean>();
  messages: Message[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTicks = 0;
  /** Ticks since this replica started; only for the post-restart vote lease. */
  ticksSinceStart = 0;
  /** Ticks since this replica became leader; the clock of read leases. */
  leaderTicks = 0;
  leadTransferee: ReplicaId | null = null;
  /**
   * This leader sent a TimeoutNow in its term. Voters ignore their lease for the election it
   * starts, whenever it arrives, so this leader may never serve a lease read again.
   */
  hasSentTimeoutNow = false;
  /** Leader only: (index, bytes) of proposals not yet committed, oldest first. */
  uncommitted: { index: LogIndex; bytes: number }[] = [];
  uncommittedBytes = 0;
  snapshotAssembly: SnapshotAssembly | null = null;
  quiesced = false;
  leaderRound = 0;
  quietCommit = -1;
  quietRound = 0;

  constructor(config: RaftConfig, storage: LogStorage) {
    this.id = config.id;
    this.config = config;
    this.limits = config.limits ?? DEFAULT_RAFT_LIMITS;
    this.log = new RaftLog(storage);
    const { hardState } = storage.initialState();
    this.term = hardState.term;
    this.vote = hardState.vote;
    const snapshot = storage.snapshot().metadata;
    this.configHistory = new ConfigHistory(snapshot.index, snapshot.confState);
    this.#loadConfigHistory();
    if (config.applied !== undefined && config.applied > this.log.applied) {
      this.#restoreApplied(config.applied);
    }
    this.becomeFollower(this.term, null);
  }

  /**
   * Starts from the state machine's applied index. It may be past the stored commit index: a
   * Ready that only moves the commit index is not synced, while the state machine's own writes
   * are durable on their own, so after a power loss the machine can be ahead of the hard state.
   * Every applied entry was committed, so the commit index moves up to it (the entries are in
   * the log: a replica applies only entries whose append was synced).
   */
  #restoreApplied(applied: LogIndex): void {
    assert(applied <= this.log.lastIndex(), "config.applied must not pass the last index");
    if (applied > this.log.committed) this.log.commitTo(applied);
    this.log.appliedTo(applied);
  }

  /** The configuration in force (the latest in the log). */
  confState(): ConfState {
    return this.configHistory.current();
  }

  /** Whether this replica may campaign: it is a voter of its current configuration. */
  isPromotable(): boolean {
    return this.confState().voters.includes(this.id);
  }

  send(message: Message): void {
    assert(message.from === this.id, "messages are sent from this replica");
    assert(message.to !== this.id, "a replica never sends to itself");
    this.messages.push(message);
  }

  /** Advances logical time by one tick. */
  tick(): void {
    this.ticksSinceStart++;
    if (this.quiesced) return;
    if (this.role === "leader") {
      this.#tickLeader();
    } else {
      this.electionElapsed++;
      if (this.isPromotable() && this.electionElapsed >= this.randomizedElectionTicks) {
        this.electionElapsed = 0;
        this.hup(false);
      }
    }
    this.checkInvariants();
  }

  /** Asserts the invariants every input must preserve; cheap enough to run after each one. */
  checkInvariants(): void {
    const log = this.log;
    assert(log.applied <= log.committed, "Invariant: applied <= committed");
    assert(log.committed <= log.lastIndex(), "Invariant: committed <= lastIndex");
    if (this.role === "leader") {
      assert(this.leader === this.id, "a leader knows it leads");
      assert(this.vote === this.id, "a leader voted for itself");
    } else {
      assert(this.progress.size === 0, "only a leader tracks progress");
      assert(this.leadTransferee === null, "only a leader transfers leadership");
    }
    if (this.role === "candidate") assert(this.vote === this.id, "a candidate votes for itself");
    if (this.quiesced) {
      assert(this.role === "leader" || this.role === "follower", "only a group member sleeps");
    }
    if (this.vote !== null) assert(this.term > 0, "a vote belongs to a term");
  }

  /** Starts an election (a pre-vote first when enabled, unless it is a leader transfer). */
  hup(isTransfer: boolean): void {
    if (this.role === "leader" || !this.isPromotable()) return;
    if (this.config.preVote && !isTransfer) {
      this.#campaign("preVote", false);
    } else {
      this.#campaign("vote", isTransfer);
    }
  }

  /** Handles one message from another replica. */
  step(message: Message): void {
    assert(message.to === this.id, "step() got a message for another replica");
    assert(message.from !== this.id, "step() got a message from itself");
    if (this.quiesced && this.#isWokenBy(message)) this.unquiesce();
    if (message.term > this.term) {
      if (!this.#acceptHigherTerm(message)) return;
    } else if (message.term < this.term) {
      this.#answerLowerTerm(message);
      return;
    }
    if (message.type === "vote" || message.type === "preVote") {
      this.#handleVoteRequest(message);
    } else if (this.role === "leader") {
      replication.stepLeader(this, message);
    } else if (this.role === "follower") {
      follower.stepFollower(this, message);
    } else {
      this.#stepCandidate(message);
    }
    this.checkRemovedLeader();
    this.checkInvariants();
  }

  unquiesce(): void {
    if (!this.quiesced) return;
    this.quiesced = false;
    // The clocks stood still: every timeout starts afresh, and a leader forgets the rounds it
    // could have taken a lease from and needs fresh answers for check-quorum.
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    if (this.role !== "leader") return;
    this.readOnly.forgetLeaseRounds();
    for (const progress of this.progress.values()) progress.isRecentActive = false;
  }

  /** A quiesced leader sleeps through heartbeat answers; anything else wakes a replica. */
  #isWokenBy(message: Message): boolean {
    if (this.role === "leader") return message.type !== "heartbeatResponse";
    return message.type !== "heartbeat" || !message.quiesce;
  }

  becomeFollower(newTerm: Term, leader: ReplicaId | null): void {
    assert(newTerm >= this.term, "a replica never goes back in term");
    if (newTerm !== this.term) {
      this.term = newTerm;
      this.vote = null;
      this.snapshotAssembly = null;
    }
    this.#reset();
    this.role = "follower";
    this.leader = leader;
  }

  becomeLeader(): void {
    assert(this.role === "candidate", "only a candidate becomes leader");
    this.#reset();
    this.role = "leader";
    this.leader = this.id;
    replication.resetProgress(this);
    // Raft §8: a new leader appends a no-op so that it can commit an entry of its own term.
    const noop: Entry = {
      term: this.term,
      index: (this.log.lastIndex() + 1) as LogIndex,
      type: "normal",
      data: new Uint8Array(0),
    };
    replication.appendAsLeader(this, [noop]);
    replication.broadcastAppend(this);
  }

  /** Appends entries received from a leader (or as leader) and tracks membership in them. */
  appendToLog(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    let isChanged = false;
    if (first.index <= this.log.lastIndex()) {
      isChanged = this.configHistory.truncateFrom(first.index);
    }
    this.log.append(entries);
    for (const entry of entries) {
      if (entry.type !== "confChange") continue;
      const change = decodeConfChange(entry.data);
      assert(change !== null, `entry ${entry.index} holds a malformed membership change`);
      this.configHistory.append(entry.index, change);
      isChanged = true;
    }
    if (isChanged) this.onConfigChanged();
  }

  /** Reacts to a change of the configuration in force. */
  onConfigChanged(): void {
    if (this.role === "leader") replication.syncProgress(this);
    if (this.role !== "leader" && this.role !== "follower" && !this.isPromotable()) {
      this.becomeFollower(this.term, null);
    }
  }

  /**
   * A leader that is no longer a voter steps down once the change that removed it has
   * committed, and asks the most caught-up voter to take over (thesis §4.2.2).
   */
  checkRemovedLeader(): void {
    if (this.role !== "leader" || this.isPromotable()) return;
    if (this.log.committed < this.configHistory.lastChangeIndex()) return;
    let best: ReplicaId | null = null;
    let bestMatch = -1;
    for (const [id, progress] of this.progress) {
      if (!this.confState().voters.includes(id)) continue;
      if (progress.match > bestMatch) {
        best = id;
        bestMatch = progress.match;
      }
    }
    const lastIndex = this.log.lastIndex();
    this.becomeFollower(this.term, null);
    if (best !== null && bestMatch === lastIndex) {
      this.send({ type: "timeoutNow", from: this.id, to: best, term: this.term });
    }
  }

  #tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.leaderTicks++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !replication.isQuorumActive(this)) {
        this.becomeFollower(this.term, null);
        return;
      }
      if (this.leadTransferee !== null) this.leadTransferee = null;
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      if (canQuiesce(this)) {
        quiesce(this);
      } else {
        noteRound(this);
        replication.broadcastHeartbeat(this);
      }
    }
  }

  #campaign(kind: "vote" | "preVote", isTransfer: boolean): void {
    if (kind === "preVote") {
      this.#reset();
      this.role = "preCandidate";
      this.leader = null;
    } else {
      this.becomeFollower((this.term + 1) as Term, null);
      this.role = "candidate";
      this.vote = this.id;
    }
    const voteTerm = (kind === "preVote" ? this.term + 1 : this.term) as Term;
    this.votes.set(this.id, true);
    if (this.#tallyVotes()) return;
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const voter of this.confState().voters) {
      if (voter === this.id) continue;
      const message: VoteMessage = {
        type: kind,
        from: this.id,
        to: voter,
        term: voteTerm,
        lastIndex,
        lastTerm,
        isTransfer,
      };
      this.send(message);
    }
  }

  /** Acts on the votes so far; returns true when the election ended. */
  #tallyVotes(): boolean {
    const result = voteResult(this.confState().voters, this.votes);
    if (result === "pending") return false;
    if (result === "lost") {
      this.becomeFollower(this.term, null);
    } else if (this.role === "preCandidate") {
      this.#campaign("vote", false);
    } else {
      this.becomeLeader();
    }
    return true;
  }

  #stepCandidate(message: Message): void {
    const expected = this.role === "preCandidate" ? "preVoteResponse" : "voteResponse";
    if (
      message.type === "append" || message.type === "heartbeat" ||
      message.type === "snapshotChunk"
    ) {
      this.becomeFollower(this.term, message.from);
      follower.stepFollower(this, message);
    } else if (message.type === expected) {
      this.votes.set(message.from, !message.isRejected);
      this.#tallyVotes();
    }
  }

  /** Raft §5.1 for a message from a later term; returns false when it must be ignored. */
  #acceptHigherTerm(message: Message): boolean {
    if (message.type === "vote" || message.type === "preVote") {
      if (!message.isTransfer && this.#isInLease(message.type)) return false;
      if (message.type === "preVote") return true;
    }
    if (message.type === "preVoteResponse" && !message.isRejected) return true;
    const isFromLeader = message.type === "append" || message.type === "heartbeat" ||
      message.type === "snapshotChunk";
    this.becomeFollower(message.term, isFromLeader ? message.from : null);
    return true;
  }

  /**
   * Whether this replica heard from a leader so recently that it refuses to help depose it:
   * always for pre-votes (thesis §9.6), for votes only with check-quorum (thesis §4.2.3). With
   * lease reads on, a replica also refuses votes for one election timeout after it starts.
   */
  #isInLease(kind: "vote" | "preVote"): boolean {
    const isRecent = this.leader !== null && this.electionElapsed < this.config.electionTicks;
    if (isRecent && (kind === "preVote" || this.config.checkQuorum)) return true;
    return this.config.leaseReads && this.ticksSinceStart < this.config.electionTicks;
  }

  #answerLowerTerm(message: Message): void {
    const isFromLeader = message.type === "append" || message.type === "heartbeat" ||
      message.type === "snapshotChunk";
    if (isFromLeader && (this.config.checkQuorum || this.config.preVote)) {
      // A stale leader (or a replica that lost a partition's elections) learns our term and
      // steps down; without this, check-quorum or pre-vote could leave it stuck forever.
      this.send({
        type: "appendResponse",
        from: this.id,
        to: message.from,
        term: this.term,
        index: 0 as LogIndex,
        isRejected: true,
        rejectHintIndex: 0 as LogIndex,
        rejectHintTerm: 0 as Term,
      });
    } else if (message.type === "preVote") {
      this.#respondVote(message, true);
    }
  }

  #handleVoteRequest(message: VoteMessage): void {
    const canVote = this.vote === message.from ||
      (this.vote === null && this.leader === null) ||
      (message.type === "preVote" && message.term > this.term);
    // A replica that knows no configuration (created empty, not yet filled by a leader) does
    // not vote. Its empty log would grant any candidate, and its id may be an earlier
    // replica's: a voter cut off while that replica was removed still counts it as a voter,
    // and must not win with its vote without the entries committed since.
    const knowsConfig = this.confState().voters.length > 0;
    if (canVote && knowsConfig && this.log.isAtLeastAsNew(message.lastIndex, message.lastTerm)) {
      this.#respondVote(message, false);
      if (message.type === "vote") {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
    } else {
      this.#respondVote(message, true);
    }
  }

  #respondVote(request: VoteMessage, isRejected: boolean): void {
    const response: VoteResponseMessage = {
      type: request.type === "vote" ? "voteResponse" : "preVoteResponse",
      from: this.id,
      to: request.from,
      // A granted pre-vote answers in the term the candidate would use; anything else in ours.
      term: isRejected ? this.term : request.term,
      isRejected,
    };
    this.send(response);
  }

  #reset(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.leaderTicks = 0;
    const electionTicks = this.config.electionTicks;
    this.randomizedElectionTicks = electionTicks + this.config.prng.nextInt(electionTicks);
    this.votes.clear();
    this.progress.clear();
    this.leadTransferee = null;
    this.hasSentTimeoutNow = false;
    this.quiesced = false;
    this.leaderRound = 0;
    this.quietCommit = -1;
    this.quietRound = 0;
    this.uncommitted = [];
    this.uncommittedBytes = 0;
    this.readOnly.reset();
  }

  /** Rebuilds the membership history from the change entries stored after the snapshot. */
  #loadConfigHistory(): void {
    const last = this.log.lastIndex();
    const base = this.log.storage.snapshot().metadata.index;
    let next = Math.max(this.log.firstIndex(), base + 1) as LogIndex;
    while (next <= last) {
      const page = this.log.slice(next, (last + 1) as LogIndex, LOG_SCAN_BYTES_MAX);
      assert(page !== null && page.length > 0, "the stored log must be readable at startup");
      for (const entry of page) {
        if (entry.type !== "confChange") continue;
        const change = decodeConfChange(entry.data);
        assert(change !== null, `entry ${entry.index} holds a malformed membership change`);
        this.configHistory.append(entry.index, change);
      }
      next = (next + page.length) as LogIndex;
    }
  }
}
