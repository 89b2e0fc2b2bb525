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
 * election timeout ago; it relies on check-quorum voters refusing votes within that timeout and
 * on tick lengths that agree across replicas. A leader transfer ends the lease.
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

  /** Starts a new round at leader tick `leaderTicks`; returns its number. */
  nextRound(leaderTicks: number): number {
    this.round++;
    this.isRoundNeeded = false;
    this.#roundSendTicks.set(this.round, leaderTicks);
    this.#roundSendTicks.delete(this.round - READ_ROUNDS_TRACKED_MAX);
    return this.round;
  }

  /**
   * Forgets when the rounds so far were sent: a leader that woke from quiescence had its lease
   * clock stopped, so only rounds sent after it woke may grant a lease.
   */
  forgetLeaseRounds(): void {
    this.#roundSendTicks.clear();
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

  /** Whether a lease read is safe now, given the round a quorum acknowledged. */
  isLeaseValid(options: { quorumRound: number; leaderTicks: number; electionTicks: number }) {
    const sentAt = this.#roundSendTicks.get(options.quorumRound);
    if (sentAt === undefined) return false;
    assert(sentAt <= options.leaderTicks, "a round is sent before it is acknowledged");
    // One tick of margin for tick boundaries that do not line up between replicas.
    return options.leaderTicks - sentAt < options.electionTicks - 1;
  }

  takeReadStates(): ReadState[] {
    const result = this.readStates;
    this.readStates = [];
    return result;
  }
}
