/**
 * The simulation CLI: `deno task sim --seeds N [--first-seed S] [--seed S] [--steps K] [--trace]`.
 * Runs each seed twice and checks that both runs give the same trace hash, prints every failing
 * seed with the command that replays it, ends with `sim: N seeds, V violations`, and exits 1 on
 * any violation. `ASPEN_SEED=<n>` is the same as `--seed <n>`. `--trace` prints every Ready, flush,
 * crash, start and acknowledgement of the first run.
 */
import { parseArgs } from "node:util";
import { runSeed, SAFETY_STEPS_DEFAULT } from "./run.ts";

function main(): number {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seeds: { type: "string", default: "200" },
      "first-seed": { type: "string", default: "1" },
      seed: { type: "string" },
      steps: { type: "string", default: String(SAFETY_STEPS_DEFAULT) },
      verbose: { type: "boolean", default: false },
      trace: { type: "boolean", default: false },
    },
  });
  const single = values.seed ?? Deno.env.get("ASPEN_SEED");
  const steps = parseCount("--steps", values.steps);
  const first = single === undefined ? parseCount("--first-seed", values["first-seed"]) : 0;
  const count = single === undefined ? parseCount("--seeds", values.seeds) : 1;
  const seeds = single === undefined
    ? Array.from({ length: count }, (_, i) => first + i)
    : [parseCount("--seed", single)];
  let violations = 0;
  for (const seed of seeds) {
    const tracer = values.trace ? (line: string) => console.log(line) : null;
    const result = runSeed(seed, steps, "memory", tracer);
    const again = runSeed(seed, steps);
    let problem = result.violation;
    if (problem === null && again.traceHash !== result.traceHash) {
      problem = `nondeterminism: trace hash ${result.traceHash} then ${again.traceHash}`;
    }
    if (values.verbose || single !== undefined) {
      console.log(`seed ${seed}: trace ${result.traceHash} ${JSON.stringify(result.stats)}`);
      console.log(`  options ${JSON.stringify(result.options)}`);
    }
    if (problem !== null) {
      violations++;
      console.log(`FAIL seed ${seed}: ${problem}`);
      console.log(`  replay: deno task sim --seed ${seed} --steps ${steps}`);
    }
  }
  console.log(`sim: ${seeds.length} seeds, ${violations} violations`);
  return violations === 0 ? 0 : 1;
}

function parseCount(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`Cannot run the simulation: ${flag} is "${text}" but must be an integer >= 0`);
    Deno.exit(2);
  }
  return value;
}

Deno.exit(main());
