/**
 * Executes one decoded command against the store (private to shard/).
 *
 * Executors are deterministic: they read only the command, the entry's revision and the
 * state. Expected failures are thrown as {@linkcode AspenError}; the apply loop turns them into
 * `error` results and rolls back whatever the entry wrote (commands with several writes run
 * inside a savepoint).
 */

import { assert } from "../raft/mod.ts";
import type { ApplyResult } from "./apply_result.ts";
import type { Command } from "./command.ts";
import { evaluateCompare } from "./compare.ts";
import { AspenError } from "./errors.ts";
import { leaseError } from "./lease_error.ts";
import { keyRangeBounds } from "./key_value.ts";
import { DELETE_RANGE_KEYS_MAX, LEASES_MAX } from "./limits.ts";
import { validateReadSet } from "./occ.ts";
import type { EntryContext, KvStore } from "./_kv_store.ts";
import { executeTxnPhase, lockedBy } from "./_txn_apply.ts";
import { runTxnOps } from "./_txn_ops.ts";
import type { TxnStore } from "./_txn_store.ts";
import { executeMove, isLeaseMoving, ownershipRefusal } from "./_move_apply.ts";
import type { Ownership } from "./ownership.ts";

/** Per-shard counters of optimistic transactions, part of the replicated state. */
export interface OccCounters {
  optimisticTxns: number;
  conflicts: number;
}

/** Whether a command may fail after it has written, and so needs a savepoint. */
export function needsSavepoint(command: Command): boolean {
  switch (command.type) {
    case "txn":
    case "multiPut":
    case "txnPrepare":
    case "txnDecide":
    case "txnResolve":
    case "txnFence":
    case "import":
    case "dropMoved":
      return true;
    default:
      return false;
  }
}

/**
 * Applies `command` at `context.revision`. A write that meets another transaction's intent
 * changes nothing and returns `locked`; while no intent exists that check costs nothing.
 *
 * A client command that touches a key the shard does not own (see shard/ownership.ts) is
 * refused with `wrong_shard` before anything else.
 *
 * @throws {AspenError} for an expected failure (`lease_not_found`, `limit_exceeded`,
 * `request_too_large`, `wrong_shard`).
 */
export function execute(
  store: KvStore,
  txns: TxnStore,
  context: EntryContext,
  command: Command,
  state: { readonly counters: OccCounters; readonly ownership: Ownership | null },
): ApplyResult {
  const revision = context.revision;
  const counters = state.counters;
  const refusal = ownershipRefusal(store, state.ownership, command);
  if (refusal !== null) throw refusal;
  if (txns.intentCount > 0) {
    const locked = lockedBy(store, txns, command);
    if (locked !== null) return { type: "locked", revision, ...locked };
  }
  switch (command.type) {
    case "put": {
      const { kv, prev } = store.put(context, command);
      return { type: "put", revision, version: kv.version, prevKv: command.prevKv ? prev : null };
    }
    case "delete": {
      const prev = store.remove(context, command.key);
      const prevKv = command.prevKv ? prev : null;
      return { type: "delete", revision, deleted: prev === null ? 0 : 1, prevKv };
    }
    case "deleteRange":
      return { type: "deleteRange", revision, deleted: deleteRange(store, context, command) };
    case "multiPut": {
      const versions = command.puts.map((put) => store.put(context, put).kv.version);
      return { type: "multiPut", revision, versions };
    }
    case "txn":
      return executeTxn(store, context, command);
    case "optimisticTxn":
      return executeOptimistic(store, context, command, counters);
    case "leaseGrant":
      return grantLease(store, context, command.ttlSeconds);
    case "leaseRevoke":
      return revokeLease(store, context, command.id);
    case "leaseExpire": {
      // Mid-move, a lease with keys that moved waits until the clean-up made the new shards
      // its holders (the lessor proposes the expiry again).
      const ids = command.ids.filter((id) => !isLeaseMoving(store, state.ownership, id));
      return expireLeases(store, context, ids);
    }
    case "ownership":
    case "import":
    case "dropMoved":
    case "leaseHolderAdd":
      return executeMove(store, context, command);
    case "meta":
      store.setMeta(command.name, command.value);
      return { type: "meta", revision, name: command.name };
    case "noop":
      return { type: "noop", revision };
    case "txnPrepare":
    case "txnDecide":
    case "txnResolve":
    case "txnFence":
      return executeTxnPhase(store, txns, context, command);
  }
}

function deleteRange(
  store: KvStore,
  context: EntryContext,
  command: Extract<Command, { type: "deleteRange" }>,
): number {
  const bounds = keyRangeBounds(command.range);
  const count = store.countRange(bounds, DELETE_RANGE_KEYS_MAX);
  if (count > DELETE_RANGE_KEYS_MAX) {
    throw new AspenError(
      "limit_exceeded",
      `Cannot delete range: it holds more than ${DELETE_RANGE_KEYS_MAX} keys; delete it in ` +
        "smaller ranges",
      { limit: DELETE_RANGE_KEYS_MAX, name: "DELETE_RANGE_KEYS_MAX" },
    );
  }
  const deleted = store.removeRange(context, bounds);
  assert(deleted === count, "deleteRange: every counted key is deleted");
  return deleted;
}

function executeTxn(
  store: KvStore,
  context: EntryContext,
  command: Extract<Command, { type: "txn" }>,
): ApplyResult {
  const succeeded = command.compare.every((compare) =>
    evaluateCompare(compare, store.get(compare.key))
  );
  const results = runTxnOps(store, context, succeeded ? command.success : command.failure);
  return { type: "txn", revision: context.revision, succeeded, results };
}

function executeOptimistic(
  store: KvStore,
  context: EntryContext,
  command: Extract<Command, { type: "optimisticTxn" }>,
  counters: OccCounters,
): ApplyResult {
  const revision = context.revision;
  const conflict = validateReadSet(command.reads, {
    versionOf(key) {
      const kv = store.get(key);
      return { version: kv?.version ?? 0, modRevision: kv?.modRevision ?? 0 };
    },
  });
  counters.optimisticTxns++;
  if (conflict !== null) {
    assert(conflict.actualModRevision < revision, "executeOptimistic: keys changed before now");
    counters.conflicts++;
    return { type: "conflict", revision, ...conflict };
  }
  for (const write of command.writes) {
    if (write.op === "set") store.put(context, { key: write.key, value: write.value, lease: 0 });
    else store.remove(context, write.key);
  }
  return { type: "optimisticTxn", revision, committed: true };
}

function grantLease(store: KvStore, context: EntryContext, ttlSeconds: number): ApplyResult {
  const count = store.leaseCount();
  if (count >= LEASES_MAX) {
    throw new AspenError(
      "limit_exceeded",
      `Cannot grant lease: the shard already holds ${count} leases, the limit`,
      { limit: LEASES_MAX, name: "LEASES_MAX" },
    );
  }
  // The entry's index is unique in the log, so it is a lease id every replica agrees on.
  const lease = { id: context.revision, ttlSeconds };
  assert(store.lease(lease.id) === null, "grantLease: a lease id is never reused");
  store.insertLease(lease);
  assert(store.lease(lease.id)?.keyCount === 0, "grantLease: the new lease reads back empty");
  return { type: "leaseGrant", revision: context.revision, lease };
}

function revokeLease(store: KvStore, context: EntryContext, id: number): ApplyResult {
  if (store.lease(id) === null) {
    throw leaseError({ code: "lease_not_found", action: "revoke", lease: id });
  }
  const holders = store.leaseHolders(id);
  if (holders.length > 0) {
    // Deleting only this shard's keys would leave the others': a reader would see half.
    throw new AspenError(
      "conflict",
      `Cannot revoke lease ${id} on its shard alone: shards ${holders.join(", ")} hold keys ` +
        "of it too; revoke it with a cross-shard transaction",
      { leaseHolders: holders.join(",") },
    );
  }
  const deleted = store.removeLeaseKeys(context, id);
  store.deleteLease(id);
  assert(store.lease(id) === null, "revokeLease: the lease is gone");
  return { type: "leaseRevoke", revision: context.revision, id, deleted };
}

function expireLeases(store: KvStore, context: EntryContext, ids: readonly number[]): ApplyResult {
  const expired: number[] = [];
  let deleted = 0;
  // A lease revoked or expired since the leader proposed this entry is skipped.
  for (const id of ids) {
    if (store.lease(id) === null) continue;
    // A lease with keys on other shards expires by a cross-shard transaction (the lessor
    // keeps it until then and asks again).
    if (store.leaseHolders(id).length > 0) continue;
    deleted += store.removeLeaseKeys(context, id);
    store.deleteLease(id);
    expired.push(id);
  }
  assert(expired.length <= ids.length, "expireLeases: only named leases expire");
  return { type: "leaseExpire", revision: context.revision, expired, deleted };
}
