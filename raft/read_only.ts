/**
 * Linearizable reads at a leader: ReadIndex (Raft thesis §6.4) batched over heartbeat rounds,
 * and optional leader leases (thesis §6.4.1).
 *
 * Every heartbeat broadcast is a numbered round; a follower's answer to round r proves that
 * this replica was still leader after every read registered before round r went out. A read is
 * released once a majority (counting the leader) has answered its round or a later one, which is
 * the same quorum math as the commit index. All reads registered between two broadcasts share
 * one round. A leader that has not yet committed an entry of its own term does not know the
 * latest commit index, so reads wait for that first.
 *
 * A lease read is served at once while a majority has answered a round sent less than an
 * election timeout (less one tick) ago; it relies on check-quorum voters refusing votes within
 * that timeout of hearing from the leader, and on tick lengths that agree across replicas. A
 * leader transfer ends the lease. With a lease clock the timeout is measured twice, in ticks
 * and on the clock, and both must hold: a voter's ticks never run faster than its clock (timer
 * callbacks come late, never early), so it refuses votes for at least that long on the clock;
 * the leader's ticks may lag its clock (a pause, a starved event loop), so its ticks alone
 * would let a lease outlive what the voters promised.
 */
import { assert } from "./assert.ts";
import { READ_ROUNDS_TRACKED_MAX, READS_PENDING_MAX } from "./limits.ts";
import type { LogIndex, ReadState } from "./types.ts";

interface PendingRead {
  readonly requestId: number;
  readonly index: LogIndex;
  readonly round: number;
}

/** The read bookkeeping of one leader term; reset when the role or term changes. */
export class ReadOnly {
  /** The number of the latest heartbeat round sent. */
  round = 0;
  /** A read waits for a round that has not been sent yet. */
  isRoundNeeded = false;
  readStates: ReadState[] = [];
  #pending: PendingRead[] = [];
  #awaitingCommit: number[] = [];
  #roundSendTicks = new Map<number, number>();
  /** When each tracked round was sent on the lease clock; absent without one. */
  #roundSendMs = new Map<number, number>();

  /** The reads waiting, for the READS_PENDING_MAX check. */
  get pendingCount(): number {
    return this.#pending.length + this.#awaitingCommit.length;
  }

  get hasRoom(): boolean {
    return this.pendingCount < READS_PENDING_MAX;
  }

  reset(): void {
    this.round = 0;
    this.isRoundNeeded = false;
    this.#pending = [];
    this.#awaitingCommit = [];
    this.#roundSendTicks.clear();
    this.#roundSendMs.clear();
  }

  /** Queues a read until the leader commits an entry of its term. */
  awaitCommit(requestId: number): void {
    assert(this.hasRoom, "awaitCommit() past READS_PENDING_MAX");
    this.#awaitingCommit.push(requestId);
  }

  /** Registers a read at `index` for the next round. */
  register(requestId: number, index: LogIndex): void {
    assert(this.hasRoom, "register() past READS_PENDING_MAX");
    this.#pending.push({ requestId, index, round: this.round + 1 });
    this.isRoundNeeded = true;
  }

  /** Moves reads that waited for the first commit of the term into the next round. */
  releaseAwaitingCommit(index: LogIndex): void {
    const waiting = this.#awaitingCommit;
    this.#awaitingCommit = [];
    for (const requestId of waiting) this.register(requestId, index);
  }

  /**
   * Starts a new round at leader tick `leaderTicks` (and lease clock time `clockMs`, null
   * without a lease clock); returns its number.
   */
  nextRound(leaderTicks: number, clockMs: number | null = null): number {
    this.round++;
    this.isRoundNeeded = false;
    this.#roundSendTicks.set(this.round, leaderTicks);
    this.#roundSendTicks.delete(this.round - READ_ROUNDS_TRACKED_MAX);
    if (clockMs !== null) this.#roundSendMs.set(this.round, clockMs);
    this.#roundSendMs.delete(this.round - READ_ROUNDS_TRACKED_MAX);
    return this.round;
  }

  /**
   * Forgets when the rounds so far were sent: a leader that woke from quiescence had its lease
   * clock stopped, so only rounds sent after it woke may grant a lease.
   */
  forgetLeaseRounds(): void {
    this.#roundSendTicks.clear();
    this.#roundSendMs.clear();
  }

  /** Releases every read whose round a quorum has acknowledged (`quorumRound`). */
  release(quorumRound: number): void {
    assert(quorumRound <= this.round, "a quorum cannot ack a round not yet sent");
    let count = 0;
    for (const read of this.#pending) {
      if (read.round > quorumRound) break;
      this.readStates.push({ requestId: read.requestId, index: read.index });
      count++;
    }
    if (count > 0) this.#pending = this.#pending.slice(count);
  }

  /**
   * Whether a lease read is safe now, given the round a quorum acknowledged; with a lease
   * `clock` (its reading now and its tick length) the lease must hold on it too.
   */
  isLeaseValid(options: {
    quorumRound: number;
    leaderTicks: number;
    electionTicks: number;
    clock: { readonly nowMs: number; readonly tickMs: number } | null;
  }): boolean {
    const sentAt = this.#roundSendTicks.get(options.quorumRound);
    if (sentAt === undefined) return false;
    assert(sentAt <= options.leaderTicks, "a round is sent before it is acknowledged");
    // One tick of margin for tick boundaries that do not line up between replicas.
    const leaseTicks = options.electionTicks - 1;
    if (options.leaderTicks - sentAt >= leaseTicks) return false;
    if (options.clock === null) return true;
    const sentMs = this.#roundSendMs.get(options.quorumRound);
    if (sentMs === undefined) return false;
    return options.clock.nowMs - sentMs < leaseTicks * options.clock.tickMs;
  }

  takeReadStates(): ReadState[] {
    const result = this.readStates;
    this.readStates = [];
    return result;
  }
}
