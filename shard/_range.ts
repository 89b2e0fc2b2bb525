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
import { type TenantShards, tenantsText } from "./tenants.ts";

/** Reads one page of `request`, bounded by `bytesMax` response bytes. */
export function readRange(
  store: KvStore,
  request: RangeRequest,
  bytesMax: number,
  owned?: OwnedFilter,
): RangeResult {
  assert(bytesMax > 0, "readRange: the byte budget is positive");
  const where = rangeWhere(request, owned);
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

/** Only the keys placed on `shard` among `count` shards with `tenants` (a filling target). */
export interface OwnedFilter {
  readonly shard: number;
  readonly count: number;
  readonly tenants?: TenantShards;
}

function rangeWhere(
  request: RangeRequest,
  owned?: OwnedFilter,
): { sql: string; params: (Uint8Array | number | string)[] } {
  const bounds = keyRangeBounds(request.range);
  const conditions = ["key >= ?"];
  const params: (Uint8Array | number | string)[] = [bounds.lower];
  if (bounds.upper !== null) {
    conditions.push("key < ?");
    params.push(bounds.upper);
  }
  if (request.after !== null) {
    conditions.push(request.reverse ? "key < ?" : "key > ?");
    params.push(encodeKey(request.after));
  }
  if (owned !== undefined) {
    conditions.push(`${SHARD_OF_SQL}(key, ?, ?) = ?`);
    params.push(owned.count, tenantsText(owned.tenants), owned.shard);
  }
  return { sql: conditions.join(" AND "), params };
}
