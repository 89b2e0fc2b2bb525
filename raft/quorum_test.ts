/**
 * Quorum math checked against obvious slow oracles on many seeded random inputs: the committed
 * index (the largest value a majority has reached) and election tallies (Raft §5.2, §5.3).
 */
import { equal } from "node:assert/strict";
import { SeededPrng } from "./prng.ts";
import { quorumSize, quorumValue, voteResult } from "./quorum.ts";
import type { ReplicaId } from "./types.ts";

function slowQuorumValue(values: number[]): number {
  let best = 0;
  for (const candidate of values) {
    const reached = values.filter((value) => value >= candidate).length;
    if (reached * 2 > values.length && candidate > best) best = candidate;
  }
  return best;
}

function slowVoteResult(voterCount: number, votes: (boolean | undefined)[]): string {
  const granted = votes.filter((vote) => vote === true).length;
  const undecided = votes.filter((vote) => vote === undefined).length;
  if (granted * 2 > voterCount) return "won";
  if ((granted + undecided) * 2 > voterCount) return "pending";
  return "lost";
}

Deno.test("quorumSize() is a strict majority", async (t) => {
  const cases: [number, number][] = [[1, 1], [2, 2], [3, 2], [4, 3], [5, 3], [7, 4]];
  for (const [voters, size] of cases) {
    await t.step(`${voters} voters need ${size}`, () => equal(quorumSize(voters), size));
  }
});

Deno.test("quorumValue() matches the slow oracle on random match indexes", () => {
  const prng = new SeededPrng(11);
  for (let round = 0; round < 5000; round++) {
    const count = 1 + prng.nextInt(9);
    const voters = Array.from({ length: count }, (_, i) => (i + 1) as ReplicaId);
    const values = voters.map(() => prng.nextInt(prng.nextInt(2) === 0 ? 4 : 1000));
    equal(quorumValue(voters, (id) => values[id - 1]!), slowQuorumValue(values), `${values}`);
  }
});

Deno.test("voteResult() matches the slow oracle and ignores non-voters", () => {
  const prng = new SeededPrng(12);
  for (let round = 0; round < 5000; round++) {
    const count = 1 + prng.nextInt(9);
    const voters = Array.from({ length: count }, (_, i) => (i + 1) as ReplicaId);
    const votes = new Map<ReplicaId, boolean>();
    const list: (boolean | undefined)[] = [];
    for (const voter of voters) {
      const choice = prng.nextInt(3);
      const vote = choice === 0 ? undefined : choice === 1;
      list.push(vote);
      if (vote !== undefined) votes.set(voter, vote);
    }
    votes.set(99 as ReplicaId, true);
    equal(voteResult(voters, votes), slowVoteResult(count, list));
  }
});
