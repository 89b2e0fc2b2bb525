/**
 * The rebalance driver's watch key (membership_wiring.ts) with stand-in parts: it changes with
 * each input a pass depends on (the members record's version and which members are up, the
 * shard count, the replicas hosted, a change of some local replica's leader) and with nothing
 * else, without visiting any shard.
 */
import { equal, notEqual } from "node:assert/strict";
import type { MembersRecord } from "./members.ts";
import { watchKey } from "./membership_wiring.ts";

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
