/**
 * Lease ids as the client API names them: part of the contract, since a client may tell a
 * lease's shard from its id (README, "What is per shard").
 *
 * A shard names a lease by the index of the entry that granted it, which is unique only within
 * the shard. The API adds the shard in the low bits: `id = grantIndex * LEASE_SHARD_SPAN +
 * shard`, so an id names one lease of the whole cluster and says which shard holds it.
 */

/** Lease ids carry their shard in the low bits: `id = grantIndex * LEASE_SHARD_SPAN + shard`. */
export const LEASE_SHARD_SPAN = 1024;

/**
 * The API id of the lease granted by entry `grantIndex` of `shard`.
 *
 * @example
 * ```ts
 * apiLeaseId(5, 3); // 5123
 * ```
 */
export function apiLeaseId(grantIndex: number, shard: number): number {
  return grantIndex * LEASE_SHARD_SPAN + shard;
}

/**
 * The shard and grant index an API lease id stands for; null when `id` is not a positive safe
 * integer or names grant index 0 (no lease was ever granted by it). Whether the shard exists
 * is for the caller to check.
 */
export function leaseIdParts(id: number): { shard: number; grantIndex: number } | null {
  if (!Number.isSafeInteger(id) || id < 1) return null;
  const grantIndex = Math.floor(id / LEASE_SHARD_SPAN);
  if (grantIndex < 1) return null;
  return { shard: id % LEASE_SHARD_SPAN, grantIndex };
}
