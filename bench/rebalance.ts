/**
 * `deno run -A --unstable-net bench/rebalance.ts [--mib N] [--value-bytes B]`: the cost of
 * growing the cluster (issue 15). Starts 3 nodes with SHARDS shards (replication factor 3),
 * loads N MiB of values, then runs a put workload (PUT_CLIENTS clients, 256-byte values)
 * throughout: WINDOW_MS before, during the growth (a 4th node joins with `--join`, and the
 * window lasts until the rebalancer is idle: every member active, no learner, the members
 * within one replica of each other) and WINDOW_MS after. Prints the time to balance, the data
 * moved (the loaded bytes of the replicas the new node took, and its data dir's size on disk),
 * the time per GiB, and the put throughput and p99 of each window. Every process shares the
 * machine's CPU.
 */
import { parseArgs } from "node:util";
import { AspenClient, type ClusterStatus } from "../api/mod.ts";
import { LocalCluster } from "../cli/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const encoder = new TextEncoder();
/** Shards of the cluster: 12 replicas, 3 of which move to the 4th node. */
export const SHARDS = 4;
/** Clients of the put workload that runs throughout. */
export const PUT_CLIENTS = 16;
/** The measured window before and after the growth. */
export const WINDOW_MS = 10_000;
/** How long the rebalancer may take before the benchmark gives up. */
export const BALANCE_TIMEOUT_MS = 600_000;
/** Loads in flight while filling the cluster. */
const LOAD_IN_FLIGHT = 32;

const args = parseArgs({
  args: Deno.args,
  options: {
    mib: { type: "string", default: "64" },
    "value-bytes": { type: "string", default: "4096" },
  },
});
const mib = Number(args.values.mib);
const valueBytes = Number(args.values["value-bytes"]);
if (!(mib > 0) || !Number.isSafeInteger(valueBytes) || valueBytes < 1) {
  console.error("usage: bench/rebalance.ts [--mib N (above 0)] [--value-bytes B (1 or more)]");
  Deno.exit(2);
}

/** Latencies (ms) of the puts acknowledged in one window. */
interface Window {
  readonly name: string;
  readonly latencies: number[];
  startedMs: number;
  endedMs: number;
}

const dir = await Deno.makeTempDir({ prefix: "aspen-rebalance-bench-" });
const cluster = await LocalCluster.launch({
  dir,
  nodes: 3,
  shards: SHARDS,
  selfCommand: [Deno.execPath(), "run", "-A", "--unstable-net", `${ROOT}main.ts`],
  randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
  logLevel: "warn",
  onLine: () => {},
});
try {
  await cluster.waitForLeaders();
  const client = new AspenClient({
    endpoints: cluster.nodes.map((node) => cluster.url(node.id)),
    token: cluster.record.rootToken,
  });
  await load(client);
  const windows: Window[] = [];
  let current = newWindow("before", windows);
  let isStopped = false;
  const writers = Array.from({ length: PUT_CLIENTS }, async (_, writer) => {
    const value = "v".repeat(256);
    for (let i = 0; !isStopped; i++) {
      const started = performance.now();
      try {
        await client.put(`bench-put/${writer}/${i % 1_000}`, value);
        current.latencies.push(performance.now() - started);
      } catch {
        // Refused or unknown: not counted.
      }
    }
  });
  await sleep(WINDOW_MS);
  current = newWindow("during", windows);
  const joinStarted = performance.now();
  const joined = cluster.join(cluster.url(1));
  const status = await waitForBalance(client, joined.id);
  const balanceMs = performance.now() - joinStarted;
  current = newWindow("after", windows);
  await sleep(WINDOW_MS);
  current.endedMs = performance.now();
  isStopped = true;
  await Promise.all(writers);
  const taken = status.members?.find((member) => member.id === joined.id)?.replicas ?? 0;
  report({ balanceMs, taken, diskBytes: await folderBytes(joined.dataDir), windows });
} finally {
  await cluster.stop();
  await Deno.remove(dir, { recursive: true });
}

/** Polls the status until the new node is active and the rebalancer has nothing left to do. */
async function waitForBalance(client: AspenClient, node: number): Promise<ClusterStatus> {
  const deadline = performance.now() + BALANCE_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const status = await client.request<ClusterStatus>({
      method: "GET",
      path: "/v1/cluster/status",
    }).catch(() => null);
    if (status !== null && isBalanced(status, node)) return status;
    await sleep(250);
  }
  throw new Error(`The rebalancer was not idle within ${BALANCE_TIMEOUT_MS} ms`);
}

function isBalanced(status: ClusterStatus, node: number): boolean {
  const members = (status.members ?? []).filter((member) => member.state !== "removed");
  const isActive = members.some((member) => member.id === node) &&
    members.every((member) => member.state === "active");
  if (!isActive || (status.learners ?? []).length > 0) return false;
  const counts = members.map((member) => member.replicas);
  const isPlaced = status.shards.every((shard) => shard.replicas.length === 3);
  return isPlaced && Math.max(...counts) - Math.min(...counts) <= 1;
}

function newWindow(name: string, windows: Window[]): Window {
  const now = performance.now();
  const last = windows.at(-1);
  if (last !== undefined) last.endedMs = now;
  const window: Window = { name, latencies: [], startedMs: now, endedMs: now };
  windows.push(window);
  return window;
}

async function load(client: AspenClient): Promise<void> {
  const keys = Math.ceil(mib * 1024 * 1024 / valueBytes);
  const value = "x".repeat(valueBytes);
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: LOAD_IN_FLIGHT }, async () => {
    while (next < keys) {
      const i = next++;
      await client.put(`bench-data/${i}`, value);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  print(`loaded ${keys} keys of ${valueBytes} bytes (${mib} MiB) in ${seconds.toFixed(1)} s`);
}

/** The bytes of every file under `path`. */
async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    const full = `${path}/${entry.name}`;
    if (entry.isDirectory) total += await folderBytes(full);
    else if (entry.isFile) total += (await Deno.stat(full)).size;
  }
  return total;
}

function report(
  run: { balanceMs: number; taken: number; diskBytes: number; windows: readonly Window[] },
): void {
  // Keys hash evenly over the shards: each replica the new node took holds 1/SHARDS of the load.
  const movedMib = mib * run.taken / SHARDS;
  const seconds = run.balanceMs / 1000;
  print(
    `join 3 -> 4 nodes: balanced in ${seconds.toFixed(1)} s; the new node took ${run.taken} ` +
      `of ${SHARDS * 3} replicas, ${movedMib.toFixed(1)} MiB of loaded values ` +
      `(${(run.diskBytes / 1024 ** 2).toFixed(1)} MiB on its disk): ` +
      `${(seconds / (movedMib / 1024)).toFixed(0)} s per GiB`,
  );
  for (const window of run.windows) {
    const sorted = [...window.latencies].sort((a, b) => a - b);
    const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
    const windowSeconds = (window.endedMs - window.startedMs) / 1000;
    print(
      `puts ${window.name}: ${(sorted.length / windowSeconds).toFixed(0)}/s, ` +
        `p99 ${p99.toFixed(1)} ms (${windowSeconds.toFixed(1)} s)`,
    );
  }
}

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
