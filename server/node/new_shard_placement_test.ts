/**
 * placeNewShards(): the voters of shards a shard move creates, on the members as they are now
 * (active and up only), spread by the current load, deterministic whatever the input order.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { SeededPrng } from "../../raft/mod.ts";
import {
  type MemberState,
  type PlacementCandidate,
  placeNewShards,
  type ShardView,
} from "./rebalancer.ts";

function member(id: number, state: MemberState = "active", isUp = true): PlacementCandidate {
  return { id, state, isUp };
}

function shard(id: number, voters: number[], leader: number | null): ShardView {
  return { shard: id, voters, learners: [], caughtUpLearners: [], leader };
}

function placed(result: ReturnType<typeof placeNewShards>) {
  ok(result.isPlaced, `not placed: ${result.isPlaced ? "" : result.message}`);
  return result.shards;
}

Deno.test("placeNewShards() uses only active members that are up", () => {
  const members = [
    member(1),
    member(2, "active", false),
    member(3),
    member(4),
    member(5, "joining"),
    member(6, "draining"),
    member(7, "removed", false),
    member(8, "dead", false),
  ];
  const shards = placed(placeNewShards({
    members,
    replicationFactor: 3,
    shards: [shard(0, [1, 2, 3], 1), shard(1, [2, 3, 6], 2)],
    newShards: [2, 3, 4],
  }));
  for (const { voters } of shards) {
    equal(voters.length, 3);
    ok(voters.every((node) => [1, 3, 4].includes(node)), `voters ${voters}`);
  }
});

Deno.test("placeNewShards() fills the least loaded members first and evens the load", () => {
  // Node 4 joined a 3-node cluster and holds nothing yet: every new shard takes it.
  const shards = placed(placeNewShards({
    members: [1, 2, 3, 4].map((id) => member(id)),
    replicationFactor: 3,
    shards: [shard(0, [1, 2, 3], 1), shard(1, [1, 2, 3], 2), shard(2, [1, 2, 3], 3)],
    newShards: [3, 4, 5],
  }));
  equal(shards.length, 3);
  deepEqual(shards.map((item) => item.shard), [3, 4, 5]);
  for (const { voters } of shards) ok(voters.includes(4), `voters ${voters}`);
  const load = new Map([[1, 3], [2, 3], [3, 3], [4, 0]]);
  for (const { voters } of shards) for (const node of voters) load.set(node, load.get(node)! + 1);
  // Node 4 can take one replica per new shard; the others share the rest evenly.
  deepEqual([...load], [[1, 5], [2, 5], [3, 5], [4, 3]]);
});

Deno.test("placeNewShards() puts the preferred leader first: the voter leading fewest", () => {
  const shards = placed(placeNewShards({
    members: [1, 2, 3].map((id) => member(id)),
    replicationFactor: 3,
    shards: [shard(0, [1, 2, 3], 1), shard(1, [1, 2, 3], 1), shard(2, [1, 2, 3], 2)],
    newShards: [3, 4],
  }));
  deepEqual(shards, [{ shard: 3, voters: [3, 1, 2] }, { shard: 4, voters: [2, 1, 3] }]);
});

Deno.test("placeNewShards() refuses fewer active up members than the factor", () => {
  const result = placeNewShards({
    members: [member(1), member(2), member(3, "active", false), member(4, "joining")],
    replicationFactor: 3,
    shards: [shard(0, [1, 2, 3], 1)],
    newShards: [1],
  });
  ok(!result.isPlaced);
  equal(result.available, 2);
  equal(result.needed, 3);
  match(result.message, /2 active member\(s\) are up.*3 replica\(s\)/);
});

Deno.test("placeNewShards() keeps a cluster smaller than the factor at its size", () => {
  // A single node with the default factor 3 hosts one replica of each shard, as at bootstrap.
  deepEqual(
    placed(placeNewShards({
      members: [member(1)],
      replicationFactor: 3,
      shards: [shard(0, [1], 1)],
      newShards: [1],
    })),
    [{ shard: 1, voters: [1] }],
  );
  // A removed member does not count towards the cluster's size; a down one does.
  const result = placeNewShards({
    members: [member(1), member(2, "active", false), member(3, "removed", false)],
    replicationFactor: 3,
    shards: [shard(0, [1, 2], 1)],
    newShards: [1],
  });
  ok(!result.isPlaced);
  equal(result.needed, 2);
});

Deno.test("placeNewShards() answers the same whatever the order of its lists", () => {
  const prng = new SeededPrng(7);
  for (let round = 0; round < 200; round++) {
    const ids = Array.from({ length: 3 + prng.nextInt(6) }, (_, i) => i + 1);
    const states: MemberState[] = ["active", "active", "active", "joining", "draining"];
    const members = ids.map((id) => member(id, states[prng.nextInt(states.length)]!, true));
    members[0] = member(1);
    members[1] = member(2);
    members[2] = member(3);
    const shards = Array.from({ length: prng.nextInt(8) }, (_, id) => {
      const voters = shuffle(prng, ids).slice(0, 3);
      return shard(id, voters, voters[prng.nextInt(3)]!);
    });
    const newShards = Array.from({ length: 1 + prng.nextInt(4) }, (_, i) => shards.length + i);
    const input = { members, replicationFactor: 3, shards, newShards };
    const first = placeNewShards(input);
    const again = placeNewShards({
      ...input,
      members: shuffle(prng, members),
      shards: shuffle(prng, shards).map((item) => ({
        ...item,
        voters: shuffle(prng, item.voters),
      })),
      newShards: shuffle(prng, newShards),
    });
    deepEqual(again, first);
    for (const { voters } of placed(first)) {
      equal(new Set(voters).size, 3, "distinct voters");
      const active = voters.every((node) => members.find((m) => m.id === node)?.state === "active");
      ok(active, `round ${round}: voters ${voters}`);
    }
  }
});

function shuffle<T>(prng: SeededPrng, items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = prng.nextInt(i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
