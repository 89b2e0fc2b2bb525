/**
 * A write forwarded to a leader that stopped answering (killed, paused, cut off) fails as soon as
 * the forwarding node counts the leader's node as down (node_liveness.ts: no frame from it for
 * NODE_DOWN_TICKS, 1 s), with 503 `shard_unavailable` and its outcome unknown, instead of
 * holding the client for the whole request deadline (5 s, then 504 `timeout`) while the other
 * nodes elect a new leader. Reads in flight there are retried on the new leader.
 *
 * On a real 3-node, 1-shard cluster: pause the leader (SIGSTOP), send a put through a follower
 * (forwarded to the paused leader, whose QUIC connection still looks up), and check its answer
 * is the 503 that names the silence; a linearizable read and the next write through the same
 * follower then succeed on the new leader; once resumed, the old leader serves the new value.
 */
import { equal, match, ok } from "node:assert/strict";
import { launchTestCluster, readValue, shardZeroLeader } from "./_cluster.ts";

const KEY = "silent-leader/k";

Deno.test("a write sent to a silent leader fails once its node is down; writes go on", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: 1 });
  const { cluster } = test;
  const token = cluster.record.rootToken;
  try {
    await cluster.waitForLeaders();
    const leader = await shardZeroLeader(cluster.url(cluster.nodes[0]!.id), token);
    const follower = cluster.url(cluster.nodes.find((node) => node.id !== leader)!.id);
    equal((await put(follower, token, "v0")).status, 200);
    await cluster.kill(leader, "SIGSTOP");
    try {
      const lost = await put(follower, token, "v1");
      equal(lost.status, 503, JSON.stringify(lost.body));
      equal(lost.body.error?.code, "shard_unavailable");
      match(lost.body.error?.message ?? "", /node \d+ .*silent.*outcome of a write is unknown/);
      const read = await readValue(follower, token, KEY);
      ok(read === "v0" || read === "v1", `the read through the follower answered ${read}`);
      await putUntilAcknowledged(follower, token, "v2");
      ok(await abandoned(follower, token) >= 1, "the follower counted the abandoned write");
    } finally {
      await cluster.kill(leader, "SIGCONT").catch(() => {});
    }
    const deadline = performance.now() + 15_000;
    while ((await readValue(cluster.url(leader), token, KEY)) !== "v2") {
      ok(performance.now() < deadline, "the resumed leader never served v2");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    console.error(test.lines.slice(-40).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

interface Answer {
  readonly status: number;
  readonly body: { error?: { code?: string; message?: string } };
}

async function put(url: string, token: string, value: string): Promise<Answer> {
  const response = await fetch(`${url}/v1/kv/${encodeURIComponent(KEY)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ value }),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, body: await response.json() };
}

/** Puts `value` until a put of it is acknowledged (no leader yet answers 503 meanwhile). */
async function putUntilAcknowledged(url: string, token: string, value: string): Promise<void> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    const answer = await put(url, token, value);
    if (answer.status === 200) return;
    ok(performance.now() < deadline, `the put kept failing: ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function abandoned(url: string, token: string): Promise<number> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  return Number(text.match(/^aspen_node_requests_abandoned_total\{[^}]*\} (\d+)$/m)?.[1] ?? NaN);
}
