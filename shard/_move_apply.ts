/**
 * The state machine's side of a shard move (private to shard/): the ownership refusals of
 * client commands, and the `ownership`, `import` and `dropMoved` commands (see ownership.ts).
 *
 * Everything here is deterministic: it reads the command, the entry's revision, the state and
 * the ownership record (kept in the meta table, so that snapshots carry it).
 */

import { assert } from "../raft/mod.ts";
import type { ApplyResult } from "./apply_result.ts";
import type { Command, ImportedKv, TxnOp } from "./command.ts";
import { AspenError } from "./errors.ts";
import { isForeignLease } from "./foreign_lease.ts";
import type { EntryContext, KvStore } from "./_kv_store.ts";
import { sameTenants } from "./tenants.ts";
import {
  isRegression,
  type Ownership,
  OWNERSHIP_META,
  ownsKey,
  validateOwnership,
  wrongShardError,
} from "./ownership.ts";

/** The ownership record in `store`, or null when the shard never took part in a move. */
export function readOwnership(store: KvStore): Ownership | null {
  const text = store.getMeta(OWNERSHIP_META);
  if (text === null) return null;
  const ownership = JSON.parse(text) as Ownership;
  validateOwnership(ownership);
  return ownership;
}

/** Whether the shard is in the middle of a move (fenced, or holding keys it gave away). */
function isMoving(ownership: Ownership): boolean {
  return !isHandedOff(ownership) || !ownership.isSettled;
}

/** Whether reads go where writes go (no move is fenced on the shard). */
function isHandedOff(ownership: Ownership): boolean {
  return ownership.writeCount === ownership.readCount &&
    sameTenants(ownership.readTenants, ownership.writeTenants);
}

/**
 * The refusal of a client command that touches a key this shard does not own for writing
 * (or, mid-move, a range or a lease with keys it does not own), or null to run it.
 */
export function ownershipRefusal(
  store: KvStore,
  ownership: Ownership | null,
  command: Command,
): AspenError | null {
  if (ownership === null) return null;
  const firstForeign = (keys: readonly string[]) => {
    const key = keys.find((item) => !ownsKey(ownership, item, "write"));
    return key === undefined ? null : wrongShardError(ownership, key);
  };
  const rangeRefusal = (ops: readonly TxnOp[]) =>
    ops.some((op) => op.type === "range") && (isMoving(ownership) || !ownership.isActive)
      ? wrongShardError(ownership, null)
      : null;
  const leaseRefusal = (id: number) => isLeaseMoving(store, ownership, id);
  switch (command.type) {
    case "put":
    case "delete":
      return firstForeign([command.key]);
    case "multiPut":
      return firstForeign(command.puts.map((put) => put.key));
    case "txn":
    case "txnPrepare": {
      const ops = [...command.success, ...command.failure];
      const reads = command.type === "txnPrepare" ? command.reads.map((read) => read.key) : [];
      const leases = command.type === "txnPrepare" ? command.leases : [];
      const revoked = leases.find((step) => step.action === "revoke" && leaseRefusal(step.id));
      if (revoked !== undefined) return wrongShardError(ownership, null);
      return rangeRefusal(ops) ?? firstForeign([
        ...command.compare.map((compare) => compare.key),
        ...reads,
        ...ops.flatMap((op) => op.type === "range" ? [] : [op.key]),
      ]);
    }
    case "optimisticTxn":
      return firstForeign([...command.reads, ...command.writes].map((item) => item.key));
    case "deleteRange":
      return isMoving(ownership) || !ownership.isActive ? wrongShardError(ownership, null) : null;
    case "leaseRevoke":
      return leaseRefusal(command.id) ? wrongShardError(ownership, null) : null;
    case "leaseGrant":
      return ownership.isActive ? null : wrongShardError(ownership, null);
    default:
      return null;
  }
}

/** Whether lease `id` holds a key this shard no longer owns for writing, mid-move. */
export function isLeaseMoving(store: KvStore, ownership: Ownership | null, id: number): boolean {
  if (ownership === null || !isMoving(ownership)) return false;
  if (store.lease(id) === null) return false;
  return store.leaseKeys(id).some((key) => !ownsKey(ownership, key, "write"));
}

/** Applies one of the move's own commands. */
export function executeMove(
  store: KvStore,
  context: EntryContext,
  command: Extract<Command, { type: "ownership" | "import" | "dropMoved" | "leaseHolderAdd" }>,
): ApplyResult {
  const revision = context.revision;
  switch (command.type) {
    case "ownership": {
      const current = readOwnership(store);
      if (isRegression(current, command.ownership)) {
        throw new AspenError(
          "bad_request",
          `Cannot set shard ownership ${JSON.stringify(command.ownership)}: the shard is past ` +
            `it (${JSON.stringify(current)}); a move driver that is behind stops here`,
        );
      }
      store.setMeta(OWNERSHIP_META, JSON.stringify(command.ownership));
      return { type: "meta", revision, name: OWNERSHIP_META };
    }
    case "import": {
      const ownership = readOwnership(store);
      // A new shard is inactive while filled; the target of a tenant move is active (it
      // serves its other keys) but unsettled until the hand-off.
      const isFilled = ownership !== null && (!ownership.isActive || !ownership.isSettled);
      if (ownership === null || !isFilled || ownership.copyPass !== command.pass) {
        throw new AspenError(
          "bad_request",
          `Cannot import keys of copy pass ${command.pass}: this shard is not a shard ` +
            "being filled by a move in that pass",
        );
      }
      const versions = command.kvs.map((kv) => importKv(store, context, kv));
      for (const key of command.deletes) store.removeSilently(key);
      return { type: "multiPut", revision, versions };
    }
    case "dropMoved":
      return { type: "deleteRange", revision, deleted: dropMoved(store, command.limit) };
    case "leaseHolderAdd": {
      // A lease revoked or expired meanwhile took its keys with it: nothing to record.
      if (store.lease(command.id) !== null) {
        const holders = new Set(store.leaseHolders(command.id));
        holders.add(command.holder);
        store.setLeaseHolders(command.id, [...holders].sort((a, b) => a - b));
      }
      return { type: "meta", revision, name: `lease-holders/${command.id}` };
    }
  }
}

function importKv(store: KvStore, context: EntryContext, kv: ImportedKv): number {
  // A lease of this shard: a tenant's key coming back to its lease's home. It must exist here
  // (importKv refuses it otherwise, lease_not_found); any other lease is a foreign one.
  const isOwnLease = kv.lease !== 0 && !isForeignLease(kv.lease) && store.lease(kv.lease) !== null;
  if (kv.lease !== 0 && !isForeignLease(kv.lease) && !isOwnLease) {
    throw new AspenError(
      "bad_request",
      `Cannot import key "${kv.key}": lease ${kv.lease} is neither a foreign lease nor one of ` +
        "this shard's",
    );
  }
  store.importKv(context, kv);
  return kv.version;
}

/**
 * Removes up to `limit` keys this shard no longer owns for writing; when fewer were left,
 * the shard is settled. A key of a lease of this shard makes its new shard a holder of the
 * lease, so that the lease's revocation and expiry reach it there.
 */
function dropMoved(store: KvStore, limit: number): number {
  const ownership = readOwnership(store);
  if (ownership === null || isHandedOff(ownership) && ownership.isSettled) {
    return 0;
  }
  if (!isHandedOff(ownership)) {
    throw new AspenError(
      "bad_request",
      "Cannot drop moved keys: the shard has not handed them off yet (reads still served)",
    );
  }
  const dropped = store.removeNotOwned(
    ownership.shard,
    ownership.writeCount,
    limit,
    ownership.writeTenants,
  );
  for (const { lease, target } of dropped) {
    if (lease === 0 || isForeignLease(lease) || store.lease(lease) === null) continue;
    const holders = new Set(store.leaseHolders(lease));
    holders.add(target);
    store.setLeaseHolders(lease, [...holders].sort((a, b) => a - b));
  }
  if (dropped.length < limit) {
    store.setMeta(OWNERSHIP_META, JSON.stringify({ ...ownership, isSettled: true }));
  }
  assert(dropped.length <= limit, "dropMoved: at most limit keys");
  return dropped.length;
}
