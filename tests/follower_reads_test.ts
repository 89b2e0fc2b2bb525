/**
 * Linearizable reads served by followers, on a real 3-node cluster: a write acknowledged by
 * the leader is seen by the very next linearizable read through each follower, range reads
 * too; the followers count in /metrics the reads they served themselves (so the reads did not
 * just go to the leader); and a serializable read still answers from the local replica. That a
 * follower waits for its own apply of the read index is checked where it can be forced, with a
 * lagging fake replica, in server/node/cluster_router_test.ts.
 */
import { equal, ok } from "node:assert/strict";
import { AspenClient } from "../api/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import { launchTestCluster } from "./_cluster.ts";

const ROUNDS = 60;

/** One scrape of a node's /metrics: the value of a series by name (NaN when absent). */
async function scrape(cluster: LocalCluster, node: number): Promise<(name: string) => number> {
  const response = await fetch(`${cluster.url(node)}/metrics`, {
    headers: { authorization: `Bearer ${cluster.record.rootToken}` },
  });
  const lines = (await response.text()).split("\n");
  return (name) => {
    const line = lines.find((item) => item.startsWith(`${name}{`));
    return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
  };
}

async function metric(cluster: LocalCluster, node: number, name: string): Promise<number> {
  return (await scrape(cluster, node))(name);
}

Deno.test("followers serve linearizable reads that see every acknowledged write", async () => {
  const { cluster, lines, close } = await launchTestCluster({ nodes: 3, shards: 1 });
  const client = (node: number) =>
    new AspenClient({ endpoints: [cluster.url(node)], token: cluster.record.rootToken });
  try {
    await cluster.waitForLeaders();
    const status = await client(1).request<{ shards: { leader: number }[] }>({
      method: "GET",
      path: "/v1/cluster/status",
    });
    const leader = status.shards[0]!.leader;
    const followers = cluster.nodes.map((node) => node.id).filter((id) => id !== leader);
    equal(followers.length, 2);
    // The first read through a follower that has not yet heard from the leader is forwarded.
    await client(leader).put("follower/key", "warm-up");
    for (const follower of followers) await client(follower).get("follower/key");
    const servedBefore = await Promise.all(
      followers.map((follower) => metric(cluster, follower, "aspen_node_follower_reads_total")),
    );
    for (let round = 0; round < ROUNDS; round++) {
      const value = `value-${round}`;
      await client(leader).put("follower/key", value);
      for (const follower of followers) {
        const { kv } = await client(follower).get("follower/key");
        equal(kv?.value, value, `round ${round}: node ${follower} sees the acknowledged write`);
      }
    }
    const page = await client(followers[0]!).range({ prefix: "follower/" });
    equal(page.kvs[0]?.value, `value-${ROUNDS - 1}`);
    for (const [i, follower] of followers.entries()) {
      const served = await metric(cluster, follower, "aspen_node_follower_reads_total");
      const count = served - servedBefore[i]!;
      ok(count >= ROUNDS * 0.9, `node ${follower} served its reads itself (${count})`);
    }
    const local = await client(followers[1]!).get("follower/key", {
      consistency: "serializable",
    });
    ok(local.kv !== null);
    // The work counters behind BENCHMARKS.md's analysis count what this test just did (one
    // scrape, so that the counters compared were read at the same instant).
    const at = await scrape(cluster, leader);
    const applied = at("aspen_shard_applied_entries_total");
    const rounds = at("aspen_shard_ready_rounds_total");
    const syncs = at("aspen_shard_log_syncs_total");
    ok(applied >= ROUNDS + 1, `the leader applied every write (${applied})`);
    ok(syncs >= 1 && rounds >= syncs, `fsynced log writes (${syncs}) are ready rounds (${rounds})`);
    const writes = at("aspen_shard_log_writes_total");
    ok(writes >= syncs && rounds >= writes, `log writes (${writes}) between syncs and rounds`);
    ok(at("aspen_shard_turns_total") >= 1);
    ok(at("aspen_shard_log_write_seconds_total") > 0);
    ok(at("aspen_shard_apply_seconds_total") > 0);
    const frames = at("aspen_peer_frames_sent_total");
    const streamWrites = at("aspen_peer_stream_writes_total");
    ok(
      streamWrites >= 1 && frames >= streamWrites,
      `frames (${frames}) go out in stream writes (${streamWrites})`,
    );
    ok(at("aspen_peer_messages_sent_total") >= ROUNDS, "every write was replicated");
  } catch (error) {
    console.error(lines.slice(-40).join("\n"));
    throw error;
  } finally {
    await close();
  }
});
