/**
 * Runs the deterministic simulation (tests/sim/) inside `deno test`: 200 fixed seeds plus every
 * regression seed must finish with no safety violation and converge in the liveness phase, and
 * a sample of seeds run twice must produce the same trace hash (determinism). A few seeds also
 * run on SqliteLogStorage and must produce exactly the trace they produce on MemoryStorage, a
 * storage conformance check under load. A failure prints the command that replays the seed.
 */
import { equal } from "node:assert/strict";
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
