/**
 * A shard replica's proposals (private to shard/): those queued for the next turn, and those
 * the core accepted, waiting for their entry to apply.
 *
 * A proposal's promise settles when the entry at its (index, term) is applied: with the state
 * machine's result, or as dropped when another entry took that index (a new leader overwrote
 * it). Queued, held and waiting proposals count together against PROPOSALS_PENDING_MAX.
 *
 * A proposal may be held (`enqueue(data, heldAtMs)`): it waits, up to
 * PROPOSAL_HOLD_MS, for another proposal to share its Ready round (one append per follower,
 * one fsync, one apply transaction), and goes first when one comes. The resolves that follow a
 * cross-shard transaction's reply are held: proposed at once, each took a round of its own
 * that the client's next transaction on that shard then queued behind.
 */
import { assert, type Entry, type ProposeResult, type RawNode } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { proposeError } from "./_replica_errors.ts";
import { PROPOSAL_HOLD_MS, PROPOSALS_PENDING_MAX } from "./replica_limits.ts";
import type { ReplicaStats } from "./replica_stats.ts";

interface ProposalWaiter<Result> {
  readonly term: number;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: AspenError) => void;
}

interface QueuedProposal<Result> {
  readonly data: Uint8Array;
  /** Settles with the proposal (held ones only; see releaseHeld). */
  readonly settled?: Promise<unknown>;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: AspenError) => void;
}

/** The proposals of one replica, queued and waiting. */
export class Proposals<Result> {
  readonly #shard: number;
  readonly #stats: ReplicaStats;
  readonly #queued: QueuedProposal<Result>[] = [];
  /** Held proposals, oldest first, and when the oldest was held (monotonic ms). */
  readonly #held: QueuedProposal<Result>[] = [];
  #heldSinceMs = 0;
  readonly #waiters = new Map<number, ProposalWaiter<Result>>();

  constructor(shard: number, stats: ReplicaStats) {
    this.#shard = shard;
    this.#stats = stats;
  }

  /** The refusal for one more proposal when the queue and the waiters are full, else null. */
  limitError(): AspenError | null {
    const pending = this.#queued.length + this.#held.length + this.#waiters.size;
    if (pending < PROPOSALS_PENDING_MAX) return null;
    return new AspenError(
      "too_many_requests",
      `Cannot propose to shard ${this.#shard}: ` +
        `${pending} proposals are pending and the limit is ${PROPOSALS_PENDING_MAX}`,
    );
  }

  /**
   * Queues `data` for the next turn, or holds it (from `heldAtMs`, monotonic) until another
   * proposal is queued or PROPOSAL_HOLD_MS passed; settles once its entry applies.
   */
  enqueue(data: Uint8Array, heldAtMs: number | null = null): Promise<Result> {
    assert(this.limitError() === null, "a proposal is queued only within the limit");
    let proposal: QueuedProposal<Result> | undefined;
    const applied = new Promise<Result>((resolve, reject) => {
      proposal = { data, resolve, reject };
    });
    assert(proposal !== undefined, "enqueue: the executor ran");
    if (heldAtMs === null) {
      this.#queued.push(proposal);
      return applied;
    }
    this.#stats.heldProposals++;
    if (this.#held.length === 0) this.#heldSinceMs = heldAtMs;
    this.#held.push({ ...proposal, settled: applied.then(() => {}, () => {}) });
    return applied;
  }

  /** When the oldest held proposal is due (monotonic ms), or null when none is held. */
  heldDueMs(): number | null {
    return this.#held.length === 0 ? null : this.#heldSinceMs + PROPOSAL_HOLD_MS;
  }

  /** Whether a proposal waits for the next turn (queued, or held past its hold at `nowMs`). */
  isDue(nowMs: number): boolean {
    if (this.#queued.length > 0) return true;
    const dueMs = this.heldDueMs();
    return dueMs !== null && nowMs >= dueMs;
  }

  /**
   * Releases the held proposals: the next turn proposes them (a reader waits for them).
   * Settles once every one of them applied or failed.
   */
  releaseHeld(): Promise<void> {
    const released = this.#queueHeld();
    return Promise.all(released.map((proposal) => proposal.settled)).then(() => {});
  }

  /** Moves the held proposals to the front of the queue; returns them. */
  #queueHeld(): QueuedProposal<Result>[] {
    const held = this.#held.splice(0);
    this.#queued.unshift(...held);
    return held;
  }

  /**
   * Proposes everything queued since the last turn, and the held proposals with them (first)
   * or once their hold passed at `nowMs`, or at once when this replica does not lead (they are
   * refused, and their callers try the leader): one append per follower for them all.
   */
  proposeQueued(node: RawNode, nowMs: number): void {
    const isLeader = node.role === "leader";
    if (this.#held.length > 0 && (this.#queued.length > 0 || this.isDue(nowMs) || !isLeader)) {
      if (this.#queued.length === 0 && isLeader) {
        this.#stats.heldProposalsAlone += this.#held.length;
      }
      this.#queueHeld();
    }
    if (this.#queued.length === 0) return;
    const proposals = this.#queued.splice(0);
    const results = node.proposeBatch(proposals.map((proposal) => proposal.data));
    assert(results.length === proposals.length, "one propose result per proposal");
    proposals.forEach((proposal, i) => this.#settleProposal(proposal, results[i]!));
  }

  /** Refuses every queued proposal (they never reached the log) with `refusal()`. */
  refuseQueued(refusal: () => AspenError): void {
    this.#queueHeld();
    for (const proposal of this.#queued.splice(0)) {
      this.#stats.proposalsDropped++;
      proposal.reject(refusal());
    }
  }

  /** Settles the proposal of an applied entry, if this replica made it. */
  settleApplied(entry: Entry, result: Result | undefined): void {
    const waiter = this.#waiters.get(entry.index);
    if (waiter === undefined) return;
    this.#waiters.delete(entry.index);
    if (waiter.term !== entry.term) {
      waiter.reject(this.#replacedError(entry.index));
      return;
    }
    assert(result !== undefined, "an applied proposal has a result");
    waiter.resolve(result);
  }

  /**
   * Fails the waiters up to `index` after a snapshot replaced the state machine: their entries
   * were applied inside it, so their outcome is unknown here.
   */
  rejectRestored(index: number): void {
    for (const [waiterIndex, waiter] of this.#waiters) {
      if (waiterIndex > index) continue;
      this.#waiters.delete(waiterIndex);
      waiter.reject(
        new AspenError(
          "timeout",
          `Cannot tell the outcome of a write to shard ${this.#shard}: ` +
            "the replica was replaced by a snapshot",
        ),
      );
    }
  }

  /** Fails every proposal, queued ones first (the replica closes). */
  rejectAll(error: AspenError): void {
    this.#queueHeld();
    for (const proposal of this.#queued.splice(0)) proposal.reject(error);
    for (const waiter of this.#waiters.values()) waiter.reject(error);
    this.#waiters.clear();
    assert(this.#queued.length === 0, "no proposal is left queued");
  }

  #replacedError(index: number): AspenError {
    return new AspenError(
      "proposal_dropped",
      `Cannot write to shard ${this.#shard}: leadership ` +
        `changed and the proposal at index ${index} was replaced`,
    );
  }

  #settleProposal(proposal: QueuedProposal<Result>, result: ProposeResult): void {
    if (result.kind === "ok") {
      this.#stats.proposals++;
      const stale = this.#waiters.get(result.index);
      if (stale !== undefined) {
        // An entry of an earlier term held this index and was overwritten before this replica
        // applied it (leader at term T, truncated by a newer leader, leader again): the new
        // proposal landing here proves the old one is gone.
        assert(stale.term < result.term, "two proposals at one index in one term");
        stale.reject(this.#replacedError(result.index));
      }
      this.#waiters.set(result.index, {
        term: result.term,
        resolve: proposal.resolve,
        reject: proposal.reject,
      });
      return;
    }
    this.#stats.proposalsDropped++;
    proposal.reject(proposeError(this.#shard, result));
  }
}
