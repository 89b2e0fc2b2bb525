/**
 * `deno run -A --unstable-net bench/reshard.ts [--mib N] [--value-bytes B]`: the cost of
 * `aspen shard add` (issue 14). Starts 3 nodes with 2 shards, loads N MiB of values, then runs
 * a put workload (PUT_CLIENTS clients, 256-byte values) throughout: WINDOW_MS before the move,
 * during it (`POST /v1/shards` with `{"count": 1}` until the move is done) and WINDOW_MS
 * after. Prints the move's time, the bytes it moved (keys plus values), the time per GiB, and
 * the put throughput and p99 of each window. Every process shares the machine's CPU.
 */
import { parseArgs } from "node:util";
import { AspenClient, type ShardMovesResponse } from "../api/mod.ts";
import { LocalCluster } from "../cli/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const encoder = new TextEncoder();
/** Clients of the put workload that runs throughout. */
export const PUT_CLIENTS = 16;
/** The measured window before and after the move. */
export const WINDOW_MS = 10_000;
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

/** Latencies (ms) of the puts acknowledged in one window. */
interface Window {
  readonly name: string;
  readonly latencies: number[];
  startedMs: number;
  endedMs: number;
}

const dir = await Deno.makeTempDir({ prefix: "aspen-reshard-bench-" });
const cluster = await LocalCluster.launch({
  dir,
  nodes: 3,
  shards: 2,
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
  const moveStarted = performance.now();
  await client.request({ method: "POST", path: "/v1/shards", body: { count: 1 } });
  let moved = 0;
  for (;;) {
    const { move } = await client.request<ShardMovesResponse>({
      method: "GET",
      path: "/v1/shards/moves",
    });
    if (move?.phase === "done") {
      moved = move.sources.reduce((sum, source) => sum + source.bytesTotal, 0);
      break;
    }
    await sleep(100);
  }
  const moveMs = performance.now() - moveStarted;
  current = newWindow("after", windows);
  await sleep(WINDOW_MS);
  current.endedMs = performance.now();
  isStopped = true;
  await Promise.all(writers);
  report({ moveMs, moved, windows });
} finally {
  await cluster.stop();
  await Deno.remove(dir, { recursive: true });
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

function report(run: { moveMs: number; moved: number; windows: readonly Window[] }): void {
  const gib = run.moved / 1024 ** 3;
  print(
    `shard add 2 -> 3: ${(run.moveMs / 1000).toFixed(1)} s for ` +
      `${(run.moved / 1024 ** 2).toFixed(1)} MiB moved: ` +
      `${(run.moveMs / 1000 / gib).toFixed(0)} s per GiB`,
  );
  for (const window of run.windows) {
    const sorted = [...window.latencies].sort((a, b) => a - b);
    const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
    const seconds = (window.endedMs - window.startedMs) / 1000;
    print(
      `puts ${window.name}: ${(sorted.length / seconds).toFixed(0)}/s, p99 ${p99.toFixed(1)} ms ` +
        `(${seconds.toFixed(1)} s)`,
    );
  }
}

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
