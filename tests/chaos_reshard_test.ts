/**
 * Chaos with resharding (issue 14): a real 3-node cluster of 2 shards under the chaos clients
 * and the bank workload while the nemesis adds shards ("shard-add", through random nodes) and
 * creates and moves tenants over the workloads' key prefixes ("tenant-move") in turn with kills
 * of shard leaders and minority partitions, so that moves run while the node
 * driving them (shard 0's leader) dies or is cut off. Requires what every chaos run does: a
 * linearizable history, the bank's total unchanged, and every shard's replicas converged,
 * the new shards too; and that shards were added and tenants moved.
 */
import { equal, ok } from "node:assert/strict";
import { BANK_BALANCE_START } from "./chaos/bank.ts";
import { formatReport, runChaos } from "./chaos/run.ts";

const SEED = Number(Deno.env.get("ASPEN_CHAOS_SEED") ?? 14_001);

Deno.test({
  name: "chaos: shards added under kills and partitions stay linearizable and converge",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const lines: string[] = [];
    const report = await runChaos({
      nodes: 3,
      shards: 2,
      durationMs: 30_000,
      seed: SEED,
      clients: 8,
      kinds: ["shard-add", "kill-leader", "tenant-move", "partition-minority", "tenant-move"],
      isCycling: true,
      log: (line) => lines.push(line),
      outputDir: `test-output/chaos-reshard-${SEED}`,
    });
    console.log(formatReport(report));
    equal(report.anomalies.length, 0, report.anomalies.join("\n") + "\n" + lines.join("\n"));
    ok((report.faults.byKind["shard-add"] ?? 0) >= 1, `shards were added: ${lines.join("\n")}`);
    ok((report.faults.byKind["tenant-move"] ?? 0) >= 1, `tenants moved: ${lines.join("\n")}`);
    ok(report.operations.ok >= 200, "the clients got answers");
    equal(report.bank.finalTotal, report.bank.accounts * BANK_BALANCE_START);
  },
});
