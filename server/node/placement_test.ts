/**
 * Placement: deterministic, independent of member order, the requested number of distinct
 * replicas, every node used, and all shards on every node when the factor covers the cluster.
 */
import { deepEqual, equal } from "node:assert/strict";
import { replicasOf, shardsOf } from "./placement.ts";

Deno.test("replicasOf() places consecutive members and ignores member order", () => {
  deepEqual(replicasOf([1, 2, 3, 4, 5], 0, 3), [1, 2, 3]);
  deepEqual(replicasOf([5, 4, 3, 2, 1], 3, 3), [4, 5, 1]);
  deepEqual(replicasOf([1, 2], 1, 3), [2, 1]);
  deepEqual(replicasOf([7], 9, 3), [7]);
});

Deno.test("shardsOf() spreads shards over every node", () => {
  const members = [1, 2, 3, 4, 5];
  const counts = members.map((node) => shardsOf(members, node, 20, 3).length);
  deepEqual(counts, [12, 12, 12, 12, 12]);
  for (let shard = 0; shard < 20; shard++) equal(new Set(replicasOf(members, shard, 3)).size, 3);
});

Deno.test("with three nodes and factor three every node hosts every shard", () => {
  for (const node of [1, 2, 3]) deepEqual(shardsOf([1, 2, 3], node, 4, 3), [0, 1, 2, 3]);
});
