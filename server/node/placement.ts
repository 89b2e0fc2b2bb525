/**
 * Deterministic placement of shard replicas on nodes: every node computes the same answer from
 * the same membership, so no coordination is needed to bootstrap the shards.
 *
 * Shard `s` is placed on `replicationFactor` consecutive members (in id order) starting at
 * member `s mod n`, wrapping around. With 3 nodes and a factor of 3 every node hosts every
 * shard; with more nodes the shards' leaders and load spread over all of them.
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
