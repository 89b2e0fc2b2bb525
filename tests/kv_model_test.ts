/**
 * Model-based test of the shard state machine.
 *
 * For each seed, a seeded workload (tests/kv_workload.ts) generates thousands of entries of
 * every command type, plus undecodable ones, over a dozen keys. The SQLite state machine and
 * the in-memory reference model (tests/kv_model.ts) apply the same batches (of random sizes,
 * sometimes re-delivering entries already applied) and must agree on every result (error
 * messages aside), on random reads after every batch (get, range pages with every option and
 * small byte budgets, leases, meta, counters), on the watch events of a prefix watcher, and on
 * the final state hash. Along the way the state machine is snapshotted and restored, both in
 * place and into a fresh instance. `ASPEN_MODEL_SEEDS=n` runs more seeds.
 */

import assert from "node:assert/strict";
import {
  type ApplyEntry,
  type ApplyResult,
  type RangeOptions,
  StateMachine,
  type Watcher,
} from "../shard/mod.ts";
import { KvModel } from "./kv_model.ts";
import { Prng, Workload, WORKLOAD_KEYS } from "./kv_workload.ts";

const SEEDS = Number(Deno.env.get("ASPEN_MODEL_SEEDS") ?? "24");
const ENTRIES_PER_SEED = 1500;
const BATCH_ENTRIES_MAX = 16;

Deno.test("StateMachine agrees with the reference model on seeded random workloads", async (t) => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    await t.step(`seed ${seed}`, () => runSeed(seed, ":memory:"));
  }
});

Deno.test("StateMachine agrees with the model on a file, across reopen and restore", async (t) => {
  for (const seed of [1001, 1002]) {
    const directory = Deno.makeTempDirSync();
    try {
      await t.step(`seed ${seed}`, () => runSeed(seed, `${directory}/state-machine.db`));
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  }
});

/** The observable part of results: error messages may differ between the two. */
function comparable(results: readonly ApplyResult[]): unknown[] {
  return results.map((result) => {
    if (result.type !== "error") return result;
    return {
      type: result.type,
      revision: result.revision,
      code: result.code,
      details: result.details,
    };
  });
}

async function runSeed(seed: number, path: string): Promise<void> {
  const model = new KvModel();
  const prng = new Prng(seed ^ 0x5eed);
  const workload = new Workload(seed, { kvOf: (key) => model.get(key) });
  let sm = StateMachine.open({ path, synchronous: "normal" });
  let watcher = sm.watch({ prefix: "" }, { fromRevision: 1 });
  let eventsSeen = 0;
  const applied: ApplyEntry[] = [];
  try {
    while (workload.lastIndex < ENTRIES_PER_SEED) {
      const fresh = workload.entries(1 + prng.int(BATCH_ENTRIES_MAX));
      const replayed = prng.chance(0.1) ? applied.slice(-1 - prng.int(3)) : [];
      const batch = [...replayed, ...fresh];
      applied.push(...fresh);
      const expected = model.apply(batch);
      const actual = sm.apply(batch);
      assert.deepEqual(
        comparable(actual),
        comparable(expected),
        `seed ${seed} at ${batch[0]?.index}`,
      );
      compareReads(sm, model, prng);
      eventsSeen = await compareEvents(watcher, model, eventsSeen);
      if (prng.chance(0.02)) sm.restore(sm.snapshot());
      if (prng.chance(0.02)) {
        const fresh = StateMachine.open({ path: ":memory:", synchronous: "normal" });
        fresh.restore(sm.snapshot());
        sm.close();
        sm = fresh;
        watcher = sm.watch({ prefix: "" }, {
          fromRevision: model.events[eventsSeen]?.revision ?? sm.appliedIndex() + 1,
        });
      }
    }
    compareEverything(sm, model);
  } finally {
    sm.close();
  }
}

function compareReads(sm: StateMachine, model: KvModel, prng: Prng): void {
  for (let i = 0; i < 3; i++) {
    const key = prng.pick(WORKLOAD_KEYS);
    assert.deepEqual(sm.get(key), model.get(key), `get ${key}`);
  }
  const workload = new Workload(prng.next());
  const options: RangeOptions = {
    ...workload.rangeRequest(),
    ...(prng.chance(0.5) ? { bytesMax: 1 + prng.int(400) } : {}),
  };
  assert.deepEqual(sm.range(options), model.range(options), `range ${JSON.stringify(options)}`);
  const id = 1 + prng.int(sm.appliedIndex());
  assert.deepEqual(sm.lease(id), model.lease(id), `lease ${id}`);
  for (const name of ["shardMap", "epoch", "\u00e9", "none"]) {
    assert.equal(sm.getMeta(name), model.getMeta(name), `meta ${name}`);
  }
  const stats = sm.stats();
  assert.equal(stats.appliedIndex, model.lastApplied);
  assert.equal(stats.optimisticTxns, model.state.optimisticTxns);
  assert.equal(stats.conflicts, model.state.conflicts);
}

async function compareEvents(watcher: Watcher, model: KvModel, seen: number): Promise<number> {
  const fresh = model.events.length - seen;
  assert.equal(watcher.bufferedEvents, fresh, "the watcher buffered every new event");
  for (let i = seen; i < model.events.length; i++) {
    assert.deepEqual(await watcher.next(), model.events[i], `event ${i}`);
  }
  return model.events.length;
}

function compareEverything(sm: StateMachine, model: KvModel): void {
  for (const reverse of [false, true]) {
    let after: string | null = null;
    const smKeys: unknown[] = [];
    for (let page = 0; page < 100; page++) {
      const result = sm.range({ range: { prefix: "" }, limit: 3, after, reverse });
      smKeys.push(...result.kvs);
      if (!result.more) break;
      after = result.next;
    }
    assert.deepEqual(smKeys, model.range({ range: { prefix: "" }, reverse }).kvs);
  }
  assert.deepEqual(sm.leases(), model.leases());
  for (const lease of model.leases()) assert.deepEqual(sm.lease(lease.id), model.lease(lease.id));
  assert.equal(sm.stateHash(), model.stateHash(), "final state hashes agree");
}
