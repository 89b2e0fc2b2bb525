/**
 * Proposals (private to shard/): a waiter left behind by an entry that a newer leader
 * overwrote, before this replica applied that index, is dropped when this replica (leader again)
 * proposes at the same index, instead of tripping an assertion and killing the node. The
 * sequence is real: a leader at term T proposes at i..i+2, a newer leader truncates them with
 * one entry at i, this replica leads again at term T+2, appends its empty entry at i+1 and a
 * proposal at i+2 (the chaos load test met it). The raw node is a stub that returns the propose
 * results of that sequence; the replica tests cover the same on a real core.
 */
import { equal, rejects } from "node:assert/strict";
import {
  type Entry,
  logIndex,
  type ProposeResult,
  type RawNode,
  term as raftTerm,
} from "../raft/mod.ts";
import type { AspenError } from "./errors.ts";
import { Proposals } from "./_proposals.ts";
import { newReplicaStats } from "./replica_stats.ts";

function stubNode(results: ProposeResult[][]): RawNode {
  return {
    proposeBatch: (datas: readonly Uint8Array[]) => {
      const next = results.shift()!;
      equal(next.length, datas.length);
      return next;
    },
  } as unknown as RawNode;
}

function ok(index: number, term: number): ProposeResult {
  return { kind: "ok", index: logIndex(index), term: raftTerm(term) };
}

function entry(index: number, term: number): Entry {
  return { index: logIndex(index), term: raftTerm(term), type: "normal", data: new Uint8Array() };
}

Deno.test("a proposal at an index held by an earlier term's waiter drops that waiter", async () => {
  const proposals = new Proposals<string>(3, newReplicaStats());
  const old = [1, 2, 3].map(() => proposals.enqueue(new Uint8Array([1])));
  proposals.proposeQueued(stubNode([[
    ok(10, 4),
    ok(11, 4),
    ok(12, 4),
  ]]));
  const fresh = proposals.enqueue(new Uint8Array([2]));
  proposals.proposeQueued(stubNode([[ok(12, 6)]]));
  await rejects(old[2]!, (error: AspenError) => error.code === "proposal_dropped");
  // The newer leader's entry at 10 and this replica's empty entry at 11 drop their waiters.
  proposals.settleApplied(entry(10, 5), undefined);
  proposals.settleApplied(entry(11, 6), undefined);
  await rejects(old[0]!, (error: AspenError) => error.code === "proposal_dropped");
  await rejects(old[1]!, (error: AspenError) => error.code === "proposal_dropped");
  proposals.settleApplied(entry(12, 6), "applied");
  equal(await fresh, "applied");
});
