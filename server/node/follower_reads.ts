/**
 * Linearizable reads served by a follower replica (Raft thesis §6.4): instead of forwarding a
 * read to the leader, a follower asks the leader for a read index, waits until it has applied
 * that index itself, and then reads its own state machine.
 *
 * Why: forwarding sends every read and its answer across the peer channel and makes the
 * leader serve them all; with clients spread over 3 nodes that was two reads in three. A read
 * index request is a few bytes, and one request serves every read that arrived while the
 * previous one was in flight (batching), so followers share the read load.
 *
 * Correctness. The leader answers a read index request with its applied index after a ReadIndex
 * round (a heartbeat quorum confirmed its leadership): an index at least the commit index when
 * the request reached it. A read may only use a request sent AFTER the read arrived, since an
 * earlier request may have been answered before a write the client saw acknowledged. So reads
 * that arrive while a request is in flight join the next one, which is sent when the current
 * one settles. Once the local replica has applied the index, its state includes every write
 * committed before the read started, so reading it is linearizable.
 */
import { AspenError } from "../../shard/mod.ts";

/** The most reads waiting for one shard's next read index request. */
export const FOLLOWER_READS_WAITING_MAX = 16_384;
/** How long a read index request to the leader may take. */
export const READ_INDEX_TIMEOUT_MS = 2_000;

/** What a follower read needs. */
export interface FollowerReadOptions {
  /** Asks `leader` for a read index of `shard`; resolves with it. */
  readonly askReadIndex: (leader: number, shard: number, timeoutMs: number) => Promise<number>;
}

interface Waiting {
  readonly promise: Promise<number>;
  readonly resolve: (index: number) => void;
  readonly reject: (error: unknown) => void;
  count: number;
}

interface ShardRounds {
  isInFlight: boolean;
  /** Reads that arrived while a request was in flight: they need the next request. */
  next: Waiting | null;
  /** Whom to ask next time. */
  leader: number;
}

/** Batches read index requests per shard. */
export class FollowerReads {
  readonly #options: FollowerReadOptions;
  readonly #shards = new Map<number, ShardRounds>();

  constructor(options: FollowerReadOptions) {
    this.#options = options;
  }

  /**
   * Resolves with a read index for `shard` obtained from `leader` by a request sent after
   * this call.
   *
   * @throws {AspenError} `too_many_requests` past FOLLOWER_READS_WAITING_MAX, or the error of
   * the request (not_leader, shard_unavailable, timeout, ...).
   */
  readIndex(shard: number, leader: number): Promise<number> {
    let rounds = this.#shards.get(shard);
    if (rounds === undefined) {
      rounds = { isInFlight: false, next: null, leader };
      this.#shards.set(shard, rounds);
    }
    rounds.leader = leader;
    if (!rounds.isInFlight) return this.#send(shard, rounds);
    if (rounds.next === null) {
      // Never left unawaited: it is created for, and returned to, the read below.
      const { promise, resolve, reject } = Promise.withResolvers<number>();
      rounds.next = { promise, resolve, reject, count: 0 };
    }
    if (rounds.next.count >= FOLLOWER_READS_WAITING_MAX) {
      return Promise.reject(
        new AspenError(
          "too_many_requests",
          `Cannot read shard ${shard} on this follower: ${rounds.next.count} reads wait for ` +
            `a read index and the limit is ${FOLLOWER_READS_WAITING_MAX}`,
          { shard },
        ),
      );
    }
    rounds.next.count++;
    return rounds.next.promise;
  }

  /** Sends one request now; when it settles, sends the next one if reads joined meanwhile. */
  #send(shard: number, rounds: ShardRounds): Promise<number> {
    rounds.isInFlight = true;
    const sent = this.#options.askReadIndex(rounds.leader, shard, READ_INDEX_TIMEOUT_MS);
    const settled = () => {
      rounds.isInFlight = false;
      const next = rounds.next;
      if (next === null) return;
      rounds.next = null;
      this.#send(shard, rounds).then(next.resolve, next.reject);
    };
    sent.then(settled, settled);
    return sent;
  }
}
