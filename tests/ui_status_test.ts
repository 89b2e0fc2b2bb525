/**
 * parseClusterStatus(): a status that follows the contract comes back equal (with the
 * console's added fields kept); older servers' omissions become null and a leader of 0 means
 * none; each kind of malformed body is refused with a message that names the field.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { JsonFormatError } from "../ui/app/json_read.ts";
import { parseClusterStatus } from "../ui/app/status.ts";
import { FakeCluster } from "./fixtures/ui_cluster.ts";

function fakeStatus() {
  const cluster = new FakeCluster({ nodeCount: 3, shardCount: 4, replicationFactor: 3 });
  cluster.tick();
  return cluster.status();
}

Deno.test("parseClusterStatus() returns a well-formed status unchanged", () => {
  const status = fakeStatus();
  deepEqual(parseClusterStatus(JSON.parse(JSON.stringify(status))), status);
});

Deno.test("parseClusterStatus() keeps node and shard alarms", () => {
  const cluster = new FakeCluster({ nodeCount: 3, shardCount: 4, replicationFactor: 3 });
  cluster.raiseAlarm(2, { type: "no_space", message: "below the reserve" });
  cluster.raiseAlarm(2, { type: "storage_error", shard: 3, message: "disk I/O error" });
  cluster.killNode(3);
  const status = parseClusterStatus(JSON.parse(JSON.stringify(cluster.status())));
  deepEqual(status.nodes.map((node) => node.alarms?.length ?? null), [0, 2, null]);
  equal(status.nodes[1]!.alarms![0]!.shard, undefined, "the node's own alarm has no shard");
  equal(status.nodes[1]!.alarms![1]!.shard, 3);
  deepEqual(status, cluster.status());
});

Deno.test("parseClusterStatus() reads an API.md example without the console's fields", () => {
  const example = {
    clusterId: "c",
    node: 1,
    nodes: [{
      id: 1,
      peerAddress: "127.0.0.1:7001",
      httpAddress: "127.0.0.1:8001",
      status: "up",
      version: "0.1.0",
    }],
    shardMap: { epoch: 1, numShards: 1 },
    shards: [{
      id: 0,
      leader: 0,
      term: 3,
      commitIndex: 120,
      appliedIndex: 120,
      lastIndex: 121,
      replicas: [{ node: 1, role: "candidate", matchIndex: 121, lag: 0, status: "up" }],
      stats: { proposalsPerSecond: 0, optimisticTxns: 0, conflicts: 0 },
    }],
  };
  const status = parseClusterStatus(example);
  equal(status.generatedAtMs, null);
  equal(status.nodes[0]!.uptimeMs, null);
  equal(status.nodes[0]!.alarms, null, "a server before alarms");
  equal(status.shards[0]!.leader, null);
  equal(status.shards[0]!.stats.applyLatencyP99Ms, null);
  equal(status.shards[0]!.replicas[0]!.role, "candidate");
});

Deno.test("parseClusterStatus() names the first bad field", async (t) => {
  // Each case damages a parsed JSON body in place, so the body is loosely typed on purpose.
  // deno-lint-ignore no-explicit-any
  type Body = Record<string, any>;
  const cases: [string, (body: Body) => void, RegExp][] = [
    ["not an object", (body) => (body.shardMap = []), /shardMap is not an object/],
    ["a missing list", (body) => delete body.nodes, /nodes is not a list/],
    ["a negative index", (body) => (body.shards[1].commitIndex = -1), /shards\[1\]\.commitIndex/],
    ["a fractional term", (body) => (body.shards[0].term = 1.5), /shards\[0\]\.term is 1\.5/],
    [
      "an unknown role",
      (body) => (body.shards[2].replicas[1].role = "boss"),
      /"leader", "follower", "learner", "candidate"/,
    ],
    ["a bad status", (body) => (body.nodes[0].status = "sleepy"), /must be one of "up", "down"/],
    ["a string count", (body) => (body.shards[0].stats.conflicts = "3"), /stats\.conflicts/],
    ["too many shards", (body) => (body.shards = new Array(2_000).fill(body.shards[0])), /limit/],
    ["a NaN rate", (body) => (body.shards[0].stats.proposalsPerSecond = NaN), /non-negative/],
    [
      "an unknown alarm",
      (body) => (body.nodes[1].alarms = [{ type: "on_fire", sinceMs: 1, message: "m" }]),
      /nodes\[1\]\.alarms\[0\]\.type is "on_fire" but must be one of "no_space"/,
    ],
    [
      "an alarm without a message",
      (body) => (body.nodes[0].alarms = [{ type: "no_space", sinceMs: 1 }]),
      /nodes\[0\]\.alarms\[0\]\.message/,
    ],
  ];
  for (const [name, damage, expected] of cases) {
    await t.step(name, () => {
      const body = JSON.parse(JSON.stringify(fakeStatus()));
      damage(body);
      throws(() => parseClusterStatus(body), (error: unknown) => {
        return error instanceof JsonFormatError && expected.test(error.message);
      });
    });
  }
  throws(() => parseClusterStatus(null), JsonFormatError);
});

Deno.test("parseClusterStatus() reads a shard move, and names a bad one's field", () => {
  const shardMove = {
    fromCount: 2,
    toCount: 3,
    phase: "copy",
    startedAtMs: 1_000,
    updatedAtMs: 2_000,
    sources: [{ shard: 0, keysTotal: 10, bytesTotal: 300, keysCopied: 4, bytesCopied: 120 }],
  };
  const status = { ...fakeStatus(), shardMove };
  deepEqual(parseClusterStatus(JSON.parse(JSON.stringify(status))).shardMove, shardMove);
  equal(parseClusterStatus({ ...fakeStatus(), shardMove: null }).shardMove, null);
  equal("shardMove" in parseClusterStatus(fakeStatus()), false, "older servers have none");
  const bad = { ...status, shardMove: { ...shardMove, phase: "teleport" } };
  throws(() => parseClusterStatus(bad), (error: unknown) => {
    return error instanceof JsonFormatError && /shardMove\.phase/.test(error.message);
  });
});
