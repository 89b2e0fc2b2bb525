/**
 * Every write path keeps version, createRevision and modRevision right (issue 4's list: put,
 * multi-put, delete, delete-range, CAS, conditional batch, optimistic transaction, lease
 * revoke, lease expiry). For each path the test creates a key, changes it, deletes it and
 * creates it again through that path, checking after each step that version is 1 on create
 * and +1 per change, that createRevision and modRevision are the log indexes of the entries
 * that created and last changed it, and that a deleted key is gone (a re-created key starts
 * over at version 1).
 */

import assert from "node:assert/strict";
import type { Command, KeyValue } from "../shard/mod.ts";
import { del, Harness, put, putOp, read } from "./kv_harness.ts";

function meta(kv: KeyValue | null): [number, number, number] | null {
  return kv === null ? null : [kv.version, kv.createRevision, kv.modRevision];
}

/** Applies create, change, change, delete, re-create through `path` and checks each step. */
function checkPath(
  harness: Harness,
  write: (value: string) => Command,
  remove: () => Command | Command[],
): void {
  const sm = harness.sm;
  harness.apply(write("1"));
  const created = harness.index;
  assert.deepEqual(meta(sm.get("k")), [1, created, created], "created");
  harness.apply({ type: "noop" });
  harness.apply(write("2"));
  assert.deepEqual(meta(sm.get("k")), [2, created, harness.index], "changed once");
  harness.apply(write("2"));
  assert.deepEqual(meta(sm.get("k")), [3, created, harness.index], "same value is a change");
  const removal = remove();
  harness.apply(...(Array.isArray(removal) ? removal : [removal]));
  assert.equal(sm.get("k"), null, "deleted");
  harness.apply(write("3"));
  assert.deepEqual(meta(sm.get("k")), [1, harness.index, harness.index], "created again");
}

Deno.test("put keeps version and revisions", () => {
  const harness = new Harness();
  checkPath(harness, (value) => put("k", value), () => del("k"));
  harness.close();
});

Deno.test("multi-put keeps version and revisions", () => {
  const harness = new Harness();
  const write = (value: string): Command => ({
    type: "multiPut",
    puts: [{ key: "other", value, lease: 0 }, { key: "k", value, lease: 0 }],
  });
  checkPath(harness, write, () => del("k"));
  assert.deepEqual(meta(harness.sm.get("other")), [4, 1, harness.index]);
  harness.close();
});

Deno.test("delete-range deletes and the key starts over", () => {
  const harness = new Harness();
  checkPath(harness, (value) => put("k", value), () => ({
    type: "deleteRange",
    range: { prefix: "k" },
  }));
  harness.close();
  const second = new Harness();
  checkPath(second, (value) => put("k", value), () => ({
    type: "deleteRange",
    range: { start: "a", end: "l" },
  }));
  second.close();
});

Deno.test("compare-and-swap keeps version and revisions", () => {
  const harness = new Harness();
  // Each CAS compares the current version, so it succeeds and writes.
  const cas = (value: string): Command => ({
    type: "txn",
    compare: [{ key: "k", target: "version", op: "=", value: harness.sm.get("k")?.version ?? 0 }],
    success: [putOp("k", value)],
    failure: [],
  });
  checkPath(harness, cas, () => ({
    type: "txn",
    compare: [{ key: "k", target: "version", op: ">", value: 0 }],
    success: [{ type: "delete", key: "k", prevKv: false }],
    failure: [],
  }));
  const before = harness.sm.get("k");
  const failed = harness.one({
    type: "txn",
    compare: [{ key: "k", target: "version", op: "=", value: 99 }],
    success: [putOp("k", "no")],
    failure: [],
  });
  assert.equal(failed.type === "txn" && failed.succeeded, false);
  assert.deepEqual(harness.sm.get("k"), before, "a failed CAS changes nothing");
  harness.close();
});

Deno.test("conditional batch keeps version and revisions, twice in one entry", () => {
  const harness = new Harness();
  const batch = (value: string): Command => ({
    type: "txn",
    compare: [],
    success: [putOp("k", value), { type: "get", key: "k" }, putOp("k2", value)],
    failure: [],
  });
  checkPath(harness, batch, () => ({
    type: "txn",
    compare: [{ key: "k", target: "value", op: "=", value: "nope" }],
    success: [],
    failure: [{ type: "delete", key: "k", prevKv: true }],
  }));
  const twice = harness.one({
    type: "txn",
    compare: [],
    success: [putOp("k", "a"), putOp("k", "b")],
    failure: [],
  });
  assert.equal(twice.type, "txn");
  assert.deepEqual(meta(harness.sm.get("k")), [3, harness.index - 1, harness.index]);
  harness.close();
});

Deno.test("optimistic transaction keeps version and revisions", () => {
  const harness = new Harness();
  const optimistic = (value: string): Command => ({
    type: "optimisticTxn",
    reads: [read("k", { modRevision: harness.sm.get("k")?.modRevision ?? 0 })],
    writes: [{ op: "set", key: "k", value }],
  });
  checkPath(harness, optimistic, () => ({
    type: "optimisticTxn",
    reads: [],
    writes: [{ op: "delete", key: "k" }],
  }));
  const before = harness.sm.get("k");
  const conflict = harness.one({
    type: "optimisticTxn",
    reads: [read("k", { version: 7 })],
    writes: [{ op: "set", key: "k", value: "no" }],
  });
  assert.deepEqual(conflict, {
    type: "conflict",
    revision: harness.index,
    key: "k",
    field: "version",
    expected: 7,
    actual: 1,
    expectedModRevision: null,
    actualModRevision: before?.modRevision,
    readRevision: null,
  });
  assert.deepEqual(harness.sm.get("k"), before, "a conflict writes nothing");
  harness.close();
});

Deno.test("lease revoke deletes attached keys; a re-put starts over", () => {
  const harness = new Harness();
  let lease = 0;
  const write = (value: string): Command => {
    if (lease === 0 || harness.sm.lease(lease) === null) {
      const granted = harness.one({ type: "leaseGrant", ttlSeconds: 10 });
      assert.equal(granted.type, "leaseGrant");
      lease = harness.index;
    }
    return put("k", value, lease);
  };
  checkPath(harness, write, () => ({ type: "leaseRevoke", id: lease }));
  assert.deepEqual(harness.sm.lease(lease)?.keys, ["k"]);
  harness.close();
});

Deno.test("lease expiry deletes attached keys; a re-put starts over", () => {
  const harness = new Harness();
  let lease = 0;
  const write = (value: string): Command => {
    if (lease === 0 || harness.sm.lease(lease) === null) {
      harness.one({ type: "leaseGrant", ttlSeconds: 10 });
      lease = harness.index;
    }
    return put("k", value, lease);
  };
  checkPath(harness, write, () => ({ type: "leaseExpire", ids: [lease, 999] }));
  harness.close();
});
