/**
 * `deno task chaos --minutes N [--nodes 3|5|3,5] [--seed S] [--shards 4] [--clients C]
 * [--round-minutes 10] [--snapshots default,1000,50,off] [--quiet]`: a long chaos run against
 * real clusters. Runs back-to-back rounds (a fresh cluster and seed each; `--nodes 3,5`
 * alternates sizes, `--snapshots` cycles the nodes' snapshot interval, where "off" is an
 * interval no round reaches) until the time is up, prints each round's figures and the totals
 * (rounds, kills, the longest outage in entries, power-loss restarts, operations checked, the
 * bank's cross-shard transfers and read-only totals), and
 * exits non-zero if any round found an anomaly. Rounds with the default snapshot interval or none
 * run every kind of fault, the heavy-load ones at full size (outages of 100,000 entries); rounds
 * with frequent snapshots run the others. Evidence of a failing round (node logs, timeline,
 * history) is kept in test-output/chaos-<seed>/.
 */
import { parseArgs } from "node:util";
import { TEST_SNAPSHOT_ENTRIES_MAX } from "../../cli/commands.ts";
import { BANK_BALANCE_START } from "./bank.ts";
import {
  type ChaosReport,
  DEFAULT_FAULT_KINDS,
  type FaultKind,
  formatReport,
  LOAD_FAULT_KINDS,
  LONG_FAULT_KINDS,
  longestOutageEntries,
  runChaos,
} from "./run.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    minutes: { type: "string", default: "1" },
    nodes: { type: "string", default: "3" },
    "round-minutes": { type: "string", default: "10" },
    snapshots: { type: "string", default: "default,1000,50,off" },
    shards: { type: "string", default: "4" },
    seed: { type: "string" },
    clients: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
  strict: true,
});

const minutes = Number(args.values.minutes);
const sizes = args.values.nodes.split(",").map(Number);
const shards = Number(args.values.shards);
const roundMs = Number(args.values["round-minutes"]) * 60_000;
const snapshotIntervals = args.values.snapshots.split(",");
const isValid = minutes > 0 && roundMs >= 30_000 && Number.isSafeInteger(shards) && shards >= 1 &&
  sizes.every((size) => size === 3 || size === 5);
if (!isValid) {
  console.error(
    "usage: deno task chaos --minutes N [--nodes 3|5|3,5] [--seed S] [--shards N] " +
      "[--round-minutes M (at least 0.5)] [--clients C] [--quiet]",
  );
  Deno.exit(2);
}
let seed = args.values.seed === undefined
  ? crypto.getRandomValues(new Uint32Array(1))[0]!
  : Number(args.values.seed);
const totalMs = minutes * 60_000;
const started = performance.now();
const reports: ChaosReport[] = [];
while (performance.now() - started < totalMs - 10_000) {
  const leftMs = totalMs - (performance.now() - started);
  const nodes = sizes[reports.length % sizes.length]!;
  const snapshotText = snapshotIntervals[reports.length % snapshotIntervals.length]!;
  const clients = args.values.clients === undefined ? 2 * nodes + 2 : Number(args.values.clients);
  const report = await runChaos({
    nodes,
    shards,
    seed,
    clients,
    durationMs: Math.min(roundMs, leftMs),
    kinds: kindsFor(snapshotText),
    ...snapshotOption(snapshotText),
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
    `faults injected: ${sum((r) => r.faults.total)} ${
      JSON.stringify(merge(all.map((r) => r.faults.byKind)))
    }`,
    `node events: ${JSON.stringify(merge(all.map((r) => r.events)))}`,
    `bank: transfers committed ${sum((r) => r.bank.committed)}, conflicted ` +
    `${sum((r) => r.bank.conflicted)}, unknown ${sum((r) => r.bank.unknown)} ` +
    `(${sum((r) => r.bank.noAnswer)} without an answer, ${
      sum((r) => r.bank.coordinatorsStopped)
    } in flight on a node killed or stopped); totals checked ` +
    `${sum((r) => r.bank.totalsChecked)} (seen ${totalRange(all)}, read conflicts ` +
    `${sum((r) => r.bank.readConflicts)}); final totals unchanged in ` +
    `${
      all.filter((r) => r.bank.finalTotal !== null && r.bank.finalTotal === bankTotal(r)).length
    }` +
    ` of ${all.length} rounds`,
    `histories checked: ${sum((r) => r.history.keys)} keys, ` +
    `${sum((r) => r.history.operationsChecked)} operations`,
    `kills (-9): ${sum((r) => r.kills)}, power-loss restarts: ` +
    `${sum((r) => r.load?.powerLossRestarts ?? 0)}, longest outage: ` +
    `${Math.max(0, ...all.map(longestOutageEntries))} entries, outages: ` +
    `${sum((r) => r.load?.outages.length ?? 0)}, transfers and campaigns: ` +
    `${sum((r) => (r.load?.transfers ?? 0) + (r.load?.campaigns ?? 0))}`,
    `heavy writes: ${sum((r) => r.heavy?.acknowledged ?? 0)} acknowledged, ` +
    `${sum((r) => r.heavy?.checked ?? 0)} keys read back`,
    `anomalies: ${sum((r) => r.anomalies.length)}`,
  ].join("\n");
}

/**
 * The faults of a round. The heavy-load ones need the default interval or none: each snapshot
 * holds the whole state, and under heavy writes (hundreds of thousands of keys) a snapshot every
 * 1,000 or 50 entries leaves the nodes little time for anything else. Those rounds test
 * snapshot catch-ups with the other faults; an outage of 100,000 entries under the default
 * interval crosses a snapshot, so its node catches up from one.
 */
function kindsFor(snapshotText: string): FaultKind[] {
  const isHeavyRound = snapshotText === "default" || snapshotText === "off";
  if (isHeavyRound) return [...DEFAULT_FAULT_KINDS, ...LOAD_FAULT_KINDS, ...LONG_FAULT_KINDS];
  return [...DEFAULT_FAULT_KINDS, "kill-node-long"];
}

/** The snapshot interval of a round: "default", "off" (never reached) or a number. */
function snapshotOption(text: string): { snapshotIntervalEntries?: number } {
  if (text === "default") return {};
  if (text === "off") return { snapshotIntervalEntries: TEST_SNAPSHOT_ENTRIES_MAX };
  return { snapshotIntervalEntries: Number(text) };
}

/** The total every read of a round's bank should see. */
function bankTotal(report: ChaosReport): number {
  return report.bank.accounts * BANK_BALANCE_START;
}

/** The smallest and largest bank totals any round's reader saw, as "min..max". */
function totalRange(all: readonly ChaosReport[]): string {
  const seen = all.flatMap((r) =>
    r.bank.totalMin === null ? [] : [r.bank.totalMin, r.bank.totalMax!]
  );
  return seen.length === 0 ? "none" : `${Math.min(...seen)}..${Math.max(...seen)}`;
}

function merge(counts: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const one of counts) {
    for (const [name, count] of Object.entries(one)) total[name] = (total[name] ?? 0) + count;
  }
  return total;
}
