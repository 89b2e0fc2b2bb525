/**
 * A shard replica's linearizable reads (private to shard/): queued, in a ReadIndex round, and
 * ready to run once the applied index reaches their read index (Raft thesis §6.4).
 *
 * One ReadIndex request is in flight at a time: reads that arrive meanwhile wait and share the
 * next one. Each request costs a heartbeat round on every replica; issuing one per turn under a
 * read load meant thousands of rounds a second with a few reads each.
 */
import { assert, type RawNode, type ReadState } from "../raft/mod.ts";
import { AspenError, notLeaderError } from "./errors.ts";
import { READ_WAITERS_MAX } from "./replica_limits.ts";
import type { ReplicaStats } from "./replica_stats.ts";

/** One read waiting to run against the state machine. */
export interface ReadWaiter {
  readonly run: () => void;
  readonly reject: (error: AspenError) => void;
}

/** The reads of one replica. */
export class Reads {
  readonly #shard: number;
  readonly #stats: ReplicaStats;
  readonly #queued: ReadWaiter[] = [];
  /** ReadIndex requests in flight, by request id: the term they were made in, and waiters. */
  readonly #batches = new Map<number, { term: number; waiters: ReadWaiter[] }>();
  readonly #ready: { index: number; waiters: ReadWaiter[] }[] = [];
  #requestId = 0;

  constructor(shard: number, stats: ReplicaStats) {
    this.#shard = shard;
    this.#stats = stats;
  }

  /** True when reads are queued and no ReadIndex round is in flight: the next one is due. */
  get isRoundDue(): boolean {
    return this.#queued.length > 0 && this.#batches.size === 0;
  }

  /** True when reads are queued. */
  get hasQueued(): boolean {
    return this.#queued.length > 0;
  }

  /** The refusal for one more read when the queue is full, else null. */
  limitError(): AspenError | null {
    if (this.#queued.length < READ_WAITERS_MAX) return null;
    return new AspenError(
      "too_many_requests",
      `Cannot read shard ${this.#shard}: ` +
        `${this.#queued.length} reads are pending and the limit is ${READ_WAITERS_MAX}`,
    );
  }

  /** Queues `read` for the next ReadIndex round; settles with its value once it ran. */
  enqueue<T>(read: () => T): Promise<T> {
    assert(this.limitError() === null, "a read is queued only within the limit");
    return new Promise<T>((resolve, reject) => {
      this.#queued.push({
        run: () => {
          try {
            resolve(read());
          } catch (error) {
            reject(error);
          }
        },
        reject,
      });
    });
  }

  /** Starts a ReadIndex round for every queued read, when one is due. */
  requestQueued(node: RawNode): void {
    if (!this.isRoundDue) return;
    const waiters = this.#queued.splice(0);
    const requestId = ++this.#requestId;
    const result = node.readIndex(requestId);
    if (result.kind === "ok") {
      this.#batches.set(requestId, { term: node.term, waiters });
      return;
    }
    const error = result.kind === "not_leader"
      ? notLeaderError(this.#shard, result.leader)
      : new AspenError("too_many_requests", `Cannot read shard ${this.#shard}: too many reads`);
    for (const waiter of waiters) waiter.reject(error);
  }

  /**
   * Fails the reads whose ReadIndex request the core dropped: it forgets pending reads when
   * this replica stops leading or the term changes (they would otherwise wait forever, and
   * hold back every read after them).
   */
  failOrphaned(node: RawNode): void {
    for (const [requestId, batch] of this.#batches) {
      const isOrphaned = node.role !== "leader" || node.term !== batch.term;
      if (!isOrphaned) continue;
      this.#batches.delete(requestId);
      const error = notLeaderError(this.#shard, node.leader);
      for (const waiter of batch.waiters) waiter.reject(error);
    }
  }

  /** Moves the rounds a Ready confirmed to the reads that wait for their index to apply. */
  confirm(readStates: readonly ReadState[]): void {
    for (const state of readStates) {
      const batch = this.#batches.get(state.requestId);
      if (batch === undefined) continue;
      this.#batches.delete(state.requestId);
      this.#ready.push({ index: state.index, waiters: batch.waiters });
    }
  }

  /** Runs the confirmed reads whose read index is applied, in order. */
  serveApplied(appliedIndex: number): void {
    while (this.#ready.length > 0 && this.#ready[0]!.index <= appliedIndex) {
      for (const waiter of this.#ready.shift()!.waiters) {
        this.#stats.readsServed++;
        waiter.run();
      }
    }
  }

  /** Takes every queued read out (a stalled replica answers them itself). */
  takeQueued(): ReadWaiter[] {
    return this.#queued.splice(0);
  }

  /** Fails the queued reads (the replica closes). */
  rejectQueued(error: AspenError): void {
    for (const read of this.#queued.splice(0)) read.reject(error);
  }

  /** Fails the reads in a ReadIndex round or waiting to apply (the replica closes). */
  rejectStarted(error: AspenError): void {
    for (const batch of this.#batches.values()) {
      for (const read of batch.waiters) read.reject(error);
    }
    this.#batches.clear();
    for (const batch of this.#ready.splice(0)) {
      for (const read of batch.waiters) read.reject(error);
    }
  }
}
