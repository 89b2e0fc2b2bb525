/**
 * Real clusters of real `aspen node` processes on loopback (QUIC between them, SQLite files on
 * disk), driven through the HTTP API:
 * - 3 nodes x 4 shards: every shard elects a leader; a write through any node reads back
 *   through every node; kill -9 a shard leader: a new leader is elected and no acknowledged
 *   write is lost; the restarted node catches up.
 * - a 1-node cluster, and the unsharded default (one shard), serve reads and writes.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { AspenClient } from "../api/mod.ts";
import { LocalCluster } from "../cli/launcher.ts";
import { ASPEN_COMMAND } from "./_cluster.ts";

async function launch(nodes: number, shards: number, lines: string[] = []): Promise<LocalCluster> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-e2e-" });
  const cluster = await LocalCluster.launch({
    dir,
    nodes,
    shards,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: (id, line) => {
      lines.push(`n${id} | ${line}`);
      if (lines.length > 2000) lines.shift();
    },
  });
  try {
    await cluster.waitForLeaders();
  } catch (error) {
    await cluster.stop();
    console.error(lines.slice(-60).join("\n"));
    throw error;
  }
  return cluster;
}

async function destroy(cluster: LocalCluster): Promise<void> {
  await cluster.stop();
  const dir = cluster.nodes[0]!.dataDir.replace(/\/node-\d+$/, "");
  await Deno.remove(dir, { recursive: true });
}

function client(cluster: LocalCluster, ids = cluster.nodes.map((node) => node.id)): AspenClient {
  return new AspenClient({
    endpoints: ids.map((id) => cluster.url(id)),
    token: cluster.record.rootToken,
  });
}

interface StatusShard {
  id: number;
  leader: number | null;
  term: number;
}

async function shardLeaders(cluster: LocalCluster, via: number): Promise<StatusShard[]> {
  const status = await client(cluster, [via]).request<{ shards: StatusShard[] }>({
    method: "GET",
    path: "/v1/cluster/status",
  });
  return status.shards;
}

Deno.test({
  name: "3 nodes x 4 shards: writes through any node read back through every node",
  sanitizeResources: false,
  async fn() {
    const cluster = await launch(3, 4);
    try {
      const shards = await shardLeaders(cluster, 1);
      equal(shards.length, 4);
      for (const shard of shards) ok(shard.leader !== null, `shard ${shard.id} has a leader`);
      for (const node of cluster.nodes) {
        await client(cluster, [node.id]).put(`key-from-${node.id}`, `value-${node.id}`);
      }
      for (const reader of cluster.nodes) {
        for (const writer of cluster.nodes) {
          const { kv } = await client(cluster, [reader.id]).get(`key-from-${writer.id}`);
          equal(kv?.value, `value-${writer.id}`);
        }
      }
      const big = "b".repeat(1024 * 1024);
      await client(cluster, [1]).put("big-value", big);
      for (const reader of cluster.nodes) {
        const { kv } = await client(cluster, [reader.id]).get("big-value");
        equal(kv?.value.length, big.length, `the 1 MiB value through node ${reader.id}`);
      }
      const page = await client(cluster, [2]).range({ prefix: "key-from-" });
      deepEqual(page.kvs.map((kv) => kv.key), ["key-from-1", "key-from-2", "key-from-3"]);
    } finally {
      await destroy(cluster);
    }
  },
});

Deno.test({
  name: "kill -9 of a shard leader: a new leader, no acknowledged write lost, the node catches up",
  sanitizeResources: false,
  async fn() {
    const cluster = await launch(3, 4);
    try {
      const writer = client(cluster);
      const acknowledged = new Map<string, string>();
      for (let i = 0; i < 40; i++) {
        await writer.put(`k${i}`, `v${i}`);
        acknowledged.set(`k${i}`, `v${i}`);
      }
      const before = await shardLeaders(cluster, 1);
      const victim = before[0]!.leader!;
      await cluster.kill(victim, "SIGKILL");
      const survivor = cluster.nodes.find((node) => node.id !== victim)!.id;
      await cluster.waitForLeaders(survivor, 15_000);
      const after = await shardLeaders(cluster, survivor);
      ok(after[0]!.leader !== victim, "shard 0 elected a new leader");
      const others = cluster.nodes.filter((node) => node.id !== victim).map((node) => node.id);
      for (let i = 40; i < 60; i++) {
        await client(cluster, others).put(`k${i}`, `v${i}`);
        acknowledged.set(`k${i}`, `v${i}`);
      }
      for (const [key, value] of acknowledged) {
        equal((await client(cluster, others).get(key)).kv?.value, value, key);
      }
      cluster.start(victim);
      await cluster.waitForLeaders(victim, 15_000);
      for (const [key, value] of acknowledged) {
        const { kv } = await client(cluster, [victim]).get(key, { consistency: "serializable" })
          .catch(() => ({ kv: null }));
        if (kv?.value !== value) {
          await waitFor(async () => {
            const again = await client(cluster, [victim]).get(key, { consistency: "serializable" });
            return again.kv?.value === value;
          });
        }
      }
    } finally {
      await destroy(cluster);
    }
  },
});

Deno.test({
  name: "a 1-node cluster and the unsharded default serve reads and writes",
  sanitizeResources: false,
  async fn() {
    for (const shards of [1, 4]) {
      const cluster = await launch(1, shards);
      try {
        const one = client(cluster);
        await one.put("solo", "yes");
        equal((await one.get("solo")).kv?.value, "yes");
        equal((await shardLeaders(cluster, 1)).length, shards);
      } finally {
        await destroy(cluster);
      }
    }
  },
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("condition not met in time");
}
