/**
 * `GET /v1/txn/{id}` right after a cross-shard commit's 200, on real processes: a 3-node
 * cluster of 2 shards runs TXNS transactions one after another, each writing one key on each
 * shard (etcd-style and optimistic in turn, through rotating nodes), and asks for the status of
 * each one as soon as its reply arrived, through the next node. The reply comes once every
 * participant prepared (one-round commits) while the home shard's record turns committed only
 * in its resolve, after the reply; the status must say `committed` every time all the same
 * (the prepares imply it), with the branch that ran and the record's own state beside it.
 * Without the status route's reading of the participants' votes, a share of these reads said
 * `pending`.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { AspenClient, keysOutsideContract, TXN_STATUS_KEYS } from "../api/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import { shardForKey } from "../shard/mod.ts";
import { launchTestCluster } from "./_cluster.ts";

const SHARDS = 2;
const NODES = 3;
/** Transactions committed and checked, one after another. */
const TXNS = 150;
const CLIENT_TIMEOUT_MS = 8_000;

Deno.test("GET /v1/txn/{id} says committed right after every cross-shard 200", async () => {
  const test = await launchTestCluster({ nodes: NODES, shards: SHARDS });
  const { cluster } = test;
  try {
    await cluster.waitForLeaders();
    const keys = keyOnEachShard();
    const notCommitted: string[] = [];
    let recordPending = 0;
    for (let i = 0; i < TXNS; i++) {
      const txnId = await commit(clientOf(cluster, (i % NODES) + 1), keys, i);
      const status = await clientOf(cluster, ((i + 1) % NODES) + 1).txnStatus(txnId);
      deepEqual(keysOutsideContract(status, TXN_STATUS_KEYS), []);
      equal(status.txnId, txnId);
      if (status.status !== "committed") {
        notCommitted.push(JSON.stringify(status));
        continue;
      }
      equal(status.branch, "success", JSON.stringify(status));
      if (status.recordStatus === "pending") recordPending++;
      for (const receipt of status.receipts) {
        equal(receipt.prepare, "prepared", JSON.stringify(status));
      }
    }
    console.log(
      `txn status: ${TXNS - notCommitted.length} of ${TXNS} committed right after the reply ` +
        `(${recordPending} of them while the home's record was still pending)`,
    );
    deepEqual(notCommitted.slice(0, 3), [], `${notCommitted.length} of ${TXNS} not committed`);
  } catch (error) {
    console.error(test.lines.filter((line) => !/"level":"debug"/.test(line)).slice(-60).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

/** One key on each shard, in shard order. */
function keyOnEachShard(): string[] {
  const byShard = new Map<number, string>();
  for (let i = 0; byShard.size < SHARDS; i++) {
    const key = `status/${i}`;
    const shard = shardForKey(key, SHARDS);
    if (!byShard.has(shard)) byShard.set(shard, key);
  }
  return [...byShard.keys()].sort((a, b) => a - b).map((shard) => byShard.get(shard)!);
}

/** Writes round `i` to every key: etcd-style on even rounds, optimistic on odd ones. */
async function commit(api: AspenClient, keys: readonly string[], i: number): Promise<string> {
  if (i % 2 === 0) {
    const result = await api.txn({
      compare: [],
      success: keys.map((key) => ({ put: { key, value: String(i) } })),
      failure: [],
    });
    ok(result.succeeded && typeof result.txnId === "string", JSON.stringify(result));
    return result.txnId;
  }
  const result = await api.optimistic({
    reads: [],
    writes: keys.map((key) => ({ op: "set" as const, key, value: String(i) })),
  });
  ok(typeof result.txnId === "string", JSON.stringify(result));
  return result.txnId;
}

function clientOf(cluster: LocalCluster, node: number): AspenClient {
  return new AspenClient({
    endpoints: [cluster.url(node)],
    token: cluster.record.rootToken,
    timeoutMs: CLIENT_TIMEOUT_MS,
  });
}
