/**
 * Runs the seeded cross-shard transaction simulation (txn_sim.ts) over many seeds and checks
 * every invariant of each run (one-round commits included: every reply agrees with what
 * follows it, and watchers get events in revision order); one seed runs twice to prove a run
 * is deterministic, and a coordinator with a planted protocol bug (a pusher that aborts a
 * staging record without asking its participants, which may all have prepared) must be caught.
 *
 * A failing seed is printed with its replay command: `ASPEN_TXN_SIM_SEED=<n> deno test -A
 * tests/txn_sim_test.ts` runs only that seed.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { runTxnSim, type TxnSimOptions, type TxnSimReport } from "./txn_sim.ts";

const SEEDS = Number(Deno.env.get("ASPEN_TXN_SIM_SEEDS") ?? "24");
const REPLAY_SEED = Deno.env.get("ASPEN_TXN_SIM_SEED");
const FIRST_SEED = 13_000;

function optionsOf(seed: number): TxnSimOptions {
  return { seed, shardCount: 2 + (seed % 3), clients: 4, opsPerClient: 12 };
}

function describe(report: TxnSimReport): string {
  return `seed ${report.seed}: ${report.violations.slice(0, 8).join("; ")}\n` +
    `replay: ASPEN_TXN_SIM_SEED=${report.seed} deno test -A tests/txn_sim_test.ts`;
}

Deno.test("txn sim: every seed keeps the bank invariants through crashes and losses", async () => {
  const seeds = REPLAY_SEED === undefined
    ? Array.from({ length: SEEDS }, (_, i) => FIRST_SEED + i)
    : [Number(REPLAY_SEED)];
  const failures: string[] = [];
  const totals: Record<string, number> = {};
  for (const seed of seeds) {
    const report = await runTxnSim(optionsOf(seed));
    if (report.violations.length > 0) failures.push(describe(report));
    for (const [name, count] of Object.entries(report.counts)) {
      totals[name] = (totals[name] ?? 0) + count;
    }
  }
  deepStrictEqual(failures, [], failures.join("\n"));
  // The runs must exercise the protocol, not pass vacuously.
  ok(
    (totals["transfer-txn:committed"] ?? 0) > 0,
    `no transfer-txn:committed in ${JSON.stringify(totals)}`,
  );
  ok(
    (totals["transfer-optimistic:committed"] ?? 0) > 0,
    `no transfer-optimistic:committed in ${JSON.stringify(totals)}`,
  );
  ok((totals["read:ok"] ?? 0) > 0, `no read:ok in ${JSON.stringify(totals)}`);
  ok(
    (totals["read:through-intents"] ?? 0) > 0,
    `no read-only txn answered through intents in ${JSON.stringify(totals)}`,
  );
  ok(
    (totals["read-after-reply"] ?? 0) > 0,
    `no read-after-reply in ${JSON.stringify(totals)}`,
  );
  ok((totals["watch-events"] ?? 0) > 0, `no watch-events in ${JSON.stringify(totals)}`);
  ok((totals["crashed"] ?? 0) > 0, `no crashed in ${JSON.stringify(totals)}`);
  ok((totals["push"] ?? 0) > 0, `no push in ${JSON.stringify(totals)}`);
  ok(
    (totals["status:committed/pending"] ?? 0) > 0,
    `no status read of a staging record that said committed in ${JSON.stringify(totals)}`,
  );
  ok((totals["record:aborted"] ?? 0) > 0, `no record:aborted in ${JSON.stringify(totals)}`);
  ok(
    (totals["committed-unanswered"] ?? 0) > 0,
    `no committed-unanswered in ${JSON.stringify(totals)}`,
  );
  ok(
    (totals["recovered-commit"] ?? 0) > 0,
    `no recovered-commit (a pusher committing a staging txn) in ${JSON.stringify(totals)}`,
  );
});

/** Seeds that once failed, with the options they failed with; each names what it caught. */
const REGRESSIONS: readonly { seed: number; caught: string }[] = [
  // A record left pending forever: abort resolves landed while the abort decide was lost.
  { seed: 20_089, caught: "resolve abort before the decide" },
  { seed: 20_097, caught: "resolve abort before the decide" },
  { seed: 20_114, caught: "resolve abort before the decide" },
];

Deno.test("txn sim: regression seeds pass", async () => {
  for (const { seed, caught } of REGRESSIONS) {
    const report = await runTxnSim({ ...optionsOf(seed), clients: 6, opsPerClient: 20 });
    deepStrictEqual(report.violations, [], `${caught}: ${describe(report)}`);
  }
});

Deno.test("txn sim: one seed run twice gives the same trace", async () => {
  const first = await runTxnSim(optionsOf(FIRST_SEED));
  const second = await runTxnSim(optionsOf(FIRST_SEED));
  deepStrictEqual(second.trace, first.trace);
  deepStrictEqual(second.counts, first.counts);
});

for (
  const [plantedBug, what] of [
    ["abortStaging", "a pusher that aborts a staging txn unasked"],
    ["readThroughUnknown", "a read-only txn that counts a holder it cannot place as committed"],
  ] as const
) {
  Deno.test(`txn sim: ${what} breaks an invariant`, async () => {
    const caught: string[] = [];
    for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS && caught.length === 0; seed++) {
      const report = await runTxnSim({ ...optionsOf(seed), plantedBug });
      caught.push(...report.violations);
    }
    ok(caught.length > 0, "the planted bug went unnoticed");
  });
}
