/**
 * A remote watch streams: on a real cluster of 3 nodes, 3 shards and a replication factor of
 * 2, node 1 hosts no replica of shard 1 (nodes 2 and 3 do), so a watch through node 1 on a key
 * of shard 1 follows it over the peer channel. Checks that each event arrives well within a
 * second of its write (remote watches used to poll once a second, so events waited for the
 * end of the poll), and that killing the node serving the stream (SIGKILL, then a restart so
 * that the shard has a quorum again) loses no event and repeats none.
 */
import { deepEqual, ok } from "node:assert/strict";
import { AspenClient } from "../api/mod.ts";
import { replicasOf } from "../server/node/mod.ts";
import { shardForKey } from "../shard/mod.ts";
import { launchTestCluster } from "./_cluster.ts";

/** The latest an event may arrive after its write was acknowledged; a 1 s poll misses it. */
const EVENT_LATENCY_MS_MAX = 250;

/** Events of an SSE watch as they arrive, each with the time it arrived. */
class WatchReader {
  readonly events: { value: string; revision: number; atMs: number }[] = [];
  readonly #abort = new AbortController();
  #done: Promise<void> = Promise.resolve();
  #waiter: (() => void) | null = null;

  async open(url: string, token: string): Promise<void> {
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${token}` },
      signal: this.#abort.signal,
    });
    ok(response.ok, `the watch opened: ${response.status}`);
    this.#done = this.#read(response);
  }

  /** Resolves once `count` events arrived, or fails after `timeoutMs`. */
  async waitFor(count: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.events.length < count) {
      const left = deadline - performance.now();
      ok(left > 0, `only ${this.events.length} of ${count} events arrived`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done.catch(() => undefined);
  }

  async #read(response: Response): Promise<void> {
    let buffer = "";
    for await (const text of response.body!.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
        const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1];
        buffer = buffer.slice(end + 2);
        if (data === undefined) continue;
        const event = JSON.parse(data);
        ok(event.type === "put", `an event, not ${data}`);
        this.events.push({
          value: event.kv.value,
          revision: event.revision,
          atMs: performance.now(),
        });
        this.#waiter?.();
      }
    }
  }
}

Deno.test({
  name: "a remote watch streams events at once and loses none across a kill of its server",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { cluster, close, lines } = await launchTestCluster({
      nodes: 3,
      shards: 3,
      extraNodeArgs: ["--replication-factor=2"],
    });
    const reader = new WatchReader();
    try {
      await cluster.waitForLeaders();
      const shard = 1;
      deepEqual(replicasOf([1, 2, 3], shard, 2), [2, 3], "node 1 hosts no replica of shard 1");
      let index = 0;
      while (shardForKey(`streamed/${index}`, 3) !== shard) index++;
      const key = `streamed/${index}`;
      const token = cluster.record.rootToken;
      const client = new AspenClient({ endpoints: [cluster.url(2), cluster.url(3)], token });
      await reader.open(`${cluster.url(1)}/v1/watch?key=${encodeURIComponent(key)}`, token);
      const expected: string[] = [];
      for (let i = 1; i <= 6; i++) {
        // Spread the writes over more than a poll period, so a poll would be caught waiting.
        await new Promise((resolve) => setTimeout(resolve, 170));
        const value = `v${i}`;
        await client.put(key, value);
        const ackedAtMs = performance.now();
        expected.push(value);
        await reader.waitFor(expected.length, 5_000);
        const latencyMs = reader.events.at(-1)!.atMs - ackedAtMs;
        ok(latencyMs < EVENT_LATENCY_MS_MAX, `${value} arrived ${Math.round(latencyMs)} ms late`);
      }
      const status = await (await fetch(`${cluster.url(2)}/v1/cluster/status`, {
        headers: { authorization: `Bearer ${token}` },
      })).json();
      const serving = status.shards[shard].leader as number;
      ok(serving === 2 || serving === 3, `shard ${shard} has a leader: ${serving}`);
      for (const value of ["v7", "v8", "v9"]) {
        await client.put(key, value);
        expected.push(value);
      }
      await cluster.kill(serving, "SIGKILL");
      cluster.start(serving);
      await cluster.waitForLeaders(1, 30_000);
      await client.put(key, "v10");
      expected.push("v10");
      await reader.waitFor(expected.length, 30_000);
      // Give a duplicate, if any, the time to show up.
      await new Promise((resolve) => setTimeout(resolve, 500));
      deepEqual(reader.events.map((event) => event.value), expected);
      const revisions = reader.events.map((event) => event.revision);
      ok(revisions.every((revision, i) => i === 0 || revision > revisions[i - 1]!));
    } catch (error) {
      console.error(lines.slice(-60).join("\n"));
      throw error;
    } finally {
      await reader.close();
      await close();
    }
  },
});
