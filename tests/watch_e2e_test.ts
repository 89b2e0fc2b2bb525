/**
 * Watch over HTTP (Server-Sent Events) on a real cluster of 3 nodes and 3 shards with a
 * replication factor of 1, so that each shard lives on one node and most watches go through a
 * node that hosts no replica of the watched shard (it polls one that does over the peer
 * channel). Checks a key watch through every node, a prefix watch that spans every shard, and
 * a key watch from an old revision that replays history first.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { AspenClient } from "../api/mod.ts";
import { launchTestCluster } from "./_cluster.ts";

interface WatchEventJson {
  type: string;
  kv: { key: string; value: string };
  shard: number;
  revision: number;
}

/** Opens an SSE watch and collects `count` events (or fails after the timeout). */
async function collect(
  url: string,
  token: string,
  count: number,
  onOpen: () => Promise<void>,
): Promise<WatchEventJson[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 20_000);
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}` },
    signal: abort.signal,
  });
  equal(response.status, 200);
  const events: WatchEventJson[] = [];
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const opened = onOpen();
  try {
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end !== -1) {
        const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1];
        if (data !== undefined) events.push(JSON.parse(data));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
      }
    }
  } finally {
    clearTimeout(timer);
    await opened;
    await reader.cancel();
  }
  return events;
}

Deno.test({
  name: "watch through nodes that host the shard and nodes that do not",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { cluster, close } = await launchTestCluster({
      nodes: 3,
      shards: 3,
      extraNodeArgs: ["--replication-factor=1"],
    });
    try {
      await cluster.waitForLeaders();
      const token = cluster.record.rootToken;
      const client = new AspenClient({ endpoints: [cluster.url(1)], token });
      for (const via of [1, 2, 3]) {
        const key = `watched/${via}`;
        const events = await collect(
          `${cluster.url(via)}/v1/watch?key=${key}`,
          token,
          2,
          async () => {
            await new Promise((resolve) => setTimeout(resolve, 300));
            await client.put(key, "one");
            await client.put(key, "two");
          },
        );
        deepEqual(events.map((event) => event.kv.value), ["one", "two"], `via node ${via}`);
        ok(events[1]!.revision > events[0]!.revision);
      }
      const keys = ["p/a", "p/b", "p/c", "p/d", "p/e", "p/f"];
      const spread = await collect(
        `${cluster.url(2)}/v1/watch?prefix=p%2F`,
        token,
        keys.length,
        async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          for (const key of keys) await client.put(key, key);
        },
      );
      deepEqual(spread.map((event) => event.kv.key).sort(), keys);
      ok(new Set(spread.map((event) => event.shard)).size > 1, "events came from several shards");
      const first = await client.put("history", "old");
      await client.put("history", "new");
      const replay = await collect(
        `${cluster.url(3)}/v1/watch?key=history&fromRevision=${first.revision}`,
        token,
        2,
        () => Promise.resolve(),
      );
      deepEqual(replay.map((event) => event.kv.value), ["old", "new"]);
    } finally {
      await close();
    }
  },
});
