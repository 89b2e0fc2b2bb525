/**
 * The shard half of cross-shard transactions: txnPrepare, txnDecide and txnResolve applied to
 * real state machines (SQLite in memory or in a temp file). Each phase is checked for its
 * result and its effect, duplicates included; then the races the design names (a late prepare
 * after an abort, decide abort-then-commit and commit-then-abort), a commit-resolve against a
 * single-shard txn of the same ops on a twin state machine, every existing write meeting an
 * intent, snapshots and the state hash with intents, retention, opening a database written
 * by the previous schema version, and the read of a prepare's vote (which fences nothing).
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type ApplyResult, applyResultError } from "./apply_result.ts";
import type { Command, TxnOp, TxnPrepareCommand } from "./command.ts";
import { encodeCommand } from "./command_codec.ts";
import {
  KV_RESPONSE_OVERHEAD_BYTES,
  TXN_RECORDS_DROP_BATCH,
  TXN_RECORDS_RETAIN,
  TXN_RESPONSE_BYTES_MAX,
  VALUE_BYTES_MAX,
} from "./limits.ts";
import { StateMachine } from "./state_machine.ts";

/** A state machine with a log index counter. */
class Shard {
  readonly sm: StateMachine;
  index = 0;

  constructor(path = ":memory:") {
    this.sm = StateMachine.open({ path, synchronous: "normal" });
  }

  run(command: Command): ApplyResult {
    this.index++;
    const [result] = this.sm.apply([{ index: this.index, data: encodeCommand(command) }]);
    return result!;
  }

  runMany(commands: readonly Command[]): void {
    const entries = commands.map((command) => ({
      index: ++this.index,
      data: encodeCommand(command),
    }));
    this.sm.apply(entries);
  }

  keys(): unknown {
    return this.sm.range({ range: { prefix: "" } }).kvs;
  }
}

function put(key: string, value: string): Command {
  return { type: "put", key, value, lease: 0, prevKv: false };
}

function prepare(fields: Partial<TxnPrepareCommand> = {}): TxnPrepareCommand {
  return {
    type: "txnPrepare",
    txnId: "1.1000.1",
    shard: 0,
    home: 0,
    participants: [0, 1],
    deadlineMs: 5_000,
    compare: [{ key: "a", target: "value", op: "=", value: "1" }],
    reads: [],
    success: [{ type: "put", key: "b", value: "new", lease: 0, prevKv: true }],
    failure: [],
    leases: [],
    ...fields,
  };
}

function resolve(txnId: string, outcome: "commit" | "abort"): Command {
  return { type: "txnResolve", txnId, outcome, branch: outcome === "commit" ? "success" : null };
}

function decide(txnId: string, outcome: "commit" | "abort"): Command {
  const branch = outcome === "commit" ? "success" : null;
  return { type: "txnDecide", txnId, outcome, branch, reason: outcome === "abort" ? "pushed" : "" };
}

Deno.test("txnPrepare locks every key, creates the record on the home shard only", () => {
  const home = new Shard();
  home.run(put("a", "1"));
  const result = home.run(prepare());
  deepEqual(result, {
    type: "txnPrepared",
    revision: 2,
    ok: true,
    compareSucceeded: true,
    conflict: null,
    reservedRevision: 2,
    results: {
      success: [{ type: "put", version: 1, prevKv: null }],
      failure: [],
    },
  });
  equal(home.sm.intentCount(), 2);
  deepEqual(home.sm.intentOf("a"), { txnId: "1.1000.1", home: 0 });
  deepEqual(home.sm.intentsIn({ prefix: "" }, 10).map((entry) => entry.key), ["a", "b"]);
  equal(home.sm.intentOf("c"), null);
  deepEqual(home.sm.txnRecord("1.1000.1"), {
    txnId: "1.1000.1",
    status: "pending",
    home: 0,
    participants: [0, 1],
    branch: null,
    deadlineMs: 5_000,
    createdRevision: 2,
    decidedRevision: null,
    reason: "",
  });
  deepEqual(home.sm.txnParticipant("1.1000.1"), {
    txnId: "1.1000.1",
    home: 0,
    state: "prepared",
    resolvedRevision: null,
  });
  // A duplicate returns the stored verdict, even though the compare no longer matters.
  deepEqual(home.run(prepare({ compare: [] })), { ...result, revision: 3 });
  equal(home.sm.intentCount(), 2);

  const other = new Shard();
  const verdict = other.run(prepare({ shard: 1, compare: [] }));
  equal(verdict.type === "txnPrepared" && verdict.ok, true);
  equal(other.sm.txnRecord("1.1000.1"), null);
  equal(other.sm.txnParticipant("1.1000.1")?.state, "prepared");
});

Deno.test("txnPrepare reports failed compares and OCC conflicts and still locks", () => {
  const shard = new Shard();
  shard.run(put("a", "2"));
  const reads = [{ key: "a", modRevision: 0, version: null, revision: null }];
  const result = shard.run(prepare({ reads }));
  ok(result.type === "txnPrepared" && result.ok);
  equal(result.compareSucceeded, false);
  equal(result.conflict?.key, "a");
  equal(result.conflict?.actualModRevision, 1);
  equal(shard.sm.intentCount(), 2);
});

Deno.test("txnPrepare on a key locked by another txn locks and stores nothing", () => {
  const shard = new Shard();
  shard.run(prepare({ txnId: "holder", success: [] }));
  const result = shard.run(prepare({ txnId: "late", home: 1, participants: [0, 1] }));
  deepEqual(result, {
    type: "txnPrepared",
    revision: 2,
    ok: false,
    reason: "locked",
    key: "a",
    holder: { txnId: "holder", home: 0 },
  });
  equal(shard.sm.intentOf("b"), null);
  equal(shard.sm.txnParticipant("late"), null);
  // Once the holder resolves, the same prepare is evaluated afresh and succeeds.
  shard.run(resolve("holder", "abort"));
  const retried = shard.run(prepare({ txnId: "late", home: 1, participants: [0, 1] }));
  equal(retried.type === "txnPrepared" && retried.ok, true);
  deepEqual(shard.sm.intentOf("b"), { txnId: "late", home: 1 });
});

Deno.test("a prepare arriving after an abort locks nothing", async (t) => {
  await t.step("after a resolve-abort that found no row", () => {
    const shard = new Shard();
    deepEqual(shard.run(resolve("t", "abort")), {
      type: "txnResolved",
      revision: 1,
      outcome: "abort",
      results: [],
    });
    equal(shard.sm.txnParticipant("t")?.state, "aborted");
    deepEqual(shard.run(prepare({ txnId: "t", shard: 1 })), {
      type: "txnPrepared",
      revision: 2,
      ok: false,
      reason: "aborted",
      key: null,
      holder: null,
    });
    equal(shard.sm.intentCount(), 0);
  });
  await t.step("on the home shard after a pusher's decide-abort", () => {
    const shard = new Shard();
    deepEqual(shard.run(decide("t", "abort")), {
      type: "txnDecided",
      revision: 1,
      status: "aborted",
      branch: null,
    });
    equal(shard.sm.txnRecord("t")?.home, -1);
    const late = shard.run(prepare({ txnId: "t" }));
    equal(late.type === "txnPrepared" && !late.ok && late.reason, "aborted");
    equal(shard.sm.intentCount(), 0);
    equal(shard.sm.txnRecord("t")?.status, "aborted");
  });
});

Deno.test("txnFence answers a prepare's verdict or refuses the prepare forever", async (t) => {
  const fence = (txnId: string): Command => ({ type: "txnFence", txnId });
  await t.step("before the prepare: an aborted row, the late prepare locks nothing", () => {
    const shard = new Shard();
    const refused = { type: "txnPrepared", ok: false, reason: "aborted", key: null, holder: null };
    deepEqual(shard.run(fence("t")), { ...refused, revision: 1 });
    equal(shard.sm.txnParticipant("t")?.state, "aborted");
    deepEqual(shard.run(prepare({ txnId: "t", shard: 1 })), { ...refused, revision: 2 });
    equal(shard.sm.intentCount(), 0);
    deepEqual(shard.run(fence("t")), { ...refused, revision: 3 });
  });
  await t.step("after the prepare: its verdict, and the row stays prepared", () => {
    const shard = new Shard();
    shard.run(put("a", "2"));
    shard.run(prepare());
    const verdict = {
      type: "txnPrepared",
      ok: true,
      compareSucceeded: false,
      conflict: null,
      reservedRevision: 2,
      results: { success: [{ type: "put", version: 1, prevKv: null }], failure: [] },
    };
    deepEqual(shard.run(fence("1.1000.1")), { ...verdict, revision: 3 });
    equal(shard.sm.txnParticipant("1.1000.1")?.state, "prepared");
    equal(shard.sm.txnRecord("1.1000.1")?.status, "pending");
    equal(shard.sm.intentCount(), 2);
    shard.run(resolve("1.1000.1", "commit"));
    deepEqual(shard.run(fence("1.1000.1")), { ...verdict, revision: 5 }, "committed: its verdict");
  });
});

Deno.test("the home's resolve decides its staging record in the same entry", async (t) => {
  for (const outcome of ["commit", "abort"] as const) {
    await t.step(outcome, () => {
      const shard = new Shard();
      shard.run(prepare());
      equal(shard.sm.txnRecord("1.1000.1")?.status, "pending");
      shard.run(resolve("1.1000.1", outcome));
      const record = shard.sm.txnRecord("1.1000.1");
      equal(record?.status, outcome === "commit" ? "committed" : "aborted");
      equal(record?.decidedRevision, 2);
      equal(record?.branch, outcome === "commit" ? "success" : null);
      equal(shard.sm.intentCount(), 0);
    });
  }
  await t.step("a resolve against the decided record is refused and changes nothing", () => {
    const shard = new Shard();
    shard.run(prepare());
    shard.run(decide("1.1000.1", "abort"));
    const result = shard.run(resolve("1.1000.1", "commit"));
    equal(result.type === "error" && result.code, "txn_not_prepared");
    equal(shard.sm.txnParticipant("1.1000.1")?.state, "prepared");
    equal(shard.sm.intentCount(), 2);
  });
});

Deno.test("readKeys() reports values, intents and any change after a revision", () => {
  const shard = new Shard();
  shard.run(put("a", "1"));
  const first = shard.sm.readKeys(["a", "b"], null);
  deepEqual(first.kvs.map((kv) => kv?.value ?? null), ["1", null]);
  deepEqual(first.intents, [null, null]);
  equal(first.revision, 1);
  equal(first.changed, false);
  shard.run(put("c", "other key"));
  equal(shard.sm.readKeys(["a", "b"], first.revision).changed, false, "another key changed");
  // "b" is created and deleted again: the same (absent) state, but it changed in between.
  shard.run(put("b", "x"));
  shard.run({ type: "delete", key: "b", prevKv: false });
  const second = shard.sm.readKeys(["a", "b"], first.revision);
  deepEqual(second.kvs.map((kv) => kv?.value ?? null), ["1", null]);
  equal(second.changed, true);
  equal(shard.sm.readKeys(["a", "b"], second.revision).changed, false);
  shard.run(prepare({ txnId: "t", compare: [], success: [{ type: "get", key: "a" }] }));
  deepEqual(shard.sm.readKeys(["a", "b"], null).intents, [{ txnId: "t", home: 0 }, null]);
});

Deno.test("readKeys() previews what an intent's holder would make of each key", () => {
  const shard = new Shard();
  shard.run(put("a", "1"));
  shard.run(put("b", "old"));
  // Success writes b and deletes d; failure deletes b; c is only read; e is written twice.
  const prepared = shard.run(prepare({
    success: [
      { type: "put", key: "b", value: "new", lease: 0, prevKv: false },
      { type: "delete", key: "d", prevKv: false },
      { type: "get", key: "c" },
      { type: "put", key: "e", value: "1", lease: 0, prevKv: false },
      { type: "put", key: "e", value: "2", lease: 0, prevKv: false },
    ],
    failure: [{ type: "delete", key: "b", prevKv: false }],
  }));
  equal(prepared.type === "txnPrepared" && prepared.ok, true, JSON.stringify(prepared));
  const read = shard.sm.readKeys(["a", "b", "c", "d", "e"], null);
  const [a, b] = [read.kvs[0]!, read.kvs[1]!];
  deepEqual(read.previews, [
    // Compared only: locked, and left as it is by either branch.
    { success: a, failure: a },
    {
      success: {
        key: "b",
        value: "new",
        version: 2,
        createRevision: b.createRevision,
        modRevision: 3,
        lease: 0,
      },
      failure: null,
    },
    { success: null, failure: null },
    { success: null, failure: null },
    // Written twice: only running the branch tells.
    { failure: null },
  ]);
  // Once resolved, nothing is held and nothing previewed; the write is at the reserved 3.
  shard.run(resolve("1.1000.1", "commit"));
  const after = shard.sm.readKeys(["b"], 3);
  deepEqual(after.previews, [null]);
  equal(after.kvs[0]?.modRevision, 3);
  equal(after.changed, false, "the resolve wrote at the revision its prepare reserved");
});

Deno.test("txnDecide: the first decision wins and later ones learn it", async (t) => {
  await t.step("abort then commit: aborted", () => {
    const shard = new Shard();
    shard.run(prepare());
    equal(shard.run(decide("1.1000.1", "abort")).type, "txnDecided");
    deepEqual(shard.run(decide("1.1000.1", "commit")), {
      type: "txnDecided",
      revision: 3,
      status: "aborted",
      branch: null,
    });
    equal(shard.sm.txnRecord("1.1000.1")?.decidedRevision, 2);
    equal(shard.sm.txnRecord("1.1000.1")?.reason, "pushed");
  });
  await t.step("commit then abort: committed", () => {
    const shard = new Shard();
    shard.run(prepare());
    deepEqual(shard.run(decide("1.1000.1", "commit")), {
      type: "txnDecided",
      revision: 2,
      status: "committed",
      branch: "success",
    });
    deepEqual(shard.run(decide("1.1000.1", "abort")), {
      type: "txnDecided",
      revision: 3,
      status: "committed",
      branch: "success",
    });
    equal(shard.sm.txnRecord("1.1000.1")?.status, "committed");
  });
  await t.step("commit without a record: aborted", () => {
    const shard = new Shard();
    const result = shard.run(decide("nobody", "commit"));
    equal(result.type === "txnDecided" && result.status, "aborted");
  });
});

const OPS: TxnOp[] = [
  { type: "put", key: "a", value: "A2", lease: 0, prevKv: true },
  { type: "delete", key: "b", prevKv: true },
  { type: "get", key: "c" },
  { type: "put", key: "d", value: "D1", lease: 0, prevKv: false },
  { type: "get", key: "a" },
];

Deno.test("a commit-resolve gives the results, state and events of a one-shard txn", async () => {
  const cross = new Shard();
  const single = new Shard();
  for (const shard of [cross, single]) {
    shard.runMany([put("a", "A1"), put("b", "B1"), put("c", "C")]);
  }
  // One-round commits: the prepare (revision 4) reserves the revision its changes carry, and
  // previews the results; the one-shard txn runs at that same revision.
  const prepared = cross.run(prepare({ compare: [], success: OPS }));
  cross.run(decide("1.1000.1", "commit"));
  const resolved = cross.run(resolve("1.1000.1", "commit"));
  const txn = single.run({ type: "txn", compare: [], success: OPS, failure: [] });
  ok(resolved.type === "txnResolved" && txn.type === "txn" && prepared.type === "txnPrepared");
  ok(prepared.ok);
  equal(prepared.reservedRevision, txn.revision);
  equal(resolved.revision, 6);
  deepEqual(resolved.results, txn.results);
  deepEqual(prepared.results?.success, txn.results);
  deepEqual(cross.keys(), single.keys());
  equal(cross.sm.get("a")?.modRevision, 4);
  equal(cross.sm.intentCount(), 0);
  deepEqual(cross.sm.txnParticipant("1.1000.1"), {
    txnId: "1.1000.1",
    home: 0,
    state: "committed",
    resolvedRevision: 6,
  });
  const events = [];
  for (const shard of [cross, single]) {
    const watcher = shard.sm.watch({ prefix: "" }, { fromRevision: 4 });
    events.push([await watcher.next(), await watcher.next(), await watcher.next()]);
    watcher.cancel();
  }
  deepEqual(events[0], events[1]);
  equal(events[0]?.length, 3);
  // A duplicate returns the stored outcome and results and writes nothing.
  deepEqual(cross.run(resolve("1.1000.1", "commit")), { ...resolved, revision: 7 });
  deepEqual(cross.run(resolve("1.1000.1", "abort")), { ...resolved, revision: 8 });
  equal(cross.sm.get("a")?.version, 2);
});

Deno.test("an abort-resolve releases the intents and writes nothing", () => {
  const shard = new Shard();
  shard.run(put("a", "1"));
  shard.run(prepare());
  const before = shard.keys();
  deepEqual(shard.run(resolve("1.1000.1", "abort")), {
    type: "txnResolved",
    revision: 3,
    outcome: "abort",
    results: [],
  });
  deepEqual(shard.keys(), before);
  equal(shard.sm.intentCount(), 0);
  equal(shard.sm.txnParticipant("1.1000.1")?.state, "aborted");
  equal(shard.run(put("b", "free")).type, "put");
});

Deno.test("a commit-resolve where the txn was never prepared is a txn_not_prepared error", () => {
  const shard = new Shard();
  const result = shard.run(resolve("ghost", "commit"));
  equal(result.type === "error" && result.code, "txn_not_prepared");
  equal(shard.sm.txnParticipant("ghost"), null);
});

Deno.test("a prepare whose results would be too large fails before it locks", () => {
  // The locked keys cannot change before the resolve, so the commit-resolve could not fail.
  const shard = new Shard();
  shard.run(put("big", "v".repeat(VALUE_BYTES_MAX)));
  const kvBytes = KV_RESPONSE_OVERHEAD_BYTES + "big".length + VALUE_BYTES_MAX;
  const gets = Math.floor(TXN_RESPONSE_BYTES_MAX / kvBytes);
  const success: TxnOp[] = Array.from({ length: gets }, () => ({ type: "get", key: "big" }));
  const fits = shard.run(prepare({ txnId: "fits", compare: [], success }));
  ok(fits.type === "txnPrepared" && fits.ok);
  // Past TXN_PREVIEW_BYTES_MAX the prepare reserves its revision but previews no results.
  equal(fits.reservedRevision, fits.revision);
  equal(fits.results, null);
  const resolved = shard.run(resolve("fits", "commit"));
  equal(resolved.type === "txnResolved" && resolved.results.length, gets);
  const result = shard.run(prepare({ compare: [], success: [...success, success[0]!] }));
  equal(result.type === "error" && result.code, "request_too_large");
  equal(shard.sm.intentCount(), 0);
  equal(shard.sm.txnParticipant("1.1000.1"), null);
  equal(shard.sm.txnRecord("1.1000.1"), null);
  // A value the branch writes first counts as what a later op returns.
  const small: TxnOp[] = [
    { type: "put", key: "big", value: "small", lease: 0, prevKv: false },
    ...success,
    ...success,
  ];
  const rewritten = shard.run(prepare({ txnId: "small", compare: [], success: small }));
  equal(rewritten.type === "txnPrepared" && rewritten.ok, true);
});

Deno.test("every existing write on a locked key returns locked and changes nothing", async (t) => {
  const locked = { key: "a", holder: { txnId: "1.1000.1", home: 0 } };
  const range = {
    range: { prefix: "a" },
    limit: 10,
    after: null,
    keysOnly: false,
    countOnly: false,
    reverse: false,
  };
  const cases: [string, (lease: number) => Command][] = [
    ["put", () => put("a", "x")],
    ["delete", () => ({ type: "delete", key: "a", prevKv: false })],
    ["deleteRange over it", () => ({ type: "deleteRange", range: { start: "0", end: "z" } })],
    [
      "multiPut",
      () => ({
        type: "multiPut",
        puts: [{ key: "z", value: "1", lease: 0 }, { key: "a", value: "1", lease: 0 }],
      }),
    ],
    [
      "txn comparing it",
      () => ({
        type: "txn",
        compare: [{ key: "a", target: "version", op: ">", value: 0 }],
        success: [],
        failure: [],
      }),
    ],
    [
      "txn getting it",
      () => ({ type: "txn", compare: [], success: [], failure: [{ type: "get", key: "a" }] }),
    ],
    [
      "txn reading a range over it",
      () => ({
        type: "txn",
        compare: [],
        success: [{ type: "range", request: range }],
        failure: [],
      }),
    ],
    [
      "optimisticTxn reading it",
      () => ({
        type: "optimisticTxn",
        reads: [{ key: "a", modRevision: 2, version: null, revision: null }],
        writes: [{ op: "set", key: "z", value: "1" }],
      }),
    ],
    [
      "optimisticTxn writing it",
      () => ({ type: "optimisticTxn", reads: [], writes: [{ op: "delete", key: "a" }] }),
    ],
    ["leaseRevoke", (lease) => ({ type: "leaseRevoke", id: lease })],
    ["leaseExpire", (lease) => ({ type: "leaseExpire", ids: [lease] })],
  ];
  for (const [name, command] of cases) {
    await t.step(name, () => {
      const shard = new Shard();
      shard.run({ type: "leaseGrant", ttlSeconds: 60 });
      shard.run({ type: "put", key: "a", value: "1", lease: 1, prevKv: false });
      shard.run(prepare({ success: [] }));
      const before = [shard.keys(), shard.sm.leases()];
      const result = shard.run(command(1));
      deepEqual(result, { type: "locked", revision: 4, ...locked });
      deepEqual([shard.keys(), shard.sm.leases()], before);
      const error = applyResultError(result);
      equal(error?.code, "conflict");
      deepEqual(error?.details, { key: "a", holderTxnId: "1.1000.1", home: 0 });
      ok(error?.message.includes('"a"') && error.message.includes('"1.1000.1"'));
    });
  }
  await t.step("writes to other keys go through", () => {
    const shard = new Shard();
    shard.run(prepare({ success: [] }));
    equal(shard.run(put("b", "1")).type, "put");
    equal(shard.run({ type: "deleteRange", range: { prefix: "b" } }).type, "deleteRange");
  });
});

Deno.test("snapshots and the state hash carry the intents, records and rows", () => {
  const shard = new Shard();
  const twin = new Shard();
  shard.run(put("a", "1"));
  twin.run(put("a", "1"));
  shard.run(prepare());
  twin.run({ type: "noop" });
  notEqual(shard.sm.stateHash(), twin.sm.stateHash());
  const restored = new Shard();
  restored.sm.restore(shard.sm.snapshot());
  restored.index = 2;
  equal(restored.sm.stateHash(), shard.sm.stateHash());
  equal(restored.sm.intentCount(), 2);
  deepEqual(restored.sm.intentOf("b"), { txnId: "1.1000.1", home: 0 });
  equal(restored.run(put("b", "x")).type, "locked");
  restored.run(decide("1.1000.1", "commit"));
  const result = restored.run(resolve("1.1000.1", "commit"));
  equal(result.type === "txnResolved" && result.results.length, 1);
  equal(restored.sm.get("b")?.value, "new");
  // Restoring a snapshot without intents clears the in-memory count too.
  restored.sm.restore(twin.sm.snapshot());
  equal(restored.sm.intentCount(), 0);
  equal(restored.sm.stateHash(), twin.sm.stateHash());
});

Deno.test("TXN_RECORDS_RETAIN ended records and rows are kept, dropped in batches", () => {
  const shard = new Shard();
  shard.run(prepare({ txnId: "pending" }));
  const id = (i: number) => `t.${String(i).padStart(6, "0")}`;
  const end = (from: number, to: number) => {
    for (let start = from; start < to; start += 1000) {
      const commands: Command[] = [];
      for (let i = start; i < Math.min(to, start + 1000); i++) {
        commands.push(decide(id(i), "abort"), resolve(id(i), "abort"));
      }
      shard.runMany(commands);
    }
  };
  // Up to TXN_RECORDS_DROP_BATCH past the bound, nothing is dropped yet.
  const full = TXN_RECORDS_RETAIN + TXN_RECORDS_DROP_BATCH;
  end(0, full);
  equal(shard.sm.txnRecord(id(0))?.status, "aborted");
  equal(shard.sm.txnParticipant(id(0))?.state, "aborted");
  // One more drops the oldest down to TXN_RECORDS_RETAIN, in order, on both tables.
  end(full, full + 1);
  const kept = TXN_RECORDS_DROP_BATCH + 1;
  equal(shard.sm.txnRecord(id(kept - 1)), null);
  equal(shard.sm.txnRecord(id(kept))?.status, "aborted");
  equal(shard.sm.txnParticipant(id(kept - 1)), null);
  equal(shard.sm.txnParticipant(id(kept))?.state, "aborted");
  equal(shard.sm.txnRecord(id(full))?.status, "aborted");
  equal(shard.sm.txnRecord("pending")?.status, "pending");
  equal(shard.sm.txnParticipant("pending")?.state, "prepared");
});

/** The schema of version 1, as the previous release created it. */
const SCHEMA_V1 = [
  "CREATE TABLE kv (key BLOB PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL, " +
  "create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL, lease INTEGER NOT NULL, " +
  "crc INTEGER NOT NULL) WITHOUT ROWID",
  "CREATE INDEX kv_by_lease ON kv (lease, key) WHERE lease != 0",
  "CREATE TABLE lease (id INTEGER PRIMARY KEY, ttl_seconds INTEGER NOT NULL, " +
  "key_count INTEGER NOT NULL)",
  "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL, crc INTEGER NOT NULL) " +
  "WITHOUT ROWID",
  "CREATE TABLE sys (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
  "CREATE TABLE history (revision INTEGER NOT NULL, seq INTEGER NOT NULL, " +
  "type INTEGER NOT NULL, key BLOB NOT NULL, value TEXT, version INTEGER, " +
  "create_revision INTEGER, lease INTEGER, prev_value TEXT, prev_version INTEGER, " +
  "prev_create_revision INTEGER, prev_mod_revision INTEGER, prev_lease INTEGER, " +
  "bytes INTEGER NOT NULL, PRIMARY KEY (revision, seq)) WITHOUT ROWID",
];

function writeVersion1(path: string): void {
  const db = new DatabaseSync(path);
  for (const sql of SCHEMA_V1) db.exec(sql);
  const insert = db.prepare("INSERT INTO sys (name, value) VALUES (?, ?)");
  for (const name of ["last_applied", "compacted_revision", "optimistic_txns", "conflicts"]) {
    insert.run(name, name === "last_applied" ? 7 : 0);
  }
  insert.run("schema_version", 1);
  db.close();
}

Deno.test("a database and a snapshot of schema version 1 open with empty txn tables", () => {
  const directory = Deno.makeTempDirSync({ prefix: "aspen-txn-" });
  try {
    const path = `${directory}/state-machine.db`;
    writeVersion1(path);
    const shard = new Shard(path);
    shard.index = 7;
    equal(shard.sm.appliedIndex(), 7);
    equal(shard.sm.intentCount(), 0);
    const result = shard.run(prepare());
    equal(result.type === "txnPrepared" && result.ok, true);
    shard.sm.close();
    const reopened = new Shard(path);
    equal(reopened.sm.intentCount(), 2);
    reopened.sm.close();

    const oldPath = `${directory}/old.db`;
    writeVersion1(oldPath);
    const old = new DatabaseSync(oldPath);
    const bytes = old.serialize();
    old.close();
    const memory = new Shard();
    memory.sm.restore(bytes);
    equal(memory.sm.appliedIndex(), 7);
    const fileBacked = new Shard(`${directory}/restored.db`);
    fileBacked.sm.restore(bytes);
    equal(fileBacked.sm.appliedIndex(), 7);
    fileBacked.index = 7;
    equal(fileBacked.run(prepare()).type, "txnPrepared");
    fileBacked.sm.close();
    memory.sm.close();
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
});

Deno.test("txnParticipantVote() reads a prepare's vote and writes nothing", async (t) => {
  const txnId = "1.1000.1";
  await t.step("none before the prepare, which still applies afterwards (no fence)", () => {
    const shard = new Shard();
    shard.run(put("a", "1"));
    equal(shard.sm.txnParticipantVote(txnId), null);
    equal(shard.sm.txnParticipantVote(txnId), null);
    const late = shard.run(prepare());
    equal(late.type === "txnPrepared" && late.ok, true, JSON.stringify(late));
    deepEqual(shard.sm.txnParticipantVote(txnId), {
      txnId,
      home: 0,
      state: "prepared",
      resolvedRevision: null,
      vote: "commit",
      compareSucceeded: true,
      reservedRevision: 2,
    });
  });
  await t.step("a failed compare votes commit of the failure branch", () => {
    const shard = new Shard();
    shard.run(put("a", "2"));
    shard.run(prepare());
    const vote = shard.sm.txnParticipantVote(txnId);
    equal(vote?.vote, "commit");
    equal(vote?.compareSucceeded, false);
  });
  await t.step("an OCC conflict votes conflict", () => {
    const shard = new Shard();
    shard.run(put("a", "1"));
    shard.run(prepare({ reads: [{ key: "a", modRevision: 0, version: null, revision: null }] }));
    equal(shard.sm.txnParticipantVote(txnId)?.vote, "conflict");
  });
  await t.step("resolved commit keeps its vote; resolved abort and a fence vote aborted", () => {
    const committed = new Shard();
    committed.run(put("a", "1"));
    committed.run(prepare());
    committed.run(resolve(txnId, "commit"));
    const vote = committed.sm.txnParticipantVote(txnId);
    equal(vote?.state, "committed");
    equal(vote?.vote, "commit");
    equal(vote?.resolvedRevision, 3);
    const aborted = new Shard();
    aborted.run(prepare());
    aborted.run(resolve(txnId, "abort"));
    equal(aborted.sm.txnParticipantVote(txnId)?.vote, "aborted");
    const fenced = new Shard();
    fenced.run({ type: "txnFence", txnId });
    deepEqual(fenced.sm.txnParticipantVote(txnId), {
      txnId,
      home: -1,
      state: "aborted",
      resolvedRevision: 1,
      vote: "aborted",
      compareSucceeded: false,
      reservedRevision: null,
    });
  });
});
