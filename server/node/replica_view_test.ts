/**
 * The replica entries of `/v1/cluster/status` report a snapshot the leader refuses to send
 * (over the snapshot limit) with its size and the limit, only on the replica concerned, and
 * snapshotRefusals() (the source of the error log and of the /metrics gauge) lists it; a
 * status without a refusal keeps the entries exactly as before (the contract is extended, not
 * changed).
 */
import { deepStrictEqual } from "node:assert/strict";
import { type LogIndex, replicaId, type Term } from "../../raft/mod.ts";
import type { ReplicaStatus } from "../../shard/mod.ts";
import { replicaViews, snapshotRefusals } from "./replica_view.ts";

function leaderStatus(refused: { index: number; bytes: number; limit: number } | null) {
  const progress = (id: number, match: number) => ({
    id: replicaId(id),
    match: match as LogIndex,
    next: (match + 1) as LogIndex,
    state: refused !== null && id === 3 ? "snapshot" as const : "replicate" as const,
    isRecentActive: true,
    isLearner: false,
    snapshotTooLarge: refused !== null && id === 3
      ? { ...refused, index: refused.index as LogIndex }
      : null,
  });
  const status: ReplicaStatus = {
    shard: 7,
    id: replicaId(1),
    role: "leader",
    term: 4 as Term,
    vote: replicaId(1),
    leader: replicaId(1),
    commit: 900 as LogIndex,
    applied: 900 as LogIndex,
    firstIndex: 801 as LogIndex,
    lastIndex: 900 as LogIndex,
    confState: { voters: [replicaId(1), replicaId(2), replicaId(3)], learners: [] },
    committedConfState: { voters: [replicaId(1), replicaId(2), replicaId(3)], learners: [] },
    leadTransferee: null,
    quiesced: false,
    progress: [progress(2, 900), progress(3, 120)],
    stats: {
      proposals: 0,
      proposalsDropped: 0,
      applied: 0,
      readsServed: 0,
      turns: 0,
      readyRounds: 0,
      logSyncs: 0,
      logWrites: 0,
      logWriteMs: 0,
      applyMs: 0,
      messagesDroppedInbound: 0,
      leaderDownWakes: 0,
      commitNotices: 0,
      heldProposals: 0,
      heldProposalsAlone: 0,
      snapshotsCreated: 0,
      snapshotsRestored: 0,
      snapshotsStaged: 0,
      turnMsMax: 0,
      applyMsMax: 0,
      applyMsRecent: [],
      storageFailures: 0,
      snapshotFailures: 0,
    },
    stall: null,
  };
  return status;
}

const ALL_UP = () => true;

Deno.test("replicaViews() reports a snapshot the leader refuses, on that replica only", () => {
  const status = leaderStatus({ index: 800, bytes: 2_000_000, limit: 1_000_000 });
  deepStrictEqual(replicaViews(status, ALL_UP), [
    { node: 1, role: "leader", matchIndex: 900, lag: 0, status: "up" },
    { node: 2, role: "follower", matchIndex: 900, lag: 0, status: "up" },
    {
      node: 3,
      role: "follower",
      matchIndex: 120,
      lag: 780,
      status: "up",
      snapshotTooLarge: { bytes: 2_000_000, limit: 1_000_000 },
    },
  ]);
  deepStrictEqual(snapshotRefusals(status), [
    { node: 3, index: 800, bytes: 2_000_000, limit: 1_000_000 },
  ]);
});

Deno.test("replicaViews() without a refusal keeps the entries as they were", () => {
  const status = leaderStatus(null);
  deepStrictEqual(replicaViews(status, (node) => node !== 3), [
    { node: 1, role: "leader", matchIndex: 900, lag: 0, status: "up" },
    { node: 2, role: "follower", matchIndex: 900, lag: 0, status: "up" },
    { node: 3, role: "follower", matchIndex: 120, lag: 780, status: "down" },
  ]);
  deepStrictEqual(snapshotRefusals(status), []);
});
