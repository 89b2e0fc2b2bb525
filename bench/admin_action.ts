/**
 * The frame of the admin-action benchmarks (bench/reshard.ts, bench/rebalance.ts): load a fresh
 * cluster with N MiB of values, then run a put workload (PUT_CLIENTS clients, 256-byte values)
 * for WINDOW_MS before the action, while it runs and for WINDOW_MS after it, and print the put
 * throughput and p99 of each window. The scripts launch the cluster (bench/ does not import
 * cli/) and say what the action is and what it moved.
 */
import { parseArgs } from "node:util";
import { AspenClient } from "../api/mod.ts";

/** Clients of the put workload that runs throughout. */
export const PUT_CLIENTS = 16;
/** The measured window before and after the action. */
export const WINDOW_MS = 10_000;
/** Loads in flight while filling the cluster. */
const LOAD_IN_FLIGHT = 32;

const encoder = new TextEncoder();

/** What the frame needs of a launched cluster (cli/'s LocalCluster has it). */
export interface BenchCluster {
  readonly nodes: readonly { readonly id: number }[];
  readonly record: { readonly rootToken: string };
  url(node: number): string;
  waitForLeaders(): Promise<unknown>;
  stop(): Promise<void>;
}

/** How much to load: `--mib N` (above 0) and `--value-bytes B` (1 or more). */
export interface LoadSize {
  readonly mib: number;
  readonly valueBytes: number;
}

/** Latencies (ms) of the puts acknowledged in one window. */
export interface PutWindow {
  readonly name: string;
  readonly latencies: number[];
  startedMs: number;
  endedMs: number;
}

/** The load size from the script's arguments; exits 2 with a usage line naming `script`. */
export function loadSizeArgs(script: string): LoadSize {
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
    console.error(`usage: ${script} [--mib N (above 0)] [--value-bytes B (1 or more)]`);
    Deno.exit(2);
  }
  return { mib, valueBytes };
}

/**
 * Runs `action` on the loaded `cluster` between the before and after windows of the put
 * workload, then `report` with its result (the cluster still runs), then stops the cluster and
 * removes `dir`.
 */
export async function measureAroundAction<T>(options: {
  readonly cluster: BenchCluster;
  readonly dir: string;
  readonly size: LoadSize;
  readonly action: (client: AspenClient) => Promise<T>;
  readonly report: (run: { result: T; actionMs: number }) => Promise<void>;
}): Promise<void> {
  const { cluster } = options;
  try {
    await cluster.waitForLeaders();
    const client = new AspenClient({
      endpoints: cluster.nodes.map((node) => cluster.url(node.id)),
      token: cluster.record.rootToken,
    });
    await load(client, options.size);
    const windows: PutWindow[] = [];
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
    const actionStarted = performance.now();
    const result = await options.action(client);
    const actionMs = performance.now() - actionStarted;
    current = newWindow("after", windows);
    await sleep(WINDOW_MS);
    current.endedMs = performance.now();
    isStopped = true;
    await Promise.all(writers);
    await options.report({ result, actionMs });
    printWindows(windows);
  } finally {
    await cluster.stop();
    await Deno.remove(options.dir, { recursive: true });
  }
}

function newWindow(name: string, windows: PutWindow[]): PutWindow {
  const now = performance.now();
  const last = windows.at(-1);
  if (last !== undefined) last.endedMs = now;
  const window: PutWindow = { name, latencies: [], startedMs: now, endedMs: now };
  windows.push(window);
  return window;
}

async function load(client: AspenClient, size: LoadSize): Promise<void> {
  const keys = Math.ceil(size.mib * 1024 * 1024 / size.valueBytes);
  const value = "x".repeat(size.valueBytes);
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: LOAD_IN_FLIGHT }, async () => {
    while (next < keys) {
      const i = next++;
      await client.put(`bench-data/${i}`, value);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  print(
    `loaded ${keys} keys of ${size.valueBytes} bytes (${size.mib} MiB) in ${seconds.toFixed(1)} s`,
  );
}

function printWindows(windows: readonly PutWindow[]): void {
  for (const window of windows) {
    const sorted = [...window.latencies].sort((a, b) => a - b);
    const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
    const seconds = (window.endedMs - window.startedMs) / 1000;
    print(
      `puts ${window.name}: ${(sorted.length / seconds).toFixed(0)}/s, p99 ${p99.toFixed(1)} ms ` +
        `(${seconds.toFixed(1)} s)`,
    );
  }
}

/** Writes one line to stdout. */
export function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
