/**
 * Majority quorum math (Raft §5.2, §5.3), kept pure so it can be tested against an oracle.
 *
 * A group of n voters needs floor(n/2)+1 of them. The committed index is the largest index that
 * such a majority has matched, which is the (floor(n/2)+1)-th largest match.
 */
import { assert } from "./assert.ts";
import type { ReplicaId } from "./types.ts";

/** The outcome of an election as far as the votes so far tell. */
export type VoteResult = "won" | "lost" | "pending";

/** The number of voters that form a majority of `voterCount`. */
export function quorumSize(voterCount: number): number {
  assert(Number.isSafeInteger(voterCount), "voter count must be an integer");
  assert(voterCount >= 1, "a quorum needs at least one voter");
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest value that a majority of `voters` have reached, where `valueOf` gives each voter's
 * value (a match index, an acked read round). Missing voters count as 0.
 *
 * @example
 * ```ts
 * const matches = new Map<number, number>([[1, 5], [2, 3], [3, 9]]);
 * quorumValue([1, 2, 3], (id) => matches.get(id) ?? 0); // 5
 * ```
 */
export function quorumValue(
  voters: readonly ReplicaId[],
  valueOf: (id: ReplicaId) => number,
): number {
  assert(voters.length >= 1, "quorumValue() needs at least one voter");
  const values = voters.map(valueOf);
  for (const value of values) assert(value >= 0, "quorum values must not be negative");
  values.sort((a, b) => b - a);
  const result = values[quorumSize(voters.length) - 1];
  assert(result !== undefined, "the quorum position must exist");
  return result;
}

/** Tallies `votes` (true = granted) from `voters`; votes of non-voters are ignored. */
export function voteResult(
  voters: readonly ReplicaId[],
  votes: ReadonlyMap<ReplicaId, boolean>,
): VoteResult {
  assert(voters.length >= 1, "voteResult() needs at least one voter");
  let granted = 0;
  let rejected = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === true) granted++;
    if (vote === false) rejected++;
  }
  const needed = quorumSize(voters.length);
  assert(granted + rejected <= voters.length, "a voter votes at most once");
  if (granted >= needed) return "won";
  if (rejected > voters.length - needed) return "lost";
  return "pending";
}
