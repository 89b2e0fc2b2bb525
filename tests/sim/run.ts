/**
 * One simulation run: a safety phase with faults, then a liveness phase that heals everything
 * and requires the cluster to converge within a budget of ticks.
 */
import { AssertionError, SeededPrng } from "../../raft/mod.ts";
import { SimCluster } from "./cluster.ts";
import type { SimOptions } from "./options.ts";
import { drawOptions } from "./options.ts";

/** What one run produced. */
export interface RunResult {
  readonly seed: number;
  readonly violation: string | null;
  readonly traceHash: number;
  readonly options: SimOptions;
  readonly stats: SimCluster["stats"];
  readonly steps: number;
}

/** The default number of safety-phase steps (time units). */
export const SAFETY_STEPS_DEFAULT = 3000;

/**
 * Runs `seed` for `steps` safety steps plus the liveness phase, on in-memory storage or on
 * SqliteLogStorage (in-memory SQLite databases).
 */
export function runSeed(
  seed: number,
  steps = SAFETY_STEPS_DEFAULT,
  storageKind: "memory" | "sqlite" = "memory",
  tracer: ((line: string) => void) | null = null,
): RunResult {
  const options = drawOptions(new SeededPrng(seed));
  const cluster = new SimCluster(seed, options, storageKind);
  cluster.tracer = tracer;
  let violation: string | null = null;
  try {
    violation = runPhases(cluster, steps);
  } catch (error) {
    if (!(error instanceof AssertionError) && !(error instanceof Error)) throw error;
    const kind = error instanceof AssertionError ? "assertion" : "exception";
    violation = `t=${cluster.now}: ${kind}: ${error.message}\n${error.stack ?? ""}`;
  } finally {
    cluster.close();
  }
  return {
    seed,
    violation,
    traceHash: cluster.traceHash,
    options,
    stats: cluster.stats,
    steps: cluster.now,
  };
}

function runPhases(cluster: SimCluster, steps: number): string | null {
  for (let i = 0; i < steps; i++) {
    cluster.step();
    if (cluster.checker.violation !== null) return cluster.checker.violation;
  }
  cluster.heal();
  const options = cluster.options;
  // A fixed allowance for elections and catch-up, plus time for the client's backlog: with a
  // small uncommitted-bytes limit only a few writes fit in each round trip.
  const budgetUnits = options.electionTicks * options.tickUnits * 40 + 4000 +
    10 * cluster.pending.size;
  for (let i = 0; i < budgetUnits; i++) {
    cluster.step();
    if (cluster.checker.violation !== null) return cluster.checker.violation;
    if (i % 10 === 0 && cluster.isConverged()) {
      cluster.checkAcknowledged();
      return cluster.checker.violation;
    }
  }
  const leader = cluster.leader();
  const status = leader?.node?.status();
  return `liveness: no convergence within ${budgetUnits} units after healing ` +
    `(leader ${leader?.id ?? "none"}, commit ${status?.commit}, pending ${cluster.pending.size})` +
    `\n  ${cluster.describe()}`;
}
