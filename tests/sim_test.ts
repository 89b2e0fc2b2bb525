/**
 * Runs the deterministic simulation (tests/sim/) inside `deno test`: 200 fixed seeds plus every
 * regression seed must finish with no safety violation and converge in the liveness phase, and
 * a sample of seeds run twice must produce the same trace hash (determinism). A few seeds also
 * run on SqliteLogStorage and must produce exactly the trace they produce on MemoryStorage, a
 * storage conformance check under load. A failure prints the command that replays the seed.
 * Quiescence: a scripted world lets groups go quiet, crashes the leader, and requires a new one
 * within the node-liveness bound, and writes that commit after it.
 */
import { equal, ok } from "node:assert/strict";
import { SeededPrng } from "../raft/mod.ts";
import { SimCluster } from "./sim/cluster.ts";
import { drawOptions, type SimOptions } from "./sim/options.ts";
import { REGRESSION_SEEDS } from "./sim/regressions.ts";
import { runSeed } from "./sim/run.ts";

const CI_SEEDS = Array.from({ length: 200 }, (_, i) => 1 + i);

function check(seed: number): void {
  const result = runSeed(seed);
  equal(
    result.violation,
    null,
    `seed ${seed} failed; replay with: deno task sim --seed ${seed}\n${result.violation}`,
  );
}

Deno.test("simulation: 200 CI seeds pass safety and liveness", () => {
  for (const seed of CI_SEEDS) check(seed);
});

Deno.test("simulation: every regression seed passes", () => {
  for (const { seed } of REGRESSION_SEEDS) check(seed);
});

Deno.test("simulation: the same seed gives the same trace hash", () => {
  for (const seed of [1, 2, 3, 5, 8, 13]) {
    equal(runSeed(seed).traceHash, runSeed(seed).traceHash, `seed ${seed} is nondeterministic`);
  }
});

Deno.test("simulation: SqliteLogStorage gives the same trace as MemoryStorage", () => {
  for (const seed of [1, 4, 7, 10, 13, 16]) {
    const onSqlite = runSeed(seed, 3000, "sqlite");
    equal(onSqlite.violation, null, `seed ${seed} on SQLite: ${onSqlite.violation}`);
    equal(onSqlite.traceHash, runSeed(seed).traceHash, `seed ${seed} differs on SQLite`);
  }
});

type MutableOptions = { -readonly [K in keyof SimOptions]: SimOptions[K] };

/** A fault-free world with no client: groups quiesce, then the test drives what happens. */
function quietWorld(seed: number, voterCount: number): SimCluster {
  const options: MutableOptions = {
    ...drawOptions(new SeededPrng(seed)),
    voterCount,
    spareCount: 0,
    dropRate: 0,
    duplicateRate: 0,
    proposeRate: 0,
    readRate: 0,
    burstRate: 0,
    crashRate: 0,
    partitionRate: 0,
    membershipRate: 0,
    transferRate: 0,
    quietUnits: 0,
    pauseRate: 0,
  };
  return new SimCluster(seed, options);
}

function stepUntil(cluster: SimCluster, units: number, done: () => boolean): number {
  for (let i = 0; i < units; i++) {
    if (done()) return i;
    cluster.step();
    equal(cluster.checker.violation, null);
  }
  return done() ? units : -1;
}

const allQuiesced = (cluster: SimCluster) =>
  cluster.leader() !== null &&
  [...cluster.replicas.values()].every((replica) => replica.node?.isQuiesced === true);

Deno.test("simulation: a quiesced group whose leader crashes elects a new one in time", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const cluster = quietWorld(seed, seed % 2 === 0 ? 3 : 5);
    try {
      ok(stepUntil(cluster, 20_000, () => allQuiesced(cluster)) >= 0, `seed ${seed}: quiesced`);
      const old = cluster.leader()!;
      const oldTerm = old.node!.term;
      // Idle for a long while: nothing is sent, nobody campaigns.
      ok(stepUntil(cluster, 5_000, () => cluster.leader() !== old) === -1, "no election idle");
      const options = cluster.options as MutableOptions;
      const bound = cluster.nodeDownUnits + 4 * options.electionTicks * options.tickUnits +
        4 * options.latencyUnitsMax + 4 * options.diskLatencyUnitsMax;
      // Down past the bound: it comes back during the writes below and catches up.
      cluster.crashFor(old.id, bound + 500);
      const newLeader = () => {
        const leader = cluster.leader();
        return leader !== null && leader !== old && leader.node!.term > oldTerm;
      };
      const took = stepUntil(cluster, bound, newLeader);
      ok(took >= 0, `seed ${seed}: no new leader within ${bound} units`);
      ok(cluster.stats.leaderDownWakes > 0, `seed ${seed}: node liveness woke the followers`);
      // Writes after the election commit and are applied by every live member.
      options.proposeRate = 0.3;
      stepUntil(cluster, 1_000, () => false);
      options.proposeRate = 0;
      ok(stepUntil(cluster, 20_000, () => cluster.isConverged()) >= 0, `seed ${seed}: converged`);
      cluster.checkAcknowledged();
      equal(cluster.checker.violation, null);
      ok(cluster.acked.size > 0, `seed ${seed}: writes after the crash were acknowledged`);
    } finally {
      cluster.close();
    }
  }
});
