/**
 * Proposals (private to shard/): a waiter left behind by an entry that a newer leader
 * overwrote, before this replica applied that index, is dropped when this replica (leader again)
 * proposes at the same index, instead of tripping an assertion and killing the node. The
 * sequence is real: a leader at term T proposes at i..i+2, a newer leader truncates them with
 * one entry at i, this replica leads again at term T+2, appends its empty entry at i+1 and a
 * proposal at i+2 (the chaos load test met it). The raw node is a stub that returns the propose
 * results of that sequence; the replica tests cover the same on a real core.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import {
  type Entry,
  logIndex,
  type ProposeResult,
  type RawNode,
  replicaId,
  term as raftTerm,
} from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { PROPOSAL_HOLD_MS, PROPOSALS_PENDING_MAX } from "./replica_limits.ts";
import { Proposals } from "./_proposals.ts";
import { newReplicaStats } from "./replica_stats.ts";

function stubNode(results: ProposeResult[][], role = "leader"): RawNode {
  return {
    role,
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
  proposals.proposeQueued(
    stubNode([[
      ok(10, 4),
      ok(11, 4),
      ok(12, 4),
    ]]),
    0,
  );
  const fresh = proposals.enqueue(new Uint8Array([2]));
  proposals.proposeQueued(stubNode([[ok(12, 6)]]), 0);
  await rejects(old[2]!, (error: AspenError) => error.code === "proposal_dropped");
  // The newer leader's entry at 10 and this replica's empty entry at 11 drop their waiters.
  proposals.settleApplied(entry(10, 5), undefined);
  proposals.settleApplied(entry(11, 6), undefined);
  await rejects(old[0]!, (error: AspenError) => error.code === "proposal_dropped");
  await rejects(old[1]!, (error: AspenError) => error.code === "proposal_dropped");
  proposals.settleApplied(entry(12, 6), "applied");
  equal(await fresh, "applied");
});

Deno.test("a held proposal waits for another, goes first with it, or alone when due", async () => {
  const stats = newReplicaStats();
  const proposals = new Proposals<string>(3, stats);
  const held = proposals.enqueue(new Uint8Array([1]), 1_000);
  equal(proposals.heldDueMs(), 1_000 + PROPOSAL_HOLD_MS);
  equal(proposals.isDue(1_000 + PROPOSAL_HOLD_MS - 1), false);
  // Nothing else to propose, the hold not over: the stub would fail if it were asked.
  proposals.proposeQueued(stubNode([]), 1_005);
  const fresh = proposals.enqueue(new Uint8Array([2]));
  const proposed: number[] = [];
  const node = {
    role: "leader",
    proposeBatch: (datas: readonly Uint8Array[]) => {
      proposed.push(...datas.map((data) => data[0]!));
      return datas.map((_, i) => ok(20 + i, 2));
    },
  } as unknown as RawNode;
  proposals.proposeQueued(node, 1_006);
  deepEqual(proposed, [1, 2], "the held proposal shares the round, first");
  equal(proposals.heldDueMs(), null);
  proposals.settleApplied(entry(20, 2), "held");
  proposals.settleApplied(entry(21, 2), "fresh");
  equal(await held, "held");
  equal(await fresh, "fresh");

  equal(stats.heldProposalsAlone, 0);
  const alone = proposals.enqueue(new Uint8Array([3]), 2_000);
  equal(proposals.isDue(2_000 + PROPOSAL_HOLD_MS), true);
  proposals.proposeQueued(node, 2_000 + PROPOSAL_HOLD_MS);
  deepEqual(proposed, [1, 2, 3], "alone once its hold ended");
  equal(stats.heldProposals, 2);
  equal(stats.heldProposalsAlone, 1);
  proposals.settleApplied(entry(20, 2), "alone");
  equal(await alone, "alone");
});

Deno.test("held proposals go at once on a follower or released, and count as pending", async () => {
  const proposals = new Proposals<string>(3, newReplicaStats());
  const onFollower = proposals.enqueue(new Uint8Array([1]), 0);
  proposals.proposeQueued(
    stubNode([[{ kind: "not_leader", leader: replicaId(2) }]], "follower"),
    1,
  );
  await rejects(onFollower, (error: AspenError) => error.code === "not_leader");
  const released = proposals.enqueue(new Uint8Array([1]), 0);
  proposals.releaseHeld();
  equal(proposals.isDue(1), true);
  proposals.proposeQueued(stubNode([[ok(5, 1)]]), 1);
  proposals.settleApplied(entry(5, 1), "released");
  equal(await released, "released");
  for (let i = 0; i < PROPOSALS_PENDING_MAX; i++) {
    proposals.enqueue(new Uint8Array([1]), 0).catch(() => {});
  }
  equal(proposals.limitError()?.code, "too_many_requests");
  proposals.rejectAll(new AspenError("shard_unavailable", "closed"));
  equal(proposals.heldDueMs(), null);
});
