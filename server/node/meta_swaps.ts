/**
 * Compare-and-swap of meta records on a shard's leader, for cluster-wide records that nodes
 * change by read-modify-write (the runtime token list): a node reads the record, computes the
 * new value, and asks the leader to write it only if the record still holds what it read.
 *
 * The meta command itself is a blind write, so the compare happens here, on the leader, and
 * swaps run one at a time: each one reads the record with a linearizable read (Raft §6.4: the
 * read index covers every entry committed before it, including entries of earlier leaders),
 * compares, and proposes; the next starts only once that proposal applied or failed. Two swaps
 * that both commit therefore never rest on the same old value: a later leader's read covers
 * every committed swap of an earlier one, and an earlier leader's uncommitted swap that a later
 * leader's log lacks can never commit.
 */
import { type ApplyResult, AspenError, type Command } from "../../shard/mod.ts";

/** The most swaps waiting on one replica; more are refused with `too_many_requests`. */
export const META_SWAPS_WAITING_MAX = 64;

/** What a swap did: written, or not because the record held `value`. */
export interface MetaSwapResult {
  readonly isSwapped: boolean;
  /** The record after the swap: the new value, or the current one when it was not written. */
  readonly value: string | null;
}

/** The parts of a replica a swap uses. */
export interface MetaSwapTarget {
  /** Runs `read` at a linearizable point (a read index); `not_leader` on a follower. */
  read<T>(read: () => T): Promise<T>;
  getMeta(name: string): string | null;
  /** Proposes `command` and resolves once it applied; throws its error result. */
  propose(command: Command): Promise<ApplyResult>;
}

/** Serialises the meta swaps of one replica. */
export class MetaSwaps {
  readonly #target: MetaSwapTarget;
  #tail: Promise<unknown> = Promise.resolve();
  #waiting = 0;

  constructor(target: MetaSwapTarget) {
    this.#target = target;
  }

  /**
   * Writes `value` to the record `name` if it holds `expected` (null: absent).
   *
   * @throws {AspenError} `too_many_requests` past {@linkcode META_SWAPS_WAITING_MAX}, and the
   * read's or the proposal's errors (`not_leader` on a follower).
   */
  swap(request: {
    readonly name: string;
    readonly expected: string | null;
    readonly value: string;
  }): Promise<MetaSwapResult> {
    if (this.#waiting >= META_SWAPS_WAITING_MAX) {
      return Promise.reject(
        new AspenError(
          "too_many_requests",
          `Cannot write meta record "${request.name}": ${this.#waiting} writes wait and the ` +
            `limit is META_SWAPS_WAITING_MAX (${META_SWAPS_WAITING_MAX})`,
        ),
      );
    }
    this.#waiting++;
    const run = async (): Promise<MetaSwapResult> => {
      try {
        const current = await this.#target.read(() => this.#target.getMeta(request.name));
        if (current !== request.expected) return { isSwapped: false, value: current };
        await this.#target.propose({ type: "meta", name: request.name, value: request.value });
        return { isSwapped: true, value: request.value };
      } finally {
        this.#waiting--;
      }
    };
    const result = this.#tail.then(run);
    // The tail only orders the swaps: each one's outcome, failure included, goes to its caller.
    this.#tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
