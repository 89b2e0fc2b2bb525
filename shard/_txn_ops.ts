/**
 * Runs the operations of a conditional batch's branch (private to shard/): the one path both
 * the single-shard txn and a cross-shard txn's commit-resolve take, so that they give the same
 * results, watch events, history and revisions.
 */

import { assert } from "../raft/mod.ts";
import type { TxnOpResult } from "./apply_result.ts";
import type { TxnOp } from "./command.ts";
import { AspenError } from "./errors.ts";
import { type KeyValue, kvResponseBytes } from "./key_value.ts";
import { RANGE_RESPONSE_BYTES_MAX, TXN_RESPONSE_BYTES_MAX } from "./limits.ts";
import { type EntryContext, type KvStore, putKv } from "./_kv_store.ts";
import { readRange } from "./_range.ts";

/**
 * Runs `ops` in order at `context.revision` and returns one result per op.
 *
 * @throws {AspenError} `request_too_large` when the results exceed TXN_RESPONSE_BYTES_MAX, and
 * whatever a put throws (`lease_not_found`, `limit_exceeded`); the caller's savepoint undoes
 * the ops that ran.
 */
export function runTxnOps(
  store: KvStore,
  context: EntryContext,
  ops: readonly TxnOp[],
): TxnOpResult[] {
  const results: TxnOpResult[] = [];
  let bytes = 0;
  for (const op of ops) {
    const result = executeTxnOp(store, context, op);
    bytes = addResultBytes(bytes, result);
    results.push(result);
  }
  assert(results.length === ops.length, "runTxnOps: one result per op of the branch");
  return results;
}

/**
 * The results {@linkcode runTxnOps} would give for `ops` over the current state, computed from
 * each key's state (`current`) without writing anything, or null when that takes running
 * them: a key named twice (an op sees what an earlier one wrote), a put that attaches a lease
 * (it may fail on the lease, or create a stand-in) or a range. A put's and a delete's results
 * do not depend on the revision, so none is needed.
 *
 * @throws {AspenError} `request_too_large` as {@linkcode runTxnOps} throws it.
 */
export function previewTxnOps(
  current: (key: string) => KeyValue | null,
  ops: readonly TxnOp[],
): TxnOpResult[] | null {
  const keys = new Set<string>();
  for (const op of ops) {
    if (op.type === "range") return null;
    if (op.type === "put" && op.lease !== 0) return null;
    if (keys.has(op.key)) return null;
    keys.add(op.key);
  }
  const results: TxnOpResult[] = [];
  let bytes = 0;
  for (const op of ops) {
    assert(op.type !== "range", "previewTxnOps: no range op is previewed");
    const result = previewTxnOp(current(op.key), op);
    bytes = addResultBytes(bytes, result);
    results.push(result);
  }
  assert(results.length === ops.length, "previewTxnOps: one result per op of the branch");
  return results;
}

/** What {@linkcode executeTxnOp} returns for `op` over `prev`, the state of its key. */
function previewTxnOp(
  prev: KeyValue | null,
  op: Exclude<TxnOp, { type: "range" }>,
): TxnOpResult {
  switch (op.type) {
    case "put": {
      const version = prev === null ? 1 : prev.version + 1;
      assert(Number.isSafeInteger(version), "previewTxnOp: the version stays a safe integer");
      return { type: "put", version, prevKv: op.prevKv ? prev : null };
    }
    case "delete":
      return { type: "delete", deleted: prev === null ? 0 : 1, prevKv: op.prevKv ? prev : null };
    case "get":
      return { type: "get", kv: prev };
  }
}

/**
 * The state `key` would have once a committed branch's `ops` ran over `current` at `revision`
 * (the revision its prepare reserved), without writing anything; undefined when that takes
 * running them: a range op, the key written twice, or a put that attaches a lease (as
 * {@linkcode previewTxnOps} declines them). A branch that does not write the key leaves it.
 */
export function provisionalKv(
  current: KeyValue | null,
  ops: readonly TxnOp[],
  key: string,
  revision: number,
): KeyValue | null | undefined {
  let write: Extract<TxnOp, { type: "put" | "delete" }> | null = null;
  for (const op of ops) {
    if (op.type === "range") return undefined;
    if (op.type === "get" || op.key !== key) continue;
    if (write !== null) return undefined;
    write = op;
  }
  if (write === null) return current;
  if (write.type === "delete") return null;
  if (write.lease !== 0) return undefined;
  return putKv(current, write, revision);
}

/**
 * `bytes` plus the bytes of `result`.
 *
 * @throws {AspenError} `request_too_large` past TXN_RESPONSE_BYTES_MAX.
 */
function addResultBytes(bytes: number, result: TxnOpResult): number {
  const total = bytes + txnOpResultBytes(result);
  if (total > TXN_RESPONSE_BYTES_MAX) {
    throw new AspenError(
      "request_too_large",
      `Cannot run txn: its results exceed ${TXN_RESPONSE_BYTES_MAX} bytes; read less per txn`,
      { limit: TXN_RESPONSE_BYTES_MAX },
    );
  }
  return total;
}

function executeTxnOp(store: KvStore, context: EntryContext, op: TxnOp): TxnOpResult {
  switch (op.type) {
    case "put": {
      const { kv, prev } = store.put(context, op);
      return { type: "put", version: kv.version, prevKv: op.prevKv ? prev : null };
    }
    case "delete": {
      const prev = store.remove(context, op.key);
      return { type: "delete", deleted: prev === null ? 0 : 1, prevKv: op.prevKv ? prev : null };
    }
    case "get":
      return { type: "get", kv: store.get(op.key) };
    case "range":
      return { type: "range", ...readRange(store, op.request, RANGE_RESPONSE_BYTES_MAX) };
  }
}

/** The response bytes of one txn op result, counted like range pages. */
export function txnOpResultBytes(result: TxnOpResult): number {
  const kvs: readonly (KeyValue | null)[] = result.type === "range"
    ? result.kvs
    : result.type === "get"
    ? [result.kv]
    : [result.prevKv];
  let bytes = 0;
  for (const kv of kvs) if (kv !== null) bytes += kvResponseBytes(kv);
  return bytes;
}
