/**
 * A lease outlives its leader's node, then expires on time under the new leader (issue 16: the
 * lease timers are armed by deadlines and leadership, not by a visit of every shard). Three
 * `aspen node` processes, SHARDS shards; a lease of TTL_SECONDS holds a key on a shard other
 * than shard 0 led by node 3 (moved there if needed), and node 3 is killed (SIGKILL) at once.
 * The new leader gives the lease its full TTL from its election (shard/lessor.ts), so the key
 * is still there until TTL_SECONDS after the kill and gone by TTL_SECONDS + EXPIRY_SLACK_MS
 * after the new leader was seen.
 */
import { ok } from "node:assert/strict";
import { AspenClient } from "../api/mod.ts";
import { shardForKey } from "../shard/mod.ts";
import { launchTestCluster } from "./_cluster.ts";

const SHARDS = 12;
const TTL_SECONDS = 4;
/** How late past the new leader's TTL the key may still be seen (busy shared machine). */
const EXPIRY_SLACK_MS = 3_000;
/** The node-liveness bound (1 s) plus an election, on a busy 2-core machine. */
const RECOVERY_MS_MAX = 20_000;
const VICTIM = 3;
const POLL_MS = 50;

async function waitFor<T>(what: string, check: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + RECOVERY_MS_MAX;
  while (Date.now() < deadline) {
    const found = await check().catch(() => null);
    if (found !== null) return found;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`timed out after ${RECOVERY_MS_MAX} ms waiting for ${what}`);
}

Deno.test({
  name: "a lease whose leader's node is killed expires on time under the new leader",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const test = await launchTestCluster({ nodes: 3, shards: SHARDS });
    const { cluster } = test;
    try {
      await cluster.waitForLeaders();
      const api = new AspenClient({
        endpoints: [cluster.url(1), cluster.url(2)],
        token: cluster.record.rootToken,
      });
      const leaderOf = async (shard: number) => {
        const status = await api.request<{ shards: { id: number; leader: number | null }[] }>(
          { method: "GET", path: "/v1/cluster/status" },
        );
        return status.shards.find((item) => item.id === shard)?.leader ?? null;
      };
      const key = "failover/leased";
      const shard = shardForKey(key, SHARDS);
      ok(shard !== 0, "the key is not on shard 0");
      if (await leaderOf(shard) !== VICTIM) {
        await api.request({
          method: "POST",
          path: `/v1/shards/${shard}/transfer-leader`,
          body: { to: VICTIM },
        });
        await waitFor("the transfer", async () => await leaderOf(shard) === VICTIM ? true : null);
      }
      const granted = await api.request<{ id: number }>({
        method: "POST",
        path: "/v1/leases",
        body: { ttl: TTL_SECONDS, key },
      });
      await api.put(key, "v", { lease: granted.id });
      const killedAt = Date.now();
      await cluster.kill(VICTIM, "SIGKILL");
      const electedAt = await waitFor("a new leader", async () => {
        const leader = await leaderOf(shard);
        return leader !== null && leader !== VICTIM ? Date.now() : null;
      });
      const goneAt = await waitFor("the key's expiry", async () => {
        const read = await api.get(key);
        if (read.kv !== null) return null;
        return Date.now();
      });
      ok(
        goneAt >= killedAt + TTL_SECONDS * 1_000 - POLL_MS,
        `gone ${goneAt - killedAt} ms after the kill: the new leader cut the lease short`,
      );
      ok(
        goneAt <= electedAt + TTL_SECONDS * 1_000 + EXPIRY_SLACK_MS,
        `gone ${goneAt - electedAt} ms after the new leader was seen: too late`,
      );
    } catch (error) {
      console.error(test.lines.slice(-40).join("\n"));
      throw error;
    } finally {
      await test.close();
    }
  },
});
