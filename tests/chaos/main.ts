/**
 * `deno task chaos --minutes N [--nodes 3|5] [--seed S] [--shards 4] [--clients C]`: a long
 * chaos run against a real cluster. Runs back-to-back rounds of a few minutes each (a fresh
 * cluster and a fresh seed per round, so histories stay checkable) until the time is up,
 * prints each round's figures and the totals, and exits non-zero if any round found an
 * anomaly. Evidence of a failing round (node logs, timeline, history) is kept in
 * test-output/chaos-<seed>/.
 */
import { parseArgs } from "node:util";
import { type ChaosReport, formatReport, runChaos } from "./run.ts";

/** The longest round; a long run is split into rounds of at most this length. */
const ROUND_MS_MAX = 5 * 60_000;

const args = parseArgs({
  args: Deno.args,
  options: {
    minutes: { type: "string", default: "1" },
    nodes: { type: "string", default: "3" },
    shards: { type: "string", default: "4" },
    seed: { type: "string" },
    clients: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
  strict: true,
});

const minutes = Number(args.values.minutes);
const nodes = Number(args.values.nodes);
const shards = Number(args.values.shards);
if (!(minutes > 0) || ![3, 5].includes(nodes) || !Number.isSafeInteger(shards) || shards < 1) {
  console.error("usage: deno task chaos --minutes N [--nodes 3|5] [--seed S] [--shards N]");
  Deno.exit(2);
}
let seed = args.values.seed === undefined
  ? crypto.getRandomValues(new Uint32Array(1))[0]!
  : Number(args.values.seed);
const clients = args.values.clients === undefined ? 2 * nodes + 2 : Number(args.values.clients);
const totalMs = minutes * 60_000;
const started = performance.now();
const reports: ChaosReport[] = [];
while (performance.now() - started < totalMs - 10_000) {
  const leftMs = totalMs - (performance.now() - started);
  const report = await runChaos({
    nodes,
    shards,
    seed,
    clients,
    durationMs: Math.min(ROUND_MS_MAX, leftMs),
    log: (line) => {
      if (!args.values.quiet) console.error(line);
    },
    outputDir: `test-output/chaos-${seed}`,
  });
  reports.push(report);
  console.log(formatReport(report));
  console.log("");
  seed += 1000;
}
console.log(formatTotals(reports));
Deno.exit(reports.every((report) => report.anomalies.length === 0) ? 0 : 1);

function formatTotals(all: readonly ChaosReport[]): string {
  const sum = (pick: (report: ChaosReport) => number) =>
    all.reduce((total, report) => total + pick(report), 0);
  return [
    `TOTAL ${all.length} rounds, ${(sum((r) => r.chaosMs) / 60_000).toFixed(1)} min of chaos`,
    `operations: ${sum((r) => r.operations.total)} (ok ${sum((r) => r.operations.ok)}, ` +
    `failed ${sum((r) => r.operations.failed)}, unknown ${sum((r) => r.operations.unknown)})`,
    `faults injected: ${sum((r) => r.faults.total)}`,
    `histories checked: ${sum((r) => r.history.keys)} keys, ` +
    `${sum((r) => r.history.operationsChecked)} operations`,
    `anomalies: ${sum((r) => r.anomalies.length)}`,
  ].join("\n");
}
