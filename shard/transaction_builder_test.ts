/**
 * Tests of TransactionBuilder: once against a small in-memory committer (a Map with versions
 * and revisions, validated by the real validateReadSet) to pin down the builder's own behaviour
 * (recorded modRevisions and versions, read-your-writes, buffered writes, limits, retries), and
 * once against the real StateMachine, where two interleaved transactions race and the loser
 * gets a conflict naming the key, and where a key deleted and re-created behind a transaction's
 * back (back at the version it read) still conflicts.
 */

import assert from "node:assert/strict";
import { AspenError } from "./errors.ts";
import type { KeyValue } from "./key_value.ts";
import type { ReadRecord, WriteOp } from "./command.ts";
import { validateReadSet } from "./occ.ts";
import { encodeCommand } from "./command_codec.ts";
import { StateMachine } from "./state_machine.ts";
import { OPTIMISTIC_WRITES_MAX } from "./limits.ts";
import {
  type CommitOutcome,
  runTransaction,
  TransactionBuilder,
  type TransactionStore,
} from "./transaction_builder.ts";

/** A committer over a Map; every write (a commit's, or one made behind it) is a revision. */
class MemoryStore implements TransactionStore {
  readonly kvs = new Map<string, KeyValue>();
  revision = 0;
  commits: { reads: readonly ReadRecord[]; writes: readonly WriteOp[] }[] = [];

  get(key: string): Promise<{ kv: KeyValue | null; version: number }> {
    const kv = this.kvs.get(key) ?? null;
    return Promise.resolve({ kv, version: kv?.version ?? 0 });
  }

  commit(reads: readonly ReadRecord[], writes: readonly WriteOp[]): Promise<CommitOutcome> {
    this.commits.push({ reads, writes });
    const revision = ++this.revision;
    const conflict = validateReadSet(reads, {
      versionOf: (key) => {
        const kv = this.kvs.get(key);
        return { version: kv?.version ?? 0, modRevision: kv?.modRevision ?? 0 };
      },
    });
    if (conflict !== null) return Promise.resolve({ committed: false, conflict });
    for (const write of writes) this.write(write, revision);
    return Promise.resolve({ committed: true, revision });
  }

  write(write: WriteOp, revision = ++this.revision): void {
    if (write.op === "delete") {
      this.kvs.delete(write.key);
      return;
    }
    const prev = this.kvs.get(write.key);
    this.kvs.set(write.key, {
      key: write.key,
      value: write.value,
      version: (prev?.version ?? 0) + 1,
      createRevision: prev?.createRevision ?? revision,
      modRevision: revision,
      lease: 0,
    });
  }
}

/** A committer over a real state machine: each commit is one optimisticTxn entry. */
class StateMachineStore implements TransactionStore {
  index = 0;
  constructor(readonly sm: StateMachine) {}

  get(key: string): Promise<{ kv: KeyValue | null; version: number }> {
    const kv = this.sm.get(key);
    return Promise.resolve({ kv, version: kv?.version ?? 0 });
  }

  commit(reads: readonly ReadRecord[], writes: readonly WriteOp[]): Promise<CommitOutcome> {
    const data = encodeCommand({ type: "optimisticTxn", reads, writes });
    const [result] = this.sm.apply([{ index: ++this.index, data }]);
    if (result?.type === "optimisticTxn") {
      return Promise.resolve({ committed: true, revision: result.revision });
    }
    assert.ok(result?.type === "conflict", `unexpected result ${JSON.stringify(result)}`);
    const { type: _type, revision: _revision, ...conflict } = result;
    return Promise.resolve({ committed: false, conflict });
  }
}

/** A read record as the builder sends it: the modRevision and the version it saw. */
function seen(key: string, modRevision: number, version: number): ReadRecord {
  return { key, modRevision, version, revision: null };
}

Deno.test("TransactionBuilder records what each read saw, 0 when absent", async () => {
  const store = new MemoryStore();
  store.write({ op: "set", key: "a", value: "1" });
  store.write({ op: "set", key: "a", value: "2" });
  const txn = new TransactionBuilder(store);
  assert.equal(await txn.get("a"), "2");
  assert.equal(await txn.get("missing"), null);
  assert.deepEqual(txn.reads, [seen("a", 2, 2), seen("missing", 0, 0)]);
  txn.set("b", "x");
  txn.delete("c");
  assert.deepEqual(await txn.commit(), { committed: true, revision: 3 });
  assert.deepEqual(store.commits[0], {
    reads: [seen("a", 2, 2), seen("missing", 0, 0)],
    writes: [{ op: "set", key: "b", value: "x" }, { op: "delete", key: "c" }],
  });
});

Deno.test("TransactionBuilder reads its own writes and repeats its reads", async () => {
  const store = new MemoryStore();
  store.write({ op: "set", key: "a", value: "1" });
  const txn = new TransactionBuilder(store);
  assert.equal(await txn.get("a"), "1");
  store.write({ op: "set", key: "a", value: "changed behind our back" });
  assert.equal(await txn.get("a"), "1", "a second read returns the first answer");
  txn.set("b", "mine");
  assert.equal(await txn.get("b"), "mine");
  txn.delete("b");
  assert.equal(await txn.get("b"), null);
  assert.deepEqual(txn.reads, [seen("a", 1, 1)], "own writes are not reads");
  assert.deepEqual(txn.writes, [{ op: "delete", key: "b" }], "the last write per key wins");
  const outcome = await txn.commit();
  assert.deepEqual(outcome, {
    committed: false,
    conflict: {
      key: "a",
      field: "modRevision",
      expected: 1,
      actual: 2,
      expectedModRevision: 1,
      actualModRevision: 2,
      readRevision: null,
    },
  });
});

Deno.test("TransactionBuilder enforces its limits and single use", async () => {
  const txn = new TransactionBuilder(new MemoryStore());
  for (let i = 0; i < OPTIMISTIC_WRITES_MAX; i++) txn.set(`k${i}`, "");
  txn.set("k0", "overwrite is fine");
  assert.throws(() => txn.set("one-more", ""), (error) => {
    return error instanceof AspenError && error.code === "request_too_large";
  });
  assert.throws(() => txn.set("", "v"), AspenError);
  await txn.commit();
  await assert.rejects(() => txn.commit(), /committed once/);
});

Deno.test("runTransaction() retries a conflicting body until it commits", async () => {
  const store = new MemoryStore();
  let attempts = 0;
  const { value, revision } = await runTransaction(store, 5, async (txn) => {
    attempts++;
    const count = Number(await txn.get("counter") ?? "0");
    // Another client bumps the counter during the first two attempts.
    if (attempts <= 2) store.write({ op: "set", key: "counter", value: String(count + 10) });
    txn.set("counter", String(count + 1));
    return count;
  });
  assert.equal(attempts, 3);
  assert.equal(value, 20);
  assert.equal(revision, 5, "two writes behind its back and two conflicts came first");
  assert.equal(store.kvs.get("counter")?.value, "21");
  await assert.rejects(
    () =>
      runTransaction(store, 2, async (txn) => {
        await txn.get("counter");
        store.write({ op: "set", key: "counter", value: "x" });
      }),
    (error) => error instanceof AspenError && error.code === "conflict",
  );
});

Deno.test("TransactionBuilder on the StateMachine: the later of two racers conflicts", async () => {
  const sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  const store = new StateMachineStore(sm);
  const setup = new TransactionBuilder(store);
  setup.set("balance/alice", "100");
  setup.set("balance/bob", "0");
  assert.equal((await setup.commit()).committed, true);
  const first = new TransactionBuilder(store);
  const second = new TransactionBuilder(store);
  for (const txn of [first, second]) {
    const alice = Number(await txn.get("balance/alice"));
    const bob = Number(await txn.get("balance/bob"));
    txn.set("balance/alice", String(alice - 30));
    txn.set("balance/bob", String(bob + 30));
  }
  assert.deepEqual(await first.commit(), { committed: true, revision: 2 });
  assert.deepEqual(await second.commit(), {
    committed: false,
    conflict: {
      key: "balance/alice",
      field: "modRevision",
      expected: 1,
      actual: 2,
      expectedModRevision: 1,
      actualModRevision: 2,
      readRevision: null,
    },
  });
  assert.equal(sm.get("balance/alice")?.value, "70");
  assert.equal(sm.get("balance/bob")?.value, "30");
  assert.deepEqual(sm.stats().optimisticTxns, 3);
  assert.deepEqual(sm.stats().conflicts, 1);
  sm.close();
});

Deno.test("TransactionBuilder on the StateMachine: a delete and re-create conflicts", async () => {
  const sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  const store = new StateMachineStore(sm);
  const setup = new TransactionBuilder(store);
  setup.set("k", "old");
  assert.equal((await setup.commit()).committed, true);
  const txn = new TransactionBuilder(store);
  assert.equal(await txn.get("k"), "old");
  for (
    const write of [{ op: "delete", key: "k" }, { op: "set", key: "k", value: "new" }] as const
  ) {
    assert.equal((await store.commit([], [write])).committed, true);
  }
  assert.equal(sm.get("k")?.version, 1, "the key is back at the version the transaction read");
  txn.set("k", "old, edited");
  const outcome = await txn.commit();
  assert.equal(outcome.committed, false);
  if (!outcome.committed) {
    assert.equal(outcome.conflict.key, "k");
    assert.equal(outcome.conflict.field, "modRevision");
    assert.deepEqual([outcome.conflict.expectedModRevision, outcome.conflict.actualModRevision], [
      1,
      3,
    ]);
  }
  assert.equal(sm.get("k")?.value, "new");
  sm.close();
});
