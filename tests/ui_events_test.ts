/**
 * deriveEvents(): the events feed from two snapshots of the fake cluster. Killing a node gives
 * "node down" and one "new leader" event per shard it led (with the new term); reviving it gives
 * "node up"; a term bump with the same leader is a re-election; losing a leader, an election
 * without a leader, and shards and nodes appearing or going are each reported; an unchanged
 * cluster gives no events.
 */
import { deepEqual, equal } from "node:assert/strict";
import type { ClusterStatus } from "../api/mod.ts";
import { deriveEvents } from "../ui/app/events.ts";
import { FakeCluster } from "./fixtures/ui_cluster.ts";

function cluster(): FakeCluster {
  return new FakeCluster({ nodeCount: 3, shardCount: 4, replicationFactor: 3 });
}

function withShard(status: ClusterStatus, id: number, change: object): ClusterStatus {
  const shards = status.shards.map((shard) => shard.id === id ? { ...shard, ...change } : shard);
  return { ...status, shards };
}

Deno.test("deriveEvents() gives nothing for an unchanged cluster", () => {
  const fake = cluster();
  const older = fake.status();
  fake.tick();
  deepEqual(deriveEvents(older, fake.status()), []);
});

Deno.test("deriveEvents() reports a node going down and its shards' new leaders", () => {
  const fake = cluster();
  const older = fake.status();
  const led = older.shards.filter((shard) => shard.leader === 1).map((shard) => shard.id);
  fake.killNode(1);
  const events = deriveEvents(older, fake.status());
  equal(events[0]!.kind, "node-down");
  equal(events[0]!.severity, "critical");
  equal(events[0]!.message, "Node 1 is down (127.0.0.1:8001)");
  const elected = events.filter((event) => event.kind === "leader-elected");
  deepEqual(elected.map((event) => event.shard), led);
  const newer = fake.status();
  for (const event of elected) {
    const shard = newer.shards[event.shard!]!;
    equal(event.node, shard.leader);
    equal(
      event.message,
      `Shard ${shard.id}: node ${shard.leader} is leader in term ${shard.term} (was node 1)`,
    );
  }
  equal(events.length, 1 + led.length);
});

Deno.test("deriveEvents() reports a node coming back up", () => {
  const fake = cluster();
  fake.killNode(2);
  const older = fake.status();
  fake.reviveNode(2);
  const events = deriveEvents(older, fake.status());
  deepEqual(events.map((event) => [event.kind, event.node]), [["node-up", 2]]);
});

Deno.test("deriveEvents() tells elections apart", async (t) => {
  const older = cluster().status();
  const term = older.shards[0]!.term;
  const leader = older.shards[0]!.leader;
  const cases: [string, object, string, string][] = [
    [
      "re-election",
      { term: term + 1 },
      "term-advanced",
      `Shard 0: node ${leader} was re-elected leader in term ${term + 1}`,
    ],
    [
      "lost leader",
      { leader: null, term: term + 1 },
      "leader-lost",
      `Shard 0 lost its leader (node ${leader}); term ${term + 1}`,
    ],
  ];
  for (const [name, change, kind, message] of cases) {
    await t.step(name, () => {
      const events = deriveEvents(older, withShard(older, 0, change));
      deepEqual(events.map((event) => [event.kind, event.message]), [[kind, message]]);
    });
  }
  await t.step("an election still without a leader", () => {
    const leaderless = withShard(older, 0, { leader: null });
    const events = deriveEvents(leaderless, withShard(older, 0, { leader: null, term: term + 2 }));
    deepEqual(events.map((event) => event.kind), ["term-advanced"]);
    equal(events[0]!.severity, "warning");
  });
});

Deno.test("deriveEvents() reports shards and nodes that appear or go", () => {
  const older = cluster().status();
  const newer: ClusterStatus = {
    ...older,
    nodes: [...older.nodes.slice(1), { ...older.nodes[0]!, id: 9 }],
    shards: [...older.shards.slice(0, 3), { ...older.shards[3]!, id: 4 }],
  };
  const kinds = deriveEvents(older, newer).map((event) => `${event.kind}:${event.node ?? ""}`);
  deepEqual(kinds.slice(0, 2), ["node-joined:9", "node-left:1"]);
  const shards = deriveEvents(older, newer).filter((event) => event.shard !== null);
  deepEqual(shards.map((event) => [event.kind, event.shard]), [
    ["shard-added", 4],
    ["shard-removed", 3],
  ]);
});

Deno.test("deriveEvents() reports storage alarms raised and cleared, not a node going down", () => {
  const fake = cluster();
  const first = fake.status();
  fake.raiseAlarm(2, { type: "no_space", message: "below the reserve" });
  fake.raiseAlarm(3, { type: "storage_error", shard: 1, message: "disk I/O error" });
  const second = fake.status();
  deepEqual(
    deriveEvents(first, second).map((event) => [event.kind, event.severity, event.message]),
    [
      ["alarm-raised", "critical", "Node 2: No space alarm: below the reserve"],
      ["alarm-raised", "critical", "Node 3 · shard 1: Storage error alarm: disk I/O error"],
    ],
  );
  fake.killNode(3);
  fake.clearAlarms(2);
  const third = fake.status();
  const events = deriveEvents(second, third).filter((event) => event.kind.startsWith("alarm"));
  deepEqual(events.map((event) => [event.kind, event.node, event.shard, event.message]), [
    ["alarm-cleared", 2, null, "Node 2: No space alarm cleared"],
  ], "a node that went down reports nothing about its alarms");
});
