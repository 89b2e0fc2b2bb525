/**
 * Table tests of every error code the state machine produces and every named limit it
 * enforces: for each limit, the largest accepted input works and one more fails with the
 * documented code, both when encoding (the server's side) and, where the check depends on the
 * state, as an `error` result of apply that left no partial write behind. Also: a corrupt or
 * foreign `state-machine.db` is refused at open with `storage_corrupt`.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  applyResultError,
  AspenError,
  type Command,
  DELETE_RANGE_KEYS_MAX,
  encodeCommand,
  KEY_BYTES_MAX,
  LEASE_EXPIRE_IDS_MAX,
  LEASE_KEYS_MAX,
  LEASE_TTL_SECONDS_MAX,
  LEASES_MAX,
  META_NAME_BYTES_MAX,
  META_VALUE_BYTES_MAX,
  MULTI_PUT_KEYS_MAX,
  OPTIMISTIC_READS_MAX,
  OPTIMISTIC_WRITES_MAX,
  RANGE_LIMIT_MAX,
  RANGE_RESPONSE_BYTES_MAX,
  REQUEST_BYTES_MAX,
  StateMachine,
  TXN_OPS_MAX,
  VALUE_BYTES_MAX,
} from "../shard/mod.ts";
import { AssertionError } from "../raft/mod.ts";
import { Harness, put, putOp, rangeRequest, read } from "./kv_harness.ts";

const MIB = 1024 * 1024;

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof AspenError) return error.code;
    throw error;
  }
  return "ok";
}

function resultCode(harness: Harness, command: Command): string {
  const result = harness.one(command);
  return applyResultError(result)?.code ?? "ok";
}

const key = (bytes: number) => "k".repeat(bytes);
const puts = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: "", lease: 0 }));
const ops = (count: number) => Array.from({ length: count }, () => putOp("k", ""));

type LimitCase = [name: string, command: Command, code: string];

function keyAndValueCases(): LimitCase[] {
  return [
    ["key of KEY_BYTES_MAX", put(key(KEY_BYTES_MAX), ""), "ok"],
    ["key past KEY_BYTES_MAX", put(key(KEY_BYTES_MAX + 1), ""), "key_too_large"],
    ["empty key", put("", "v"), "bad_request"],
    ["lone surrogate in a value", put("k", "\udc00"), "bad_request"],
    ["value of VALUE_BYTES_MAX", put("k", "v".repeat(VALUE_BYTES_MAX)), "ok"],
    ["value past VALUE_BYTES_MAX", put("k", "v".repeat(VALUE_BYTES_MAX + 1)), "value_too_large"],
    ["multi-put past REQUEST_BYTES_MAX", {
      type: "multiPut",
      puts: [0, 1, 2].map((i) => ({ key: `k${i}`, value: "v".repeat(VALUE_BYTES_MAX), lease: 0 })),
    }, "request_too_large"],
    ["MULTI_PUT_KEYS_MAX puts", { type: "multiPut", puts: puts(MULTI_PUT_KEYS_MAX) }, "ok"],
    ["one put more", { type: "multiPut", puts: puts(MULTI_PUT_KEYS_MAX + 1) }, "request_too_large"],
  ];
}

function txnCases(): LimitCase[] {
  return [
    ["TXN_OPS_MAX ops", { type: "txn", compare: [], success: ops(TXN_OPS_MAX), failure: [] }, "ok"],
    ["one success op more", {
      type: "txn",
      compare: [],
      success: ops(TXN_OPS_MAX + 1),
      failure: [],
    }, "request_too_large"],
    ["one failure op more", {
      type: "txn",
      compare: [],
      success: [],
      failure: ops(TXN_OPS_MAX + 1),
    }, "request_too_large"],
    ["one compare more", {
      type: "txn",
      compare: Array.from(
        { length: TXN_OPS_MAX + 1 },
        () => ({ key: "k", target: "version", op: "=", value: 0 }) as const,
      ),
      success: [],
      failure: [],
    }, "request_too_large"],
    ["bad compare operator", {
      type: "txn",
      compare: [{ key: "k", target: "version", op: "<=" as "<", value: 0 }],
      success: [],
      failure: [],
    }, "bad_request"],
    ["negative compare number", {
      type: "txn",
      compare: [{ key: "k", target: "modRevision", op: "=", value: -1 }],
      success: [],
      failure: [],
    }, "bad_request"],
    ["range limit 0", {
      type: "txn",
      compare: [],
      success: [{ type: "range", request: { ...rangeRequest({ prefix: "" }), limit: 0 } }],
      failure: [],
    }, "bad_request"],
    ["range limit past RANGE_LIMIT_MAX", {
      type: "txn",
      compare: [],
      success: [{
        type: "range",
        request: { ...rangeRequest({ prefix: "" }), limit: RANGE_LIMIT_MAX + 1 },
      }],
      failure: [],
    }, "bad_request"],
  ];
}

function otherCases(): LimitCase[] {
  return [
    ["optimistic reads past the limit", {
      type: "optimisticTxn",
      reads: Array.from({ length: OPTIMISTIC_READS_MAX + 1 }, () => read("k", { version: 0 })),
      writes: [],
    }, "request_too_large"],
    ["optimistic writes past the limit", {
      type: "optimisticTxn",
      reads: [],
      writes: Array.from({ length: OPTIMISTIC_WRITES_MAX + 1 }, () =>
        ({
          op: "delete",
          key: "k",
        }) as const),
    }, "request_too_large"],
    ["fractional version", {
      type: "optimisticTxn",
      reads: [read("k", { version: 1.5 })],
      writes: [],
    }, "bad_request"],
    ["negative modRevision", {
      type: "optimisticTxn",
      reads: [read("k", { modRevision: -1 })],
      writes: [],
    }, "bad_request"],
    ["fractional revision", {
      type: "optimisticTxn",
      reads: [read("k", { version: 1, revision: 2.5 })],
      writes: [],
    }, "bad_request"],
    ["a read that names neither modRevision nor version", {
      type: "optimisticTxn",
      reads: [read("k", { revision: 3 })],
      writes: [],
    }, "bad_request"],
    ["a read that names all three", {
      type: "optimisticTxn",
      reads: [read("k", { modRevision: 0, version: 0, revision: 0 })],
      writes: [],
    }, "ok"],
    ["lease ttl 0", { type: "leaseGrant", ttlSeconds: 0 }, "bad_request"],
    ["lease ttl at the maximum", { type: "leaseGrant", ttlSeconds: LEASE_TTL_SECONDS_MAX }, "ok"],
    ["lease ttl past the maximum", {
      type: "leaseGrant",
      ttlSeconds: LEASE_TTL_SECONDS_MAX + 1,
    }, "bad_request"],
    ["revoke lease 0", { type: "leaseRevoke", id: 0 }, "bad_request"],
    ["expire past LEASE_EXPIRE_IDS_MAX", {
      type: "leaseExpire",
      ids: Array.from({ length: LEASE_EXPIRE_IDS_MAX + 1 }, (_, i) => i + 1),
    }, "request_too_large"],
    ["meta name past the limit", {
      type: "meta",
      name: "n".repeat(META_NAME_BYTES_MAX + 1),
      value: "",
    }, "key_too_large"],
    ["meta value past the limit", {
      type: "meta",
      name: "n",
      value: "v".repeat(META_VALUE_BYTES_MAX + 1),
    }, "value_too_large"],
    ["empty meta name", { type: "meta", name: "", value: "" }, "bad_request"],
    ["empty range start", { type: "deleteRange", range: { start: "", end: "b" } }, "bad_request"],
    ["unknown command", { type: "drop" } as unknown as Command, "bad_request"],
  ];
}

Deno.test("encodeCommand() enforces every command limit", async (t) => {
  const cases = [...keyAndValueCases(), ...txnCases(), ...otherCases()];
  for (const [name, command, code] of cases) {
    await t.step(name, () => assert.equal(codeOf(() => encodeCommand(command)), code));
  }
  await t.step("request_too_large is the encoded size, bounded by REQUEST_BYTES_MAX", () => {
    const bytes = encodeCommand({
      type: "multiPut",
      puts: [{ key: "a", value: "v".repeat(VALUE_BYTES_MAX), lease: 0 }],
    });
    assert.ok(bytes.length <= REQUEST_BYTES_MAX);
  });
});

Deno.test("apply reports state-dependent errors and leaves no partial write", async (t) => {
  const harness = new Harness();
  await t.step("lease_not_found on put, revoke, and inside a txn", () => {
    assert.equal(resultCode(harness, put("k", "v", 77)), "lease_not_found");
    assert.equal(resultCode(harness, { type: "leaseRevoke", id: 77 }), "lease_not_found");
    const txn: Command = {
      type: "txn",
      compare: [],
      success: [putOp("first", "1"), putOp("second", "2", 77)],
      failure: [],
    };
    const result = harness.one(txn);
    assert.deepEqual(result.type === "error" && result.details, {
      action: "attach",
      lease: 77,
      key: "second",
    });
    assert.equal(harness.sm.get("first"), null, "the first put of the failed txn was undone");
    assert.equal(harness.sm.stats().historyEvents, 0, "no watch event either");
  });
  await t.step("conflict carries key, expected and actual", () => {
    const created = harness.one(put("c", "1")).revision;
    const error = applyResultError(harness.one({
      type: "optimisticTxn",
      reads: [read("c", { version: 0 })],
      writes: [],
    }));
    assert.equal(error?.code, "conflict");
    assert.deepEqual(error?.details, {
      key: "c",
      field: "version",
      expected: 0,
      actual: 1,
      expectedModRevision: null,
      actualModRevision: created,
      readRevision: null,
    });
    assert.match(error?.message ?? "", /key "c" is at version 1 but the transaction read/);
  });
  await t.step("bad_request for undecodable data", () => {
    const [result] = harness.sm.apply([{ index: ++harness.index, data: Uint8Array.of(9) }]);
    assert.equal(result?.type === "error" && result.code, "bad_request");
    assert.equal(harness.sm.appliedIndex(), harness.index, "a bad entry still advances");
  });
  await t.step("request_too_large when a txn reads past TXN_RESPONSE_BYTES_MAX", () => {
    const big = "v".repeat(VALUE_BYTES_MAX);
    harness.apply(put("b1", big), put("b2", big), put("b3", big), put("b4", big));
    const reads = ["b1", "b2", "b3", "b4"].map((key) => ({ type: "get", key }) as const);
    const fits = harness.one({ type: "txn", compare: [], success: reads.slice(0, 3), failure: [] });
    assert.equal(fits.type, "txn");
    const result = harness.one({
      type: "txn",
      compare: [],
      success: [putOp("marker", "x"), ...reads],
      failure: [],
    });
    assert.equal(applyResultError(result)?.code, "request_too_large");
    assert.equal(harness.sm.get("marker"), null, "the txn's put was undone");
  });
  await t.step("RANGE_RESPONSE_BYTES_MAX pages large values one by one", () => {
    const page = harness.sm.range({ range: { prefix: "b" } });
    assert.equal(page.kvs.length, 1);
    assert.equal(page.more, true);
    assert.equal(page.next, "b1");
    assert.ok(RANGE_RESPONSE_BYTES_MAX < 2 * MIB + 200);
  });
  harness.close();
});

Deno.test("apply enforces DELETE_RANGE_KEYS_MAX", () => {
  const harness = new Harness();
  const keys = Array.from({ length: DELETE_RANGE_KEYS_MAX + 1 }, (_, i) => `d/${i}`);
  for (let i = 0; i < keys.length; i += MULTI_PUT_KEYS_MAX) {
    const puts = keys.slice(i, i + MULTI_PUT_KEYS_MAX).map((key) => ({ key, value: "", lease: 0 }));
    harness.one({ type: "multiPut", puts });
  }
  assert.equal(
    resultCode(harness, { type: "deleteRange", range: { prefix: "d/" } }),
    "limit_exceeded",
  );
  assert.equal(harness.sm.range({ range: { prefix: "d/" }, countOnly: true }).count, keys.length);
  harness.one({ type: "delete", key: "d/0", prevKv: false });
  const result = harness.one({ type: "deleteRange", range: { prefix: "d/" } });
  assert.deepEqual(result, {
    type: "deleteRange",
    revision: harness.index,
    deleted: DELETE_RANGE_KEYS_MAX,
  });
  harness.close();
});

Deno.test("apply enforces LEASE_KEYS_MAX and LEASES_MAX", () => {
  const harness = new Harness();
  harness.one({ type: "leaseGrant", ttlSeconds: 5 });
  const lease = harness.index;
  const keys = Array.from({ length: LEASE_KEYS_MAX }, (_, i) => `l/${i}`);
  for (let i = 0; i < keys.length; i += MULTI_PUT_KEYS_MAX) {
    const puts = keys.slice(i, i + MULTI_PUT_KEYS_MAX).map((key) => ({ key, value: "", lease }));
    assert.equal(harness.one({ type: "multiPut", puts }).type, "multiPut");
  }
  assert.equal(resultCode(harness, put("one-more", "", lease)), "limit_exceeded");
  assert.equal(resultCode(harness, put("l/0", "again", lease)), "ok", "re-putting a key is fine");
  const grants: Command[] = Array.from({ length: LEASES_MAX - 1 }, () => ({
    type: "leaseGrant",
    ttlSeconds: 5,
  }));
  for (const result of harness.apply(...grants)) assert.equal(result.type, "leaseGrant");
  assert.equal(resultCode(harness, { type: "leaseGrant", ttlSeconds: 5 }), "limit_exceeded");
  assert.equal(harness.sm.leases().length, LEASES_MAX);
  harness.close();
});

Deno.test("reads reject bad arguments with typed errors", async (t) => {
  const harness = new Harness();
  const sm = harness.sm;
  const cases: [string, () => unknown, string][] = [
    ["get of an empty key", () => sm.get(""), "bad_request"],
    ["get of a key past the limit", () => sm.get("k".repeat(KEY_BYTES_MAX + 1)), "key_too_large"],
    ["range limit 0", () => sm.range({ range: { prefix: "" }, limit: 0 }), "bad_request"],
    [
      "range bytesMax past the limit",
      () => sm.range({ range: { prefix: "" }, bytesMax: RANGE_RESPONSE_BYTES_MAX + 1 }),
      "bad_request",
    ],
    [
      "range without prefix or bounds",
      () => sm.range({ range: {} as { prefix: string } }),
      "bad_request",
    ],
    ["lease id 0", () => sm.lease(0), "bad_request"],
    ["watch an empty key", () => sm.watch({ key: "" }), "bad_request"],
    ["watch from revision 0", () => sm.watch({ prefix: "" }, { fromRevision: 0 }), "bad_request"],
  ];
  for (const [name, action, code] of cases) {
    await t.step(name, () => assert.equal(codeOf(action), code));
  }
  await t.step("a batch past APPLY_BATCH_ENTRIES_MAX is a bug", () => {
    const entries = Array.from(
      { length: 10_001 },
      (_, i) => ({ index: i + 1, data: new Uint8Array() }),
    );
    assert.throws(() => sm.apply(entries), AssertionError);
    assert.equal(sm.appliedIndex(), 0);
  });
  await t.step("a gap in the entries is a bug, and the batch is rolled back", () => {
    const entries = [1, 2, 4].map((index) => ({ index, data: new Uint8Array() }));
    assert.throws(() => sm.apply(entries), AssertionError);
    assert.equal(sm.appliedIndex(), 0);
  });
  harness.close();
});

Deno.test("StateMachine.open() refuses a corrupt or foreign file as storage_corrupt", async (t) => {
  const directory = Deno.makeTempDirSync();
  const path = `${directory}/state-machine.db`;
  const open = () => StateMachine.open({ path, synchronous: "normal" }).close();
  const harness = new Harness({ path });
  for (let i = 0; i < 20; i++) {
    harness.apply(...Array.from({ length: 100 }, (_, j) => put(`key/${i}/${j}`, "v".repeat(200))));
  }
  harness.close();
  const healthy = Deno.readFileSync(path);
  const cases: [string, Uint8Array][] = [
    ["text instead of a database", new TextEncoder().encode("not a database ".repeat(500))],
    ["truncated in the middle", healthy.subarray(0, Math.floor(healthy.length / 2))],
    ["a zeroed b-tree page", zeroPage(healthy, 5)],
    ["a damaged header", zeroRange(healthy, 16, 8)],
  ];
  try {
    for (const [name, bytes] of cases) {
      await t.step(name, () => {
        Deno.writeFileSync(path, bytes);
        assert.equal(codeOf(open), "storage_corrupt");
      });
    }
    await t.step("another SQLite database", () => {
      Deno.removeSync(path);
      const foreign = new DatabaseSync(path);
      foreign.exec("CREATE TABLE t (x)");
      foreign.close();
      assert.equal(codeOf(open), "storage_corrupt");
    });
    await t.step("the healthy file opens", () => {
      Deno.writeFileSync(path, healthy);
      assert.equal(codeOf(open), "ok");
    });
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
});

function zeroPage(bytes: Uint8Array, page: number): Uint8Array {
  return zeroRange(bytes, (page - 1) * 4096, 4096);
}

function zeroRange(bytes: Uint8Array, offset: number, length: number): Uint8Array {
  const copy = bytes.slice();
  copy.fill(0, offset, offset + length);
  return copy;
}

Deno.test("a damaged row is storage_corrupt at open and in a snapshot", async (t) => {
  const directory = Deno.makeTempDirSync();
  const path = `${directory}/state-machine.db`;
  try {
    const harness = new Harness({ path });
    harness.apply(put("a", "plain"), put("b", "MARKER-0123456789"), {
      type: "meta",
      name: "shardMap",
      value: "{}",
    });
    const snapshot = harness.sm.snapshot();
    harness.close();
    const healthy = Deno.readFileSync(path);
    await t.step("a flipped byte inside a value", () => {
      // "0" becomes "9" in every copy (the kv row and the watch history): still valid UTF-8,
      // still a structurally healthy page.
      Deno.writeFileSync(path, flipMarker(healthy));
      assert.equal(
        codeOf(() => StateMachine.open({ path, synchronous: "normal" })),
        "storage_corrupt",
      );
    });
    await t.step("a wrong checksum column", () => {
      Deno.writeFileSync(path, healthy);
      const db = new DatabaseSync(path);
      db.exec("UPDATE meta SET crc = crc + 1");
      db.close();
      assert.equal(
        codeOf(() => StateMachine.open({ path, synchronous: "normal" })),
        "storage_corrupt",
      );
    });
    await t.step("a snapshot with a flipped byte is refused", () => {
      const target = new Harness();
      assert.equal(codeOf(() => target.sm.restore(flipMarker(snapshot))), "bad_request");
      target.close();
    });
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
});

function flipMarker(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  const needle = new TextEncoder().encode("MARKER-0123456789");
  let found = 0;
  for (let i = 0; i + needle.length <= copy.length; i++) {
    let j = 0;
    while (j < needle.length && copy[i + j] === needle[j]) j++;
    if (j < needle.length) continue;
    copy[i + 7] = 0x39;
    found++;
  }
  assert.ok(found > 0, "the value is stored inline");
  return copy;
}
