/**
 * Snapshots in a real node (in process: real SQLite files, the real worker, the real snapshot
 * files): with a short snapshot interval, a node under writes takes snapshots (counted in
 * `/metrics`), keeps exactly one snapshot file beside its Raft log, compacts the log behind it,
 * and after a restart serves every key it acknowledged from snapshot plus log.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type InProcessNode, startInProcessNode } from "./_in_process_node.ts";

const INTERVAL_ENTRIES = 100;
const KEYS = 400;

async function request(
  harness: InProcessNode,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await harness.app.request(path, {
    method,
    headers: { authorization: `Bearer ${harness.root}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: await response.json() };
}

/** The value of one shard-0 series in the node's /metrics. */
async function metric(harness: InProcessNode, name: string): Promise<number> {
  const response = await harness.app.request("/metrics", {
    headers: { authorization: `Bearer ${harness.root}` },
  });
  const line = (await response.text()).split("\n")
    .find((text) => text.startsWith(`${name}{`) && text.includes('shard="0"'));
  return Number(line?.slice(line.lastIndexOf(" ") + 1) ?? NaN);
}

function snapshotFiles(dir: string): string[] {
  return [...Deno.readDirSync(`${dir}/shard-0`)].map((entry) => entry.name)
    .filter((name) => name.startsWith("raft-log.db.snapshot-"));
}

/** The log index a snapshot file holds: `raft-log.db.snapshot-<index>-<random>`. */
function snapshotIndexOf(name: string): number {
  return Number(name.split("-").at(-2));
}

Deno.test("a node snapshots into one file, compacts its log, and restarts from them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-snapshot-node-" });
  try {
    const options = { shards: 1, dir, snapshotIntervalEntries: INTERVAL_ENTRIES };
    const first = await startInProcessNode(options);
    try {
      for (let i = 0; i < KEYS; i++) {
        const put = await request(first, "PUT", `/v1/kv/k${i}`, { value: `v${i}`.repeat(50) });
        equal(put.status, 200, JSON.stringify(put.json));
      }
      // Settled: one stored file, and the replica has applied too little past it to start
      // another snapshot (one still being written would show as a second file or a .tmp).
      const replica = first.node.shards.get(0)!.replica;
      const isSettled = (files: string[]): boolean => {
        const [only] = files;
        return files.length === 1 && only !== undefined && !only.endsWith(".tmp") &&
          replica.status().applied - snapshotIndexOf(only) < INTERVAL_ENTRIES;
      };
      for (let wait = 0; wait < 200 && !isSettled(snapshotFiles(dir)); wait++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      ok(isSettled(snapshotFiles(dir)), snapshotFiles(dir).join());
      ok(await metric(first, "aspen_shard_snapshots_created_total") >= 2, "snapshots were taken");
      equal(await metric(first, "aspen_shard_snapshot_failures_total"), 0);
    } finally {
      await first.close();
    }
    const log = new DatabaseSync(`${dir}/shard-0/raft-log.db`, { readOnly: true });
    try {
      const row = log.prepare(
        "SELECT offset_index, (SELECT file FROM snapshot) AS file FROM state",
      ).get();
      ok(Number(row?.offset_index) > 0, "the log was compacted behind a snapshot");
      deepEqual([row?.file], snapshotFiles(dir), "the row names the one file");
    } finally {
      log.close();
    }
    const second = await startInProcessNode({
      ...options,
      restart: { root: first.root, read: first.read },
    });
    try {
      for (let i = 0; i < KEYS; i += 7) {
        const got = await request(second, "GET", `/v1/kv/k${i}`);
        equal((got.json.kv as { value?: string } | undefined)?.value, `v${i}`.repeat(50));
      }
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
