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
 * Ownership is a pure function of the record ({@linkcode ownsKey}): a later per-prefix
 * placement override (tenants) adds a field here and nothing else needs to know.
 */

import { AspenError } from "./errors.ts";
import type { RangeOwner } from "./_range.ts";
import { ROUTER_SHARDS_MAX, shardForKey } from "./router.ts";

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
}

/** The highest copy pass (copy, then delta). */
export const COPY_PASS_MAX = 2;

/**
 * Whether `next` would take the shard back (fewer shards, inactive again, unsettled again, an
 * earlier copy pass): a stale driver's step, refused so that only a driver in step changes it.
 */
export function isRegression(current: Ownership | null, next: Ownership): boolean {
  if (current === null) return false;
  if (next.shard !== current.shard) return true;
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
  const count = access === "read" ? ownership.readCount : ownership.writeCount;
  return shardForKey(key, count) === ownership.shard;
}

/**
 * Whether a range read planned over `plannedCount` shards may run here: the shard is active and
 * reads at that count, so that it serves exactly the keys of that plan (between hand-off and
 * clean-up, filtered by {@linkcode rangeOwner}). A plan without a count (a node of an older
 * version) runs on a settled shard only.
 */
export function servesRange(ownership: Ownership | null, plannedCount: number | null): boolean {
  if (ownership === null) return true;
  if (!ownership.isActive) return false;
  if (plannedCount === null) return ownership.isSettled;
  return plannedCount === ownership.readCount;
}

/**
 * The keys a range read returns here: all of them (null), or, while the shard still holds keys
 * it gave away (between hand-off and clean-up), only those it owns for reads. So a scan racing
 * the flip and the clean-up sees each key once: on its owner at the count it was planned with.
 */
export function rangeOwner(ownership: Ownership | null): RangeOwner | null {
  if (ownership === null || ownership.isSettled) return null;
  return { shard: ownership.shard, count: ownership.readCount };
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
}
