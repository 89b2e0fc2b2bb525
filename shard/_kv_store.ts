/**
 * Row-level access to the state machine tables (private to shard/).
 *
 * Every change to a key goes through {@linkcode KvStore.put}, {@linkcode KvStore.remove} or
 * one of the bulk removals, which keep three things in step: the kv row (version and
 * revisions), the key count of the leases involved, and the watch history. That single path is
 * what guarantees that no write path skips version or revision bookkeeping.
 */

import type { DatabaseSync, StatementSync } from "node:sqlite";
import { assert } from "../raft/mod.ts";
import {
  decodeKey,
  encodeKey,
  type KeyBounds,
  type KeyValue,
  valueByteLength,
  valueFromBytes,
  valueToBytes,
} from "./key_value.ts";
import type { LeaseGrant } from "./apply_result.ts";
import type { ImportedKv, PutItem } from "./command.ts";
import { placeKey, type TenantShards, tenantsText } from "./tenants.ts";
import { leaseError } from "./lease_error.ts";
import { isForeignLease } from "./foreign_lease.ts";
import { FOREIGN_LEASE_BASE, LEASE_KEYS_MAX, WATCH_EVENT_OVERHEAD_BYTES } from "./limits.ts";
import {
  damagedRow,
  kvChecksum,
  kvRowChecksum,
  metaChecksum,
  verifyChecksum,
} from "./_row_checksum.ts";

/** What one entry has done so far; the apply loop folds it into the shard's counters. */
export interface EntryContext {
  /** The entry's log index: the revision of every change it makes. */
  readonly revision: number;
  /** The sequence number of the entry's next watch event. */
  seq: number;
  /** Bytes of watch events the entry has written. */
  eventBytes: number;
  /** History retention: an entry whose events exceed it writes none of them. */
  readonly historyLimits: { readonly eventsMax: number; readonly bytesMax: number };
  /**
   * Set when a bulk delete would write more events than the history can retain: the entry
   * then writes no events and the history is compacted through its revision.
   */
  isHistoryDropped: boolean;
}

/** A lease row. */
export interface LeaseRow extends LeaseGrant {
  readonly keyCount: number;
}

const EVENT_PUT = 1;
/** The SQL function giving a stored key's shard: `aspen_shard_of(key, count, tenants)`. */
export const SHARD_OF_SQL = "aspen_shard_of";
const EVENT_DELETE = 2;
/** The bytes of a delete event, computed in SQL from a kv row (same as #appendEvent). */
const EVENT_BYTES_SQL = `${WATCH_EVENT_OVERHEAD_BYTES} + length(key) + length(CAST(value AS BLOB))`;
const KV_COLUMNS = "key, value, version, create_revision, mod_revision, lease, crc";
const EVENT_COLUMNS = "revision, seq, type, key, value, version, create_revision, lease, " +
  "prev_value, prev_version, prev_create_revision, prev_mod_revision, prev_lease, bytes";

/** Which keys a page of a move's copy holds (see KvStore.movingPage). */
export interface MovingQuery {
  readonly source: number;
  readonly fromCount: number;
  readonly target: number;
  readonly count: number;
  /** The tenants placed before the move (with `fromCount`) and after it (with `count`). */
  readonly fromTenants?: TenantShards;
  readonly tenants?: TenantShards;
  readonly after: string | null;
  readonly until: string | null;
  /**
   * Leave out the values of keys last changed at or before this revision (a delta pass needs
   * only the values of keys changed since its copy began); null: every value.
   */
  readonly valuesAfter: number | null;
}

/** A row of a move's page; `hasValue` is false when the query left its value out (""). */
export interface MovingRow {
  readonly kv: KeyValue;
  readonly hasValue: boolean;
}

/**
 * The state a put of `item` at `revision` gives its key, now `prev`: version +1 (1 when
 * created), createRevision kept (now when created), modRevision = `revision`.
 */
export function putKv(prev: KeyValue | null, item: PutItem, revision: number): KeyValue {
  const version = prev === null ? 1 : prev.version + 1;
  assert(Number.isSafeInteger(version), "putKv: the version stays a safe integer");
  return {
    key: item.key,
    value: item.value,
    version,
    createRevision: prev === null ? revision : prev.createRevision,
    modRevision: revision,
    lease: item.lease,
  };
}

/** Typed statements over one open state machine database. */
export class KvStore {
  readonly #db: DatabaseSync;
  readonly #selectKv: StatementSync;
  readonly #upsertKv: StatementSync;
  readonly #deleteKv: StatementSync;
  readonly #insertEvent: StatementSync;
  readonly #selectLease: StatementSync;
  readonly #adjustLease: StatementSync;
  readonly #bulk = new Map<string, StatementSync>();
  #metaWrites = 0;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#selectKv = db.prepare(`SELECT ${KV_COLUMNS} FROM kv WHERE key = ?`);
    this.#upsertKv = db.prepare(`INSERT OR REPLACE INTO kv (${KV_COLUMNS}) VALUES (?,?,?,?,?,?,?)`);
    this.#deleteKv = db.prepare("DELETE FROM kv WHERE key = ?");
    this.#insertEvent = db.prepare(
      `INSERT INTO history (${EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    );
    this.#selectLease = db.prepare("SELECT id, ttl_seconds, key_count FROM lease WHERE id = ?");
    this.#adjustLease = db.prepare("UPDATE lease SET key_count = key_count + ? WHERE id = ?");
    // The shard of a stored key among `count` shards with the tenants given as JSON ("" for
    // none), for the scans of a shard move. The last tenants text parsed is kept.
    let parsedText = "";
    let parsed: TenantShards | undefined = undefined;
    db.function(SHARD_OF_SQL, { deterministic: true }, (key, count, tenants) => {
      assert(typeof count === "number", "aspen_shard_of: a count");
      assert(typeof tenants === "string", "aspen_shard_of: tenants as text");
      if (tenants !== parsedText) {
        parsed = tenants === "" ? undefined : JSON.parse(tenants) as TenantShards;
        parsedText = tenants;
      }
      return placeKey(decodeKey(bytesOf(key)), count, parsed);
    });
  }

  /**
   * Writes a key copied from another shard by a move: its value, version, createRevision and
   * lease as given, modRevision = the entry's revision; no watch event (nothing changed for a
   * client).
   *
   * @throws {AspenError} `lease_not_found` or `limit_exceeded`, before any write.
   */
  importKv(context: EntryContext, item: ImportedKv): void {
    const key = encodeKey(item.key);
    const prev = this.#read(item.key, key);
    const isLeaseChanged = prev === null ? item.lease !== 0 : prev.lease !== item.lease;
    if (isLeaseChanged && item.lease !== 0) this.#checkLeaseRoom(item.key, item.lease);
    const kv: KeyValue = {
      key: item.key,
      value: item.value,
      version: item.version,
      createRevision: item.createRevision,
      modRevision: context.revision,
      lease: item.lease,
    };
    const row = [kv.version, kv.createRevision, kv.modRevision, kv.lease] as const;
    this.#upsertKv.run(key, valueColumn(kv.value), ...row, kvChecksum(key, kv));
    if (isLeaseChanged) {
      if (prev !== null && prev.lease !== 0) this.#adjustLeaseKeys(prev.lease, -1);
      if (kv.lease !== 0) this.#adjustLeaseKeys(kv.lease, 1);
    }
  }

  /** Deletes `key` if present, with no watch event (a move's copy or clean-up). */
  removeSilently(key: string): void {
    const keyBytes = encodeKey(key);
    const prev = this.#read(key, keyBytes);
    if (prev === null) return;
    this.#deleteKv.run(keyBytes);
    if (prev.lease !== 0) this.#adjustLeaseKeys(prev.lease, -1);
  }

  /**
   * Removes, silently, up to `limit` keys whose shard among `count` shards is not `shard`;
   * returns each one's lease and new shard.
   */
  removeNotOwned(
    shard: number,
    count: number,
    limit: number,
    tenants?: TenantShards,
  ): { lease: number; target: number }[] {
    const text = tenantsText(tenants);
    const rows = this.statement(
      `SELECT key, lease, ${SHARD_OF_SQL}(key, ?, ?) AS target FROM kv ` +
        `WHERE ${SHARD_OF_SQL}(key, ?, ?) != ? ORDER BY key LIMIT ?`,
    ).all(count, text, count, text, shard, limit);
    return rows.map((row) => {
      const key = bytesOf(row.key);
      const lease = integer(row.lease);
      this.#deleteKv.run(key);
      if (lease !== 0) this.#adjustLeaseKeys(lease, -1);
      return { lease, target: integer(row.target) };
    });
  }

  /**
   * The keys after `after` (up to `until` included, when given) whose shard among `count`
   * shards is `target` and among `fromCount` is `source`, in key order, at most `limit`.
   */
  movingPage(query: MovingQuery, limit: number): MovingRow[] {
    const conditions = [`${SHARD_OF_SQL}(key, ?, ?) = ?`, `${SHARD_OF_SQL}(key, ?, ?) = ?`];
    const params: (number | string | Uint8Array)[] = [
      query.count,
      tenantsText(query.tenants),
      query.target,
      query.fromCount,
      tenantsText(query.fromTenants),
      query.source,
    ];
    if (query.after !== null) {
      conditions.push("key > ?");
      params.push(encodeKey(query.after));
    }
    if (query.until !== null) {
      conditions.push("key <= ?");
      params.push(encodeKey(query.until));
    }
    // A value left out reads as NULL, which kvFromRow takes as "" without the checksum.
    const value = query.valuesAfter === null
      ? "value"
      : `CASE WHEN mod_revision > ${integer(query.valuesAfter)} THEN value END AS value`;
    const columns = KV_COLUMNS.replace("value", value);
    const rows = this.statement(
      `SELECT ${columns} FROM kv WHERE ${conditions.join(" AND ")} ORDER BY key LIMIT ?`,
    ).all(...params, limit);
    return rows.map((row) => ({ kv: kvFromRow(row), hasValue: row.value !== null }));
  }

  /** The stand-ins of other shards' leases that hold keys here, by id. */
  foreignLeases(): number[] {
    const sql = "SELECT id FROM lease WHERE id >= ? AND key_count > 0 ORDER BY id";
    return this.statement(sql).all(FOREIGN_LEASE_BASE).map((row) => integer(row.id));
  }

  /** Keys and bytes (key plus value) per shard among `count` shards. */
  sizeByShard(count: number, tenants?: TenantShards): Map<number, { keys: number; bytes: number }> {
    const rows = this.statement(
      `SELECT ${SHARD_OF_SQL}(key, ?, ?) AS shard, COUNT(*) AS n, ` +
        "COALESCE(SUM(length(key) + length(CAST(value AS BLOB))), 0) AS bytes FROM kv GROUP BY 1",
    ).all(count, tenantsText(tenants));
    return new Map(
      rows.map((row) => [integer(row.shard), { keys: integer(row.n), bytes: integer(row.bytes) }]),
    );
  }

  /** Keys and bytes (key plus value) under tenant `name`'s prefix `<name>/`. */
  tenantSize(name: string): { keys: number; bytes: number } {
    // Tenant names hold no '/', and '0' follows '/': the prefix is [name/, name0).
    const row = this.statement(
      "SELECT COUNT(*) AS n, COALESCE(SUM(length(key) + length(CAST(value AS BLOB))), 0) " +
        "AS bytes FROM kv WHERE key >= ? AND key < ?",
    ).get(encodeKey(`${name}/`), encodeKey(`${name}0`));
    return { keys: integer(row?.n), bytes: integer(row?.bytes) };
  }

  /** The current state of `key`, or null when absent. */
  get(key: string): KeyValue | null {
    return this.#read(key, encodeKey(key));
  }

  /**
   * Writes a key: version +1 (1 when created), modRevision = the entry's revision.
   *
   * @throws {AspenError} `lease_not_found` or `limit_exceeded` (LEASE_KEYS_MAX), before any
   * write.
   */
  put(context: EntryContext, item: PutItem): { kv: KeyValue; prev: KeyValue | null } {
    const key = encodeKey(item.key);
    const prev = this.#read(item.key, key);
    const isLeaseChanged = prev === null ? item.lease !== 0 : prev.lease !== item.lease;
    if (isLeaseChanged && item.lease !== 0) this.#checkLeaseRoom(item.key, item.lease);
    const kv = putKv(prev, item, context.revision);
    // A key a move copied here keeps the createRevision of the shard it came from, which may
    // be above this shard's revisions (see importKv); a key created here is created now.
    assert(prev !== null || kv.createRevision === kv.modRevision, "KvStore.put: created now");
    const written = this.#upsertKv.run(
      key,
      valueColumn(kv.value),
      kv.version,
      kv.createRevision,
      kv.modRevision,
      kv.lease,
      kvChecksum(key, kv),
    );
    assert(written.changes === 1, "KvStore.put: exactly one row is written");
    if (isLeaseChanged) {
      if (prev !== null && prev.lease !== 0) this.#adjustLeaseKeys(prev.lease, -1);
      if (kv.lease !== 0) this.#adjustLeaseKeys(kv.lease, 1);
    }
    this.#appendEvent(context, { type: EVENT_PUT, key, kv, prev });
    return { kv, prev };
  }

  /** Deletes `key` if present and returns what it held. */
  remove(context: EntryContext, key: string): KeyValue | null {
    const keyBytes = encodeKey(key);
    const prev = this.#read(key, keyBytes);
    if (prev === null) return null;
    const changes = this.#deleteKv.run(keyBytes).changes;
    assert(changes === 1, "KvStore.remove: exactly one row is deleted");
    if (prev.lease !== 0) this.#adjustLeaseKeys(prev.lease, -1);
    this.#appendEvent(context, { type: EVENT_DELETE, key: keyBytes, kv: null, prev });
    return prev;
  }

  /** How many keys lie within `bounds`, counting at most `countMax + 1`. */
  countRange(bounds: KeyBounds, countMax: number): number {
    const where = boundsWhere(bounds);
    const sql = `SELECT COUNT(*) AS n FROM (SELECT 1 FROM kv WHERE ${where.sql} LIMIT ?)`;
    return countOf(this.statement(sql).get(...where.params, countMax + 1));
  }

  /** Deletes every key within `bounds`, in one pass of SQL; returns how many. */
  removeRange(context: EntryContext, bounds: KeyBounds): number {
    const where = boundsWhere(bounds);
    this.statement(
      "UPDATE lease SET key_count = key_count - (SELECT COUNT(*) FROM kv " +
        `WHERE kv.lease = lease.id AND ${where.sql}) ` +
        `WHERE id IN (SELECT lease FROM kv WHERE lease != 0 AND ${where.sql})`,
    ).run(...where.params, ...where.params);
    return this.#removeWhere(context, where);
  }

  /** Deletes every key attached to lease `id`; returns how many. */
  removeLeaseKeys(context: EntryContext, id: number): number {
    assert(id > 0, "KvStore.removeLeaseKeys: a lease id is positive");
    const removed = this.#removeWhere(context, { sql: "lease = ? AND lease != 0", params: [id] });
    this.#adjustLeaseKeys(id, -removed);
    const lease = this.lease(id);
    assert(lease !== null && lease.keyCount === 0, "removeLeaseKeys: no key is left on it");
    return removed;
  }

  /** The lease `id`, or null when it does not exist. */
  lease(id: number): LeaseRow | null {
    const row = this.#selectLease.get(id);
    if (row === undefined) return null;
    const lease = {
      id: integer(row.id),
      ttlSeconds: integer(row.ttl_seconds),
      keyCount: integer(row.key_count),
    };
    assert(lease.id === id, "KvStore.lease: the row holds the requested lease");
    return lease;
  }

  /** How many leases of this shard exist (stand-ins of other shards' leases aside). */
  leaseCount(): number {
    const sql = "SELECT COUNT(*) AS n FROM lease WHERE id < ?";
    return countOf(this.statement(sql).get(FOREIGN_LEASE_BASE));
  }

  /** Creates lease `id`. */
  insertLease(lease: LeaseGrant): void {
    const sql = "INSERT INTO lease (id, ttl_seconds, key_count) VALUES (?, ?, 0)";
    this.statement(sql).run(lease.id, lease.ttlSeconds);
  }

  /** Deletes lease `id`, which must exist and hold no keys. */
  deleteLease(id: number): void {
    const changes = this.statement("DELETE FROM lease WHERE id = ? AND key_count = 0").run(id);
    assert(changes.changes === 1, "KvStore.deleteLease: an empty lease is deleted");
  }

  /** Every lease of this shard, by id (stand-ins of other shards' leases aside). */
  leases(): LeaseGrant[] {
    const sql = "SELECT id, ttl_seconds FROM lease WHERE id < ? ORDER BY id";
    const rows = this.statement(sql).all(FOREIGN_LEASE_BASE);
    return rows.map((row) => ({ id: integer(row.id), ttlSeconds: integer(row.ttl_seconds) }));
  }

  /** The keys attached to lease `id`, in key order. */
  leaseKeys(id: number): string[] {
    const sql = "SELECT key FROM kv WHERE lease = ? AND lease != 0 ORDER BY key";
    return this.statement(sql).all(id).map((row) => decodeKey(bytesOf(row.key)));
  }

  /**
   * The other shards holding keys of lease `id` of this shard, ascending (kept in the meta
   * record `lease-holders/<id>` while there are any).
   */
  leaseHolders(id: number): number[] {
    const text = this.getMeta(leaseHoldersName(id));
    if (text === null) return [];
    const holders: unknown = JSON.parse(text);
    assert(Array.isArray(holders), "KvStore.leaseHolders: a list of shards");
    return holders.map(integer);
  }

  /** Replaces the list of {@linkcode KvStore.leaseHolders}; an empty list removes it. */
  setLeaseHolders(id: number, holders: readonly number[]): void {
    assert(holders.every((shard, i) => i === 0 || holders[i - 1]! < shard), "holders ascend");
    if (holders.length > 0) return this.setMeta(leaseHoldersName(id), JSON.stringify(holders));
    this.statement("DELETE FROM meta WHERE name = ?").run(leaseHoldersName(id));
    this.#metaWrites++;
  }

  /**
   * Meta records written or removed through this store (rolled-back writes count too): a
   * change marker for the node (StateMachine.metaVersion), not a replicated value.
   */
  get metaWrites(): number {
    return this.#metaWrites;
  }

  /** The meta record `name`, or null. */
  getMeta(name: string): string | null {
    const row = this.statement("SELECT value, crc FROM meta WHERE name = ?").get(name);
    if (row === undefined) return null;
    assert(typeof row.value === "string", "KvStore.getMeta: meta values are text");
    verifyChecksum(row.crc, metaChecksum(name, row.value), `meta record "${name}"`);
    return row.value;
  }

  /** Writes the meta record `name`. */
  setMeta(name: string, value: string): void {
    const sql = "INSERT OR REPLACE INTO meta (name, value, crc) VALUES (?, ?, ?)";
    this.statement(sql).run(name, value, metaChecksum(name, value));
    this.#metaWrites++;
  }

  #read(key: string, keyBytes: Uint8Array): KeyValue | null {
    const row = this.#selectKv.get(keyBytes);
    if (row === undefined) return null;
    assert(equalBytes(bytesOf(row.key), keyBytes), "KvStore: the row holds the requested key");
    return kvFromRow(row, key);
  }

  #checkLeaseRoom(key: string, id: number): void {
    // Another shard's lease: its home checked that it exists, in the same transaction.
    if (isForeignLease(id) && this.lease(id) === null) this.insertLease({ id, ttlSeconds: 0 });
    const lease = this.lease(id);
    if (lease === null) {
      throw leaseError({ code: "lease_not_found", action: "attach", lease: id, key });
    }
    if (lease.keyCount >= LEASE_KEYS_MAX) {
      const keyCount = lease.keyCount;
      throw leaseError({ code: "limit_exceeded", action: "attach", lease: id, key, keyCount });
    }
  }

  #adjustLeaseKeys(id: number, delta: number): void {
    const changes = this.#adjustLease.run(delta, id).changes;
    assert(changes === 1, `KvStore: lease ${id} of a stored key exists`);
  }

  #appendEvent(context: EntryContext, event: EventRow): void {
    context.seq++;
    if (context.isHistoryDropped) return;
    const prev = event.prev;
    const bytes = WATCH_EVENT_OVERHEAD_BYTES + event.key.length +
      (event.kv === null ? 0 : valueByteLength(event.kv.value)) +
      (prev === null ? 0 : valueByteLength(prev.value));
    this.#insertEvent.run(
      context.revision,
      context.seq - 1,
      event.type,
      event.key,
      event.kv === null ? null : valueColumn(event.kv.value),
      event.kv?.version ?? null,
      event.kv?.createRevision ?? null,
      event.kv?.lease ?? null,
      prev === null ? null : valueColumn(prev.value),
      prev?.version ?? null,
      prev?.createRevision ?? null,
      prev?.modRevision ?? null,
      prev?.lease ?? null,
      bytes,
    );
    context.eventBytes += bytes;
  }

  #removeWhere(context: EntryContext, where: Where): number {
    const firstSeq = context.seq;
    const size = this.statement(
      `SELECT COUNT(*) AS n, COALESCE(SUM(${EVENT_BYTES_SQL}), 0) AS bytes FROM kv ` +
        `WHERE ${where.sql}`,
    ).get(...where.params);
    const isTooBig = context.seq + countOf(size) > context.historyLimits.eventsMax ||
      context.eventBytes + integer(size?.bytes) > context.historyLimits.bytesMax;
    if (isTooBig) context.isHistoryDropped = true;
    if (context.isHistoryDropped) {
      const changes = this.statement(`DELETE FROM kv WHERE ${where.sql}`).run(...where.params);
      assert(changes.changes === countOf(size), "KvStore: every counted key is deleted");
      context.seq += countOf(size);
      return countOf(size);
    }
    this.statement(
      `INSERT INTO history (${EVENT_COLUMNS}) ` +
        "SELECT ?, ? + row_number() OVER (ORDER BY key) - 1, " +
        `${EVENT_DELETE}, key, NULL, NULL, NULL, NULL, value, version, create_revision, ` +
        `mod_revision, lease, ${EVENT_BYTES_SQL} FROM kv WHERE ${where.sql}`,
    ).run(context.revision, firstSeq, ...where.params);
    const removed = Number(
      this.statement(`DELETE FROM kv WHERE ${where.sql}`).run(...where.params)
        .changes,
    );
    const added = this.statement(
      "SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS bytes FROM history " +
        "WHERE revision = ? AND seq >= ?",
    ).get(context.revision, firstSeq);
    assert(countOf(added) === removed, "KvStore: one history event per removed key");
    context.seq += removed;
    context.eventBytes += integer(added?.bytes);
    return removed;
  }

  /**
   * Runs `dryRun` inside a savepoint and undoes everything it wrote (kv rows, lease counts,
   * history events), also when it throws; returns what it returned. For a prepare that
   * computes the results of ops it only runs later. `dryRun` must write nothing in memory.
   */
  undone<T>(dryRun: () => T): T {
    assert(this.#db.isTransaction, "KvStore.undone: runs inside an entry's transaction");
    this.#db.exec("SAVEPOINT undone");
    try {
      return dryRun();
    } finally {
      this.#db.exec("ROLLBACK TO undone; RELEASE undone");
    }
  }

  /** A prepared statement for `sql`, cached for the life of the store. */
  statement(sql: string): StatementSync {
    let statement = this.#bulk.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#bulk.set(sql, statement);
    }
    return statement;
  }
}

function leaseHoldersName(id: number): string {
  return `lease-holders/${id}`;
}

/**
 * How a value is stored in a TEXT column: text as text (as always), and a binary value or
 * text holding U+0000 as a BLOB of its bytes (SQLite keeps a BLOB as given whatever the
 * column's affinity). As text, SQLite would replace lone surrogates with U+FFFD, and reads
 * text only up to its first NUL.
 */
export function valueColumn(value: string): string | Uint8Array {
  if (value.isWellFormed() && !value.includes("\u0000")) return value;
  return valueToBytes(value);
}

/** The value stored in a column by {@linkcode valueColumn}. */
export function valueOfColumn(column: unknown): string {
  if (typeof column === "string") return column;
  assert(column instanceof Uint8Array, "valueOfColumn: a value is text or a BLOB");
  return valueFromBytes(column);
}

interface EventRow {
  readonly type: number;
  readonly key: Uint8Array;
  readonly kv: KeyValue | null;
  readonly prev: KeyValue | null;
}

/** A SQL condition over `kv.key` and its parameters. */
export interface Where {
  readonly sql: string;
  readonly params: readonly Uint8Array[] | readonly number[];
}

/** The SQL condition for keys within `bounds`. */
export function boundsWhere(bounds: KeyBounds): { sql: string; params: Uint8Array[] } {
  if (bounds.upper === null) return { sql: "key >= ?", params: [bounds.lower] };
  return { sql: "key >= ? AND key < ?", params: [bounds.lower, bounds.upper] };
}

/**
 * Builds a {@linkcode KeyValue} from a kv row, checking every column, and the row checksum
 * when the row carries its value and checksum.
 *
 * @throws {AspenError} `storage_corrupt` when the checksum does not match.
 */
export function kvFromRow(row: Record<string, unknown>, key?: string): KeyValue {
  const kv: KeyValue = {
    key: key ?? decodeKey(bytesOf(row.key)),
    value: row.value === null || row.value === undefined ? "" : valueOfColumn(row.value),
    version: integer(row.version),
    createRevision: integer(row.create_revision),
    modRevision: integer(row.mod_revision),
    lease: integer(row.lease),
  };
  assert(kv.version >= 1, "kvFromRow: a stored key has a version");
  assert(kv.createRevision >= 1, "kvFromRow: a stored key has a create revision");
  if (row.crc !== undefined && row.value !== null) {
    verifyChecksum(row.crc, kvChecksum(bytesOf(row.key), kv), `key "${kv.key}"`);
  }
  return kv;
}

function equalBytes(left: Uint8Array, right: Uint8Array): boolean {
  if (left.length !== right.length) return false;
  for (let i = 0; i < left.length; i++) if (left[i] !== right[i]) return false;
  return true;
}

/**
 * Reads every kv and meta row and checks its checksum (at open and before a restore).
 *
 * @throws {AspenError} `storage_corrupt` at the first damaged row.
 */
export function verifyRows(db: DatabaseSync): void {
  defineKvChecksum(db);
  const damaged = db.prepare(
    "SELECT key FROM kv WHERE aspen_kv_crc(key, value, version, create_revision, " +
      "mod_revision, lease) != crc LIMIT 1",
  ).get();
  if (damaged !== undefined) throw damagedKey(damaged.key);
  verifyMetaRows(db);
}

/**
 * {@linkcode verifyRows} in steps of `stepKeys` keys in key order, awaiting `pause()` between
 * two steps: for a copy of a database that nothing else changes meanwhile.
 */
export async function verifyRowsInSteps(
  db: DatabaseSync,
  stepKeys: number,
  pause: () => Promise<void>,
): Promise<void> {
  assert(Number.isSafeInteger(stepKeys) && stepKeys >= 1, "verifyRowsInSteps: a step");
  defineKvChecksum(db);
  const last = db.prepare("SELECT key FROM kv WHERE key > ? ORDER BY key LIMIT 1 OFFSET ?");
  const damaged = db.prepare(
    "SELECT key FROM kv WHERE key > ? AND key <= ? AND aspen_kv_crc(key, value, version, " +
      "create_revision, mod_revision, lease) != crc LIMIT 1",
  );
  const rest = db.prepare(
    "SELECT key FROM kv WHERE key > ? AND aspen_kv_crc(key, value, version, " +
      "create_revision, mod_revision, lease) != crc LIMIT 1",
  );
  // Keys are non-empty BLOBs: every one sorts after the empty BLOB.
  let after: Uint8Array = new Uint8Array(0);
  for (;;) {
    const bound = last.get(after, stepKeys - 1);
    if (bound === undefined) {
      const found = rest.get(after);
      if (found !== undefined) throw damagedKey(found.key);
      break;
    }
    const until = bytesOf(bound.key);
    const found = damaged.get(after, until);
    if (found !== undefined) throw damagedKey(found.key);
    after = until;
    await pause();
  }
  verifyMetaRows(db);
}

/** Registers the SQL function that computes a kv row's checksum from its columns. */
function defineKvChecksum(db: DatabaseSync): void {
  // A SQL function keeps rows out of JavaScript objects: about 2 us per key.
  db.function(
    "aspen_kv_crc",
    { deterministic: true },
    function aspenKvCrc(key, value, version, createRevision, modRevision, lease) {
      assert(typeof value === "string" || value instanceof Uint8Array, "verifyRows: a value");
      const numbers = [integer(version), integer(createRevision), integer(modRevision)] as const;
      return kvRowChecksum(bytesOf(key), value, [...numbers, integer(lease)]);
    },
  );
}

function damagedKey(key: unknown): ReturnType<typeof damagedRow> {
  return damagedRow(`key "${new TextDecoder().decode(bytesOf(key))}"`);
}

function verifyMetaRows(db: DatabaseSync): void {
  for (const row of db.prepare("SELECT name, value, crc FROM meta").iterate()) {
    assert(typeof row.name === "string", "verifyRows: meta names are text");
    const name = row.name;
    verifyChecksum(row.crc, metaChecksum(name, String(row.value)), `meta record "${name}"`);
  }
}

/** Checks that a SQLite column holds a non-negative safe integer. */
export function integer(value: unknown): number {
  assert(typeof value === "number", "SQLite integer columns read as numbers");
  assert(Number.isSafeInteger(value) && value >= 0, "SQLite integer columns hold counts");
  return value;
}

/** Checks that a SQLite column holds a BLOB. */
export function bytesOf(value: unknown): Uint8Array {
  assert(value instanceof Uint8Array, "SQLite key columns read as bytes");
  return value;
}

function countOf(row: Record<string, unknown> | undefined): number {
  assert(row !== undefined, "a COUNT query returns a row");
  return integer(row.n);
}
