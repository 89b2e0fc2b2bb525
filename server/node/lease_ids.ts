/**
 * Lease ids on their way out of a shard. The encoding itself (`id = grantIndex *
 * LEASE_SHARD_SPAN + shard`) is part of the client contract and lives in api/lease_id.ts.
 * Every value that leaves a shard and names a lease goes through one of these functions on its
 * way to a client: a kv (`lease`), a txn op result that carries kvs, and a lease error (its
 * details and its message, rebuilt from the details by shard/lease_error.ts).
 */
import { apiLeaseId } from "../../api/mod.ts";
import {
  apiIdOfForeignLease,
  type AspenError,
  isForeignLease,
  type KeyValue,
  leaseError,
  leaseFaultOf,
  type TxnOpResult,
} from "../../shard/mod.ts";

export { apiLeaseId, LEASE_SHARD_SPAN } from "../../api/mod.ts";

/**
 * The API id of the lease `shard` stores as `id`: its own lease (a grant index), or another
 * shard's lease that keys of `shard` are attached to (FOREIGN_LEASE_BASE + its API id).
 */
export function apiLeaseOf(id: number, shard: number): number {
  return isForeignLease(id) ? apiIdOfForeignLease(id) : apiLeaseId(id, shard);
}

/** `kv` with its lease named by its API id (0, no lease, stays 0). */
export function apiKv(kv: KeyValue, shard: number): KeyValue {
  return kv.lease === 0 ? kv : { ...kv, lease: apiLeaseOf(kv.lease, shard) };
}

/** A txn op result with every kv it carries given API lease ids. */
export function apiTxnOpResult(result: TxnOpResult, shard: number): TxnOpResult {
  switch (result.type) {
    case "put":
    case "delete":
      return { ...result, prevKv: result.prevKv === null ? null : apiKv(result.prevKv, shard) };
    case "get":
      return { ...result, kv: result.kv === null ? null : apiKv(result.kv, shard) };
    case "range":
      return { ...result, kvs: result.kvs.map((kv) => apiKv(kv, shard)) };
  }
}

/**
 * A shard's error with the lease it names given its API id, in the details and the message
 * alike; any error that names no lease is returned as it is.
 */
export function apiLeaseError(error: AspenError, shard: number): AspenError {
  const fault = leaseFaultOf(error);
  if (fault === null) return error;
  return leaseError({ ...fault, lease: apiLeaseOf(fault.lease, shard) });
}
