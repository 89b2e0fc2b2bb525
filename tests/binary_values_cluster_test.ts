/**
 * Binary values across the peer channel: on a real cluster of 3 nodes, 3 shards and a
 * replication factor of 2, a value of every byte 0..255 written through a node that hosts no
 * replica of the key's shard (a forwarded proposal) reads back byte for byte through every
 * node (forwarded get and range answers, local reads) and in a watch through that node from the
 * put's revision (AspenClient.watch over a remote watch stream). Forwarded requests and
 * answers are JSON over the peer channel: a binary value held as lone surrogates must not be
 * turned into U+FFFD on the way.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { AspenClient, type WatchEvent } from "../api/mod.ts";
import { replicasOf } from "../server/node/mod.ts";
import { shardForKey } from "../shard/mod.ts";
import { launchTestCluster } from "./_cluster.ts";

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const ALL_BYTES_BASE64 = btoa(String.fromCharCode(...ALL_BYTES));

Deno.test({
  name: "binary values cross the peer channel unchanged: forwarded put, reads, remote watch",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { cluster, close, lines } = await launchTestCluster({
      nodes: 3,
      shards: 3,
      extraNodeArgs: ["--replication-factor=2"],
    });
    const watchAbort = new AbortController();
    try {
      await cluster.waitForLeaders();
      const shard = 1;
      deepEqual(replicasOf([1, 2, 3], shard, 2), [2, 3], "node 1 hosts no replica of shard 1");
      let index = 0;
      while (shardForKey(`bin/${index}`, 3) !== shard) index++;
      const key = `bin/${index}`;
      const token = cluster.record.rootToken;
      const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
      const call = async (node: number, method: string, path: string, body?: unknown) => {
        const response = await fetch(`${cluster.url(node)}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const json = await response.json();
        equal(response.status, 200, `${method} ${path} on n${node}: ${JSON.stringify(json)}`);
        return json;
      };

      const path = `/v1/kv/${encodeURIComponent(key)}`;
      const put = await call(1, "PUT", path, { valueBase64: ALL_BYTES_BASE64 });

      for (const node of [1, 2, 3]) {
        for (const consistency of ["", "&consistency=serializable"]) {
          if (node === 1 && consistency !== "") continue;
          const got = await call(node, "GET", `${path}?encoding=base64${consistency}`);
          equal(got.kv.valueBase64, ALL_BYTES_BASE64, `get on n${node}${consistency}`);
          const plain = await call(node, "GET", `${path}${consistency ? "?" + consistency : ""}`);
          equal(plain.kv.valueBase64, ALL_BYTES_BASE64, `binary answers carry valueBase64`);
        }
        const range = await call(node, "GET", `/v1/kv?prefix=bin/&encoding=base64`);
        const found = range.kvs.find((kv: { key: string }) => kv.key === key);
        equal(found?.valueBase64, ALL_BYTES_BASE64, `range on n${node}`);
      }

      // Through node 1, which hosts no replica of the shard: a remote watch stream.
      const client = new AspenClient({ endpoints: [cluster.url(1)], token, timeoutMs: 10_000 });
      let event: WatchEvent | null = null;
      for await (
        const seen of client.watch({ key, fromRevision: put.revision }, watchAbort.signal)
      ) {
        event = seen;
        break;
      }
      ok(event !== null, "the watch on n1 saw the put");
      equal(
        event.type === "error" ? null : event.kv.valueBase64,
        ALL_BYTES_BASE64,
        "the remote watch event keeps the bytes",
      );
    } catch (error) {
      console.error(lines.slice(-40).join("\n"));
      throw error;
    } finally {
      watchAbort.abort();
      await close();
    }
  },
});
