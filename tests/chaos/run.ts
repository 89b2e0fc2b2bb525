/**
 * One chaos run against a real cluster: start the nodes, run the clients while the nemesis
 * injects faults, then heal everything and check the outcome:
 * 1. every node runs again and every shard elects a leader;
 * 2. every key is read linearizably through a node and the reads join the history;
 * 3. the whole history is linearizable (per-key register model, unknown outcomes allowed),
 *    which also proves every acknowledged write is accounted for;
 * 4. the replicas of each shard converge to the same applied index and state hash;
 * 5. no node exited that the nemesis did not kill, and no answer pointed at a bug (a 500).
 */
import { SeededPrng } from "../../raft/mod.ts";
import { checkHistory } from "../linearizability.ts";
import { ChaosCluster } from "./cluster.ts";
import { FAULT_KINDS, type FaultKind, LONG_FAULT_KINDS, Nemesis } from "./nemesis.ts";
import { awaitConvergence } from "./verify.ts";
import { Workload, type WorkloadCounts } from "./workload.ts";

/** The replication factor of the nodes' default config. */
export const REPLICATION_FACTOR = 3;
/** How long the healed cluster may take to elect every leader. */
export const SETTLE_TIMEOUT_MS = 60_000;
/** How long the replicas may take to converge after the final reads. */
export const CONVERGENCE_TIMEOUT_MS = 60_000;
/** Attempts of each final read. */
const FINAL_READ_ATTEMPTS_MAX = 50;

/** What to run. */
export interface ChaosOptions {
  readonly nodes: number;
  readonly shards: number;
  readonly durationMs: number;
  readonly seed: number;
  readonly clients: number;
  readonly kinds?: readonly FaultKind[];
  /** Applied entries between snapshots on every node (a test flag); absent: the default. */
  readonly snapshotIntervalEntries?: number;
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
  readonly faults: { readonly total: number; readonly byKind: Record<string, number> };
  /** Notable node events: leader elections, snapshot installs. */
  readonly events: Readonly<Record<string, number>>;
  readonly history: {
    readonly keys: number;
    readonly operationsChecked: number;
    readonly isLinearizable: boolean;
    readonly checkMs: number;
  };
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
  const chaos = await ChaosCluster.launch({
    nodes: options.nodes,
    shards: options.shards,
    extraNodeArgs: options.snapshotIntervalEntries === undefined
      ? []
      : [`--test-snapshot-interval-entries=${options.snapshotIntervalEntries}`],
  });
  const timeline: string[] = [];
  const log = (line: string) => {
    const stamped = `${(nowMs() / 1000).toFixed(1)}s ${line}`;
    timeline.push(stamped);
    options.log(stamped);
  };
  const nemesis = new Nemesis({
    cluster: chaos,
    prng: new SeededPrng(options.seed),
    holdMs: { min: 1_000, max: 5_000 },
    calmMs: { min: 500, max: 2_000 },
    ...(options.kinds === undefined ? {} : { kinds: options.kinds }),
    nowMs,
    log,
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
  let report: ChaosReport | null = null;
  try {
    const started = nowMs();
    workload.start();
    await nemesis.run(started + options.durationMs);
    await workload.stop();
    const chaosMs = nowMs() - started;
    log(`chaos over after ${Math.round(chaosMs)} ms: healing`);
    report = await checkRun({ options, chaos, nemesis, workload, chaosMs, log, nowMs });
    return report;
  } finally {
    const isKept = report === null || report.anomalies.length > 0;
    if (isKept && options.outputDir !== null) {
      await keepEvidence(options.outputDir, chaos, timeline, workload);
      options.log(`chaos: logs, timeline and history kept in ${options.outputDir}`);
    }
    await chaos.destroy({ keepDir: false });
  }
}

async function checkRun(run: {
  options: ChaosOptions;
  chaos: ChaosCluster;
  nemesis: Nemesis;
  workload: Workload;
  chaosMs: number;
  log: (line: string) => void;
  nowMs: () => number;
}): Promise<ChaosReport> {
  const { options, chaos, nemesis, workload, log, nowMs } = run;
  await nemesis.healAll();
  for (const id of chaos.nodeIds) await chaos.cluster.waitForLeaders(id, SETTLE_TIMEOUT_MS);
  log("every shard has a leader: final reads");
  for (const key of workload.keys) {
    await workload.readUntilAnswered(key, chaos.nodeIds, FINAL_READ_ATTEMPTS_MAX);
  }
  const checkStarted = nowMs();
  const verdict = checkHistory(workload.history);
  const checkMs = nowMs() - checkStarted;
  log(`history of ${verdict.operationsChecked} operations checked in ${Math.round(checkMs)} ms`);
  const anomalies: string[] = [
    ...verdict.violations.map((violation) =>
      `not linearizable: key "${violation.key}": ${violation.detail}`
    ),
    ...workload.anomalies,
  ];
  anomalies.push(
    ...await awaitConvergence(chaos, {
      shards: options.shards,
      replicasPerShard: Math.min(REPLICATION_FACTOR, options.nodes),
      timeoutMs: CONVERGENCE_TIMEOUT_MS,
      nowMs,
    }),
  );
  log(`convergence checked: ${anomalies.length} anomalies so far`);
  for (const exit of chaos.unexpectedExits) {
    anomalies.push(`node ${exit.node} exited unexpectedly: ${JSON.stringify(exit)}`);
  }
  return {
    seed: options.seed,
    nodes: options.nodes,
    shards: options.shards,
    chaosMs: Math.round(run.chaosMs),
    operations: workload.counts,
    faults: { total: nemesis.total, byKind: { ...nemesis.counts } },
    events: { ...chaos.events },
    history: {
      keys: workload.keys.length,
      operationsChecked: verdict.operationsChecked,
      isLinearizable: verdict.isLinearizable,
      checkMs: Math.round(checkMs),
    },
    anomalies,
  };
}

async function keepEvidence(
  dir: string,
  chaos: ChaosCluster,
  timeline: readonly string[],
  workload: Workload,
): Promise<void> {
  await chaos.writeLogs(dir);
  await Deno.writeTextFile(`${dir}/timeline.txt`, timeline.join("\n") + "\n");
  const lines = workload.history.map((entry) => JSON.stringify(entry));
  await Deno.writeTextFile(`${dir}/history.jsonl`, lines.join("\n") + "\n");
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
    `faults injected: ${report.faults.total} ${JSON.stringify(report.faults.byKind)}`,
    `node events: ${JSON.stringify(report.events)}`,
    `histories checked: ${report.history.keys} keys, ${report.history.operationsChecked} ` +
    `operations, linearizable: ${report.history.isLinearizable} ` +
    `(${report.history.checkMs} ms)`,
    `anomalies: ${report.anomalies.length}`,
    ...report.anomalies.map((anomaly) => `  - ${anomaly}`),
  ];
  return lines.join("\n");
}

export { FAULT_KINDS, LONG_FAULT_KINDS };
