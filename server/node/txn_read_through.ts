/**
 * How a lock-free read-only transaction answers through the intents its two reads met,
 * instead of waiting for their holders (pure: the coordinator gathers the reads and votes).
 *
 * The two reads of every participant define an instant T: after every first read ended and
 * before any second read began. The answer is each key's state at T, where a cross-shard
 * transaction takes effect at its commit point (parallel commits: once its last prepare
 * applied), not at its resolves. For a key whose first read met transaction X's intent, that
 * is X's write when X committed before T, else the state the first read saw (X's intent kept
 * every other writer off the key meanwhile). X committed before T when every participant voted
 * commit and each prepared at or below its first read's revision (so before that read
 * answered); X did not when a participant voted against, or prepared above its second read's
 * revision (so after that read began, after T). Anything else (a participant outside the
 * reads, a prepare between a participant's two reads, a row not found) is left unknown, and
 * the coordinator waits for X as before.
 *
 * The second reads check that no key changed between the reads: a resolve writes at the
 * revision its prepare reserved, so the resolve of an intent the first read met is not a
 * change, but any other write after the first read is. A key the second read found held by
 * another transaction Y (which prepared after the first read, so not before T) needs Y not
 * committed before T either: Y prepared after the first read, so it is never "committed
 * before T" by the rule above, only "not committed" or unknown.
 */
import { assert } from "../../raft/mod.ts";
import type {
  KeysRead,
  KeyValue,
  TxnBranch,
  TxnHolder,
  TxnParticipantVote,
} from "../../shard/mod.ts";

/** Whether a transaction an intent named had committed at T. */
export type SeenAtT =
  | { readonly kind: "committed"; readonly branch: TxnBranch }
  | { readonly kind: "notCommitted" }
  | { readonly kind: "unknown" };

/** An intent a read met. */
export interface IntentMet {
  readonly shard: number;
  readonly key: string;
  readonly holder: TxnHolder;
}

/** The first and second read of every participant, by shard. */
export interface TwoReads {
  readonly first: ReadonlyMap<number, KeysRead>;
  readonly second: ReadonlyMap<number, KeysRead>;
}

/** Every transaction whose intent either read met, by txnId: the first place it was met. */
export function intentsMet(
  keysOf: ReadonlyMap<number, readonly string[]>,
  reads: TwoReads,
): Map<string, IntentMet> {
  const met = new Map<string, IntentMet>();
  for (const round of [reads.first, reads.second]) {
    for (const [shard, keys] of keysOf) {
      const read = round.get(shard);
      assert(read !== undefined, "intentsMet: every shard was read");
      read.intents.forEach((holder, position) => {
        if (holder !== null && !met.has(holder.txnId)) {
          met.set(holder.txnId, { shard, key: keys[position]!, holder });
        }
      });
    }
  }
  return met;
}

/**
 * Whether a transaction had committed at T, from its participants (its record's) and their
 * votes (read after the second reads, in participant order; null: no row there).
 */
export function seenAtT(
  participants: readonly number[],
  votes: readonly (TxnParticipantVote | null)[],
  reads: TwoReads,
): SeenAtT {
  assert(votes.length === participants.length, "seenAtT: one vote per participant");
  if (votes.some((vote) => vote !== null && vote.vote !== "commit")) {
    return { kind: "notCommitted" };
  }
  const isPreparedLater = participants.some((shard, position) => {
    const reserved = votes[position]?.reservedRevision;
    const second = reads.second.get(shard);
    return typeof reserved === "number" && second !== undefined && reserved > second.revision;
  });
  if (isPreparedLater) return { kind: "notCommitted" };
  const isPreparedBefore = participants.every((shard, position) => {
    const reserved = votes[position]?.reservedRevision;
    const first = reads.first.get(shard);
    return typeof reserved === "number" && first !== undefined && reserved <= first.revision;
  });
  if (!isPreparedBefore) return { kind: "unknown" };
  const isSuccess = votes.every((vote) => vote!.compareSucceeded);
  return { kind: "committed", branch: isSuccess ? "success" : "failure" };
}

/** Each key's state at T, or an intent whose holder must be waited for. */
export type ReadThrough =
  | { readonly kind: "snapshot"; readonly kvs: ReadonlyMap<string, KeyValue | null> }
  | { readonly kind: "wait"; readonly held: IntentMet };

/**
 * Each key's state at T from the two reads (which saw no change) and what each transaction
 * whose intent they met had done at T.
 */
export function readThrough(
  keysOf: ReadonlyMap<number, readonly string[]>,
  reads: TwoReads,
  seen: ReadonlyMap<string, SeenAtT>,
): ReadThrough {
  const kvs = new Map<string, KeyValue | null>();
  for (const [shard, keys] of keysOf) {
    const first = reads.first.get(shard);
    const second = reads.second.get(shard);
    assert(first !== undefined && second !== undefined, "readThrough: every shard read twice");
    assert(!second.changed, "readThrough: nothing changed between the reads");
    for (const [position, key] of keys.entries()) {
      const later = second.intents[position] ?? null;
      const earlier = first.intents[position] ?? null;
      if (later !== null && later.txnId !== earlier?.txnId) {
        // Prepared after the first read: committed before T is impossible, unknown is not.
        if (seen.get(later.txnId)?.kind !== "notCommitted") {
          return { kind: "wait", held: { shard, key, holder: later } };
        }
      }
      const current = first.kvs[position] ?? null;
      if (earlier === null) {
        kvs.set(key, current);
        continue;
      }
      const state = seen.get(earlier.txnId);
      const preview = first.previews?.[position] ?? null;
      const branchKv = state?.kind === "committed" && preview !== null
        ? preview[state.branch]
        : undefined;
      if (state?.kind === "notCommitted") kvs.set(key, current);
      else if (branchKv !== undefined) kvs.set(key, branchKv);
      else return { kind: "wait", held: { shard, key, holder: earlier } };
    }
  }
  return { kind: "snapshot", kvs };
}
