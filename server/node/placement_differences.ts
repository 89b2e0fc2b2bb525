/**
 * Where the cluster's views of replica placement disagree, for `/v1/cluster/status`: the
 * members record, the placement record (routing), the replicas each node says it hosts and each
 * shard's Raft configuration as its leader reports it (latest and committed). The rebalance
 * driver repairs every difference found here on its next passes (rebalance_driver.ts), so a
 * difference that lasts says the repair is stuck; the status shows them so that operators see it.
 *
 * ```text
 *   shard status (replicas = latest config, committedReplicas) ─┐
 *   nodes' hosted shards (those that answered) ─────────────────┼─▶ placementDifferences()
 *   members record, placement record ───────────────────────────┘        │
 *                                         change_pending, replica_missing, replica_orphaned,
 *                                         member_removed, placement_stale (shard order)
 * ```
 *
 * Only shards whose leader answered are compared: another replica's view may be behind.
 */
import type { PlacementDifference } from "../../api/mod.ts";
import type { MembersRecord } from "./members.ts";
import type { PlacementRecord } from "./placement_record.ts";
import type { ShardStatusView } from "./shard_status_view.ts";

/** The most differences one status lists (the first ones, in shard order). */
export const PLACEMENT_DIFFERENCES_MAX = 256;

/** What the comparison reads. */
export interface PlacementViews {
  readonly shards: readonly ShardStatusView[];
  /** The shards each node hosts, for the nodes that answered now. */
  readonly hosted: ReadonlyMap<number, readonly number[]>;
  /** Null while the record is unknown: no member is judged. */
  readonly members: MembersRecord | null;
  /** Null or empty: routing follows the static placement, nothing to compare. */
  readonly placement: PlacementRecord | null;
}

/** The differences among `views`, shard by shard (see the module doc). */
export function placementDifferences(views: PlacementViews): PlacementDifference[] {
  const differences: PlacementDifference[] = [];
  const add = (difference: PlacementDifference) => {
    if (differences.length < PLACEMENT_DIFFERENCES_MAX) differences.push(difference);
  };
  const memberStates = views.members === null
    ? null
    : new Map(views.members.members.map((member) => [member.id, member.state]));
  const byShard = [...views.shards].sort((a, b) => a.id - b.id);
  for (const shard of byShard) {
    if (shard.leader === null || shard.replicas.every((replica) => replica.role !== "leader")) {
      continue;
    }
    const latest = new Set(shard.replicas.map((replica) => replica.node));
    const committed = new Set(shard.committedReplicas);
    const id = shard.id;
    configDifferences(id, latest, committed, memberStates, add);
    for (const node of sorted(latest)) {
      const hosted = views.hosted.get(node);
      if (hosted === undefined || hosted.includes(id)) continue;
      add({
        kind: "replica_missing",
        shard: id,
        node,
        message: `Shard ${id} lists node ${node}, which does not host its replica`,
      });
    }
    for (const [node, hosted] of [...views.hosted].sort((a, b) => a[0] - b[0])) {
      if (!hosted.includes(id) || latest.has(node) || committed.has(node)) continue;
      add({
        kind: "replica_orphaned",
        shard: id,
        node,
        message: `Node ${node} hosts a replica of shard ${id}, which no configuration lists`,
      });
    }
    const routed = views.placement?.get(id);
    if (routed !== undefined && routed.join(",") !== sorted(latest).join(",")) {
      add({
        kind: "placement_stale",
        shard: id,
        node: null,
        message: `The placement record routes shard ${id} to nodes ${routed.join(", ")}; ` +
          `its configuration lists ${sorted(latest).join(", ")}`,
      });
    }
  }
  return differences;
}

/** A change not yet committed, and a listed node the members record marks removed or lacks. */
function configDifferences(
  id: number,
  latest: ReadonlySet<number>,
  committed: ReadonlySet<number>,
  memberStates: ReadonlyMap<number, string> | null,
  add: (difference: PlacementDifference) => void,
): void {
  for (const node of sorted([...latest, ...committed])) {
    if (latest.has(node) && !committed.has(node)) {
      add({
        kind: "change_pending",
        shard: id,
        node,
        message: `Shard ${id} is adding node ${node}: the change is not committed yet`,
      });
    } else if (!latest.has(node) && committed.has(node)) {
      add({
        kind: "change_pending",
        shard: id,
        node,
        message: `Shard ${id} is removing node ${node}: the change is not committed yet`,
      });
    }
    const state = memberStates?.get(node);
    if (memberStates !== null && (state === undefined || state === "removed")) {
      add({
        kind: "member_removed",
        shard: id,
        node,
        message: `Shard ${id} lists node ${node}, which the members record ` +
          (state === undefined ? "does not know" : "marks removed"),
      });
    }
  }
}

function sorted(nodes: Iterable<number>): number[] {
  return [...new Set(nodes)].sort((a, b) => a - b);
}
