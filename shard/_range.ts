/**
 * Range reads over the kv table (private to shard/).
 *
 * A page holds at most `limit` kvs and at most `bytesMax` bytes as counted by
 * {@linkcode kvResponseBytes}, but always at least one kv when the range is not exhausted, so a
 * reader that follows `next` always makes progress.
 */

import { assert } from "../raft/mod.ts";
import type { RangeResult } from "./apply_result.ts";
import type { RangeRequest } from "./command.ts";
import {
  compareUtf8,
  encodeKey,
  keyRangeBounds,
  type KeyValue,
  kvResponseBytes,
} from "./key_value.ts";
import { integer, kvFromRow, type KvStore, SHARD_OF_SQL } from "./_kv_store.ts";

/**
 * The keys a range read may return on a shard that still holds keys it gave away (a source
 * between a shard move's hand-off and its clean-up): those whose shard among `count` is
 * `shard`.
 */
export interface RangeOwner {
  readonly shard: number;
  readonly count: number;
}

/**
 * Reads one page of `request`, bounded by `bytesMax` response bytes; with `owner`, of the keys
 * it owns only (filtered in SQL, so limit, count and order hold as for any page).
 */
export function readRange(
  store: KvStore,
  request: RangeRequest,
  bytesMax: number,
  owner: RangeOwner | null = null,
): RangeResult {
  assert(bytesMax > 0, "readRange: the byte budget is positive");
  if (owner !== null) assert(owner.shard < owner.count, "readRange: the owner is a shard");
  const where = rangeWhere(request, owner);
  if (request.countOnly) {
    const sql = `SELECT COUNT(*) AS n FROM kv WHERE ${where.sql}`;
    const count = integer(store.statement(sql).get(...where.params)?.n);
    return { kvs: [], count, more: false, next: null };
  }
  const value = request.keysOnly ? "NULL AS value" : "value, crc";
  const order = request.reverse ? "DESC" : "ASC";
  const sql = `SELECT key, ${value}, version, create_revision, mod_revision, lease FROM kv ` +
    `WHERE ${where.sql} ORDER BY key ${order} LIMIT ?`;
  const kvs: KeyValue[] = [];
  let bytes = 0;
  let more = false;
  for (const row of store.statement(sql).iterate(...where.params, request.limit + 1)) {
    const kv = kvFromRow(row);
    const previous = kvs[kvs.length - 1];
    if (previous !== undefined) {
      const order = compareUtf8(previous.key, kv.key);
      assert(request.reverse ? order > 0 : order < 0, "readRange: keys come in range order");
    }
    const size = kvResponseBytes(kv);
    const isFull = kvs.length === request.limit || (kvs.length > 0 && bytes + size > bytesMax);
    if (isFull) {
      more = true;
      break;
    }
    kvs.push(kv);
    bytes += size;
  }
  assert(kvs.length <= request.limit, "readRange: the page respects the limit");
  const last = kvs[kvs.length - 1];
  if (more) assert(last !== undefined, "readRange: a page with more has a last key");
  return { kvs, count: kvs.length, more, next: more && last !== undefined ? last.key : null };
}

function rangeWhere(
  request: RangeRequest,
  owner: RangeOwner | null,
): { sql: string; params: (Uint8Array | number)[] } {
  const bounds = keyRangeBounds(request.range);
  const conditions = ["key >= ?"];
  const params: (Uint8Array | number)[] = [bounds.lower];
  if (bounds.upper !== null) {
    conditions.push("key < ?");
    params.push(bounds.upper);
  }
  if (request.after !== null) {
    conditions.push(request.reverse ? "key < ?" : "key > ?");
    params.push(encodeKey(request.after));
  }
  if (owner !== null) {
    conditions.push(`${SHARD_OF_SQL}(key, ?) = ?`);
    params.push(owner.count, owner.shard);
  }
  return { sql: conditions.join(" AND "), params };
}
