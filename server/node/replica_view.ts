/**
 * The replica entries of a shard's status (`/v1/cluster/status`), built from the answering
 * replica's Raft status: role, match index, lag, up or down, and, on a leader, the snapshot it
 * refuses to send to a replica because it is over the snapshot limit (that replica stays
 * behind until a snapshot that fits exists, so operators must see it).
 */
import type { ReplicaStatus as ReplicaStatusBody } from "../../api/mod.ts";
import type { ReplicaStatus } from "../../shard/mod.ts";

/** A snapshot a leader will not send to a replica: its size and the limit, in bytes. */
export interface SnapshotTooLargeView {
  readonly bytes: number;
  readonly limit: number;
}

/** One member of a shard's group as the status shows it: the contract's replica status. */
export type ReplicaView = ReplicaStatusBody;

/** A leader's refusal to send a snapshot to `node`. */
export interface SnapshotRefusal extends SnapshotTooLargeView {
  readonly node: number;
  /** The index of the refused snapshot. */
  readonly index: number;
}

/** The replica entries of `status`; `isPeerUp` says whether a node is reachable from here. */
export function replicaViews(
  status: ReplicaStatus,
  isPeerUp: (node: number) => boolean,
): ReplicaView[] {
  const isLeader = status.role === "leader";
  const voters = status.confState.voters as readonly number[];
  const learners = status.confState.learners as readonly number[];
  return [...voters, ...learners].map((node) => {
    const progress = status.progress.find((item) => item.id === node);
    const matchIndex = node === status.id ? status.lastIndex : progress?.match ?? 0;
    // The peer link says whether a replica's node is reachable from here; a leader's
    // "recently active" flag is reset every election timeout and would flicker.
    const isUp = node === status.id || isPeerUp(node);
    const view: ReplicaView = {
      node,
      role: roleOf(node, status, learners.includes(node)),
      matchIndex,
      lag: isLeader ? Math.max(0, status.lastIndex - matchIndex) : 0,
      status: isUp ? "up" : "down",
    };
    const refused = progress?.snapshotTooLarge ?? null;
    if (refused === null) return view;
    return { ...view, snapshotTooLarge: { bytes: refused.bytes, limit: refused.limit } };
  });
}

/** The snapshots a leader refuses to send because they are over the limit (none elsewhere). */
export function snapshotRefusals(status: ReplicaStatus): SnapshotRefusal[] {
  const refusals: SnapshotRefusal[] = [];
  for (const progress of status.progress) {
    const refused = progress.snapshotTooLarge;
    if (refused === null) continue;
    const { index, bytes, limit } = refused;
    refusals.push({ node: progress.id, index, bytes, limit });
  }
  return refusals;
}

function roleOf(
  node: number,
  status: ReplicaStatus,
  isLearner: boolean,
): "leader" | "follower" | "learner" | "candidate" {
  if (node === status.leader) return "leader";
  if (isLearner) return "learner";
  if (node === status.id && status.role !== "follower" && status.role !== "leader") {
    return "candidate";
  }
  return "follower";
}
