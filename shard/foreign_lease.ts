/**
 * Leases of other shards, as a shard stores them (issue 13: a lease holds keys on any shard).
 *
 * A lease lives on its home shard (its id names it there: the index of the entry that granted
 * it). A key of another shard attached to it stores the lease's API id moved up by
 * FOREIGN_LEASE_BASE, so that the two kinds of id never meet: a shard knows which of its keys
 * belong to a foreign lease without knowing how the API encodes ids. For each foreign lease
 * with keys here the shard keeps a stand-in row in its lease table (TTL 0, never tracked by the
 * lessor) that counts them; the lease's home keeps the list of shards holding its keys. Every
 * change to a foreign lease's keys, and its revocation, is a cross-shard transaction that locks
 * the lease on its home shard, so they are serialized there.
 */

import { assert } from "../raft/mod.ts";
import { FOREIGN_LEASE_BASE } from "./limits.ts";

/** Whether lease id `id` (as a shard stores it) names a lease of another shard. */
export function isForeignLease(id: number): boolean {
  return id >= FOREIGN_LEASE_BASE;
}

/**
 * The id under which a shard stores the lease whose API id is `apiId`, when it is another
 * shard's.
 *
 * @example
 * ```ts
 * foreignLeaseId(5123) - FOREIGN_LEASE_BASE; // 5123
 * ```
 */
export function foreignLeaseId(apiId: number): number {
  assert(Number.isSafeInteger(apiId) && apiId >= 1, "foreignLeaseId: an API id is positive");
  assert(apiId < FOREIGN_LEASE_BASE, "foreignLeaseId: API ids stay below the base");
  return FOREIGN_LEASE_BASE + apiId;
}

/** The API id of the foreign lease a shard stores as `id`. */
export function apiIdOfForeignLease(id: number): number {
  assert(isForeignLease(id), "apiIdOfForeignLease: the id is a foreign lease's");
  return id - FOREIGN_LEASE_BASE;
}

/**
 * The key a cross-shard transaction locks (as an intent) to hold lease `id` of a shard: a
 * revocation holds it against every attach, and an attach holds it against a revocation.
 * It starts with U+0000 so that it sorts before user keys; a user key of the same name would
 * only share the lock, never a value.
 */
export function leaseLockKey(id: number): string {
  assert(Number.isSafeInteger(id) && id >= 1, "leaseLockKey: a lease id is positive");
  return `\u0000lease/${id}`;
}

/** Whether `key` is a lock key ({@linkcode leaseLockKey}, U+0000 first), not a user key. */
export function isLeaseLockKey(key: string): boolean {
  return key.startsWith("\u0000");
}
