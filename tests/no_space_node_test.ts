/**
 * A real `aspen node` process (1 node, 1 shard) on a small tmpfs, filled until writes fail
 * (issue 12: a full disk used to kill the node with "database or disk is full").
 *
 * 1. With no reserve (`--disk-reserve-mib=0`), writes run until SQLite finds the disk full.
 *    Then: writes are answered 507 `no_space` at once; the process is still running; acknowledged
 *    keys read back (linearizable and serializable); a leadership transfer is refused with
 *    `no_space` too (the Raft core takes no call while it holds the failed Ready);
 *    `/v1/cluster/status` lists the shard's
 *    `no_space` alarm and `/metrics` has `aspen_alarm{type="no_space"} 1`. A ballast file the
 *    test put on the same file system is removed, and writes resume by themselves; every
 *    acknowledged key has its value, and the alarm is gone.
 * 2. With a reserve, the node refuses writes before the disk is full: once free space is below
 *    the reserve (the node logs the alarm), puts get `no_space` but deletes are still accepted,
 *    with room to spare on the disk; freeing space lifts it.
 * 3. Started again on a disk with no space left at all, the node cannot open its files (SQLite
 *    cannot create the log's shared-memory file); it exits saying so and how much space is free.
 *
 * Needs root to mount the tmpfs; skipped with that reason otherwise.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { ClusterStatus } from "../api/mod.ts";
import { LocalCluster } from "../cli/launcher.ts";
import { ASPEN_COMMAND } from "./_cluster.ts";
import { mountSmallFilesystem, type SmallFilesystem, tmpfsTestOptions } from "./_tmpfs.ts";

const MIB = 1024 * 1024;
/** The file system for the node: its files plus the ballast. */
const FILESYSTEM_MIB = 40;
/** Values large enough to fill the disk in a few hundred writes. */
const VALUE_BYTES = 64 * 1024;
/** Writers running at once while the disk fills. */
const WRITERS = 4;
/** The most writes the fill may take (a bound, never reached when the disk fills). */
const WRITES_MAX = 2_000;
/** How long the node may take to resume writing once space returns. */
const RESUME_TIMEOUT_MS = 10_000;

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

interface TestNode {
  readonly cluster: LocalCluster;
  readonly lines: string[];
  call(method: string, path: string, body?: unknown): Promise<Answer>;
  metrics(): Promise<string>;
}

async function launchNode(fs: SmallFilesystem, reserveMib: number): Promise<TestNode> {
  const lines: string[] = [];
  const cluster = await LocalCluster.launch({
    dir: `${fs.dir}/cluster`,
    nodes: 1,
    shards: 1,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: (id, line) => lines.push(`n${id} | ${line}`),
    extraNodeArgs: [`--disk-reserve-mib=${reserveMib}`],
  });
  const headers = { authorization: `Bearer ${cluster.record.rootToken}` };
  const node: TestNode = {
    cluster,
    lines,
    call: async (method, path, body) => {
      const response = await fetch(`${cluster.url(1)}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: await response.json() };
    },
    metrics: async () => await (await fetch(`${cluster.url(1)}/metrics`, { headers })).text(),
  };
  await cluster.waitForLeaders();
  return node;
}

async function withNode(
  reserveMib: number,
  body: (node: TestNode, fs: SmallFilesystem) => Promise<void>,
): Promise<void> {
  const fs = await mountSmallFilesystem(FILESYSTEM_MIB);
  let node: TestNode | null = null;
  try {
    node = await launchNode(fs, reserveMib);
    await body(node, fs);
    deepEqual(node.cluster.unexpectedExits, [], "the node never exited on its own");
    equal(node.lines.filter((line) => /Uncaught|error:/.test(line)).length, 0);
  } catch (error) {
    throw new Error(`${error}\n${node?.lines.join("\n") ?? ""}`, { cause: error });
  } finally {
    await node?.cluster.stop();
    await fs.close();
  }
}

function valueOf(key: string): string {
  return key.padEnd(VALUE_BYTES, ".");
}

/**
 * Puts distinct keys from WRITERS writers until each gets `no_space`. Returns the keys whose
 * put was acknowledged; a put answered `timeout` (its outcome unknown) is not counted.
 */
async function fillUntilNoSpace(node: TestNode): Promise<{ acked: string[]; refusal: Answer }> {
  const acked: string[] = [];
  let next = 0;
  let refusal: Answer | null = null;
  const writer = async () => {
    while (refusal === null && next < WRITES_MAX) {
      const key = `fill/${String(next++).padStart(5, "0")}`;
      const answer = await node.call("PUT", `/v1/kv/${key}`, { value: valueOf(key) });
      if (answer.status === 200) acked.push(key);
      else if (answer.status === 507) refusal ??= answer;
      else equal(answer.body.error && (answer.body.error as { code: string }).code, "timeout");
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  ok(refusal !== null, `no write was refused after ${next} writes`);
  return { acked, refusal };
}

async function alarmsOf(node: TestNode): Promise<NonNullable<ClusterStatus["nodes"][0]["alarms"]>> {
  const status = await node.call("GET", "/v1/cluster/status");
  equal(status.status, 200);
  const alarms = (status.body as unknown as ClusterStatus).nodes[0]?.alarms;
  ok(alarms !== null && alarms !== undefined, "the node reports its alarms");
  return alarms;
}

/** Waits until the node logged a line with `text` (alarms are logged by a 250 ms check). */
async function waitForLine(node: TestNode, text: string): Promise<void> {
  const deadline = Date.now() + RESUME_TIMEOUT_MS;
  while (!node.lines.some((line) => line.includes(text))) {
    ok(Date.now() < deadline, `the node did not log "${text}"`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Puts `key` until it is acknowledged, or fails after RESUME_TIMEOUT_MS. */
async function putUntilAccepted(node: TestNode, key: string): Promise<number> {
  const deadline = Date.now() + RESUME_TIMEOUT_MS;
  let tries = 0;
  for (;;) {
    tries++;
    const answer = await node.call("PUT", `/v1/kv/${key}`, { value: valueOf(key) });
    if (answer.status === 200) return tries;
    equal(answer.status, 507, JSON.stringify(answer.body));
    ok(Date.now() < deadline, `writes did not resume within ${RESUME_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

Deno.test({
  ...tmpfsTestOptions(
    "a node on a full disk answers no_space, keeps reading, and resumes when space returns",
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withNode(0, async (node, fs) => {
      await fs.fill(fs.freeBytes() - 12 * MIB);
      const { acked, refusal } = await fillUntilNoSpace(node);
      ok(acked.length > 0, "some writes were acknowledged before the disk filled");
      const error = refusal.body.error as Record<string, unknown>;
      equal(error.code, "no_space");
      equal(error.shard, 0);
      match(String(error.message), /^Cannot write to shard 0 on this node: its disk is full/);
      ok(node.cluster.isRunning(1), "the node is still running");

      const first = acked[0]!;
      const read = await node.call("GET", `/v1/kv/${first}`);
      equal(read.status, 200, "linearizable reads still work");
      equal((read.body.kv as { value: string }).value, valueOf(first));
      const local = await node.call("GET", `/v1/kv/${first}?consistency=serializable`);
      equal(local.status, 200, "serializable reads still work");
      const alarms = await alarmsOf(node);
      deepEqual(alarms.map((alarm) => [alarm.type, alarm.shard]), [["no_space", 0]]);
      const transfer = await node.call("POST", "/v1/shards/0/transfer-leader", { to: 1 });
      equal(transfer.status, 507, "an admin call waits for the stall to end");
      match(await node.metrics(), /^aspen_alarm\{node="1",type="no_space"\} 1$/m);
      match(await node.metrics(), /^aspen_shard_storage_stalled\{node="1",shard="0"\} 1$/m);

      await fs.free();
      await putUntilAccepted(node, "after/space-returned");
      deepEqual(await alarmsOf(node), [], "the alarm cleared by itself");
      match(await node.metrics(), /^aspen_alarm\{node="1",type="no_space"\} 0$/m);
      for (const key of [...acked, "after/space-returned"]) {
        const answer = await node.call("GET", `/v1/kv/${key}`);
        equal(answer.status, 200, `acknowledged key ${key} is readable`);
        equal((answer.body.kv as { value: string }).value, valueOf(key));
      }
      ok(node.lines.some((line) => line.includes("Alarm raised")), "the alarm was logged");
      await waitForLine(node, "Alarm cleared");
    });
  },
});

Deno.test({
  ...tmpfsTestOptions(
    "below its disk reserve a node refuses puts, accepts deletes, and lifts it with space",
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const reserveMib = 16;
    await withNode(reserveMib, async (node, fs) => {
      for (const key of ["keep/a", "keep/b"]) {
        equal((await node.call("PUT", `/v1/kv/${key}`, { value: "v" })).status, 200);
      }
      await fs.fill(fs.freeBytes() - (reserveMib / 2) * MIB);
      await waitForLine(node, "Alarm raised");
      const alarms = await alarmsOf(node);
      deepEqual(alarms.map((alarm) => [alarm.type, alarm.shard]), [["no_space", undefined]]);
      const refusal = await node.call("PUT", "/v1/kv/refused", { value: "v" });
      equal(refusal.status, 507);
      const error = refusal.body.error as Record<string, unknown>;
      equal(error.code, "no_space");
      match(String(error.message), /^Cannot write to shard 0 on node 1: the data disk/);
      match(String(error.message), /below the reserve of 16\.0 MiB/);
      ok(fs.freeBytes() > 0, "refused before the disk is full");
      const removed = await node.call("DELETE", "/v1/kv/keep/a");
      equal(removed.status, 200, "deletes are accepted under the alarm");
      equal(removed.body.deleted, 1);
      equal((await node.call("GET", "/v1/kv/keep/b")).status, 200);

      await fs.free();
      await putUntilAccepted(node, "after/space-returned");
      deepEqual(await alarmsOf(node), []);
      equal((await node.call("GET", "/v1/kv/keep/a")).status, 404);
    });
  },
});

Deno.test({
  ...tmpfsTestOptions(
    "a node started on a full disk exits saying how much space its data disk has",
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fs = await mountSmallFilesystem(FILESYSTEM_MIB);
    let node: TestNode | null = null;
    try {
      node = await launchNode(fs, 0);
      equal((await node.call("PUT", "/v1/kv/before", { value: "v" })).status, 200);
      await node.cluster.stopNode(1);
      await fs.fill();
      node.cluster.start(1);
      const failure = await node.cluster.waitForLeaders().then(() => null, (error) => error);
      match(String(failure), /node 1 exited \(code 1/);
      const said = node.lines.find((line) => line.includes("aspen node:")) ?? "";
      match(said, /aspen node: (no_space|storage_error): Cannot open /);
      match(said, /the data disk of ".*" has 0\.0 MiB free: free space on it/);
    } finally {
      await node?.cluster.stop();
      await fs.close();
    }
  },
});
