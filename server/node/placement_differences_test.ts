/**
 * placementDifferences(): agreeing views give none; each kind of disagreement is named with
 * its shard and node; shards without a leader's answer are not judged; the list is capped.
 */
import { deepEqual, equal } from "node:assert/strict";
import type { ReplicaStatus } from "../../api/mod.ts";
import { seedMembers, withMemberState } from "./members.ts";
import { PLACEMENT_DIFFERENCES_MAX, placementDifferences } from "./placement_differences.ts";
import type { ShardStatusView } from "./shard_status_view.ts";

const STATS = {
  proposalsPerSecond: 0,
  optimisticTxns: 0,
  conflicts: 0,
  applyBatchMsP99: null,
  applyLatencyP99Ms: null,
  turnMsMax: 0,
};

function shard(
  id: number,
  options: { leader: number | null; latest: number[]; committed?: number[] },
): ShardStatusView {
  const replicas: ReplicaStatus[] = options.latest.map((node) => ({
    node,
    role: node === options.leader ? "leader" : "follower",
    matchIndex: 10,
    lag: 0,
    status: "up",
  }));
  return {
    id,
    leader: options.leader,
    term: 2,
    commitIndex: 10,
    appliedIndex: 10,
    lastIndex: 10,
    replicas,
    committedReplicas: options.committed ?? options.latest,
    stats: STATS,
  };
}

const peers = [1, 2, 3, 4].map((id) => ({ id, address: `h:${id}` }));
const members = seedMembers(peers, { id: 1, httpAddress: "" });

Deno.test("placementDifferences: views that agree have no difference", () => {
  deepEqual(
    placementDifferences({
      shards: [
        shard(0, { leader: 1, latest: [1, 2, 3] }),
        shard(1, { leader: 2, latest: [2, 3, 4] }),
      ],
      hosted: new Map([[1, [0]], [2, [0, 1]], [3, [0, 1]], [4, [1]]]),
      members,
      placement: new Map([[0, [1, 2, 3]], [1, [2, 3, 4]]]),
    }),
    [],
  );
});

Deno.test("placementDifferences names every kind of disagreement", () => {
  const differences = placementDifferences({
    shards: [
      // Node 4 added as the latest configuration, not committed; node 3 removed, not committed.
      shard(0, { leader: 1, latest: [1, 2, 4], committed: [1, 2, 3] }),
      // Node 2 is listed but does not host shard 1; node 1 hosts it unlisted.
      shard(1, { leader: 3, latest: [2, 3, 4] }),
      // Lists node 5, unknown to the record, and routing still sends it to nodes 2, 3, 4.
      shard(2, { leader: 3, latest: [3, 4, 5] }),
    ],
    hosted: new Map([[1, [0, 1]], [2, [0]], [3, [0, 1, 2]], [4, [0, 1, 2]]]),
    members: withMemberState(members, 4, "draining"),
    placement: new Map([[0, [1, 2, 4]], [2, [2, 3, 4]]]),
  });
  deepEqual(
    differences.map(({ kind, shard, node }) => `${kind} ${shard} ${node}`),
    [
      "change_pending 0 3",
      "change_pending 0 4",
      "replica_missing 1 2",
      "replica_orphaned 1 1",
      "member_removed 2 5",
      "placement_stale 2 null",
    ],
  );
  equal(differences[0]!.message, "Shard 0 is removing node 3: the change is not committed yet");
  equal(
    differences[5]!.message,
    "The placement record routes shard 2 to nodes 2, 3, 4; its configuration lists 3, 4, 5",
  );
});

Deno.test("placementDifferences skips shards without a leader's answer", () => {
  deepEqual(
    placementDifferences({
      shards: [
        shard(0, { leader: null, latest: [1, 2, 9] }),
        shard(1, { leader: 2, latest: [1, 3] }),
      ],
      hosted: new Map([[1, []]]),
      members,
      placement: null,
    }),
    [],
    "a follower's view, and a leader answer that lists the leader elsewhere, are not judged",
  );
});

Deno.test("placementDifferences is capped at PLACEMENT_DIFFERENCES_MAX", () => {
  const shards = Array.from(
    { length: PLACEMENT_DIFFERENCES_MAX + 10 },
    (_, id) => shard(id, { leader: 1, latest: [1, 2, 3] }),
  );
  const differences = placementDifferences({
    shards,
    hosted: new Map([[2, []]]),
    members,
    placement: null,
  });
  equal(differences.length, PLACEMENT_DIFFERENCES_MAX);
  equal(differences[0]!.shard, 0);
});
