/**
 * Crash-replay test: apply is atomic and idempotent across a process crash.
 *
 * A child process (tests/fixtures/sm_crash_child.ts) applies a seeded workload to a
 * state machine file in batches of 1000 entries and stops inside a batch's transaction, after a
 * chosen entry and before the commit, printing `inside`. Only then does the test kill it with
 * SIGKILL, so the kill always lands mid-apply (no timing involved). The test reopens the file:
 * the applied index must be the end of the last committed batch, with nothing of the
 * interrupted batch visible. Replaying the whole log from the start (entries at or below the
 * applied index are skipped) must give the same results and the same state hash as an
 * uninterrupted in-memory run with different batch boundaries.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type ApplyResult, StateMachine } from "../shard/mod.ts";
import { Workload } from "./kv_workload.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/sm_crash_child.ts", import.meta.url));
const SEED = 4242;
const BATCH_ENTRIES = 1000;
const TOTAL_ENTRIES = 4000;

/** The uninterrupted run: every entry applied in batches of 250, in memory. */
function reference(): { hash: string; results: ApplyResult[] } {
  const sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  const workload = new Workload(SEED);
  const results: ApplyResult[] = [];
  while (workload.lastIndex < TOTAL_ENTRIES) results.push(...sm.apply(workload.entries(250)));
  const hash = sm.stateHash();
  sm.close();
  return { hash, results };
}

async function crashChild(path: string, crashIndex: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE, path, String(SEED), String(BATCH_ENTRIES), String(crashIndex)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  try {
    while (!output.includes("inside")) {
      const { value, done } = await lines.read();
      if (done) break;
      output += value;
    }
  } finally {
    child.kill("SIGKILL");
    await lines.cancel();
  }
  const status = await child.status;
  assert.ok(output.includes(`inside ${crashIndex}`), `child output: ${output} ${await stderr}`);
  assert.equal(status.signal, "SIGKILL");
  await stderr;
}

Deno.test("a state machine killed mid-apply replays to the same state", async (t) => {
  const expected = reference();
  // First entry of the first batch, the middle of a batch, and its very last entry.
  for (const crashIndex of [1, 2500, 3000]) {
    await t.step(`killed after entry ${crashIndex}`, async () => {
      const directory = Deno.makeTempDirSync();
      const path = `${directory}/state-machine.db`;
      try {
        await crashChild(path, crashIndex);
        const committed = Math.floor((crashIndex - 1) / BATCH_ENTRIES) * BATCH_ENTRIES;
        const sm = StateMachine.open({ path, synchronous: "normal" });
        try {
          assert.equal(sm.appliedIndex(), committed, "only whole batches survive");
          const workload = new Workload(SEED);
          const results: ApplyResult[] = [];
          while (workload.lastIndex < TOTAL_ENTRIES) {
            const count = Math.min(333, TOTAL_ENTRIES - workload.lastIndex);
            results.push(...sm.apply(workload.entries(count)));
          }
          const skipped = results.filter((result) => result.type === "skipped").length;
          assert.equal(skipped, committed, "entries at or below last_applied are skipped");
          assert.deepEqual(results.slice(committed), expected.results.slice(committed));
          assert.equal(sm.stateHash(), expected.hash);
        } finally {
          sm.close();
        }
      } finally {
        Deno.removeSync(directory, { recursive: true });
      }
    });
  }
});
