/**
 * Deterministic placement of shard replicas on nodes: every node computes the same answer from
 * the same membership, so no coordination is needed to bootstrap the shards.
 *
 * Shard `s` is placed on `replicationFactor` consecutive members (in id order) starting at
 * member `s mod n`, wrapping around. With 3 nodes and a factor of 3 every node hosts every
 * shard; with more nodes the shards' leaders and load spread over all of them.
 *
 * This static placement bootstraps the shards a cluster starts with. Shards a shard move adds
 * are placed on the members as they are then (rebalancer.ts `placeNewShards`, recorded in the
 * move record); only a move record without voters, written by an older node, falls back here.
 */
import { assert } from "../../raft/mod.ts";

/** The node ids hosting shard `shard`, in placement order. */
export function replicasOf(
  members: readonly number[],
  shard: number,
  replicationFactor: number,
): number[] {
  assert(members.length > 0, "placement needs at least one member");
  assert(Number.isSafeInteger(shard) && shard >= 0, "shard id must be a non-negative integer");
  assert(replicationFactor >= 1, "replication factor must be at least 1");
  const sorted = [...members].sort((a, b) => a - b);
  assert(new Set(sorted).size === sorted.length, "members must be distinct");
  const count = Math.min(replicationFactor, sorted.length);
  const replicas: number[] = [];
  for (let i = 0; i < count; i++) replicas.push(sorted[(shard + i) % sorted.length]!);
  return replicas;
}

/** The shards `node` hosts among `shardCount` shards. */
export function shardsOf(
  members: readonly number[],
  node: number,
  shardCount: number,
  replicationFactor: number,
): number[] {
  const shards: number[] = [];
  for (let shard = 0; shard < shardCount; shard++) {
    if (replicasOf(members, shard, replicationFactor).includes(node)) shards.push(shard);
  }
  return shards;
}

/**
 * Whether `node` hosts a replica of `shard`. Placement decides, with one exception: a node
 * configured with `local_shards` hosts, of the shards its configuration counts (ids below
 * `configuredCount`, the `num_shards` it starts with), only those listed, so that a restart or
 * a shard move never opens a replica the operator left out. A shard added later by a shard
 * move (id at or above `configuredCount`) is hosted where placement puts it, `local_shards` or
 * not: every node computes the same voters for it, and a replica placed but never opened would
 * leave the new shard short of its replication factor. (That is the fallback for a move record
 * without voters; see shard_mover.ts `newReplicaVoters`.)
 */
export function hostsShard(options: {
  readonly members: readonly number[];
  readonly node: number;
  readonly shard: number;
  readonly replicationFactor: number;
  readonly localShards: readonly number[] | null;
  readonly configuredCount: number;
}): boolean {
  const { members, node, shard, replicationFactor, localShards, configuredCount } = options;
  assert(Number.isSafeInteger(configuredCount), "hostsShard: the configured count is an integer");
  assert(configuredCount >= 1, "hostsShard: at least one configured shard");
  const isPlaced = replicasOf(members, shard, replicationFactor).includes(node);
  if (localShards === null || shard >= configuredCount) return isPlaced;
  const isListed = localShards.includes(shard);
  // Config validation refuses a listed shard that placement does not put here.
  if (isListed) assert(isPlaced, "hostsShard: a listed shard is placed on this node");
  return isListed;
}
