/**
 * Leadership transfers a replica's core accepted, waiting for their outcome (private to
 * shard/). The core accepts a transfer and then, once the target has caught up, tells it to
 * campaign (Raft thesis §3.10); the transfer has happened when this replica follows another
 * leader, and was abandoned when it still leads with no transfer under way (the core gives up
 * after an election timeout, or a newer transfer replaced it). The caller learns which: an
 * operator who asked for node 2 must not be told "node 2 leads now" while node 1 still does.
 */
import { assert, type ReplicaId } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";

/** What the waiters read of the core after a turn. */
export interface LeadershipView {
  readonly isLeader: boolean;
  /** The known leader; null while an election runs. */
  readonly leader: number | null;
  /** The target of the transfer under way, or null. */
  readonly leadTransferee: ReplicaId | null;
}

interface Waiter {
  readonly to: ReplicaId;
  readonly resolve: (leader: number) => void;
  readonly reject: (error: AspenError) => void;
}

/** The transfers waiting for their outcome. */
export class TransferWaiters {
  readonly #shard: number;
  readonly #self: number;
  #waiters: Waiter[] = [];

  constructor(shard: number, self: number) {
    this.#shard = shard;
    this.#self = self;
  }

  /** How many transfers wait. */
  get size(): number {
    return this.#waiters.length;
  }

  /** Waits for the outcome of an accepted transfer to `to`: resolves with the new leader. */
  add(to: ReplicaId): Promise<number> {
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#waiters.push({ to, resolve, reject });
    return promise;
  }

  /**
   * Settles the transfers whose outcome `view` shows: all of them once another replica leads
   * (whichever won), and, while this one still leads, those whose target no longer is the
   * transfer under way. Nothing while an election runs.
   */
  settle(view: LeadershipView): void {
    if (this.#waiters.length === 0) return;
    if (!view.isLeader) {
      if (view.leader === null) return;
      assert(view.leader !== this.#self, "a replica that does not lead is not the leader");
      for (const waiter of this.#waiters) waiter.resolve(view.leader);
      this.#waiters = [];
      return;
    }
    const waiting: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.to === view.leadTransferee) waiting.push(waiter);
      else waiter.reject(this.#abandoned(waiter.to));
    }
    this.#waiters = waiting;
  }

  /** Fails every waiting transfer with `error` (the replica closes). */
  rejectAll(error: AspenError): void {
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters = [];
  }

  #abandoned(to: ReplicaId): AspenError {
    return new AspenError(
      "timeout",
      `Cannot transfer leadership of shard ${this.#shard} to node ${to}: it did not take ` +
        `over within an election timeout (behind, unreachable, or replaced by another ` +
        `transfer); node ${this.#self} still leads`,
      { shard: this.#shard, leader: this.#self },
    );
  }
}
