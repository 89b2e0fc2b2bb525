/**
 * `deno task bench:stalls`: how long a loaded node's event loop is held. It starts a dev cluster
 * (3 nodes, 1 shard by default), writes puts of 256 B with many clients for a while, long enough
 * by default to cross a snapshot of every replica (SNAPSHOT_INTERVAL_ENTRIES applied entries,
 * with its compaction), and reads each node's `/metrics` before and after the load:
 * `aspen_node_event_loop_stall_ms_max` (the longest stall since the node started) and
 * `aspen_node_event_loop_stalls_total` (stalls over 100 ms and over 500 ms; the load's are the
 * difference), and the snapshots each node took and installed meanwhile. A stall of a node holds
 * every shard it hosts: one longer than the election timeout (500-1,000 ms) lets followers
 * elsewhere start elections against its leaders. Flags (all optional):
 *
 *   --seconds S     seconds of load (45; a 3-node cluster at about 3,000 puts/s passes 100,000
 *                   entries in 35 s)
 *   --clients C     concurrent clients (64)
 *   --nodes N       nodes (3)
 *   --shards N      shards (1)
 *   --snapshot-interval N   the nodes' snapshot interval in entries (their default when absent;
 *                   a smaller one makes snapshots and compactions frequent)
 *   --main PATH     the main.ts to run as the nodes (default this checkout's), so that one
 *                   script measures two builds (A/B against another checkout)
 *   --json FILE     also write the result as JSON
 *   --lag-node N    kill node N (SIGKILL) LAG_START_MS into the load and start it again
 *                   --lag-seconds later (10), so that it comes back behind the others and,
 *                   once their logs are compacted past it, installs a snapshot under load;
 *                   the clients use the other nodes, and node N's figures count from its
 *                   restart (it is waited for until it installed one, up to LAG_WAIT_MS)
 *   --lag-seconds S seconds node N is down
 *   --cpu-prof DIR  run every node with --cpu-prof, profiles written to DIR when a node exits
 *                   (a node killed by --lag-node writes none for its first life)
 *
 * One run is one sample: stalls vary from run to run. Compare builds in interleaved runs.
 */
import { parseArgs } from "node:util";
import { LocalCluster } from "../cli/mod.ts";
import { type BenchReport, runBench } from "./runner.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** Longest load accepted, in seconds. */
const LOAD_SECONDS_MAX = 3_600;
/** Most nodes, shards and clients accepted. */
const NODES_MAX = 7;
const SHARDS_MAX = 64;
const CLIENTS_MAX = 1_024;
/** The key space written (as bench:cluster's), and the value size. */
const KEYSPACE = 10_000;
const VALUE_BYTES = 256;
/** How far into the load (after its warm-up) the lagging node is killed. */
const LAG_START_MS = 3_000;
/** How long after the load a restarted node is waited for to install a snapshot. */
const LAG_WAIT_MS = 30_000;
/** Untimed load before the timed part (connections open, leaders settle). */
const WARMUP_MS = 1_000;
const encoder = new TextEncoder();

interface StallOptions {
  readonly seconds: number;
  readonly clients: number;
  readonly nodes: number;
  readonly shards: number;
  readonly snapshotInterval: number | null;
  readonly mainPath: string;
  readonly jsonPath: string | null;
  /** The node killed and started again during the load, or null. */
  readonly lagNode: number | null;
  readonly lagSeconds: number;
  readonly cpuProfileDir: string | null;
}

/** What one node's `/metrics` says of its stalls and snapshots at one moment. */
export interface StallSample {
  readonly stallMsMax: number;
  readonly stallsOver100: number;
  readonly stallsOver500: number;
  readonly snapshotsCreated: number;
  readonly snapshotsRestored: number;
}

/** One node over the load. */
interface NodeStalls {
  readonly node: number;
  /** Zeros for a node restarted during the load: its figures count from the restart. */
  readonly before: StallSample;
  readonly after: StallSample;
  readonly isRestarted?: boolean;
}

/** What a node that just started has counted. */
const FRESH: StallSample = {
  stallMsMax: 0,
  stallsOver100: 0,
  stallsOver500: 0,
  snapshotsCreated: 0,
  snapshotsRestored: 0,
};

if (import.meta.main) await main(Deno.args);

async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  print(describeRun(options));
  const dir = await Deno.makeTempDir({ prefix: "aspen-stalls-" });
  const cluster = await LocalCluster.launch({
    dir,
    nodes: options.nodes,
    shards: options.shards,
    selfCommand: [
      Deno.execPath(),
      "run",
      "-A",
      "--unstable-net",
      ...(options.cpuProfileDir === null
        ? []
        : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`]),
      options.mainPath,
    ],
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    logLevel: "warn",
    onLine: (id, line) => console.error(`n${id} | ${line}`),
    extraNodeArgs: options.snapshotInterval === null
      ? []
      : [`--test-snapshot-interval-entries=${options.snapshotInterval}`],
  });
  try {
    await cluster.waitForLeaders();
    const ids = cluster.nodes.map((node) => node.id);
    const before = await Promise.all(ids.map((id) => readStalls(cluster, id)));
    const lagNode = options.lagNode;
    if (lagNode !== null && !ids.includes(lagNode)) {
      throw new Error(`--lag-node ${lagNode} is not a node of the cluster (${ids.join(", ")})`);
    }
    const load = startPuts(cluster, ids.filter((id) => id !== lagNode), options);
    if (lagNode !== null) {
      await delay(WARMUP_MS + LAG_START_MS);
      await cluster.kill(lagNode, "SIGKILL");
      await delay(options.lagSeconds * 1000);
      cluster.start(lagNode);
    }
    const report = await load;
    if (lagNode !== null) await waitForInstall(cluster, lagNode);
    const after = await Promise.all(ids.map((id) => readStalls(cluster, id)));
    const nodes = ids.map((node, i) =>
      node === lagNode
        ? { node, before: FRESH, after: after[i]!, isRestarted: true }
        : { node, before: before[i]!, after: after[i]! }
    );
    print(formatStalls(nodes, report) + "\n");
    if (options.jsonPath !== null) {
      const body = { ...options, nodes, report };
      await Deno.writeTextFile(options.jsonPath, JSON.stringify(body, null, 2) + "\n");
    }
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The run's first line: the cluster, the load and the lagging node. */
function describeRun(options: ReturnType<typeof parseOptions>): string {
  return `Event-loop stalls: ${options.nodes} nodes / ${options.shards} shards, ` +
    `${options.clients} clients of puts (${VALUE_BYTES} B) for ${options.seconds} s, ` +
    `snapshot interval ${options.snapshotInterval ?? "default"}, nodes run ` +
    `${options.mainPath}` +
    (options.lagNode === null
      ? ""
      : `; node ${options.lagNode} killed ${LAG_START_MS / 1000} s into the load and ` +
        `started ${options.lagSeconds} s later`) +
    "\n";
}

/** The put load, through the nodes `ids`. */
function startPuts(
  cluster: LocalCluster,
  ids: readonly number[],
  options: ReturnType<typeof parseOptions>,
): ReturnType<typeof runBench> {
  return runBench({
    endpoints: ids.map((id) => cluster.url(id)),
    token: cluster.record.rootToken,
    clients: options.clients,
    conns: options.clients,
    durationMs: options.seconds * 1000,
    total: null,
    workload: {
      workload: "put",
      keySize: 16,
      valueSize: VALUE_BYTES,
      keyspace: KEYSPACE,
      isSequential: false,
      isClientKeys: false,
      readRatio: 0,
      serializable: false,
      scanLimit: 100,
    },
    warmupMs: WARMUP_MS,
    nowMs: () => performance.now(),
  });
}

/** Waits (up to LAG_WAIT_MS) until node `id` answers and has installed a snapshot. */
async function waitForInstall(cluster: LocalCluster, id: number): Promise<void> {
  const deadline = performance.now() + LAG_WAIT_MS;
  while (performance.now() < deadline) {
    try {
      if ((await readStalls(cluster, id)).snapshotsRestored >= 1) return;
    } catch {
      // Not up yet.
    }
    await delay(500);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readStalls(cluster: LocalCluster, id: number): Promise<StallSample> {
  const response = await fetch(`${cluster.url(id)}/metrics`, {
    headers: { authorization: `Bearer ${cluster.record.rootToken}` },
  });
  if (!response.ok) throw new Error(`node ${id}'s /metrics answered ${response.status}`);
  return parseStalls(await response.text());
}

/**
 * The stall and snapshot figures of one `/metrics` text, summed over its lines (a node's
 * snapshot counters have a line per shard).
 *
 * @throws {Error} when the text lacks the stall gauge (a node too old to report it).
 */
export function parseStalls(text: string): StallSample {
  const sum = (name: string, labels = "") => {
    let total = 0;
    let isSeen = false;
    for (const line of text.split("\n")) {
      if (!line.startsWith(`${name}{`) || !line.includes(labels)) continue;
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
      isSeen = true;
    }
    return isSeen ? total : null;
  };
  const stallMsMax = sum("aspen_node_event_loop_stall_ms_max");
  if (stallMsMax === null) {
    throw new Error("/metrics has no aspen_node_event_loop_stall_ms_max: is the node too old?");
  }
  return {
    stallMsMax,
    stallsOver100: sum("aspen_node_event_loop_stalls_total", 'over_ms="100"') ?? 0,
    stallsOver500: sum("aspen_node_event_loop_stalls_total", 'over_ms="500"') ?? 0,
    snapshotsCreated: sum("aspen_shard_snapshots_created_total") ?? 0,
    snapshotsRestored: sum("aspen_shard_snapshots_restored_total") ?? 0,
  };
}

/**
 * The result as text: per node, the longest stall before and after the load (a maximum since
 * the node started; "same" when the load did not raise it), the stalls of the load over 100
 * and 500 ms, and its snapshots; then the load's throughput and latency.
 */
export function formatStalls(nodes: readonly NodeStalls[], report: BenchReport): string {
  const rows = nodes.map(({ node, before, after, isRestarted }) => {
    const max = after.stallMsMax > before.stallMsMax
      ? `${after.stallMsMax}`
      : `${after.stallMsMax} (same as before the load)`;
    const name = isRestarted === true ? `node ${node} (restarted, since then)` : `node ${node}`;
    return `  ${name}: stall max ${max} ms; stalls over 100 ms ` +
      `${after.stallsOver100 - before.stallsOver100}, over 500 ms ` +
      `${after.stallsOver500 - before.stallsOver500}; snapshots taken ` +
      `${after.snapshotsCreated - before.snapshotsCreated}, installed ` +
      `${after.snapshotsRestored - before.snapshotsRestored}`;
  });
  const latency = report.latency;
  const errors = Object.entries(report.errors).map(([code, count]) => `${code} ${count}`);
  return [
    ...rows,
    `  load: ${report.operations} puts, ${Math.round(report.operationsPerSecond)} ops/s; ` +
    `p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms, max ` +
    `${latency.maxMs.toFixed(2)} ms; errors ${errors.length === 0 ? "none" : errors.join(", ")}`,
  ].join("\n");
}

function parseOptions(argv: string[]): StallOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: "string", default: "45" },
      clients: { type: "string", default: "64" },
      nodes: { type: "string", default: "3" },
      shards: { type: "string", default: "1" },
      "snapshot-interval": { type: "string" },
      main: { type: "string", default: `${ROOT}main.ts` },
      json: { type: "string" },
      "lag-node": { type: "string" },
      "lag-seconds": { type: "string", default: "10" },
      "cpu-prof": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const interval = values["snapshot-interval"];
  const nodes = boundedInteger("--nodes", values.nodes, NODES_MAX);
  const seconds = boundedInteger("--seconds", values.seconds, LOAD_SECONDS_MAX);
  const lagNode = values["lag-node"] === undefined
    ? null
    : boundedInteger("--lag-node", values["lag-node"], nodes);
  const lagSeconds = boundedInteger("--lag-seconds", values["lag-seconds"], LOAD_SECONDS_MAX);
  if (lagNode !== null && nodes < 2) {
    throw new Error("--lag-node needs --nodes of 2 or more: the clients use the other nodes");
  }
  if (lagNode !== null && LAG_START_MS / 1000 + lagSeconds >= seconds) {
    throw new Error(
      `--lag-seconds ${lagSeconds} does not end before the load: node ${lagNode} goes down ` +
        `${LAG_START_MS / 1000} s into it and --seconds is ${seconds}`,
    );
  }
  return {
    seconds,
    clients: boundedInteger("--clients", values.clients, CLIENTS_MAX),
    nodes,
    shards: boundedInteger("--shards", values.shards, SHARDS_MAX),
    snapshotInterval: interval === undefined
      ? null
      : boundedInteger("--snapshot-interval", interval, Number.MAX_SAFE_INTEGER),
    mainPath: values.main,
    jsonPath: values.json ?? null,
    lagNode,
    lagSeconds,
    cpuProfileDir: values["cpu-prof"] ?? null,
  };
}

function boundedInteger(flag: string, text: string, max: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${flag} must be a positive integer, not "${text}"`);
  }
  if (value > max) throw new Error(`${flag} is ${value} but the limit is ${max}`);
  return value;
}

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}
