/**
 * StateMachine.stateHashInSteps(): the hash of a file database, taken from an in-memory copy
 * in steps that let the event loop run in between, equals stateHash() at the applied index
 * it reports, even when entries are applied between its steps (the copy is taken at once).
 */
import { equal, ok } from "node:assert/strict";
import { encodeCommand } from "./command_codec.ts";
import { StateMachine } from "./state_machine.ts";
import { STATE_HASH_ROWS_PER_STEP } from "./_snapshot.ts";

function puts(first: number, count: number) {
  return Array.from({ length: count }, (_, i) => ({
    index: first + i,
    data: encodeCommand({
      type: "put",
      key: `k${first + i}`,
      value: "v",
      lease: 0,
      prevKv: false,
    }),
  }));
}

Deno.test("StateMachine.stateHashInSteps() yields and keeps its applied index", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-hash-" });
  const machine = StateMachine.open({ path: `${dir}/state-machine.db`, synchronous: "normal" });
  try {
    const count = 3 * STATE_HASH_ROWS_PER_STEP;
    for (let first = 1; first <= count; first += 1_000) machine.apply(puts(first, 1_000));
    const expected = machine.stateHash();
    let turns = 0;
    const hashing = machine.stateHashInSteps();
    // Runs between the steps: the event loop is not held for the whole hash.
    const interleaved = (async () => {
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        turns++;
        machine.apply(puts(count + 1 + i * 10, 10));
      }
    })();
    const hashed = await hashing;
    await interleaved;
    ok(turns > 0, "other work ran while hashing");
    equal(hashed.appliedIndex, count, "the index the hash was taken at");
    equal(hashed.stateHash, expected, "applies in between did not leak into the hash");
    ok(machine.appliedIndex() > count);
    const now = await machine.stateHashInSteps();
    equal(now.stateHash, machine.stateHash());
    equal(now.appliedIndex, machine.appliedIndex());
  } finally {
    machine.close();
    await Deno.remove(dir, { recursive: true });
  }
});
