/**
 * A leader paused (SIGSTOP) longer than an election timeout must not answer a linearizable read
 * with the value it had when it stopped (issue 16: reads without a round must keep counting
 * time while a process is paused).
 *
 * On a real 3-node, 1-shard cluster: write v1, pause the leader, write v2 through the other
 * nodes (they elect a new leader), send a linearizable GET to the paused node (the request
 * waits in its socket), resume it, and check the answer is v2 or an error, never v1. A leader
 * that served reads from a lease measured in ticks, with the ticks of the pause not yet
 * counted, would answer v1 from its stale state. Repeated ROUNDS times, the last round with the
 * GET sent just before the resume and a second one right after it.
 *
 * The pause is also what a stalled event loop looks like to the node itself: once resumed, its
 * `/metrics` must show a stall of about the pause's length (loop_stalls.ts), and its log the
 * warning that says so.
 */
import { equal, notEqual, ok } from "node:assert/strict";
import { ApiError, AspenClient } from "../api/mod.ts";
import { launchTestCluster, readValue, shardZeroLeader } from "./_cluster.ts";

/** Pause-and-read rounds, each against the leader of the moment. */
const ROUNDS = 3;
/** How long the leader stays paused: several election timeouts (0.5 s to 1 s). */
const PAUSE_MS = 2_500;
const KEY = "paused-leader/k";

Deno.test("a paused leader never answers a read with its stale value", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: 1 });
  const { cluster } = test;
  const token = cluster.record.rootToken;
  try {
    await cluster.waitForLeaders();
    for (let round = 0; round < ROUNDS; round++) {
      const leader = await shardZeroLeader(cluster.url(cluster.nodes[0]!.id), token);
      const others = cluster.nodes.filter((node) => node.id !== leader).map((n) =>
        cluster.url(n.id)
      );
      const client = new AspenClient({ endpoints: others, token, timeoutMs: 10_000 });
      const stale = `v1-${round}`;
      const fresh = `v2-${round}`;
      await client.put(KEY, stale);
      // The paused node must have applied v1: read it there first.
      equal(await readValue(cluster.url(leader), token, KEY), stale);
      await cluster.kill(leader, "SIGSTOP");
      try {
        await putUntilAcknowledged(client, fresh);
        const held = readValue(cluster.url(leader), token, KEY);
        await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
        await cluster.kill(leader, "SIGCONT");
        const after = readValue(cluster.url(leader), token, KEY);
        for (const answer of [await held, await after]) {
          notEqual(answer, stale, `round ${round}: node ${leader} answered its stale value`);
          ok(answer === fresh || answer.startsWith("error "), `round ${round}: ${answer}`);
        }
        const stalls = await loopStalls(cluster.url(leader), token);
        ok(stalls.maxMs >= PAUSE_MS * 0.8, `node ${leader}'s longest stall ${stalls.maxMs} ms`);
        ok(stalls.over500 >= 1, `node ${leader} counted ${stalls.over500} stalls over 500 ms`);
      } finally {
        await cluster.kill(leader, "SIGCONT").catch(() => {});
      }
      await cluster.waitForLeaders();
    }
    ok(test.lines.some((line) => line.includes("The event loop was held")), "a stall is logged");
  } catch (error) {
    console.error(test.lines.slice(-40).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

/**
 * Puts `value` until a put of it is acknowledged: one forwarded to the paused leader times out
 * (outcome unknown), and the same value again is harmless.
 */
async function putUntilAcknowledged(client: AspenClient, value: string): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    try {
      await client.put(KEY, value);
      return;
    } catch (error) {
      if (!(error instanceof ApiError) || performance.now() > deadline) throw error;
    }
  }
}

/** The node's event-loop stall series, from its /metrics. */
async function loopStalls(url: string, token: string): Promise<{ maxMs: number; over500: number }> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  const value = (pattern: RegExp) => Number(text.match(pattern)?.[1] ?? NaN);
  return {
    maxMs: value(/^aspen_node_event_loop_stall_ms_max\{[^}]*\} (\d+)$/m),
    over500: value(/^aspen_node_event_loop_stalls_total\{[^}]*over_ms="500"\} (\d+)$/m),
  };
}
