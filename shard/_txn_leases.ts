/**
 * The lease steps of a cross-shard transaction (private to shard/): what a prepare checks and
 * locks for the leases it names, and what the commit-resolve then does to them.
 *
 * A lease with keys on several shards is changed only by cross-shard transactions that lock it
 * on its home shard (its lock key, {@linkcode leaseLockKey}), so attaching keys to it and
 * revoking it are serialized there. A revocation also locks every key of the lease on every
 * shard that holds some, so a reader meeting one pushes, and sees all of them or none.
 */

import { assert } from "../raft/mod.ts";
import type { TxnLeaseStep, TxnOp, TxnPrepareCommand } from "./command.ts";
import { AspenError } from "./errors.ts";
import { isForeignLease, leaseLockKey } from "./foreign_lease.ts";
import { leaseError } from "./lease_error.ts";
import { LEASE_KEYS_MAX, LEASE_SHARDS_MAX } from "./limits.ts";
import type { EntryContext, KvStore } from "./_kv_store.ts";

/** What the commit-resolve does to a lease, decided at prepare. */
export type LeaseEffect =
  /** Records `shard` among the shards holding keys of lease `id` (of this shard). */
  | { readonly kind: "addHolder"; readonly id: number; readonly shard: number }
  /** Deletes every key of lease `id` here and the lease (or its stand-in). */
  | { readonly kind: "revoke"; readonly id: number };

/** The keys the lease steps lock: each lease's lock key, and every key of a revoked lease. */
export function leaseStepKeys(store: KvStore, steps: readonly TxnLeaseStep[]): string[] {
  const keys: string[] = [];
  for (const step of steps) {
    keys.push(leaseLockKey(step.id));
    if (step.action === "revoke") keys.push(...store.leaseKeys(step.id));
  }
  return keys;
}

/**
 * Checks the lease steps of `command` against the state (before anything is locked) and
 * returns what its commit will do.
 *
 * @throws {AspenError} `lease_not_found` (a lease of this shard that does not exist),
 * `limit_exceeded` (LEASE_SHARDS_MAX), `conflict` (a revocation that misses a shard holding keys
 * of the lease: the caller reads the holders again).
 */
export function checkLeaseSteps(store: KvStore, command: TxnPrepareCommand): LeaseEffect[] {
  const effects: LeaseEffect[] = [];
  for (const step of command.leases) {
    const isOwn = !isForeignLease(step.id);
    if (isOwn && store.lease(step.id) === null) {
      throw step.action === "attach"
        ? leaseError({ code: "lease_not_found", action: "attach", lease: step.id, key: step.key })
        : leaseError({ code: "lease_not_found", action: "revoke", lease: step.id });
    }
    if (step.action === "revoke") {
      if (isOwn) checkRevokeHolders(store, step);
      effects.push({ kind: "revoke", id: step.id });
      continue;
    }
    assert(isOwn, "checkLeaseSteps: a key is attached on the lease's home shard");
    if (step.holder === command.shard) continue;
    const holders = store.leaseHolders(step.id);
    if (holders.includes(step.holder)) continue;
    if (holders.length + 2 > LEASE_SHARDS_MAX) {
      throw new AspenError(
        "limit_exceeded",
        `Cannot attach key "${step.key}" to lease ${step.id}: the lease holds keys on ` +
          `${holders.length + 1} shards already, and a lease may hold keys on at most ` +
          `${LEASE_SHARDS_MAX} (LEASE_SHARDS_MAX)`,
        { limit: LEASE_SHARDS_MAX, name: "LEASE_SHARDS_MAX", key: step.key },
      );
    }
    effects.push({ kind: "addHolder", id: step.id, shard: step.holder });
  }
  return effects;
}

function checkRevokeHolders(
  store: KvStore,
  step: Extract<TxnLeaseStep, { action: "revoke" }>,
): void {
  const missing = store.leaseHolders(step.id).filter((shard) => !step.holders.includes(shard));
  if (missing.length === 0) return;
  throw new AspenError(
    "conflict",
    `Cannot revoke lease ${step.id}: shards ${missing.join(", ")} hold keys of it but the ` +
      "transaction does not include them; read the lease's shards again",
    { leaseHolders: store.leaseHolders(step.id).join(",") },
  );
}

/**
 * Checks, by a dry run, that the puts of `ops` leave every lease within LEASE_KEYS_MAX keys:
 * the leases are locked until the resolve, so its puts cannot fail on it then.
 *
 * @throws {AspenError} `limit_exceeded` naming the key and the lease.
 */
export function checkLeaseRoom(store: KvStore, ops: readonly TxnOp[]): void {
  const added = new Map<number, Set<string>>();
  for (const op of ops) {
    if (op.type !== "put" || op.lease === 0) continue;
    if (store.get(op.key)?.lease === op.lease) continue;
    const keys = added.get(op.lease) ?? new Set<string>();
    keys.add(op.key);
    added.set(op.lease, keys);
    const keyCount = store.lease(op.lease)?.keyCount ?? 0;
    if (keyCount + keys.size > LEASE_KEYS_MAX) {
      throw leaseError({
        code: "limit_exceeded",
        action: "attach",
        lease: op.lease,
        key: op.key,
        keyCount,
      });
    }
  }
}

/** Applies the effects of a committed transaction; returns the leases it removed. */
export function applyLeaseEffects(
  store: KvStore,
  context: EntryContext,
  effects: readonly LeaseEffect[],
): number[] {
  const revoked: number[] = [];
  for (const effect of effects) {
    const lease = store.lease(effect.id);
    if (effect.kind === "addHolder") {
      assert(lease !== null, "applyLeaseEffects: a locked lease still exists");
      const holders = [...store.leaseHolders(effect.id), effect.shard].sort((a, b) => a - b);
      store.setLeaseHolders(effect.id, [...new Set(holders)]);
      continue;
    }
    // A stand-in whose keys all went earlier may be gone (or was never written).
    if (lease === null) continue;
    store.removeLeaseKeys(context, effect.id);
    store.setLeaseHolders(effect.id, []);
    store.deleteLease(effect.id);
    assert(store.lease(effect.id) === null, "applyLeaseEffects: the revoked lease is gone");
    revoked.push(effect.id);
  }
  return revoked;
}
