/**
 * Benchmarks of StateMachine.apply(): puts of 100-byte values in batches of 1 and of 1000
 * entries (encoding is not timed), on a WAL file with synchronous=normal (the state machine's
 * usual setting) and with synchronous=full, plus local reads. Applies per second = batch size /
 * time per iteration.
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
