/**
 * `deno task bench:idle`: the CPU an idle cluster uses (issue 16's target: under 3% of a core per
 * node, and flat in the shard count). For each shard count it starts a 3-node dev cluster with
 * LocalCluster, waits until every shard has a leader and every node reports its shards quiesced
 * (`aspen_shards_quiesced` in `/metrics`, all but shard 0, which wakes for linearizable reads),
 * lets it settle, then reads each node's CPU time (utime + stime from `/proc/<pid>/stat`) and
 * its threads' voluntary context switches (`/proc/<pid>/task/<tid>/status`, a count of
 * wakeups) at the start and end of a window with no client traffic. Flags (all optional):
 *
 *   --shards LIST   shard counts, e.g. 4,64,256 (default 4,64,256)
 *   --seconds S     length of the sampled window (20)
 *   --settle S      seconds to wait after quiescence before sampling (5)
 *   --main PATH     the main.ts to run as the nodes (default this checkout's), so that one
 *                   script measures two builds (A/B against another checkout)
 *   --cpu-prof DIR  run every node with --cpu-prof, profiles written to DIR
 *   --json FILE     also write the results as JSON
 *   --threads       also print each node's wakeups by thread name
 *
 * Every figure shares the machine with whatever else runs: compare builds in interleaved rounds.
 */
import { parseArgs } from "node:util";
import { LocalCluster } from "../cli/mod.ts";
import { cpuTimeMs } from "./machine.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** Nodes of every measured cluster (the target is stated for 3). */
const IDLE_NODES = 3;
/** How long the script waits for a node to report its shards quiesced. */
const QUIESCE_TIMEOUT_MS = 120_000;
/** Pause between two polls of `/metrics` while waiting for quiescence. */
const QUIESCE_POLL_MS = 500;
/** Longest sampled window accepted, in seconds. */
const WINDOW_SECONDS_MAX = 600;
/** Most shard counts in one run. */
const SHARD_COUNTS_MAX = 16;
const encoder = new TextEncoder();

interface IdleOptions {
  readonly shardCounts: readonly number[];
  readonly windowSeconds: number;
  readonly settleSeconds: number;
  readonly mainPath: string;
  readonly cpuProfileDir: string | null;
  readonly jsonPath: string | null;
  readonly isThreadsShown: boolean;
}

/** One node's use of the machine over the sampled window. */
interface NodeIdleUse {
  readonly node: number;
  /** CPU time over the window as a percentage of one core. */
  readonly cpuPercent: number;
  /** Voluntary context switches of the node's threads per second: how often they sleep and wake. */
  readonly switchesPerSecond: number;
  /** The same by thread name (the main thread is named after the process). */
  readonly switchesPerSecondByThread: Readonly<Record<string, number>>;
  /** CPU as % of a core by thread name. */
  readonly cpuPercentByThread: Readonly<Record<string, number>>;
  /** Replicas of the node quiesced at the end of the window (`aspen_shards_quiesced`). */
  readonly quiescedAtEnd: number;
}

/** One cluster's measurement. */
interface IdleResult {
  readonly shards: number;
  readonly windowSeconds: number;
  readonly loadAverage: readonly number[];
  readonly nodes: readonly NodeIdleUse[];
}

if (import.meta.main) await main(Deno.args);

async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  print(
    `Idle CPU, ${IDLE_NODES} nodes, ${options.windowSeconds} s window, nodes run ` +
      `${options.mainPath}\n`,
  );
  const results: IdleResult[] = [];
  for (const shards of options.shardCounts) {
    const result = await measureIdle(shards, options);
    results.push(result);
    print(formatResult(result) + "\n");
    if (options.isThreadsShown) print(formatThreads(result) + "\n");
  }
  if (options.jsonPath !== null) {
    const body = { mainPath: options.mainPath, results };
    await Deno.writeTextFile(options.jsonPath, JSON.stringify(body, null, 2) + "\n");
  }
}

async function measureIdle(shards: number, options: IdleOptions): Promise<IdleResult> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-idle-" });
  const profile = options.cpuProfileDir === null
    ? []
    : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`];
  const cluster = await LocalCluster.launch({
    dir,
    nodes: IDLE_NODES,
    shards,
    selfCommand: [Deno.execPath(), "run", "-A", "--unstable-net", ...profile, options.mainPath],
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    logLevel: "warn",
    onLine: (id, line) => console.error(`n${id} | ${line}`),
  });
  try {
    await cluster.waitForLeaders();
    for (const node of cluster.nodes) await waitForQuiesced(cluster, node.id, shards);
    await sleep(options.settleSeconds * 1000);
    const pids = cluster.nodes.map((node) => node.pid);
    const loadAverage = Deno.loadavg().map((value) => Math.round(value * 100) / 100);
    const before = pids.map(sampleProcess);
    const startedAt = performance.now();
    await sleep(options.windowSeconds * 1000);
    const after = pids.map(sampleProcess);
    const seconds = (performance.now() - startedAt) / 1000;
    const quiesced = await Promise.all(
      cluster.nodes.map((node) => quiescedCount(cluster, node.id)),
    );
    const nodes = cluster.nodes.map((node, i) => {
      const start = before[i]!;
      const end = after[i]!;
      return {
        node: node.id,
        cpuPercent: round2((end.cpuMs - start.cpuMs) / 10 / seconds),
        switchesPerSecond: Math.round(switchesBetween(start, end) / seconds),
        switchesPerSecondByThread: switchesByThread(start, end, seconds),
        cpuPercentByThread: cpuByThread(start, end, seconds),
        quiescedAtEnd: quiesced[i]!,
      };
    });
    return { shards, windowSeconds: round2(seconds), loadAverage, nodes };
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Polls node `id`'s `/metrics` until all its replicas but shard 0's report quiesced. */
async function waitForQuiesced(cluster: LocalCluster, id: number, shards: number): Promise<void> {
  const deadline = Date.now() + QUIESCE_TIMEOUT_MS;
  let quiesced = NaN;
  while (Date.now() < deadline) {
    quiesced = await quiescedCount(cluster, id);
    if (quiesced >= shards - 1) return;
    await sleep(QUIESCE_POLL_MS);
  }
  throw new Error(
    `Cannot measure idle CPU: node ${id} reports ${quiesced} of ${shards} shards quiesced ` +
      `after ${QUIESCE_TIMEOUT_MS} ms`,
  );
}

async function quiescedCount(cluster: LocalCluster, id: number): Promise<number> {
  const response = await fetch(`${cluster.url(id)}/metrics`, {
    headers: { authorization: `Bearer ${cluster.record.rootToken}` },
  });
  const text = await response.text();
  const line = text.split("\n").find((item) => item.startsWith("aspen_shards_quiesced{"));
  return line === undefined ? NaN : Number(line.split(" ").at(-1));
}

/** What one read of a node process's `/proc` entries gives. */
interface ProcessSample {
  readonly cpuMs: number;
  /** Voluntary context switches so far, by thread id (involuntary ones measure the load). */
  readonly switches: ReadonlyMap<string, number>;
  /** Thread names, by thread id. */
  readonly names: ReadonlyMap<string, string>;
  /** CPU ms so far, by thread id. */
  readonly threadCpuMs: ReadonlyMap<string, number>;
}

/** CPU ms and each thread's voluntary context switches of `pid`. */
function sampleProcess(pid: number | null): ProcessSample {
  if (pid === null) throw new Error("Cannot sample a node that is not running");
  const cpuMs = cpuTimeMs(pid);
  if (cpuMs === null) throw new Error(`Cannot read the CPU time of process ${pid}`);
  const switches = new Map<string, number>();
  const names = new Map<string, string>();
  const threadCpuMs = new Map<string, number>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/status`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // The thread ended meanwhile.
      throw error;
    }
    let count = 0;
    for (const match of status.matchAll(/^voluntary_ctxt_switches:\s+(\d+)$/gm)) {
      count += Number(match[1]);
    }
    switches.set(entry.name, count);
    names.set(entry.name, /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "?");
    threadCpuMs.set(entry.name, threadCpu(pid, entry.name));
  }
  return { cpuMs, switches, names, threadCpuMs };
}

/** CPU ms (utime + stime) thread `tid` of `pid` used so far; 0 when it ended meanwhile. */
function threadCpu(pid: number, tid: string): number {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU as % of a core between two samples, summed by thread name. */
function cpuByThread(
  start: ProcessSample,
  end: ProcessSample,
  seconds: number,
): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const [thread, ms] of end.threadCpuMs) {
    const before = start.threadCpuMs.get(thread);
    if (before === undefined) continue;
    const name = end.names.get(thread) ?? "?";
    byName[name] = (byName[name] ?? 0) + (ms - before) / 10 / seconds;
  }
  for (const name of Object.keys(byName)) byName[name] = round2(byName[name]!);
  return byName;
}

/** Voluntary context switches per second between two samples, summed by thread name. */
function switchesByThread(
  start: ProcessSample,
  end: ProcessSample,
  seconds: number,
): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const [thread, count] of end.switches) {
    const before = start.switches.get(thread);
    if (before === undefined) continue;
    const name = end.names.get(thread) ?? "?";
    byName[name] = (byName[name] ?? 0) + (count - before) / seconds;
  }
  for (const name of Object.keys(byName)) byName[name] = round2(byName[name]!);
  return byName;
}

/** Context switches between two samples, over the threads alive at both. */
function switchesBetween(start: ProcessSample, end: ProcessSample): number {
  let total = 0;
  for (const [thread, count] of end.switches) {
    const before = start.switches.get(thread);
    if (before !== undefined) total += count - before;
  }
  return total;
}

function formatThreads(result: IdleResult): string {
  return result.nodes.map((node) => {
    const threads = Object.entries(node.switchesPerSecondByThread)
      .filter(([, rate]) => rate >= 0.5)
      .sort((a, b) => b[1] - a[1])
      .map(([name, rate]) => `${name} ${rate}`);
    const cpu = Object.entries(node.cpuPercentByThread)
      .filter(([, percent]) => percent > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([name, percent]) => `${name} ${percent}%`);
    return `  node ${node.node} wakeups/s by thread: ${threads.join(", ")}; cpu: ${cpu.join(", ")}`;
  }).join("\n");
}

function formatResult(result: IdleResult): string {
  const cpu = result.nodes.map((node) => `${node.cpuPercent.toFixed(2)}%`).join(", ");
  const switches = result.nodes.map((node) => node.switchesPerSecond).join(", ");
  const quiesced = result.nodes.map((node) => node.quiescedAtEnd).join(", ");
  const mean = result.nodes.reduce((sum, node) => sum + node.cpuPercent, 0) / result.nodes.length;
  return `shards ${String(result.shards).padStart(4)}: cpu per node ${cpu} (mean ` +
    `${mean.toFixed(2)}%); wakeups/s ${switches}; quiesced at the end ${quiesced}; load ` +
    result.loadAverage.join(" ");
}

function parseOptions(argv: string[]): IdleOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      shards: { type: "string", default: "4,64,256" },
      seconds: { type: "string", default: "20" },
      settle: { type: "string", default: "5" },
      main: { type: "string", default: `${ROOT}main.ts` },
      "cpu-prof": { type: "string" },
      json: { type: "string" },
      threads: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const shardCounts = values.shards.split(",").map((item) => positiveInteger("--shards", item));
  if (shardCounts.length > SHARD_COUNTS_MAX) {
    throw new Error(
      `--shards lists ${shardCounts.length} counts but the limit is ${SHARD_COUNTS_MAX}`,
    );
  }
  const windowSeconds = positiveInteger("--seconds", values.seconds);
  if (windowSeconds > WINDOW_SECONDS_MAX) {
    throw new Error(`--seconds is ${windowSeconds} but the limit is ${WINDOW_SECONDS_MAX}`);
  }
  return {
    shardCounts,
    windowSeconds,
    settleSeconds: positiveInteger("--settle", values.settle),
    mainPath: values.main,
    cpuProfileDir: values["cpu-prof"] ?? null,
    jsonPath: values.json ?? null,
    isThreadsShown: values.threads,
  };
}

function positiveInteger(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${flag} must be a positive integer, not "${text}"`);
  }
  return value;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}
