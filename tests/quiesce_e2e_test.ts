/**
 * Quiesced shards on real processes (raft/quiesce.ts, server/node/node_liveness.ts): a 3-node
 * cluster with many shards goes quiet once it is idle (every replica reports quiesced in
 * `/metrics`), and when a node is killed while its shards sleep, the node-level heartbeat wakes
 * their followers: every shard it led elects a new leader and takes writes again. The time to
 * recover is printed (a measurement, not asserted beyond a generous bound).
 */
import { equal, ok } from "node:assert/strict";
import { AspenClient } from "../api/mod.ts";
import { LocalCluster } from "../cli/launcher.ts";
import { shardForKey } from "../shard/router.ts";
import { ASPEN_COMMAND } from "./_cluster.ts";

const SHARDS = 24;
/** Generous: the node-liveness bound (1 s) plus an election, on a busy 2-core machine. */
const RECOVERY_MS_MAX = 20_000;

function client(cluster: LocalCluster, ids: readonly number[]): AspenClient {
  return new AspenClient({
    endpoints: ids.map((id) => cluster.url(id)),
    token: cluster.record.rootToken,
  });
}

async function metric(cluster: LocalCluster, node: number, name: string): Promise<number> {
  const response = await fetch(`${cluster.url(node)}/metrics`, {
    headers: { authorization: `Bearer ${cluster.record.rootToken}` },
  });
  const text = await response.text();
  const line = text.split("\n").find((item) => item.startsWith(`${name}{`));
  return line === undefined ? NaN : Number(line.split(" ").at(-1));
}

async function leaders(cluster: LocalCluster, via: number): Promise<Map<number, number | null>> {
  const status = await client(cluster, [via]).request<
    { shards: { id: number; leader: number | null }[] }
  >({ method: "GET", path: "/v1/cluster/status" });
  return new Map(status.shards.map((shard) => [shard.id, shard.leader]));
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A key of every shard in `shards`. */
function keysFor(shards: ReadonlySet<number>): Map<number, string> {
  const keys = new Map<number, string>();
  for (let i = 0; keys.size < shards.size && i < 100_000; i++) {
    const shard = shardForKey(`q${i}`, SHARDS);
    if (shards.has(shard) && !keys.has(shard)) keys.set(shard, `q${i}`);
  }
  return keys;
}

Deno.test({
  name: "quiescence: an idle cluster's shards sleep; a killed node's shards wake and recover",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aspen-quiesce-" });
    const lines: string[] = [];
    const cluster = await LocalCluster.launch({
      dir,
      nodes: 3,
      shards: SHARDS,
      selfCommand: ASPEN_COMMAND,
      randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
      onLine: (id, line) => {
        lines.push(`n${id} | ${line}`);
        if (lines.length > 2000) lines.shift();
      },
    });
    try {
      await cluster.waitForLeaders();
      await client(cluster, [1]).put("before", "1");
      // Shard 0 wakes for each node's token refresh, so it may be awake at any moment.
      for (const node of cluster.nodes) {
        await waitFor(`node ${node.id}'s shards to quiesce`, 30_000, async () => {
          return await metric(cluster, node.id, "aspen_shards_quiesced") >= SHARDS - 1;
        });
      }
      const before = await leaders(cluster, 1);
      const victim = before.get(1)!;
      const led = new Set([...before].filter(([, leader]) => leader === victim).map(([id]) => id));
      ok(led.size > 0, `node ${victim} leads some shards`);
      const survivors = cluster.nodes.map((node) => node.id).filter((id) => id !== victim);
      const killedAt = Date.now();
      await cluster.kill(victim, "SIGKILL");
      await waitFor("new leaders for the killed node's shards", RECOVERY_MS_MAX, async () => {
        const after = await leaders(cluster, survivors[0]!);
        return [...led].every((shard) => {
          const leader = after.get(shard);
          return leader !== null && leader !== undefined && leader !== victim;
        });
      });
      const electedMs = Date.now() - killedAt;
      const writer = client(cluster, survivors);
      for (const [shard, key] of keysFor(led)) {
        await writer.put(key, `after-${shard}`);
        equal((await writer.get(key)).kv?.value, `after-${shard}`);
      }
      const writableMs = Date.now() - killedAt;
      console.log(
        `quiesce e2e: ${led.size} shards led by node ${victim}: new leaders after ` +
          `${electedMs} ms, all written after ${writableMs} ms`,
      );
      ok(writableMs < RECOVERY_MS_MAX, `recovered in ${writableMs} ms`);
      const wakes = await metric(cluster, survivors[0]!, "aspen_shard_leader_down_wakes_total");
      ok(!Number.isNaN(wakes), "the wake counter is exported");
    } catch (error) {
      console.error(lines.slice(-80).join("\n"));
      throw error;
    } finally {
      await cluster.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
