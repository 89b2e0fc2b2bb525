/**
 * The CI runs of the chaos nemeses under heavy load (tests/chaos/load_faults.ts), sized to fit
 * the suite: real 3-node clusters of 4 shards, the linearizability clients running throughout,
 * and a heavy writer (128 puts in flight of small values to distinct keys) during each fault:
 * - a follower, then a leader, killed -9 while its shard's log grows past the largest batch the
 *   state machine applies at once (12,000 entries, no snapshot: the node catches up from the
 *   log), and started again while the writes go on;
 * - a storm of leadership transfers (targets rotating) and campaigns under the writes;
 * - power losses: a node, then every node at once, killed -9 and restarted from
 *   their data files as they stood at their last fsyncs (the LD_PRELOAD shim of
 *   tests/chaos/power_loss_shim.c; skipped, saying so, without a C compiler).
 * Each run then heals, and requires a linearizable history, every acknowledged heavy write
 * readable with its value, every shard's replicas at one applied index and state hash, and no
 * node exit the nemesis did not cause. The 30-minute `deno task chaos` runs the full sizes
 * (outages of 100,000 entries, with and without snapshots).
 */
import { deepEqual, ok } from "node:assert/strict";
import { APPLY_BATCH_ENTRIES_MAX } from "../shard/mod.ts";
import type { LoadFaultSizes } from "./chaos/load_faults.ts";
import { type ChaosOptions, type ChaosReport, formatReport, runChaos } from "./chaos/run.ts";

const SEED = Number(Deno.env.get("ASPEN_CHAOS_SEED") ?? 9_001);

/** Small faults: an outage just past one apply batch, a short storm, short leads. */
const CI_SIZES: LoadFaultSizes = {
  outageEntries: APPLY_BATCH_ENTRIES_MAX + 2_000,
  outageMsMax: 45_000,
  stormActions: { min: 20, max: 20 },
  stormGapMs: { min: 100, max: 300 },
  powerLossLeadMs: { min: 300, max: 1_000 },
};

function options(overrides: Partial<ChaosOptions> & Pick<ChaosOptions, "seed">): ChaosOptions {
  return {
    nodes: 3,
    shards: 4,
    durationMs: 120_000,
    clients: 4,
    loadSizes: CI_SIZES,
    isCycling: true,
    log: () => {},
    outputDir: `test-output/chaos-load-${overrides.seed}`,
    ...overrides,
  };
}

/** Prints the report and requires a clean run. */
function expectClean(report: ChaosReport): void {
  console.log(formatReport(report));
  deepEqual(report.anomalies, [], report.anomalies.join("\n"));
  ok(report.heavy !== null && report.heavy.acknowledged > 0, "heavy writes were acknowledged");
  ok(report.heavy.checked >= report.heavy.acknowledged, "every acknowledged write was read");
  ok(report.history.operationsChecked > 0, "the clients' history was checked");
}

Deno.test({
  name: "chaos: a follower and a leader down for 12,000 entries catch up under heavy writes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const report = await runChaos(options({
      seed: SEED,
      kinds: ["outage-follower", "outage-leader"],
      faultsMax: 2,
    }));
    expectClean(report);
    const outages = report.load?.outages ?? [];
    deepEqual(outages.map((outage) => outage.kind), ["outage-follower", "outage-leader"]);
    for (const outage of outages) {
      ok(outage.entries > APPLY_BATCH_ENTRIES_MAX, `an outage of ${outage.entries} entries`);
      ok(outage.isCaughtUp, `node ${outage.node} caught up`);
    }
  },
});

Deno.test({
  name: "chaos: leadership transfers and campaigns under heavy writes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const report = await runChaos(
      options({ seed: SEED + 1, kinds: ["transfer-storm"], faultsMax: 1 }),
    );
    expectClean(report);
    const load = report.load!;
    ok(load.transfers + load.campaigns === CI_SIZES.stormActions.max, "the whole storm ran");
    ok((load.answers["200"] ?? 0) > 0, "some transfers were accepted");
  },
});

Deno.test({
  name: "chaos: power-loss restarts (one node, then every node) under heavy writes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const report = await runChaos(options({
      seed: SEED + 2,
      kinds: ["power-loss"],
      faultsMax: 2,
    }));
    if (report.notes.some((note) => note.startsWith("power-loss skipped"))) {
      console.log(`skipped: ${report.notes.join("; ")}`);
      return;
    }
    expectClean(report);
    const load = report.load!;
    ok(load.powerLossRestarts === 1 + 3, `${load.powerLossRestarts} power-loss restarts`);
    ok(load.writesUndone > 0, "the power losses undid unsynced writes");
  },
});
