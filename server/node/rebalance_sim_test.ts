/**
 * The rebalance driver against a seeded model of the cluster (rebalance_sim_cluster.ts): Raft
 * logs of configuration entries with commit points, elections that may truncate an
 * uncommitted change, deposed leaders still answering the driver, node crashes and
 * partitions, the node side of host/drop, and a driver that crashes at random effects (a fresh
 * driver takes over). Per seed: 4 or 5 nodes, 3 or 4 shards, rf 3; during the faulty phase a
 * node may join, one may be drained and one replaced (it dies, then is drained); then the
 * faults stop and the driver must converge: every shard with rf voters on active members, no
 * learner, no orphan replica, the members in their final states, the placement record true.
 * The model's invariants are checked after every step (see its module doc).
 *
 * `deno test` runs seeds 1..SEEDS_DEFAULT and SEEDS_REGRESSION; `ASPEN_REBALANCE_SIM_SEEDS=N`
 * runs seeds 1..N and `ASPEN_REBALANCE_SIM_SEED=S` runs seed S alone (with its trace on
 * failure). A run of 1,000 seeds takes about 3 s.
 *
 * The simulation finds the membership crash fixed in f1d3d72 when the fix is reverted. With the
 * node side's half reverted (host() ignores the view's term and opens the new replica at term
 * 0), seeds 385 and 482 of 1..1000 fail on "heartbeat commit ... past the log (last 0)": a
 * leader whose progress still counts on the dropped log reaches the empty replica. With the
 * driver's half reverted too (isListed() ignores committedReplicas), 7 of seeds 1..200 (72,
 * 109, 142, 159, 178, ...) drop a replica that the committed configuration lists. Without the
 * driver's rule that a learner's removal is safe while a voter is down, 15 of seeds 1..1000
 * (12, 135, 180, ...) never converge: a learner on a draining node blocks its shard. Seed 2187
 * never converged while one refused orphan drop failed every pass before its plan.
 *
 * Seeds 2431, 3118, 3722, 6285, 7119 and 7966 lost committed entries: a replica removed by a
 * committed change and hosted again empty (to come back as a learner) voted for a voter cut off
 * during the change, whose older configuration still listed it as a voter. Fixed in the Raft
 * core (raft.ts): a replica that knows no configuration does not vote; the model does the same.
 * Seed 8094 left a shard without a leader before the leader-balancing fix; it passes now.
 *
 * Known failing, left out of the default set (seeds 1..12000): 9635 never drops an orphan
 * replica that saw a later term (a vote request of a candidate that then lost) than its shard's
 * leader, which stays in its term while the shard is quiet: the drop waits for a view at least
 * as new. The model has no pre-vote, which in the real system keeps a losing candidate from
 * raising other replicas' terms; a leadership transfer would end it. Reported, not fixed.
 */
import { ok } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { SeededPrng } from "../../raft/mod.ts";
import { Logger } from "../log.ts";
import { memberOf } from "./members.ts";
import { RebalanceDriver } from "./rebalance_driver.ts";
import { SimCluster, SimCrash, SimRefusal, SimViolation } from "./rebalance_sim_cluster.ts";
import { configIndexAt, lastIndexOf, latestConfigOf } from "./rebalance_sim_log.ts";

const quiet = new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 });

/** Seeds run by default (kept under a second in all), besides SEEDS_REGRESSION. */
const SEEDS_DEFAULT = 24;
/** Seeds that found bugs (see the module doc), run by default too. */
const SEEDS_REGRESSION = [385, 482, 2187];
/** Driver passes with faults on. */
const FAULT_PASSES = 40;
/** The most passes after the faults stop before the run counts as not converging. */
const SETTLE_PASSES_MAX = 200;
/** Random Raft steps between two passes. */
const STEPS_PER_PASS = 12;
/** Quiet passes in a row (no effect) that end a run. */
const QUIET_PASSES = 3;

/** The model's trace lines shown when the one seed asked for fails. */
const TRACE_LINES = 120;

/** What a seed's run did, for the totals. */
interface SimRun {
  readonly effects: number;
  readonly passes: number;
  readonly crashes: number;
}

/** The scenario of one seed: the nodes, and when a node joins, is drained, is replaced. */
function scenarioOf(seed: number) {
  const prng = new SeededPrng(seed * 7_919 + 13);
  const count = 4 + prng.nextInt(2);
  return {
    nodes: Array.from({ length: count }, (_, i) => i + 1),
    shards: 3 + prng.nextInt(2),
    joinAt: prng.nextInt(2) === 0 ? prng.nextInt(FAULT_PASSES) : -1,
    drainAt: prng.nextInt(FAULT_PASSES),
    replaceAt: prng.nextInt(3) === 0 ? -1 : prng.nextInt(FAULT_PASSES),
  };
}

/** Active members that may leave (the rest keep at least rf active). */
function removableOf(cluster: SimCluster): number[] {
  const active = cluster.record.members.filter((member) => member.state === "active");
  if (active.length <= cluster.replicationFactor) return [];
  return active.map((member) => member.id).filter((id) => cluster.nodes.get(id)!.isUp);
}

async function runPass(cluster: SimCluster, driver: RebalanceDriver): Promise<RebalanceDriver> {
  try {
    await driver.pass();
  } catch (error) {
    if (!(error instanceof SimCrash || error instanceof SimRefusal)) {
      if (!(error instanceof AspenError)) throw error;
    }
  }
  // A violation or a crash may have been caught inside the pass (a skipped drop).
  if (cluster.violation !== null) throw new SimViolation(cluster.violation);
  if (cluster.isDriverCrashed) {
    cluster.isDriverCrashed = false;
    return new RebalanceDriver(cluster, quiet, () => 0);
  }
  return driver;
}

/** Runs one seed; a failure's message ends with the model's last trace lines. */
async function simulate(seed: number, traceLines = 0): Promise<SimRun> {
  const scenario = scenarioOf(seed);
  const cluster = new SimCluster({ seed, nodes: scenario.nodes, shards: scenario.shards, rf: 3 });
  try {
    return await simulateOn(cluster, seed);
  } catch (error) {
    const trace = cluster.trace.slice(-traceLines).join("\n");
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`seed ${seed}: ${reason}${traceLines > 0 ? `\n${trace}` : ""}`, {
      cause: error,
    });
  }
}

async function simulateOn(cluster: SimCluster, seed: number): Promise<SimRun> {
  const scenario = scenarioOf(seed);
  const gone: number[] = [];
  let joined: number | null = null;
  let driver = new RebalanceDriver(cluster, quiet, () => 0);
  let crashes = 0;
  let passes = 0;
  for (; passes < FAULT_PASSES; passes++) {
    if (passes === scenario.joinAt) joined = cluster.join();
    const removable = removableOf(cluster);
    if (passes >= scenario.drainAt && gone.length === 0 && removable.length > 0) {
      gone.push(removable[seed % removable.length]!);
      cluster.drain(gone[0]!);
    } else if (passes >= scenario.replaceAt && gone.length === 1 && cluster.downCount() === 0) {
      const target = removable.find((id) => id !== gone[0]);
      if (target !== undefined) {
        gone.push(target);
        cluster.replace(target);
      }
    }
    const next = await runPass(cluster, driver);
    if (next !== driver) crashes++;
    driver = next;
    for (let step = 0; step < STEPS_PER_PASS; step++) cluster.step();
  }
  cluster.heal();
  let quietPasses = 0;
  for (let settle = 0; quietPasses < QUIET_PASSES; settle++, passes++) {
    if (settle >= SETTLE_PASSES_MAX) {
      checkSettled(cluster, { gone, joined });
      throw new Error(`no convergence: ${explain(cluster)}`);
    }
    for (let step = 0; step < STEPS_PER_PASS * 3; step++) cluster.step();
    const before = cluster.effects;
    driver = await runPass(cluster, driver);
    const isQuiet = cluster.effects === before && isSettled(cluster) &&
      isFinal(cluster, { gone, joined });
    quietPasses = isQuiet ? quietPasses + 1 : 0;
  }
  checkSettled(cluster, { gone, joined });
  return { effects: cluster.effects, passes, crashes };
}

/** Every shard has a leader whose latest configuration is committed, rf voters, no learner. */
function isSettled(cluster: SimCluster): boolean {
  return cluster.shardIds.every((shard) => {
    const leader = cluster.newestLeader(shard);
    if (leader === null) return false;
    const log = leader.replica.log;
    const config = latestConfigOf(log);
    return configIndexAt(log, lastIndexOf(log)) <= leader.replica.commit &&
      config.learners.length === 0 && config.voters.length === cluster.replicationFactor;
  });
}

function explain(cluster: SimCluster): string {
  const shards = cluster.shardIds.map((shard) => {
    const leader = cluster.newestLeader(shard);
    if (leader !== null) {
      return `${shard}: ${leader.node} ${JSON.stringify(latestConfigOf(leader.replica.log))}`;
    }
    // No leader: every replica's term, last index and configuration.
    const replicas = [...cluster.nodes.values()].flatMap((node) => {
      const replica = node.replicas.get(shard);
      if (replica === undefined) return [];
      const config = latestConfigOf(replica.log);
      return [
        `${node.id}${node.isUp ? "" : "(down)"} t${replica.term} last ` +
        `${lastIndexOf(replica.log)} voters ${config.voters.join(",")}`,
      ];
    });
    return `${shard}: no leader (${replicas.join(" | ")})`;
  });
  const members = cluster.record.members.map((member) =>
    `${member.id} ${member.state}${cluster.isUp(member.id) ? "" : " (down)"}`
  );
  return `shards ${shards.join("; ")}; members ${members.join(", ")}`;
}

/** Whether the final checks pass (the run goes on until they do, or its passes run out). */
function isFinal(
  cluster: SimCluster,
  options: { gone: readonly number[]; joined: number | null },
): boolean {
  try {
    checkSettled(cluster, options);
    return true;
  } catch {
    return false;
  }
}

function checkSettled(
  cluster: SimCluster,
  options: { gone: readonly number[]; joined: number | null },
): void {
  const context = explain(cluster);
  for (const shard of cluster.shardIds) {
    const config = cluster.configOf(shard);
    ok(config !== null, `shard ${shard} has a leader: ${context}`);
    ok(
      config.voters.length === cluster.replicationFactor,
      `shard ${shard} has rf voters: ${context}`,
    );
    ok(config.learners.length === 0, `shard ${shard} has no learner: ${context}`);
    for (const voter of config.voters) {
      ok(memberOf(cluster.record, voter)?.state === "active", `${voter} is active: ${context}`);
      ok(cluster.nodes.get(voter)!.replicas.has(shard), `${voter} hosts ${shard}: ${context}`);
    }
    ok(
      cluster.placement.get(shard)?.join(",") === config.voters.join(","),
      `the placement of shard ${shard}: ${context}`,
    );
  }
  for (const node of cluster.nodes.values()) {
    if (!node.isUp) continue;
    for (const shard of node.replicas.keys()) {
      const config = cluster.configOf(shard);
      ok(config?.voters.includes(node.id), `no orphan ${shard} on ${node.id}: ${context}`);
    }
  }
  for (const id of options.gone) {
    ok(memberOf(cluster.record, id)?.state === "removed", `${id} was removed: ${context}`);
  }
  if (options.joined !== null && !options.gone.includes(options.joined)) {
    const state = memberOf(cluster.record, options.joined)?.state;
    ok(state === "active", `the joiner ${options.joined} is active: ${context}`);
  }
}

async function runSeeds(seeds: readonly number[]): Promise<void> {
  let effects = 0;
  let crashes = 0;
  const failures: string[] = [];
  for (const seed of seeds) {
    try {
      const run = await simulate(seed);
      effects += run.effects;
      crashes += run.crashes;
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
    }
  }
  ok(failures.length === 0, `${failures.length} seed(s) failed:\n${failures.join("\n")}`);
  ok(effects > seeds.length * 20, `the driver did work (${effects} effects)`);
  ok(crashes > 0, "the driver crashed in some runs");
}

function seedsToRun(): number[] {
  const one = Deno.env.get("ASPEN_REBALANCE_SIM_SEED");
  if (one !== undefined) return [Number(one)];
  const count = Deno.env.get("ASPEN_REBALANCE_SIM_SEEDS");
  if (count !== undefined) return Array.from({ length: Number(count) }, (_, i) => i + 1);
  return [...Array.from({ length: SEEDS_DEFAULT }, (_, i) => i + 1), ...SEEDS_REGRESSION];
}

Deno.test("the rebalance driver survives a simulated cluster with faults, seeded", async () => {
  const seeds = seedsToRun();
  if (seeds.length === 1) {
    await simulate(seeds[0]!, TRACE_LINES);
    return;
  }
  await runSeeds(seeds);
});
