/**
 * Chaos with membership changes (issue 15): a real 3-node cluster of 4 shards under the chaos
 * clients and the bank workload while the nemesis joins a fresh node ("member-change": a new
 * id, data dir and ports, `--join` through a random founder), lets the rebalancer move replicas
 * onto it under kills and partitions (the new node is a target too), removes a node
 * (`POST /v1/cluster/nodes/{id}/remove`) and waits for it to drain, then joins the next one.
 * Requires what every chaos run does (a linearizable history, the bank's total unchanged, every
 * shard's replicas converged) on the members of the end, a joined node among them, and that a
 * node joined and one was removed. Floors, not exact counts: a loaded machine takes fewer steps.
 */
import { equal, ok } from "node:assert/strict";
import { BANK_BALANCE_START } from "./chaos/bank.ts";
import { formatReport, runChaos } from "./chaos/run.ts";

const SEED = Number(Deno.env.get("ASPEN_CHAOS_SEED") ?? 15_002);

Deno.test({
  name: "chaos: nodes join and leave under kills and partitions, and the checks cover them",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const lines: string[] = [];
    const report = await runChaos({
      nodes: 3,
      shards: 4,
      durationMs: 40_000,
      seed: SEED,
      clients: 6,
      kinds: [
        "member-change",
        "kill-node",
        "partition-minority",
        "member-change",
        "kill-leader",
        "partition-leader",
        "member-change",
      ],
      isCycling: true,
      faultsMin: 4,
      log: (line) => lines.push(line),
      outputDir: `test-output/chaos-membership-${SEED}`,
    });
    console.log(formatReport(report));
    const context = `${report.anomalies.join("\n")}\n${lines.join("\n")}`;
    equal(report.anomalies.length, 0, context);
    const { joined, removed, members } = report.membership;
    ok(joined.length >= 1, `a node joined: ${context}`);
    ok(removed.length >= 1, `a node was removed: ${context}`);
    ok(members.some((id) => joined.includes(id)), `a joined node is checked: ${context}`);
    ok(members.every((id) => !removed.includes(id)), `no removed node is a member: ${context}`);
    ok(report.kills >= 1, `nodes were killed: ${context}`);
    ok(report.operations.ok >= 100, "the clients got answers");
    equal(report.bank.finalTotal, report.bank.accounts * BANK_BALANCE_START);
  },
});
