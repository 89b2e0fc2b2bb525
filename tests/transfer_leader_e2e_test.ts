/**
 * Leadership transfers under a write load, on a real 3-node, 1-shard cluster (issue 12): while
 * WRITERS clients write through all three nodes, TRANSFERS calls of
 * `POST /v1/shards/0/transfer-leader` rotate their target and the node they are sent to. A
 * transfer that reached a leader while its Ready waited for an fsync used to trip the Raft
 * core's "called between ready() and advance()" assertion and kill the node. Checks that no
 * node exits, that every transfer answers 200 or a JSON error with a code and message, that
 * every acknowledged write reads back afterwards, and that the replicas converge (one applied
 * index and one state hash, as the chaos suite checks).
 */
import { equal, ok } from "node:assert/strict";
import { ApiError, AspenClient } from "../api/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import { launchTestCluster, waitForConvergence } from "./_cluster.ts";

/** Concurrent writers, spread over the nodes. */
const WRITERS = 48;
/** Transfer calls made, one every TRANSFER_INTERVAL_MS. */
const TRANSFERS = 20;
const TRANSFER_INTERVAL_MS = 400;
/** How long the replicas get to converge once the load stops. */
const CONVERGE_TIMEOUT_MS = 10_000;
const KEY_PREFIX = "transfer-e2e/";

/** What one transfer call answered. */
interface TransferAnswer {
  readonly via: number;
  readonly to: number;
  readonly status: number;
  readonly code: string | null;
}

Deno.test("transfer-leader under load: nodes stay up, acknowledged writes survive", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: 1 });
  const { cluster } = test;
  try {
    await cluster.waitForLeaders();
    const load = startWriters(cluster);
    let answers: TransferAnswer[];
    try {
      answers = await runTransfers(cluster, test.lines);
    } finally {
      await load.stop();
    }
    for (const answer of answers) {
      if (answer.status === 200) continue;
      ok(answer.status >= 400 && answer.status < 600, JSON.stringify(answer));
      ok(answer.code !== null, `a JSON error with a code: ${JSON.stringify(answer)}`);
    }
    const accepted = answers.filter((answer) => answer.status === 200).length;
    ok(accepted > 0, `some transfer was accepted: ${JSON.stringify(answers)}`);
    ok(load.acknowledged.size > 0, "some write was acknowledged");
    await cluster.waitForLeaders(1, 10_000);
    const stored = await readAll(cluster);
    for (const [key, value] of load.acknowledged) equal(stored.get(key), value, key);
    await waitForConvergence(cluster, { shards: 1, replicasPerShard: 3 }, CONVERGE_TIMEOUT_MS);
    checkAlive(cluster, test.lines);
  } catch (error) {
    console.error(test.lines.slice(-60).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

/** TRANSFERS calls, each sent to the next node and naming the one after it as the target. */
async function runTransfers(
  cluster: LocalCluster,
  lines: readonly string[],
): Promise<TransferAnswer[]> {
  const answers: TransferAnswer[] = [];
  for (let i = 0; i < TRANSFERS; i++) {
    const started = performance.now();
    answers.push(await transfer(cluster, { via: (i % 3) + 1, to: ((i + 1) % 3) + 1 }));
    checkAlive(cluster, lines);
    const waitMs = TRANSFER_INTERVAL_MS - (performance.now() - started);
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
  return answers;
}

/**
 * Starts WRITERS loops that each put their own keys through one node until stopped; `stop()`
 * waits for the writes in flight. `acknowledged` holds every acknowledged key and value.
 */
function startWriters(cluster: LocalCluster) {
  const acknowledged = new Map<string, string>();
  let isStopped = false;
  const loops = Array.from({ length: WRITERS }, async (_, writer) => {
    const node = (writer % cluster.nodes.length) + 1;
    const client = new AspenClient({
      endpoints: [cluster.url(node)],
      token: cluster.record.rootToken,
    });
    for (let sequence = 0; !isStopped; sequence++) {
      const key = `${KEY_PREFIX}${writer}/${sequence}`;
      const value = `value ${writer}/${sequence}`;
      try {
        await client.put(key, value);
        acknowledged.set(key, value);
      } catch (error) {
        // Refused or unknown outcome (not_leader, proposal_dropped, timeout...): not counted.
        if (!(error instanceof ApiError)) throw error;
      }
    }
  });
  return {
    acknowledged,
    async stop(): Promise<void> {
      isStopped = true;
      await Promise.all(loops);
    },
  };
}

async function transfer(
  cluster: LocalCluster,
  call: { readonly via: number; readonly to: number },
): Promise<TransferAnswer> {
  let response: Response;
  try {
    response = await fetch(`${cluster.url(call.via)}/v1/shards/0/transfer-leader`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${cluster.record.rootToken}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ to: call.to }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (error) {
    // The node may have died answering: checkAlive() then says so, with its output.
    return { ...call, status: 0, code: `unreachable: ${error}` };
  }
  const body = await response.json() as {
    shard?: unknown;
    leader?: unknown;
    error?: { code?: unknown; message?: unknown };
  };
  if (response.status === 200) {
    equal(body.shard, 0);
    equal(body.leader, call.to);
    return { ...call, status: 200, code: null };
  }
  const code = body.error?.code;
  const isClean = typeof code === "string" && typeof body.error?.message === "string";
  return { ...call, status: response.status, code: isClean ? code : null };
}

function checkAlive(cluster: LocalCluster, lines: readonly string[]): void {
  const exits = cluster.unexpectedExits;
  const detail = lines.filter((line) => /error|assert/i.test(line)).slice(-10).join("\n");
  equal(exits.length, 0, `nodes exited: ${JSON.stringify(exits)}\n${detail}`);
  for (const node of cluster.nodes) ok(cluster.isRunning(node.id), `node ${node.id} runs`);
}

/** Every key under KEY_PREFIX, read linearizably a page at a time. */
async function readAll(cluster: LocalCluster): Promise<Map<string, string>> {
  const client = new AspenClient({
    endpoints: cluster.nodes.map((node) => cluster.url(node.id)),
    token: cluster.record.rootToken,
  });
  const stored = new Map<string, string>();
  let after: string | undefined;
  for (let page = 0; page < 100; page++) {
    const result = await client.range({ prefix: KEY_PREFIX, limit: 5_000, after });
    for (const kv of result.kvs) stored.set(kv.key, kv.value);
    if (!result.more) return stored;
    after = result.next;
  }
  throw new Error("Cannot read the written keys: more than 100 pages");
}
