/**
 * How a cross-shard transaction splits by shard, and how its per-shard results merge back.
 *
 * The coordinator (txn_coordinator.ts) sends each participant only its own compares, reads and
 * operations, in request order; a participant's results come back in that same order, so the
 * merge walks the request's branch once and takes each operation's result from its shard's
 * queue. Pure functions: the simulation and the unit tests call them without any transport.
 */
import {
  AspenError,
  type Compare,
  compareUtf8,
  type ReadRecord,
  TXN_SHARDS_MAX,
  type TxnBranch,
  type TxnLeaseStep,
  type TxnOp,
  type TxnOpResult,
} from "../../shard/mod.ts";
import { assert } from "../../raft/mod.ts";

/** What one participant shard is asked to prepare. */
export interface ShardPart {
  /** The shard id. */
  readonly shard: number;
  /** Its compares, in request order. */
  readonly compare: Compare[];
  /** Its optimistic reads, in request order. */
  readonly reads: ReadRecord[];
  /** Its success operations, in request order. */
  readonly success: TxnOp[];
  /** Its failure operations, in request order. */
  readonly failure: TxnOp[];
  /** What the transaction does to leases on this shard (each locks its lease there). */
  readonly leases: TxnLeaseStep[];
}

/** A transaction split by shard. */
export interface TxnPlan {
  /** The shard of the smallest key (UTF-8 byte order): it holds the transaction record. */
  readonly home: number;
  /** Every participant shard id, sorted ascending; home is one of them. */
  readonly participants: readonly number[];
  /** The part of each participant. */
  readonly parts: ReadonlyMap<number, ShardPart>;
  /** The shard of each success operation, in request order. */
  readonly successShards: readonly number[];
  /** The shard of each failure operation, in request order. */
  readonly failureShards: readonly number[];
}

/** A transaction as the coordinator receives it (optimistic writes already turned into ops). */
export interface TxnSpec {
  readonly compare: readonly Compare[];
  readonly reads: readonly ReadRecord[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
  /**
   * Lease steps and the shard each runs on (cross-shard leases). A shard with a step takes
   * part even without keys; a transaction with steps but no keys (a lease revocation) has its
   * home on the first step's shard.
   */
  readonly leases?: readonly { readonly shard: number; readonly step: TxnLeaseStep }[];
}

/** A read or compare that may name the shard it was read on. */
export interface ShardedRead {
  readonly key: string;
  readonly shard?: number;
}

/**
 * The first of `reads` (optimistic reads, compares) whose named shard is not the shard that owns
 * its key now, or null. Revisions are per shard: such a read was made before a shard move and
 * cannot be checked where its key is now.
 */
export function movedRead(
  reads: readonly ShardedRead[],
  shardOf: (key: string) => number,
): { key: string; readShard: number; shard: number } | null {
  for (const read of reads) {
    if (read.shard === undefined) continue;
    const shard = shardOf(read.key);
    if (shard !== read.shard) return { key: read.key, readShard: read.shard, shard };
  }
  return null;
}

/**
 * The refusal of a transaction with a read made on another shard than its key's (see
 * {@linkcode movedRead}): a retryable 409 `conflict` naming the key and both shards.
 */
export function movedReadConflict(
  action: string,
  moved: { key: string; readShard: number; shard: number },
): AspenError {
  return new AspenError(
    "conflict",
    `Cannot ${action}: key "${moved.key}" was read on shard ${moved.readShard} but is on shard ` +
      `${moved.shard} now (a shard move), and revisions are per shard; read it again and retry`,
    { key: moved.key, readShard: moved.readShard, shard: moved.shard },
  );
}

/**
 * Splits `spec` by the shard of each key.
 *
 * @throws {AspenError} `bad_request` for a range operation (it would span every shard), for a
 * transaction without keys, or with more than TXN_SHARDS_MAX participants; `conflict` for a read
 * or compare that names another shard than its key's.
 */
export function planTxn(spec: TxnSpec, shardOf: (key: string) => number): TxnPlan {
  const parts = new Map<number, ShardPart>();
  let smallest: string | null = null;
  const partAt = (shard: number): ShardPart => {
    let part = parts.get(shard);
    if (part === undefined) {
      part = { shard, compare: [], reads: [], success: [], failure: [], leases: [] };
      parts.set(shard, part);
    }
    return part;
  };
  const partOf = (key: string): ShardPart => {
    if (smallest === null || compareUtf8(key, smallest) < 0) smallest = key;
    return partAt(shardOf(key));
  };
  // The last guard: a read is checked on the shard it was made on, or not at all.
  const moved = movedRead([...spec.compare, ...spec.reads], shardOf);
  if (moved !== null) throw movedReadConflict("run cross-shard txn", moved);
  for (const { shard, step } of spec.leases ?? []) partAt(shard).leases.push(step);
  for (const compare of spec.compare) partOf(compare.key).compare.push(compare);
  for (const read of spec.reads) partOf(read.key).reads.push(read);
  const successShards = spec.success.map((op) => placeOp(op, "success", partOf));
  const failureShards = spec.failure.map((op) => placeOp(op, "failure", partOf));
  const firstLeaseShard = spec.leases?.[0]?.shard ?? null;
  if (smallest === null && firstLeaseShard === null) {
    throw new AspenError("bad_request", "Cannot run cross-shard txn: it names no key");
  }
  const participants = [...parts.keys()].sort((a, b) => a - b);
  if (participants.length > TXN_SHARDS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot run cross-shard txn: its keys span ${participants.length} shards but the limit ` +
        `is ${TXN_SHARDS_MAX} (TXN_SHARDS_MAX)`,
      { shards: participants.length, limit: TXN_SHARDS_MAX },
    );
  }
  const home = smallest === null ? firstLeaseShard! : shardOf(smallest);
  assert(parts.has(home), "planTxn: the home shard is a participant");
  return { home, participants, parts, successShards, failureShards };
}

function placeOp(
  op: TxnOp,
  branch: TxnBranch,
  partOf: (key: string) => ShardPart,
): number {
  if (op.type === "range") {
    throw new AspenError(
      "bad_request",
      `Cannot run cross-shard txn: ${branch} has a range operation, and range operations are ` +
        `single-shard only; use get operations for single keys`,
    );
  }
  const part = partOf(op.key);
  part[branch].push(op);
  return part.shard;
}

/**
 * Merges each participant's results of `branch` back into request order.
 *
 * @param byShard each participant's results, in its own operation order.
 */
export function mergeResults(
  plan: TxnPlan,
  branch: TxnBranch,
  byShard: ReadonlyMap<number, readonly TxnOpResult[]>,
): { shard: number; result: TxnOpResult }[] {
  const shards = branch === "success" ? plan.successShards : plan.failureShards;
  const taken = new Map<number, number>();
  const merged = shards.map((shard) => {
    const position = taken.get(shard) ?? 0;
    taken.set(shard, position + 1);
    const result = byShard.get(shard)?.[position];
    assert(result !== undefined, "mergeResults: every operation has a result");
    return { shard, result };
  });
  for (const [shard, count] of taken) {
    assert(byShard.get(shard)?.length === count, "mergeResults: no result is left over");
  }
  return merged;
}
