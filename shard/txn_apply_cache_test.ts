/**
 * What the cheaper apply of cross-shard phases keeps in memory, and must forget or rebuild:
 * the prepared participant rows TxnStore caches (a batch rolled back, an entry that failed
 * after a prepare in the same batch, a row too big for the cache, a reopened file), the ids of
 * the oldest ended rows that retention drops next (a rolled-back drop), and the sys counter
 * rows the state machine writes only when they changed (a rolled-back batch, a reopen). The
 * rollbacks are injected by an ApplyObserver that throws after a chosen entry. Applied on a
 * file database, as nodes run it.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import type { ApplyResult } from "./apply_result.ts";
import type { Command, TxnPrepareCommand } from "./command.ts";
import { encodeCommand } from "./command_codec.ts";
import {
  TXN_PREPARED_CACHE_BYTES_MAX,
  TXN_RECORDS_DROP_BATCH,
  TXN_RECORDS_RETAIN,
  VALUE_BYTES_MAX,
} from "./limits.ts";
import { StateMachine, type StateMachineOptions } from "./state_machine.ts";

/** A state machine on a temp file whose observer throws after entry `failAfter`. */
class FileShard {
  readonly path: string;
  sm: StateMachine;
  index = 0;
  failAfter = 0;
  #options: Partial<StateMachineOptions>;

  constructor(path: string, options: Partial<StateMachineOptions> = {}) {
    this.path = path;
    this.#options = options;
    this.sm = this.#open();
  }

  /** Applies `commands` as one batch; the next indexes. */
  run(...commands: Command[]): ApplyResult[] {
    const entries = commands.map((command, i) => ({
      index: this.index + 1 + i,
      data: encodeCommand(command),
    }));
    const results = this.sm.apply(entries);
    this.index += commands.length;
    return results;
  }

  reopen(): void {
    this.sm.close();
    this.sm = this.#open();
  }

  #open(): StateMachine {
    const observer = {
      afterEntry: (index: number) => {
        if (index === this.failAfter) throw new Error(`injected failure after entry ${index}`);
      },
    };
    return StateMachine.open({
      path: this.path,
      synchronous: "normal",
      observer,
      ...this.#options,
    });
  }
}

async function withShard(
  body: (shard: FileShard) => void,
  options: Partial<StateMachineOptions> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-txn-cache-" });
  const shard = new FileShard(`${dir}/state-machine.db`, options);
  try {
    body(shard);
  } finally {
    shard.sm.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function put(key: string, value: string): Command {
  return { type: "put", key, value, lease: 0, prevKv: false };
}

function prepare(txnId: string, key: string, value = "new"): TxnPrepareCommand {
  return {
    type: "txnPrepare",
    txnId,
    shard: 1,
    home: 0,
    participants: [0, 1],
    deadlineMs: 5_000,
    compare: [{ key, target: "value", op: "=", value: "old" }],
    reads: [],
    success: [{ type: "put", key, value, lease: 0, prevKv: true }],
    failure: [{ type: "get", key }],
    leases: [],
  };
}

function commit(txnId: string): Command {
  return { type: "txnResolve", txnId, outcome: "commit", branch: "success" };
}

function errorCode(result: ApplyResult | undefined): string | null {
  return result?.type === "error" ? result.code : null;
}

Deno.test("a prepare rolled back with its batch is forgotten by the row cache", async () => {
  await withShard((shard) => {
    shard.run(put("k", "old"));
    shard.failAfter = 2;
    throws(() => shard.run(prepare("1.1000.1", "k")), /injected failure after entry 2/);
    shard.index = 1;
    shard.failAfter = 0;
    equal(shard.sm.txnParticipant("1.1000.1"), null);
    equal(shard.sm.intentCount(), 0);
    equal(errorCode(shard.run(commit("1.1000.1"))[0]), "txn_not_prepared");
    equal(shard.sm.get("k")?.value, "old");
    // Prepared again for real: it locks, and its commit writes.
    const [prepared] = shard.run(prepare("1.1000.1", "k"));
    equal(prepared?.type === "txnPrepared" && prepared.ok, true);
    equal(shard.sm.intentCount(), 1);
    equal(shard.run(commit("1.1000.1"))[0]?.type, "txnResolved");
    equal(shard.sm.get("k")?.value, "new");
  });
});

Deno.test("an entry that fails after a prepare in its batch keeps the prepared row", async () => {
  await withShard((shard) => {
    shard.run(put("k", "old"));
    // The failed entry rolls back to its savepoint and the store reloads what it keeps.
    const [prepared, failed] = shard.run(prepare("1.1000.1", "k"), commit("1.1000.9"));
    equal(prepared?.type === "txnPrepared" && prepared.ok, true);
    equal(errorCode(failed), "txn_not_prepared");
    equal(shard.sm.txnParticipant("1.1000.1")?.state, "prepared");
    const [resolved] = shard.run(commit("1.1000.1"));
    deepEqual(resolved?.type === "txnResolved" && resolved.results[0], {
      type: "put",
      version: 2,
      prevKv: { key: "k", value: "old", version: 1, createRevision: 1, modRevision: 1, lease: 0 },
    });
    equal(shard.sm.get("k")?.value, "new");
    equal(shard.sm.intentCount(), 0);
  });
});

Deno.test("prepared rows past the cache bound or after a reopen resolve from SQLite", async () => {
  await withShard((shard) => {
    const big = "b".repeat(VALUE_BYTES_MAX - 64);
    equal(big.length * 2 > TXN_PREPARED_CACHE_BYTES_MAX, true, "the big row does not fit");
    shard.run(put("big", "old"), put("small", "old"), put("later", "old"));
    // The big one fills the cache: the small one after it is not cached either.
    shard.run(prepare("1.1000.1", "big", big), prepare("1.1000.2", "small"));
    shard.reopen();
    // Reloaded from the file; this one is cached as it is prepared.
    shard.run(prepare("1.1000.3", "later"));
    const results = shard.run(commit("1.1000.2"), commit("1.1000.1"), commit("1.1000.3"));
    deepEqual(results.map((result) => result.type), Array(3).fill("txnResolved"));
    equal(shard.sm.get("big")?.value, big);
    equal(shard.sm.get("small")?.value, "new");
    equal(shard.sm.get("later")?.value, "new");
    equal(shard.sm.txnParticipant("1.1000.1")?.state, "committed");
    equal(shard.sm.intentCount(), 0);
    // A committed row answers a duplicate commit from SQLite with its stored results.
    const [again] = shard.run(commit("1.1000.2"));
    deepEqual(again, { ...results[0], revision: again?.revision });
  });
});

Deno.test("sys counters are written when they change, across rollbacks and reopens", async () => {
  await withShard((shard) => {
    const optimistic = (key: string, modRevision: number): Command => ({
      type: "optimisticTxn",
      reads: [{ key, modRevision, version: null, revision: null }],
      writes: [{ op: "set", key, value: "v" }],
    });
    shard.run(optimistic("a", 0));
    shard.failAfter = 2;
    throws(() => shard.run(optimistic("b", 0)), /injected failure/);
    shard.index = 1;
    shard.failAfter = 0;
    equal(shard.sm.stats().optimisticTxns, 1);
    shard.run(optimistic("a", 0)); // A conflict: "a" changed at revision 1.
    for (let i = 0; i < 12; i++) shard.run(put(`p/${i}`, "v")); // Compacts the history.
    const stats = shard.sm.stats();
    deepEqual([stats.optimisticTxns, stats.conflicts], [2, 1]);
    equal(stats.compactedRevision > 0, true, "the history was compacted");
    shard.reopen();
    deepEqual(shard.sm.stats(), stats);
  }, { historyEventsMax: 4 });
});

Deno.test("retention drops the oldest ended rows again after a rolled-back drop", async () => {
  await withShard((shard) => {
    const id = (i: number) => `t.${String(i).padStart(6, "0")}`;
    const abort = (txnId: string): Command => ({
      type: "txnResolve",
      txnId,
      outcome: "abort",
      branch: null,
    });
    // TXN_RECORDS_RETAIN + TXN_RECORDS_DROP_BATCH ended rows (aborted, never prepared):
    // nothing is dropped yet.
    const full = TXN_RECORDS_RETAIN + TXN_RECORDS_DROP_BATCH;
    for (let start = 0; start < full; start += 1000) {
      const count = Math.min(1000, full - start);
      shard.run(...Array.from({ length: count }, (_, i) => abort(id(start + i))));
    }
    equal(shard.sm.txnParticipant(id(0))?.state, "aborted");
    // One more drops the oldest, but its batch is rolled back: nothing was dropped.
    shard.failAfter = shard.index + 1;
    throws(() => shard.run(abort("u.1")), /injected failure/);
    shard.failAfter = 0;
    equal(shard.sm.txnParticipant(id(0))?.state, "aborted");
    // Applied for real, it drops the oldest down to TXN_RECORDS_RETAIN again.
    shard.run(abort("u.1"));
    const dropped = TXN_RECORDS_DROP_BATCH + 1;
    equal(shard.sm.txnParticipant(id(dropped - 1)), null);
    equal(shard.sm.txnParticipant(id(dropped))?.state, "aborted");
    // The next batch drops the next oldest, in order.
    const more = Array.from({ length: dropped }, (_, i) => abort(`u.${i + 2}`));
    shard.run(...more);
    equal(shard.sm.txnParticipant(id(2 * dropped - 1)), null);
    equal(shard.sm.txnParticipant(id(2 * dropped))?.state, "aborted");
    equal(shard.sm.txnParticipant(`u.${dropped + 1}`)?.state, "aborted");
  });
});
