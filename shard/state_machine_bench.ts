/**
 * Benchmarks of StateMachine.apply(): puts of 100-byte values in batches of 1 and of 1000
 * entries (encoding is not timed), on a WAL file with synchronous=normal (the state machine's
 * usual setting) and with synchronous=full, plus local reads. Applies per second = batch size /
 * time per iteration.
 *
 * A last group is the cluster benchmark's shape in steady state: 256-byte values over 10,000
 * keys, batches of 200, with the watch history already full (so every batch also compacts it
 * now and then), which is what a replica applies under `bench:cluster`'s put rows.
 *
 * Run with: deno bench -A shard/state_machine_bench.ts
 */

import { encodeCommand } from "./command_codec.ts";
import { type ApplyEntry, StateMachine } from "./state_machine.ts";
import type { Synchronous } from "./_schema.ts";

const KEYS = 10_000;
const VALUE = "v".repeat(100);
const directory = Deno.makeTempDirSync({ prefix: "aspen-bench-" });
const machines: StateMachine[] = [];

function bench(name: string, synchronous: Synchronous, batchEntries: number): void {
  const sm = StateMachine.open({ path: `${directory}/${machines.length}.db`, synchronous });
  machines.push(sm);
  let index = 0;
  Deno.bench({
    name,
    group: `batch of ${batchEntries}`,
    fn(context) {
      const entries: ApplyEntry[] = [];
      for (let i = 0; i < batchEntries; i++) {
        index++;
        const key = `key/${index % KEYS}`;
        const data = encodeCommand({ type: "put", key, value: VALUE, lease: 0, prevKv: false });
        entries.push({ index, data });
      }
      context.start();
      sm.apply(entries);
      context.end();
    },
  });
}

bench("apply 1 put (synchronous=normal)", "normal", 1);
bench("apply 1 put (synchronous=full)", "full", 1);
bench("apply 1000 puts (synchronous=normal)", "normal", 1000);
bench("apply 1000 puts (synchronous=full)", "full", 1000);

const STEADY_VALUE = "v".repeat(256);
const STEADY_BATCH = 200;
const steady = StateMachine.open({ path: `${directory}/steady.db`, synchronous: "normal" });
machines.push(steady);
let steadyIndex = 0;

function steadyBatch(): ApplyEntry[] {
  const entries: ApplyEntry[] = [];
  for (let i = 0; i < STEADY_BATCH; i++) {
    steadyIndex++;
    const key = `bench/${(steadyIndex * 7919) % KEYS}`;
    const command = { type: "put", key, value: STEADY_VALUE, lease: 0, prevKv: false } as const;
    entries.push({ index: steadyIndex, data: encodeCommand(command) });
  }
  return entries;
}

// Fill the key space and the watch history (50,000 events) before timing.
while (steadyIndex < 60_000) steady.apply(steadyBatch());
Deno.bench({
  name: "apply 200 puts of 256 B, 10,000 keys, full watch history",
  group: "steady state",
  fn(context) {
    const entries = steadyBatch();
    context.start();
    steady.apply(entries);
    context.end();
  },
});

const reader = machines[0];
if (reader === undefined) throw new Error("no state machine");
let readCount = 0;
Deno.bench({
  name: "get",
  group: "reads",
  fn() {
    reader.get(`key/${readCount++ % 1000}`);
  },
});
Deno.bench({
  name: "range of 100 kvs",
  group: "reads",
  fn() {
    reader.range({ range: { prefix: "key/" }, limit: 100 });
  },
});

globalThis.addEventListener("unload", () => {
  for (const sm of machines) sm.close();
  Deno.removeSync(directory, { recursive: true });
});
