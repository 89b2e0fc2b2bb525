/**
 * One chaos run against a real cluster: start the nodes, run the clients while the nemesis
 * injects faults, then heal everything and check the outcome:
 * 1. every node runs again and every shard elects a leader;
 * 2. every key is read linearizably through a node and the reads join the history;
 * 3. the whole history is linearizable (per-key register model, unknown outcomes allowed),
 *    which also proves every acknowledged write is accounted for;
 * 4. the replicas of each shard converge to the same applied index and state hash;
 * 5. every write the heavy writer saw acknowledged is readable with its value (load faults);
 * 6. no node exited that the nemesis did not kill, and no answer pointed at a bug (a 500);
 * 7. the bank workload (bank.ts), running beside the clients, never saw a torn total in a
 *    read-only transaction, and every account read back holds the opening total;
 * 8. after "member-change" faults, the last membership change ends and the rebalancer is idle
 *    before the reads, so that checks 2-7 run on the members of the end (joined nodes too).
 * A nemesis that cannot go on (a node that no longer starts) ends the run with an anomaly.
 */
import { SeededPrng } from "../../raft/mod.ts";
import { type BankCounts, BankWorkload } from "./bank.ts";
import { checkHistory } from "../linearizability.ts";
import { ChaosCluster } from "./cluster.ts";
import { type HeavyCounts, HeavyWriter } from "./heavy.ts";
import type { LoadFaultSizes, LoadFigures } from "./load_faults.ts";
import {
  DEFAULT_FAULT_KINDS,
  FAULT_KINDS,
  type FaultKind,
  LOAD_FAULT_KINDS,
  LONG_FAULT_KINDS,
  MEMBERSHIP_FAULT_KINDS,
  Nemesis,
  RESHARD_FAULT_KINDS,
} from "./nemesis.ts";
import type { MembershipFigures } from "./membership_faults.ts";
import { buildPowerLossShim } from "./power_loss.ts";
import { awaitConvergence } from "./verify.ts";
import { Workload, type WorkloadCounts } from "./workload.ts";

/** The replication factor of the nodes' default config. */
export const REPLICATION_FACTOR = 3;
/** How long the healed cluster may take to elect every leader. */
export const SETTLE_TIMEOUT_MS = 60_000;
/**
 * How long the replicas may take to converge after the final reads (a node back from a long
 * outage under heavy writes may still be applying tens of thousands of entries).
 */
export const CONVERGENCE_TIMEOUT_MS = 120_000;
/** How long the checks wait for a membership change to end and the rebalancer to be idle. */
export const MEMBERSHIP_SETTLE_TIMEOUT_MS = 120_000;
/** How long the checks wait for a shard move (a "shard-add" fault's) to end. */
export const MOVE_SETTLE_TIMEOUT_MS = 120_000;
/** Attempts of each final read. */
const FINAL_READ_ATTEMPTS_MAX = 50;
/** Puts in flight of the heavy writer. */
export const HEAVY_IN_FLIGHT_DEFAULT = 128;
/** Kinds that need the heavy writer. */
const HEAVY_KINDS: ReadonlySet<FaultKind> = new Set([
  ...LOAD_FAULT_KINDS,
  "outage-follower",
  "outage-leader",
]);

/** What to run. */
export interface ChaosOptions {
  readonly nodes: number;
  readonly shards: number;
  readonly durationMs: number;
  readonly seed: number;
  readonly clients: number;
  readonly kinds?: readonly FaultKind[];
  /** Take the kinds in turn rather than at random (see NemesisOptions). */
  readonly isCycling?: boolean;
  /** Stop the nemesis after this many faults. */
  readonly faultsMax?: number;
  /** Run on past the duration (up to twice it) until this many faults were injected. */
  readonly faultsMin?: number;
  /** How big the load faults are (CI runs smaller ones); absent: the long-run sizes. */
  readonly loadSizes?: LoadFaultSizes;
  /** Puts in flight of the heavy writer; absent: HEAVY_IN_FLIGHT_DEFAULT. */
  readonly heavyInFlight?: number;
  /** Applied entries between snapshots on every node (a test flag); absent: the default. */
  readonly snapshotIntervalEntries?: number;
  /** Transfer clients of the bank workload (a reader runs besides); absent: one per node. */
  readonly bankClients?: number;
  /** How clients read (see WorkloadOptions); linearizable unless a test plants stale reads. */
  readonly readConsistency?: "linearizable" | "serializable";
  /** Receives progress lines (the nemesis timeline, phase changes). */
  readonly log: (line: string) => void;
  /** Where to keep node logs and the history when a run finds anomalies; null: nowhere. */
  readonly outputDir: string | null;
}

/** The figures of one run. */
export interface ChaosReport {
  readonly seed: number;
  readonly nodes: number;
  readonly shards: number;
  readonly chaosMs: number;
  readonly operations: WorkloadCounts;
  /** The bank workload's figures (cross-shard transfers and read-only totals). */
  readonly bank: BankCounts;
  readonly faults: { readonly total: number; readonly byKind: Record<string, number> };
  /** Notable node events: leader elections, snapshot installs. */
  readonly events: Readonly<Record<string, number>>;
  readonly history: {
    readonly keys: number;
    readonly operationsChecked: number;
    readonly isLinearizable: boolean;
    readonly checkMs: number;
  };
  /** Nodes killed with -9 by any fault. */
  readonly kills: number;
  /** Nodes joined and removed by "member-change" faults, and the members at the end. */
  readonly membership: MembershipFigures & { readonly members: readonly number[] };
  /** The load faults' figures, when the run had any. */
  readonly load: LoadFigures | null;
  /** The heavy writer's figures, when the run had one. */
  readonly heavy: HeavyCounts | null;
  /** Why something was skipped (no C compiler for the power-loss shim). */
  readonly notes: readonly string[];
  readonly anomalies: readonly string[];
}

/** Runs one chaos run and reports its figures; anomalies are reported, not thrown. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const nowMs = () => performance.now();
  options.log(
    `chaos: seed ${options.seed}, ${options.nodes} nodes, ${options.shards} shards, ` +
      `${Math.round(options.durationMs / 1000)} s, snapshot every ` +
      `${options.snapshotIntervalEntries ?? "(default)"} entries`,
  );
  const kinds = options.kinds ?? DEFAULT_FAULT_KINDS;
  const { chaos, notes, shimDir } = await launchCluster(options, kinds);
  const timeline: string[] = [];
  const log = (line: string) => {
    const stamped = `${(nowMs() / 1000).toFixed(1)}s ${line}`;
    timeline.push(stamped);
    options.log(stamped);
  };
  for (const note of notes) log(`note: ${note}`);
  const isHeavy = kinds.some((kind) => HEAVY_KINDS.has(kind));
  const heavy: HeavyWriter | null = isHeavy
    ? new HeavyWriter({
      inFlight: options.heavyInFlight ?? HEAVY_IN_FLIGHT_DEFAULT,
      keyPrefix: `h${options.seed}/`,
      shards: options.shards,
      nodes: (): number[] => nemesis.reachableNodes(),
      url: (node) => chaos.cluster.url(node),
      token: chaos.token,
    })
    : null;
  const nemesis: Nemesis = new Nemesis({
    cluster: chaos,
    prng: new SeededPrng(options.seed),
    holdMs: { min: 1_000, max: 5_000 },
    calmMs: { min: 500, max: 2_000 },
    kinds,
    ...(options.isCycling === undefined ? {} : { isCycling: options.isCycling }),
    ...(options.faultsMax === undefined ? {} : { faultsMax: options.faultsMax }),
    shards: options.shards,
    replicationFactor: REPLICATION_FACTOR,
    // The single-key workload's and the bank's prefixes: tenant moves move their keys.
    tenants: [`s${options.seed}`, `b${options.seed}`],
    ...(heavy === null ? {} : { heavy }),
    ...(options.loadSizes === undefined ? {} : { loadSizes: options.loadSizes }),
    nowMs,
    log,
    onStop: (node) => bank.noteStop(node),
  });
  const workload = new Workload({
    clients: options.clients,
    prng: new SeededPrng(options.seed + 1),
    keyPrefix: `s${options.seed}/`,
    activeKeys: 4,
    operationsPerKey: 120,
    thinkMsMax: 10,
    nodes: () => nemesis.reachableNodes(),
    url: (node) => chaos.cluster.url(node),
    token: chaos.token,
    nowMs,
    readConsistency: options.readConsistency ?? "linearizable",
  });
  const bank = new BankWorkload({
    clients: options.bankClients ?? options.nodes,
    shards: options.shards,
    prng: new SeededPrng(options.seed + 2),
    keyPrefix: `b${options.seed}/`,
    thinkMsMax: 10,
    nodes: () => nemesis.reachableNodes(),
    url: (node) => chaos.cluster.url(node),
    token: chaos.token,
    nowMs,
  });
  const run: RunParts = { options, chaos, nemesis, workload, bank, heavy, notes, log, nowMs };
  let report: ChaosReport | null = null;
  try {
    report = await runAndCheck(run);
    return report;
  } finally {
    const isKept = report === null || report.anomalies.length > 0;
    if (isKept && options.outputDir !== null) {
      await keepEvidence(options.outputDir, chaos, timeline, { workload, bank });
      options.log(`chaos: logs, timeline and history kept in ${options.outputDir}`);
    }
    await chaos.destroy({ keepDir: false });
    if (shimDir !== null) await Deno.remove(shimDir, { recursive: true });
  }
}

/** Starts the cluster, under the power-loss shim when the run may cut power. */
async function launchCluster(
  options: ChaosOptions,
  kinds: readonly FaultKind[],
): Promise<{ chaos: ChaosCluster; notes: string[]; shimDir: string | null }> {
  const notes: string[] = [];
  let shimDir: string | null = null;
  let powerLossShim: string | undefined;
  if (kinds.includes("power-loss")) {
    shimDir = await Deno.makeTempDir({ prefix: "aspen-shim-" });
    const shim = await buildPowerLossShim(shimDir);
    if ("path" in shim) powerLossShim = shim.path;
    else notes.push(`power-loss skipped: ${shim.skipReason}`);
  }
  const chaos = await ChaosCluster.launch({
    nodes: options.nodes,
    shards: options.shards,
    extraNodeArgs: options.snapshotIntervalEntries === undefined
      ? []
      : [`--test-snapshot-interval-entries=${options.snapshotIntervalEntries}`],
    ...(powerLossShim === undefined ? {} : { powerLossShim }),
  });
  return { chaos, notes, shimDir };
}

/** The parts of one run. */
interface RunParts {
  readonly options: ChaosOptions;
  readonly chaos: ChaosCluster;
  readonly nemesis: Nemesis;
  readonly workload: Workload;
  readonly bank: BankWorkload;
  readonly heavy: HeavyWriter | null;
  readonly notes: readonly string[];
  readonly log: (line: string) => void;
  readonly nowMs: () => number;
}

/** Runs clients and nemesis for the run's duration, then heals and checks. */
async function runAndCheck(run: RunParts): Promise<ChaosReport> {
  const { options, nemesis, workload, bank, heavy, log, nowMs } = run;
  await bank.open();
  const started = nowMs();
  workload.start();
  bank.start();
  let stopped: unknown = null;
  try {
    await nemesis.run(started + options.durationMs, options.faultsMin, options.durationMs);
  } catch (error) {
    stopped = error;
    log(`the nemesis stopped: ${error instanceof Error ? error.message : String(error)}`);
  }
  await workload.stop();
  await bank.stop();
  if (heavy?.isRunning) await heavy.stop();
  const chaosMs = nowMs() - started;
  const anomalies: string[] = [];
  let verdict = { operationsChecked: 0, isLinearizable: false, checkMs: 0 };
  if (stopped === null && run.chaos.unexpectedExits.length > 0) {
    log("a node exited unasked: no checks (the run has failed)");
  } else if (stopped === null) {
    log(`chaos over after ${Math.round(chaosMs)} ms: healing`);
    try {
      verdict = await checkRun(run, anomalies);
    } catch (error) {
      anomalies.push(`the checks could not finish: ${describe(error)}`);
    }
  } else {
    anomalies.push(`the nemesis could not go on: ${describe(stopped)}`);
  }
  anomalies.push(...exitAnomalies(run.chaos));
  return {
    seed: options.seed,
    nodes: options.nodes,
    shards: options.shards,
    chaosMs: Math.round(chaosMs),
    operations: workload.counts,
    bank: bank.counts,
    faults: { total: nemesis.total, byKind: { ...nemesis.counts } },
    events: { ...run.chaos.events },
    history: { keys: workload.keys.length, ...verdict },
    kills: nemesis.kills,
    membership: { ...nemesis.membership.figures, members: run.chaos.nodeIds },
    load: nemesis.load?.figures ?? null,
    heavy: heavy?.counts ?? null,
    notes: run.notes,
    anomalies,
  };
}

/** Heals, reads every key, checks the history, the heavy writes and convergence. */
async function checkRun(
  run: RunParts,
  anomalies: string[],
): Promise<{ operationsChecked: number; isLinearizable: boolean; checkMs: number }> {
  const { options, chaos, nemesis, workload, bank, heavy, log, nowMs } = run;
  await nemesis.healAll();
  for (const id of chaos.nodeIds) await chaos.cluster.waitForLeaders(id, SETTLE_TIMEOUT_MS);
  anomalies.push(...await nemesis.membership.settle(MEMBERSHIP_SETTLE_TIMEOUT_MS));
  log("every shard has a leader: final reads");
  for (const key of workload.keys) {
    await workload.readUntilAnswered(key, chaos.nodeIds, FINAL_READ_ATTEMPTS_MAX);
  }
  const checkStarted = nowMs();
  const verdict = checkHistory(workload.history);
  const checkMs = nowMs() - checkStarted;
  log(`history of ${verdict.operationsChecked} operations checked in ${Math.round(checkMs)} ms`);
  anomalies.push(
    ...verdict.violations.map((violation) =>
      `not linearizable: key "${violation.key}": ${violation.detail}`
    ),
    ...workload.anomalies,
    ...(nemesis.load?.anomalies ?? []),
  );
  anomalies.push(...bank.anomalies, ...await bank.verify(chaos.nodeIds));
  log(
    `bank checked: ${bank.counts.totalsChecked} read-only totals, final total ` +
      `${bank.counts.finalTotal} of ${bank.total}`,
  );
  if (heavy !== null) {
    anomalies.push(...heavy.anomalies, ...await heavy.verify(chaos.nodeIds));
    log(`heavy writes checked: ${heavy.counts.checked} keys read back`);
  }
  const shards = await settledShardCount(chaos, options.shards, nowMs, anomalies);
  anomalies.push(
    ...await awaitConvergence(chaos, {
      shards,
      replicasPerShard: Math.min(REPLICATION_FACTOR, options.nodes),
      timeoutMs: CONVERGENCE_TIMEOUT_MS,
      nowMs,
    }),
  );
  log(`convergence checked: ${anomalies.length} anomalies so far`);
  return {
    operationsChecked: verdict.operationsChecked,
    isLinearizable: verdict.isLinearizable,
    checkMs: Math.round(checkMs),
  };
}

/**
 * The cluster's shard count once no shard move runs (a "shard-add" fault may have started
 * one); an anomaly when a move does not end within MOVE_SETTLE_TIMEOUT_MS.
 */
async function settledShardCount(
  chaos: ChaosCluster,
  initial: number,
  nowMs: () => number,
  anomalies: string[],
): Promise<number> {
  const deadline = nowMs() + MOVE_SETTLE_TIMEOUT_MS;
  const via = chaos.nodeIds[0]!;
  while (nowMs() < deadline) {
    const moves = await chaos.call(via, { method: "GET", path: "/v1/shards/moves" })
      .catch(() => null);
    const move = (moves?.json as { move?: { phase: string; toCount: number } | null } | null)
      ?.move;
    if (moves?.status === 200 && (move === null || move?.phase === "done")) {
      return move?.toCount ?? initial;
    }
    // A node of a version before shard moves: the count never changed.
    if (moves?.status === 404) return initial;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  anomalies.push(`a shard move did not end within ${MOVE_SETTLE_TIMEOUT_MS} ms`);
  return initial;
}

/** Nodes that exited unasked, each with its last lines that name an error. */
function exitAnomalies(chaos: ChaosCluster): string[] {
  return chaos.unexpectedExits.map((exit) => {
    const lines = chaos.logsOf(exit.node).filter((line) => /Error: |panicked/.test(line));
    const last = lines.slice(-2).map((line) => line.slice(0, 400)).join(" | ");
    return `node ${exit.node} exited unexpectedly: ${JSON.stringify(exit)}` +
      (last === "" ? "" : `: ${last}`);
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function keepEvidence(
  dir: string,
  chaos: ChaosCluster,
  timeline: readonly string[],
  clients: { workload: Workload; bank: BankWorkload },
): Promise<void> {
  await chaos.writeLogs(dir);
  await Deno.writeTextFile(`${dir}/timeline.txt`, timeline.join("\n") + "\n");
  const lines = clients.workload.history.map((entry) => JSON.stringify(entry));
  await Deno.writeTextFile(`${dir}/history.jsonl`, lines.join("\n") + "\n");
  const reads = clients.bank.reads.map((read) => JSON.stringify(read));
  await Deno.writeTextFile(`${dir}/bank-reads.jsonl`, reads.join("\n") + "\n");
}

/** The report as a few readable lines. */
export function formatReport(report: ChaosReport): string {
  const operations = report.operations;
  const lines = [
    `seed ${report.seed}: ${report.nodes} nodes x ${report.shards} shards, ` +
    `${(report.chaosMs / 1000).toFixed(1)} s of chaos`,
    `operations: ${operations.total} (ok ${operations.ok}, failed ${operations.failed}, ` +
    `unknown ${operations.unknown}) by type ${JSON.stringify(operations.byType)}`,
    `errors: ${JSON.stringify(operations.errors)}`,
    ...bankLines(report.bank),
    `faults injected: ${report.faults.total} ${JSON.stringify(report.faults.byKind)}`,
    `node events: ${JSON.stringify(report.events)}`,
    `histories checked: ${report.history.keys} keys, ${report.history.operationsChecked} ` +
    `operations, linearizable: ${report.history.isLinearizable} ` +
    `(${report.history.checkMs} ms)`,
    ...loadLines(report),
    ...report.notes.map((note) => `note: ${note}`),
    `anomalies: ${report.anomalies.length}`,
    ...report.anomalies.map((anomaly) => `  - ${anomaly}`),
  ];
  return lines.join("\n");
}

/** The bank workload's figures as two lines. */
export function bankLines(bank: BankCounts): string[] {
  const range = bank.totalMin === null ? "none" : `${bank.totalMin}..${bank.totalMax}`;
  return [
    `bank: ${bank.accounts} accounts, transfers committed ${bank.committed}, conflicted ` +
    `${bank.conflicted}, unknown ${bank.unknown} (${bank.noAnswer} without an answer, ` +
    `${bank.coordinatorsStopped} in flight on a node killed or stopped); ` +
    `totals checked ${bank.totalsChecked} (seen ${range}, read conflicts ${bank.readConflicts}, ` +
    `unknown ${bank.readsUnknown}), final total ${bank.finalTotal ?? "unchecked"}`,
    `bank errors: ${JSON.stringify(bank.errors)}`,
  ];
}

/** The longest outage of a report, in entries (0 without outages). */
export function longestOutageEntries(report: ChaosReport): number {
  return Math.max(0, ...(report.load?.outages ?? []).map((outage) => outage.entries));
}

function loadLines(report: ChaosReport): string[] {
  const lines = [`kills (-9): ${report.kills}`];
  const membership = report.membership;
  if (membership.joined.length > 0) {
    lines.push(
      `membership: joined ${membership.joined.join(",")}, removed ` +
        `${membership.removed.join(",") || "none"}, members at the end ${membership.members}`,
    );
  }
  const load = report.load;
  if (load !== null) {
    const outages = load.outages.map((outage) =>
      `${outage.kind} n${outage.node} shard ${outage.shard}: ${outage.entries}` +
      (outage.snapshotsInstalled > 0 ? " (snapshot)" : "") +
      (outage.isCaughtUp ? "" : " (not caught up)")
    );
    lines.push(
      `outages: ${load.outages.length}, longest ${longestOutageEntries(report)} entries` +
        (outages.length === 0 ? "" : ` [${outages.join("; ")}]`),
      `power-loss restarts: ${load.powerLossRestarts} (${load.writesUndone} unsynced writes, ` +
        `${load.bytesUndone} bytes undone)`,
      `transfers: ${load.transfers}, campaigns: ${load.campaigns}, answers ` +
        JSON.stringify(load.answers),
    );
  }
  const heavy = report.heavy;
  if (heavy !== null) {
    lines.push(
      `heavy writes: acknowledged ${heavy.acknowledged}, failed ${heavy.failed}, unknown ` +
        `${heavy.unknown}; ${heavy.checked} keys read back`,
    );
  }
  return lines;
}

export {
  DEFAULT_FAULT_KINDS,
  FAULT_KINDS,
  type FaultKind,
  LOAD_FAULT_KINDS,
  LONG_FAULT_KINDS,
  MEMBERSHIP_FAULT_KINDS,
  RESHARD_FAULT_KINDS,
};
