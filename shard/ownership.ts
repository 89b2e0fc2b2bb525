/**
 * Which keys a shard owns, as its state machine knows it (online resharding, issue 14).
 *
 * A shard that was never part of a move has no record and owns every key routed to it. A move
 * from n to m shards (jump hash: every moving key goes from an existing shard to a new one)
 * writes a record on each shard through the `ownership` command, in the meta record
 * OWNERSHIP_META, so that the refusals below happen at a log position every replica agrees on:
 *
 * ```text
 *   source:  (none) --fence--> read n, write m --hand-off--> read m, write m, unsettled
 *                    --clean-up (dropMoved until none is left)--> settled
 *            (range reads: all keys while settled; unsettled, only the keys it owns at m)
 *   target:  inactive (refuses every client request; takes imports) --activate--> read m, write m
 * ```
 *
 * Ownership is a pure function of the record ({@linkcode ownsKey}): the shard counts plus the
 * tenants placed for reads and for writes (tenants.ts). A tenant move (same count, one tenant
 * placed anew) fences the same way: writes go by `writeTenants` first, reads follow at the
 * hand-off.
 */

import { AspenError } from "./errors.ts";
import type { OwnedFilter } from "./_range.ts";
import { ROUTER_SHARDS_MAX } from "./router.ts";
import { placeKey, type TenantShards, validateTenantShards } from "./tenants.ts";

/** The meta record holding a shard's {@linkcode Ownership}. */
export const OWNERSHIP_META = "ownership";

/** The most keys one `dropMoved` entry removes (clean-up of a source runs in such pieces). */
export const DROP_MOVED_KEYS_MAX = 1_000;

/** What a shard owns. */
export interface Ownership {
  /** This shard's id. */
  readonly shard: number;
  /** Reads: the key is this shard's when its jump hash over `readCount` shards is `shard`. */
  readonly readCount: number;
  /** Writes: the same over `writeCount` shards (ahead of `readCount` while fenced). */
  readonly writeCount: number;
  /** False on a new shard being filled: it refuses every client request. */
  readonly isActive: boolean;
  /**
   * False while the shard still holds keys it no longer owns (between hand-off and clean-up):
   * range reads are refused then, since they would return such keys.
   */
  readonly isSettled: boolean;
  /**
   * On a new shard: the copy pass whose imports it takes (1 for the copy, 2 for the delta);
   * an import of an earlier pass (a driver that lost its leadership and did not know yet) is
   * refused. 0 on a source.
   */
  readonly copyPass: number;
  /** Tenants placed for reads (tenants.ts); absent: none. */
  readonly readTenants?: TenantShards;
  /** Tenants placed for writes (ahead of `readTenants` while a tenant move is fenced). */
  readonly writeTenants?: TenantShards;
  /**
   * The step of the move that wrote the record: the shard map's epoch when the move began
   * times MOVE_STAGES_PER_EPOCH, plus the phase. Records of one move and of later moves only
   * go forward in it, which tells a stale driver's step even when no count changed (a tenant
   * move). Absent on records written before tenants.
   */
  readonly stage?: number;
}

/** Room for the phases of one move in {@linkcode Ownership.stage}. */
export const MOVE_STAGES_PER_EPOCH = 8;

/** The highest copy pass (copy, then delta). */
export const COPY_PASS_MAX = 2;

/**
 * Whether `next` would take the shard back (fewer shards, inactive again, unsettled again, an
 * earlier copy pass): a stale driver's step, refused so that only a driver in step changes it.
 */
export function isRegression(current: Ownership | null, next: Ownership): boolean {
  if (current === null) return false;
  if (next.shard !== current.shard) return true;
  if (current.stage !== undefined || next.stage !== undefined) {
    // A record without a stage is older than every record with one.
    if (next.stage === undefined) return true;
    if (current.stage === undefined) return false;
    if (next.stage !== current.stage) return next.stage < current.stage;
    return current.isSettled && !next.isSettled;
  }
  if (next.readCount < current.readCount || next.writeCount < current.writeCount) return true;
  if (current.isActive && !next.isActive) return true;
  const isSameCounts = next.readCount === current.readCount &&
    next.writeCount === current.writeCount;
  if (!isSameCounts) return false;
  return (current.isSettled && !next.isSettled) || next.copyPass < current.copyPass;
}

/** Whether a client may read or write `key` on the shard whose record is `ownership`. */
export function ownsKey(
  ownership: Ownership | null,
  key: string,
  access: "read" | "write",
): boolean {
  if (ownership === null) return true;
  if (!ownership.isActive) return false;
  if (access === "read") {
    return placeKey(key, ownership.readCount, ownership.readTenants) === ownership.shard;
  }
  return placeKey(key, ownership.writeCount, ownership.writeTenants) === ownership.shard;
}

/**
 * The phase number (in {@linkcode Ownership.stage}) of a move's hand-off: records written from
 * it on read by the map the move's flip writes (server/node/shard_move.ts checks its phases).
 */
export const HANDOFF_STAGE_PHASE = 3;

/**
 * The epoch of the shard map whose placement the shard reads by: the move's epoch before its
 * hand-off, the flip's (one more) from it on; null for a record without a stage.
 */
export function readEpochOf(ownership: Ownership): number | null {
  if (ownership.stage === undefined) return null;
  const epoch = Math.floor(ownership.stage / MOVE_STAGES_PER_EPOCH);
  return ownership.stage % MOVE_STAGES_PER_EPOCH >= HANDOFF_STAGE_PHASE ? epoch + 1 : epoch;
}

/**
 * Whether a range read planned over `plannedCount` shards under the map of `plannedEpoch` may
 * run here, serving exactly the keys that plan routes here (filtered by
 * {@linkcode rangeOwner} while the shard holds keys it does not own). A plan made before the
 * shard took its current placement is refused (the node reads the map again and plans anew):
 * the count alone cannot tell, since a tenant move keeps it. A plan without a count or an
 * epoch (a node of an older version) runs where no filter is needed to be exact.
 */
export function servesRange(
  ownership: Ownership | null,
  plannedCount: number | null,
  plannedEpoch: number | null = null,
): boolean {
  if (ownership === null) return true;
  if (!ownership.isActive) return false;
  if (plannedCount !== null && plannedCount !== ownership.readCount) return false;
  const readEpoch = readEpochOf(ownership);
  const isPlanNewer = plannedEpoch !== null && readEpoch !== null && plannedEpoch >= readEpoch;
  if (plannedEpoch !== null && readEpoch !== null && !isPlanNewer) return false;
  // A tenant move's target being filled leaves out the copied keys it does not own yet.
  if (ownership.isSettled || isFillingTarget(ownership)) return true;
  // A source between hand-off and clean-up: only a plan under the flipped map, filtered.
  return plannedCount !== null && isPlanNewer;
}

/**
 * The keys a range read returns here: all of them (null), or, while the shard holds keys it
 * does not own for reads (a source between hand-off and clean-up, a tenant move's target being
 * filled), only those it owns. So a scan racing the flip and the clean-up sees each key once.
 */
export function rangeOwner(ownership: Ownership | null): OwnedFilter | null {
  if (ownership === null || ownership.isSettled) return null;
  return {
    shard: ownership.shard,
    count: ownership.readCount,
    ...(ownership.readTenants === undefined ? {} : { tenants: ownership.readTenants }),
  };
}

/**
 * Whether the shard is a tenant move's target being filled: in service for its own keys, and
 * holding copied keys of the tenant that it does not own until the hand-off.
 */
export function isFillingTarget(ownership: Ownership | null): boolean {
  if (ownership === null) return false;
  return ownership.isActive && !ownership.isSettled && ownership.copyPass > 0;
}

/**
 * The retryable refusal of a request for `key` (or a range when null) that the shard does not
 * serve: the caller reads the shard map again and routes it anew (503 `wrong_shard`).
 */
export function wrongShardError(ownership: Ownership | null, key: string | null): AspenError {
  const shard = ownership?.shard ?? -1;
  const what = key === null ? "a range read" : `key "${key}"`;
  const why = ownership !== null && !ownership.isActive
    ? "it is a new shard not yet in service"
    : "the key moved to another shard (the shard map changed)";
  return new AspenError(
    "wrong_shard",
    `Cannot serve ${what} on shard ${shard}: ${why}; read the shard map again and retry`,
    {
      shard,
      ...(key === null ? {} : { key }),
      ...(ownership === null ? {} : { numShards: ownership.readCount }),
    },
  );
}

/** How long a client should wait before it retries a request refused with `keys_moving`. */
export const KEYS_MOVING_RETRY_AFTER_MS = 1_000;

/**
 * The answer to a client whose request met `refusal` (a `wrong_shard`) until its deadline: its
 * keys stayed fenced by a shard move (or the node could not learn the new shard map) that
 * long. Retryable: a 503 `keys_moving` naming the moving shard, with a Retry-After.
 */
export function keysMovingError(refusal: AspenError): AspenError {
  const shard = typeof refusal.details.shard === "number" ? refusal.details.shard : -1;
  const key = typeof refusal.details.key === "string" ? refusal.details.key : null;
  const what = key === null ? "the request's keys" : `key "${key}"`;
  return new AspenError(
    "keys_moving",
    `Cannot serve ${what} yet: shard ${shard} is moving keys to new shards (a shard move) ` +
      `and kept them fenced past the request's deadline; retry in ` +
      `${KEYS_MOVING_RETRY_AFTER_MS} ms`,
    {
      shard,
      ...(key === null ? {} : { key }),
      retryAfterMs: KEYS_MOVING_RETRY_AFTER_MS,
    },
  );
}

/**
 * Checks a record read from a command or the meta table.
 *
 * @throws {AspenError} `bad_request` naming the field.
 */
export function validateOwnership(ownership: Ownership): void {
  const counts = [ownership.readCount, ownership.writeCount];
  const isCount = (value: number) =>
    Number.isSafeInteger(value) && value >= 1 && value <= ROUTER_SHARDS_MAX;
  if (!counts.every(isCount)) {
    throw new AspenError(
      "bad_request",
      `Cannot set shard ownership: counts must be 1 to ${ROUTER_SHARDS_MAX} (ROUTER_SHARDS_MAX)`,
    );
  }
  const isShard = Number.isSafeInteger(ownership.shard) && ownership.shard >= 0 &&
    ownership.shard < Math.max(...counts);
  if (!isShard || ownership.writeCount < ownership.readCount) {
    throw new AspenError(
      "bad_request",
      "Cannot set shard ownership: the shard must be below the counts, and writes fenced no " +
        "later than reads",
    );
  }
  if (typeof ownership.isActive !== "boolean" || typeof ownership.isSettled !== "boolean") {
    throw new AspenError("bad_request", "Cannot set shard ownership: flags must be booleans");
  }
  const pass = ownership.copyPass;
  if (!Number.isSafeInteger(pass) || pass < 0 || pass > COPY_PASS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot set shard ownership: copyPass must be 0 to ${COPY_PASS_MAX} (COPY_PASS_MAX)`,
    );
  }
  if (ownership.readTenants !== undefined) {
    validateTenantShards(ownership.readTenants, ownership.readCount);
  }
  if (ownership.writeTenants !== undefined) {
    validateTenantShards(ownership.writeTenants, ownership.writeCount);
  }
  const stage = ownership.stage;
  if (stage !== undefined && (!Number.isSafeInteger(stage) || stage < 0)) {
    throw new AspenError("bad_request", "Cannot set shard ownership: stage must be an integer");
  }
}
