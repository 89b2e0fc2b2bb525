/**
 * `deno task bench:cluster`: starts dev clusters (1 node / 1 shard, 3 nodes / 1 shard, 3 nodes /
 * 4 shards) with LocalCluster, runs the standard workloads against each with the `aspen bench`
 * runner, and writes BENCHMARKS.md and BENCHMARKS.json at the project root.
 *
 * The benchmark client runs in this process and the nodes in their own processes, all on the
 * same machine: every figure is shared CPU, and the CPU each process used is recorded beside
 * it. Flags (all optional):
 *
 *   --duration S      timed seconds per row (10)      --warmup S     untimed seconds first (2)
 *   --clusters LIST   e.g. 1x1,3x1,3x4 (nodes x shards, default all three)
 *   --rows LIST       row ids, e.g. put-1,put-256 (default all)
 *   --endpoints all|leader   clients spread over every node (default) or the shard-0 leader
 *   --rounds N        cas/txn alternating rounds per cluster (6; 0 skips the comparison)
 *   --round-seconds S seconds of each cas or txn round (3)
 *   --cpu-prof DIR    run every node with --cpu-prof, profiles written to DIR
 *   --etcd auto|off|PATH  also run the rows etcd can run against an etcd cluster of as many
 *                     members as each 1-shard cluster has nodes (auto: `etcd` on PATH, and
 *                     a line saying so when there is none; see etcd.ts)
 *   --out PREFIX      output files PREFIX.md and PREFIX.json (default <root>/BENCHMARKS);
 *                     "-" prints the table only
 *   --render FILE     measure nothing: rewrite PREFIX.md from the JSON of an earlier run and
 *                     the current bench/NOTES.md (the table stays that run's)
 */
import { parseArgs } from "node:util";
import { LocalCluster } from "../cli/mod.ts";
import { type BenchReport, runBench } from "./runner.ts";
import { cpuTimeMs, type MachineInfo, machineInfo } from "./machine.ts";
import { etcdVersion, findEtcd, launchEtcd } from "./etcd.ts";
import {
  type CasTxnComparison,
  clusterName,
  type ClusterShape,
  type CpuUse,
  type CrossShardComparison,
  isEtcdRow,
  type RowResult,
  type RowSpec,
  type RunParameters,
  type RunResult,
  STANDARD_CLUSTERS,
  STANDARD_ROWS,
} from "./plan.ts";
import { formatMarkdown, formatRow } from "./report.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** Hand-written analysis (profiles, what bounds each figure) appended to BENCHMARKS.md. */
const NOTES_PATH = `${ROOT}bench/NOTES.md`;
const encoder = new TextEncoder();

/** Pause between rows so that snapshots and compaction of one row do not land in the next. */
const SETTLE_MS = 500;

interface ScriptOptions {
  readonly parameters: RunParameters;
  readonly clusters: readonly ClusterShape[];
  readonly rows: readonly RowSpec[];
  readonly cpuProfileDir: string | null;
  /** "auto" (etcd on PATH if any), "off", or the etcd binary's path. */
  readonly etcd: string;
  readonly out: string | null;
  /** A JSON file of an earlier run to render instead of measuring. */
  readonly render: string | null;
}

/** What `--help` and a bad flag print (the flags of this file's doc comment). */
const USAGE =
  "usage: deno task bench:cluster [--duration S] [--warmup S] [--clusters 1x1,3x1,3x4] " +
  "[--rows put-1,...] [--endpoints all|leader] [--rounds N] [--round-seconds S] [--cpu-prof DIR] " +
  "[--etcd auto|off|PATH] [--out PREFIX|-] [--render FILE]\n";

if (import.meta.main) await main(Deno.args);

async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    print(USAGE);
    return;
  }
  let options: ScriptOptions;
  try {
    options = parseOptions(argv);
  } catch (error) {
    // parseArgs names the flag in its message (an unknown option, a missing value).
    console.error(`bench:cluster: ${error instanceof Error ? error.message : String(error)}`);
    console.error(USAGE);
    Deno.exit(2);
  }
  if (options.render !== null) return await render(options.render, options.out);
  const machine = await machineInfo(ROOT);
  const startedAt = new Date().toISOString();
  print(
    `Aspen cluster benchmark on ${machine.cores} cores, ${machine.memoryGiB} GiB, Deno ` +
      `${machine.deno}, commit ${machine.commit}${machine.isDirty ? " (dirty)" : ""}\n`,
  );
  const rows: RowResult[] = [];
  const comparisons: CasTxnComparison[] = [];
  const crossShard: CrossShardComparison[] = [];
  for (const shape of options.clusters) {
    const measured = await benchCluster(shape, options);
    rows.push(...measured.rows);
    if (measured.comparison !== null) comparisons.push(measured.comparison);
    if (measured.crossShard !== null) crossShard.push(measured.crossShard);
  }
  const etcd = await benchEtcdClusters(options);
  rows.push(...etcd.rows);
  const result = {
    startedAt,
    parameters: options.parameters,
    rows,
    comparisons,
    crossShard,
    etcdVersion: etcd.version,
  };
  if (options.out === null) return;
  await Deno.writeTextFile(`${options.out}.md`, formatMarkdown(machine, result, await readNotes()));
  await Deno.writeTextFile(
    `${options.out}.json`,
    JSON.stringify({ machine, ...result }, null, 2) + "\n",
  );
  print(`Wrote ${options.out}.md and ${options.out}.json\n`);
}

async function readNotes(): Promise<string> {
  return await Deno.readTextFile(NOTES_PATH).catch((error: unknown) => {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  });
}

/** Rewrites the Markdown of an earlier run from its JSON, with the current notes. */
async function render(jsonPath: string, out: string | null): Promise<void> {
  if (out === null) throw new Error("--render needs --out PREFIX, not -");
  const { machine, ...result } = JSON.parse(await Deno.readTextFile(jsonPath)) as
    & RunResult
    & { machine: MachineInfo };
  await Deno.writeTextFile(`${out}.md`, formatMarkdown(machine, result, await readNotes()));
  print(`Wrote ${out}.md from ${jsonPath}\n`);
}

async function benchCluster(
  shape: ClusterShape,
  options: ScriptOptions,
): Promise<
  {
    rows: RowResult[];
    comparison: CasTxnComparison | null;
    crossShard: CrossShardComparison | null;
  }
> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-bench-" });
  const profile = options.cpuProfileDir === null
    ? []
    : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`];
  const cluster = await LocalCluster.launch({
    dir,
    nodes: shape.nodes,
    shards: shape.shards,
    selfCommand: [Deno.execPath(), "run", "-A", "--unstable-net", ...profile, `${ROOT}main.ts`],
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    logLevel: "warn",
    onLine: (id, line) => console.error(`n${id} | ${line}`),
  });
  try {
    await cluster.waitForLeaders();
    const endpoints = await chooseEndpoints(cluster, options.parameters.endpoints);
    print(`\n${clusterName(shape)} (endpoints ${endpoints.join(" ")})\n`);
    const context: RowContext = {
      pids: () => cluster.nodes.map((node) => node.pid),
      token: cluster.record.rootToken,
      shape,
      endpoints,
      parameters: options.parameters,
    };
    const rows = await benchRows(context, options.rows);
    const hasRounds = options.parameters.casTxnRounds > 0;
    const comparison = hasRounds ? await compareCasTxn(context) : null;
    const crossShard = hasRounds && shape.shards >= 2 ? await compareCrossShard(context) : null;
    return { rows, comparison, crossShard };
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `specs` in order on one cluster, skipping rows that need more shards than it has. */
async function benchRows(context: RowContext, specs: readonly RowSpec[]): Promise<RowResult[]> {
  const rows: RowResult[] = [];
  let isPopulated = false;
  for (const spec of specs) {
    if (spec.shardsPerTxn > context.shape.shards) continue;
    const result = await benchRow(context, spec, !isPopulated);
    isPopulated ||= spec.workload !== "put";
    rows.push(result);
    print(formatRow(result) + "\n");
    await sleep(SETTLE_MS);
  }
  return rows;
}

/**
 * The rows etcd can run, against an etcd cluster of as many members as each 1-shard Aspen
 * cluster of the run has nodes; nothing when `--etcd off` or when there is no etcd binary.
 */
async function benchEtcdClusters(
  options: ScriptOptions,
): Promise<{ rows: RowResult[]; version: string | null }> {
  if (options.etcd === "off") return { rows: [], version: null };
  const binary = await findEtcd(options.etcd === "auto" ? null : options.etcd);
  if (binary === null) {
    print(
      `\netcd: ${options.etcd === "auto" ? "no etcd on PATH" : `no etcd at ${options.etcd}`}` +
        "; no etcd rows (on Debian: apt-get install etcd-server)\n",
    );
    return { rows: [], version: null };
  }
  const version = await etcdVersion(binary);
  const memberCounts = [
    ...new Set(options.clusters.filter((shape) => shape.shards === 1).map((s) => s.nodes)),
  ];
  const rows: RowResult[] = [];
  for (const members of memberCounts) {
    const dir = await Deno.makeTempDir({ prefix: "aspen-bench-etcd-" });
    const etcd = await launchEtcd({
      binary,
      dir,
      members,
      onLine: (id, line) => console.error(`etcd${id} | ${line}`),
    });
    try {
      const shape: ClusterShape = { nodes: members, shards: 1, system: "etcd" };
      print(`\n${clusterName(shape)} ${version} (endpoints ${etcd.urls.join(" ")})\n`);
      const context = {
        pids: () => [...etcd.pids],
        token: null,
        shape,
        endpoints: options.parameters.endpoints === "all" ? etcd.urls : etcd.urls.slice(0, 1),
        parameters: options.parameters,
        api: "etcd" as const,
      };
      rows.push(...await benchRows(context, options.rows.filter(isEtcdRow)));
    } finally {
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  }
  return { rows, version };
}

interface RowContext {
  /** The process ids of the cluster's nodes (their CPU is measured). */
  readonly pids: () => readonly (number | null)[];
  readonly token: string | null;
  readonly shape: ClusterShape;
  readonly endpoints: readonly string[];
  readonly parameters: RunParameters;
  /** The API of the endpoints (default Aspen's). */
  readonly api?: "etcd";
}

async function benchRow(
  context: RowContext,
  spec: RowSpec,
  shouldPopulate: boolean,
  seconds = context.parameters.durationSeconds,
  isClientKeys = false,
): Promise<RowResult> {
  const { parameters, pids } = context;
  let before: (number | null)[] = [];
  let startedAt = 0;
  const loadAverage = Deno.loadavg()[0] ?? 0;
  const report = await runBench({
    endpoints: context.endpoints,
    token: context.token,
    clients: spec.clients,
    conns: Math.min(spec.clients, parameters.connsMax),
    durationMs: seconds * 1000,
    total: null,
    workload: {
      ...(context.api === undefined ? {} : { api: context.api }),
      workload: spec.workload,
      keySize: parameters.keySize,
      valueSize: parameters.valueSize,
      keyspace: spec.keyspace ?? parameters.keyspace,
      isSequential: false,
      isClientKeys,
      readRatio: 0.5,
      serializable: spec.serializable,
      scanLimit: 100,
      shardsPerTxn: spec.shardsPerTxn,
    },
    populate: shouldPopulate,
    warmupMs: parameters.warmupSeconds * 1000,
    nowMs: () => performance.now(),
    onStart: () => {
      before = [cpuTimeMs("self"), ...pids().map(cpuTimeMs)];
      startedAt = performance.now();
    },
  });
  const after = [cpuTimeMs("self"), ...pids().map(cpuTimeMs)];
  const cpu = cpuUse(before, after, performance.now() - startedAt, report);
  return { cluster: context.shape, id: spec.id, title: spec.title, report, cpu, loadAverage };
}

function cpuUse(
  before: readonly (number | null)[],
  after: readonly (number | null)[],
  elapsedMs: number,
  report: BenchReport,
): CpuUse {
  const used = after.map((end, i) => {
    const start = before[i];
    return end === null || start === null || start === undefined ? null : end - start;
  });
  const percent = (ms: number | null) => ms === null ? null : Math.round(100 * ms / elapsedMs);
  const nodes = used.slice(1);
  const isKnown = nodes.every((ms) => ms !== null) && report.operations > 0;
  const nodesMs = nodes.reduce<number>((sum, ms) => sum + (ms ?? 0), 0);
  return {
    clientPercent: percent(used[0] ?? null),
    nodePercents: nodes.map(percent),
    nodesUsPerOp: isKnown ? Math.round(nodesMs * 1000 / report.operations) : null,
  };
}

/**
 * Two rows in --rounds short rounds of --round-seconds, alternating which goes first so that
 * neither always follows the other; each side's results in round order.
 */
async function alternatingRounds(
  context: RowContext,
  pair: readonly [RowSpec, RowSpec],
  isClientKeys: boolean,
): Promise<[RowResult[], RowResult[]]> {
  const seconds = context.parameters.casTxnRoundSeconds;
  const measured: [RowResult[], RowResult[]] = [[], []];
  for (let round = 0; round < context.parameters.casTxnRounds; round++) {
    const order = round % 2 === 0 ? [0, 1] as const : [1, 0] as const;
    for (const side of order) {
      measured[side].push(await benchRow(context, pair[side], false, seconds, isClientKeys));
    }
  }
  return measured;
}

/**
 * CAS and the equivalent optimistic transaction in alternating short rounds, so that drift on
 * a shared machine hits both alike; the overhead is the median of the per-round ratios.
 */
async function compareCasTxn(context: RowContext): Promise<CasTxnComparison> {
  const rounds = context.parameters.casTxnRounds;
  const cas = STANDARD_ROWS.find((spec) => spec.workload === "cas")!;
  const txn = STANDARD_ROWS.find((spec) => spec.workload === "txn")!;
  // Each client writes its own keys: both sides measure successful writes, not conflicts.
  const [casRows, txnRows] = await alternatingRounds(context, [cas, txn], true);
  const ratios = casRows.map((casRow, i) => {
    const txnRow = txnRows[i]!;
    const casUs = casRow.cpu.nodesUsPerOp;
    const txnUs = txnRow.cpu.nodesUsPerOp;
    return {
      throughput: 1 - txnRow.report.operationsPerSecond / casRow.report.operationsPerSecond,
      cpu: casUs === null || txnUs === null ? null : txnUs / casUs - 1,
    };
  });
  const cpuRatios = ratios.map((ratio) => ratio.cpu).filter((value) => value !== null);
  const comparison = {
    cluster: context.shape,
    casOpsPerSecond: casRows.map((row) => row.report.operationsPerSecond),
    txnOpsPerSecond: txnRows.map((row) => row.report.operationsPerSecond),
    casNodesUsPerOp: casRows.map((row) => row.cpu.nodesUsPerOp ?? 0),
    txnNodesUsPerOp: txnRows.map((row) => row.cpu.nodesUsPerOp ?? 0),
    casConflicts: sum(casRows.map((row) => row.report.conflicts)),
    txnConflicts: sum(txnRows.map((row) => row.report.conflicts)),
    operations: sum([...casRows, ...txnRows].map((row) => row.report.operations)),
    throughputOverheadPercent: roundTo(100 * median(ratios.map((ratio) => ratio.throughput)), 1),
    cpuOverheadPercent: cpuRatios.length === 0 ? null : roundTo(100 * median(cpuRatios), 1),
  };
  print(
    `cas vs txn: txn throughput overhead ${comparison.throughputOverheadPercent}%, ` +
      `CPU per op overhead ${comparison.cpuOverheadPercent}% (median of ${rounds} rounds)\n`,
  );
  return comparison;
}

/**
 * A 1-shard cas and a 2-shard cas at 1 client in alternating rounds (as many and as long as
 * the cas/txn ones), each on its own key space, like the cas-1 and cas-2sh-1 rows; the ratio
 * of their p50s is the median over rounds.
 */
async function compareCrossShard(context: RowContext): Promise<CrossShardComparison> {
  const rounds = context.parameters.casTxnRounds;
  const one = STANDARD_ROWS.find((spec) => spec.id === "cas-1")!;
  const two = STANDARD_ROWS.find((spec) => spec.id === "cas-2sh-1")!;
  const [oneRows, twoRows] = await alternatingRounds(context, [one, two], false);
  const p50 = (row: RowResult) => row.report.latency.p50Ms;
  const comparison = {
    cluster: context.shape,
    oneShardP50Ms: oneRows.map(p50),
    twoShardP50Ms: twoRows.map(p50),
    oneShardNodesUsPerOp: oneRows.map((row) => row.cpu.nodesUsPerOp),
    twoShardNodesUsPerOp: twoRows.map((row) => row.cpu.nodesUsPerOp),
    p50Ratio: roundTo(median(twoRows.map((row, i) => p50(row) / p50(oneRows[i]!))), 2),
  };
  print(
    `cas 2 shards vs 1 shard, 1 client: p50 ratio ${comparison.p50Ratio}x ` +
      `(median of ${rounds} rounds)\n`,
  );
  return comparison;
}

async function chooseEndpoints(
  cluster: LocalCluster,
  policy: "all" | "leader",
): Promise<string[]> {
  const all = cluster.nodes.map((node) => cluster.url(node.id));
  if (policy === "all") return all;
  const response = await fetch(`${all[0]}/v1/cluster/status`, {
    headers: { authorization: `Bearer ${cluster.record.rootToken}` },
  });
  const status = await response.json() as { shards: { id: number; leader: number | null }[] };
  const leader = status.shards.find((shard) => shard.id === 0)?.leader ?? null;
  if (leader === null) throw new Error("Cannot target the leader: shard 0 has none");
  return [cluster.url(leader)];
}

function parseOptions(argv: string[]): ScriptOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      duration: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      clusters: {
        type: "string",
        default: STANDARD_CLUSTERS.map((shape) => `${shape.nodes}x${shape.shards}`).join(","),
      },
      rows: { type: "string" },
      endpoints: { type: "string", default: "all" },
      rounds: { type: "string", default: "6" },
      "round-seconds": { type: "string", default: "3" },
      "cpu-prof": { type: "string" },
      etcd: { type: "string", default: "auto" },
      out: { type: "string", default: `${ROOT}BENCHMARKS` },
      render: { type: "string" },
    },
  });
  const endpoints = values.endpoints;
  if (endpoints !== "all" && endpoints !== "leader") {
    throw new Error(`--endpoints is "${endpoints}" but must be all or leader`);
  }
  const wanted = values.rows?.split(",");
  const rows = STANDARD_ROWS.filter((spec) => wanted === undefined || wanted.includes(spec.id));
  if (rows.length === 0) throw new Error(`--rows "${values.rows}" names no standard row`);
  return {
    parameters: {
      durationSeconds: positive(values.duration, "--duration"),
      warmupSeconds: positive(values.warmup, "--warmup", 0),
      keySize: 8,
      valueSize: 256,
      keyspace: 10_000,
      connsMax: 256,
      endpoints,
      casTxnRounds: positive(values.rounds, "--rounds", 0),
      casTxnRoundSeconds: positive(values["round-seconds"], "--round-seconds"),
    },
    clusters: values.clusters.split(",").map(parseShape),
    rows,
    cpuProfileDir: values["cpu-prof"] ?? null,
    etcd: values.etcd,
    out: values.out === "-" ? null : values.out,
    render: values.render ?? null,
  };
}

function parseShape(text: string): ClusterShape {
  const match = /^(\d+)x(\d+)$/.exec(text.trim());
  if (match === null) throw new Error(`--clusters has "${text}"; expected NODESxSHARDS, e.g. 3x4`);
  return { nodes: Number(match[1]), shards: Number(match[2]) };
}

function positive(text: string, flag: string, min = 1): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${flag} is "${text}" but must be an integer of at least ${min}`);
  }
  return value;
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function roundTo(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
