/**
 * `POST /v1/cluster/nodes/{id}/remove` and `/replace`: marks a member `draining` in the
 * members record, after checking that the other healthy nodes can hold the replication factor
 * (rebalancer.ts, checkRemoveNode). The rebalance driver then moves the node's replicas away
 * (remove: from the node itself while it runs; replace: rebuilt from the survivors, the node
 * being dead) and marks it `removed` once no shard lists it.
 */
import type { MemberState as ApiMemberState, RemoveNodeResponse } from "../../api/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import { memberOf, type MembersRecord, withMemberState } from "./members.ts";
import { checkRemoveNode } from "./rebalancer.ts";
import { clusterView } from "./rebalance_driver.ts";

/** What a removal needs from the node. */
export interface RemovalSources {
  /** Reads the members record linearizably (null: not written yet). */
  refresh(): Promise<MembersRecord | null>;
  /** Changes it by compare-and-swap. */
  update(change: (record: MembersRecord) => MembersRecord): Promise<MembersRecord>;
  /** Whether the peer link to `node` is up (the answering node counts as up). */
  isUp(node: number): boolean;
  readonly replicationFactor: number;
}

/**
 * Starts removing `node` (`mode` remove) or replacing a dead one (`mode` replace).
 *
 * @throws {AspenError} `node_not_found`, `node_removed` when it is removed already,
 * `insufficient_capacity` when the other healthy nodes cannot hold the replication factor,
 * `conflict` for a replace of a node that is up, `shard_unavailable` while shard 0 has no
 * record yet.
 */
export async function removeNode(
  sources: RemovalSources,
  node: number,
  mode: "remove" | "replace",
): Promise<RemoveNodeResponse> {
  const record = await sources.refresh();
  if (record === null) {
    throw new AspenError(
      "shard_unavailable",
      `Cannot ${mode} node ${node}: no members record yet`,
      {
        shard: 0,
      },
    );
  }
  const member = memberOf(record, node);
  if (member === null) {
    throw new AspenError("node_not_found", `Cannot ${mode} node ${node}: it is not a member`, {
      node,
    });
  }
  if (member.state === "removed") {
    throw new AspenError("node_removed", `Cannot ${mode} node ${node}: it is removed already`, {
      node,
    });
  }
  if (member.state === "draining") return { node, state: "draining", previousState: "draining" };
  if (mode === "replace" && sources.isUp(node)) {
    throw new AspenError(
      "conflict",
      `Cannot replace node ${node}: it is up; replace is for a dead node, use remove to drain ` +
        "a running one",
      { node },
    );
  }
  const problem = checkRemoveNode(clusterView(record, [], sources), node);
  if (problem !== null) {
    throw new AspenError("insufficient_capacity", `${problem}; add a node first`, {
      node,
      replicationFactor: sources.replicationFactor,
    });
  }
  await sources.update((latest) => withMemberState(latest, node, "draining"));
  return { node, state: "draining", previousState: member.state as ApiMemberState };
}
