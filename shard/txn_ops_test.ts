/**
 * previewTxnOps (the results of a branch computed from its keys' states, without running it)
 * against the obvious slow way, runTxnOps inside a savepoint that is undone, on many seeded
 * random branches over a random state: where the preview answers, it must give the very same
 * results (same JSON, since a commit-resolve asserts that equality), and where it cannot (a key
 * named twice, a put attaching a lease, a range) it must say so. The result-size limit must be
 * met the same way by both.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { SeededPrng } from "../raft/mod.ts";
import type { TxnOp } from "./command.ts";
import { AspenError } from "./errors.ts";
import { TXN_RESPONSE_BYTES_MAX, VALUE_BYTES_MAX } from "./limits.ts";
import { openDatabase } from "./_schema.ts";
import { type EntryContext, KvStore } from "./_kv_store.ts";
import { previewTxnOps, runTxnOps } from "./_txn_ops.ts";

const KEYS = ["a", "b", "c", "d", "e", "f"];
const CASES = 400;

function context(revision: number): EntryContext {
  return {
    revision,
    seq: 0,
    eventBytes: 0,
    historyLimits: { eventsMax: 10_000, bytesMax: 64 * 1024 * 1024 },
    isHistoryDropped: false,
  };
}

function randomOp(prng: SeededPrng, key: string): TxnOp {
  const prevKv = prng.nextInt(2) === 1;
  switch (prng.nextInt(3)) {
    case 0:
      return { type: "put", key, value: `v${prng.nextInt(1000)}`, lease: 0, prevKv };
    case 1:
      return { type: "delete", key, prevKv };
    default:
      return { type: "get", key };
  }
}

/** A branch of distinct keys, in a random order. */
function randomBranch(prng: SeededPrng): TxnOp[] {
  const keys = KEYS.filter(() => prng.nextInt(2) === 1);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = prng.nextInt(i + 1);
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  return keys.map((key) => randomOp(prng, key));
}

function withStore(body: (store: KvStore) => void): void {
  const db = openDatabase({ path: ":memory:", synchronous: "normal", isVerified: true });
  try {
    db.exec("BEGIN");
    body(new KvStore(db));
    db.exec("ROLLBACK");
  } finally {
    db.close();
  }
}

Deno.test("previewTxnOps() gives runTxnOps()'s results on random branches", () => {
  withStore((store) => {
    const prng = new SeededPrng(13);
    let revision = 1;
    let previewed = 0;
    for (let i = 0; i < CASES; i++) {
      // Change the state between cases: some keys absent, some at higher versions.
      const change = context(revision);
      for (const op of randomBranch(prng)) {
        if (op.type === "put") store.put(change, op);
        if (op.type === "delete") store.remove(change, op.key);
      }
      revision++;
      const ops = randomBranch(prng);
      const expected = store.undone(() => runTxnOps(store, context(revision), ops));
      const preview = previewTxnOps((key) => store.get(key), ops);
      deepEqual(preview, expected);
      equal(JSON.stringify(preview), JSON.stringify(expected));
      previewed++;
    }
    equal(previewed, CASES);
  });
});

Deno.test("previewTxnOps() declines what only running the ops can tell", async (t) => {
  const cases: { name: string; ops: TxnOp[] }[] = [
    {
      name: "a key written, then read",
      ops: [
        { type: "put", key: "a", value: "1", lease: 0, prevKv: false },
        { type: "get", key: "a" },
      ],
    },
    {
      name: "a key written twice",
      ops: [
        { type: "put", key: "a", value: "1", lease: 0, prevKv: false },
        { type: "put", key: "a", value: "2", lease: 0, prevKv: true },
      ],
    },
    {
      name: "a put attaching a lease",
      ops: [{ type: "put", key: "a", value: "1", lease: 7, prevKv: false }],
    },
    {
      name: "a range",
      ops: [{
        type: "range",
        request: {
          range: { prefix: "" },
          limit: 10,
          after: null,
          keysOnly: false,
          countOnly: false,
          reverse: false,
        },
      }],
    },
  ];
  for (const { name, ops } of cases) {
    await t.step(name, () => equal(previewTxnOps(() => null, ops), null));
  }
});

Deno.test("previewTxnOps() refuses results past TXN_RESPONSE_BYTES_MAX as runTxnOps() does", () => {
  withStore((store) => {
    const count = Math.ceil(TXN_RESPONSE_BYTES_MAX / VALUE_BYTES_MAX) + 1;
    const keys = Array.from({ length: count }, (_, i) => `big/${i}`);
    const value = "x".repeat(VALUE_BYTES_MAX - 16);
    const fill = context(1);
    for (const key of keys) store.put(fill, { key, value, lease: 0 });
    const ops: TxnOp[] = keys.map((key) => ({ type: "get", key }));
    const isTooLarge = (error: unknown) =>
      error instanceof AspenError && error.code === "request_too_large";
    throws(() => store.undone(() => runTxnOps(store, context(2), ops)), isTooLarge);
    throws(() => previewTxnOps((key) => store.get(key), ops), isTooLarge);
    // One op fewer fits both.
    const fewer = ops.slice(0, count - 2);
    deepEqual(
      previewTxnOps((key) => store.get(key), fewer),
      store.undone(() => runTxnOps(store, context(2), fewer)),
    );
  });
});
