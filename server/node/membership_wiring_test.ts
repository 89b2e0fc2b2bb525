/**
 * The rebalance driver's watch key (membership_wiring.ts) with stand-in parts: it changes with
 * each input a pass depends on (the members record's version and which members are up, the
 * shard count, the replicas hosted, a change of some local replica's leader) and with nothing
 * else, without visiting any shard; and observeShards() takes the views each node sends for the
 * shards it leads, asking only the other shards one by one.
 */
import { deepEqual, equal, notEqual } from "node:assert/strict";
import type { ClusterRouter } from "./cluster_router.ts";
import type { MembersRecord } from "./members.ts";
import { observeShards, watchKey } from "./membership_wiring.ts";
import type { ShardStatusView } from "./shard_status_view.ts";

Deno.test("watchKey() moves with the members, shard count, replicas and leader changes", () => {
  let current: MembersRecord | null = {
    version: 3,
    members: [{ id: 1, state: "active" }, { id: 2, state: "active" }],
  } as unknown as MembersRecord;
  const up = new Set([1, 2]);
  const shards = new Map<number, unknown>([[0, {}], [1, {}]]);
  const service = { shardCount: 2 };
  const leadership = { count: 0 };
  const node = {
    membership: {
      get current() {
        return current;
      },
    },
    shards,
    service,
    hosting: { leadership },
  };
  const key = () => watchKey(node, (id) => up.has(id));
  const first = key();
  equal(key(), first, "nothing changed: the same key");
  leadership.count++;
  const led = key();
  notEqual(led, first, "a local replica's leader changed");
  up.delete(2);
  const down = key();
  notEqual(down, led, "a member went down");
  shards.set(2, {});
  const hosted = key();
  notEqual(hosted, down, "a replica hosted");
  service.shardCount = 4;
  const moved = key();
  notEqual(moved, hosted, "the shard count changed");
  current = { ...current!, version: 4 };
  notEqual(key(), moved, "the members record changed");
});

Deno.test("observeShards() takes node batches, asks only the shards none covered", async () => {
  const asked: number[] = [];
  const view = (id: number, leader: number, term: number) =>
    ({
      id,
      leader,
      term,
      replicas: [
        { node: leader, role: "leader", lag: 0, matchIndex: 12 },
        { node: 9, role: "learner", lag: 5, matchIndex: 7 },
      ],
      committedReplicas: [leader, 9],
    }) as unknown as ShardStatusView;
  const router = {
    execute: <T>(shard: number) => {
      asked.push(shard);
      return Promise.resolve(view(shard, 3, 1) as T);
    },
  } as Pick<ClusterRouter, "execute">;
  const observed = await observeShards(router, 4, { nowMs: () => 0 }, () =>
    Promise.resolve([
      [view(0, 1, 2), view(2, 1, 7)],
      null, // A node that did not answer: its shards are asked one by one.
      [view(2, 2, 8), view(5, 2, 1)], // A later term wins; a shard past the count is ignored.
    ]));
  deepEqual(asked, [1, 3]);
  deepEqual(observed.map((shard) => [shard.shard, shard.leader, shard.term]), [
    [0, 1, 2],
    [1, 3, 1],
    [2, 2, 8],
    [3, 3, 1],
  ]);
  deepEqual(observed[0]!.learners, [{ node: 9, lag: 5, matchIndex: 7 }]);
  deepEqual(observed[0]!.voters, [1]);
});
