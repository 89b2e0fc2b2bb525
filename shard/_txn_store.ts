/**
 * Row-level access to the cross-shard transaction tables (private to shard/): the home shard's
 * transaction records, each participant's row with its stored branches, and the intents (one
 * lock per key, naming the holding transaction and its home shard).
 *
 * Intents live in memory. A prepared participant row names the keys its prepare locked
 * (`PrepareVerdict.locks`), and a row is prepared exactly as long as its intents last (the
 * prepare writes it, the resolve ends it), so the rows are the durable copy: the intents are
 * rebuilt from them whenever the tables are read again. That keeps two B-trees (a table and
 * its index by transaction) out of every prepare and every resolve: 4 of the ~10 pages each
 * participant's prepare and resolve wrote. Intents locked by a version before schema 3 are
 * rows of `txn_intent` (their participant rows name no locks); they are loaded with the rest
 * and deleted when their transaction resolves, and nothing writes that table any more.
 *
 * The store also keeps the number of decided records and resolved rows, so that retention
 * costs no count per entry (a COUNT over up to TXN_RECORDS_RETAIN rows on every resolve made
 * each one slower as the tables filled). The counts are exact, so every replica prunes at the
 * same entry; they and the intents are reloaded from the tables whenever SQLite may have undone
 * writes (a failed entry or batch).
 *
 * It also keeps the prepared participant rows in memory (up to TXN_PREPARED_CACHE_BYTES_MAX
 * bytes of their JSON), as the prepare wrote them, so that the resolve reads and parses nothing;
 * they are dropped when resolved and reloaded with the counts. Writers pass what they read
 * before (a row ends by an UPDATE of its ending columns only), so no write reads its row again.
 */

import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Hash } from "node:crypto";
import { assert } from "../raft/mod.ts";
import type {
  Conflict,
  TxnHolder,
  TxnOpResult,
  TxnParticipantRow,
  TxnParticipantState,
  TxnRecord,
  TxnStatus,
} from "./apply_result.ts";
import type { TxnBranch, TxnOp } from "./command.ts";
import { compareUtf8, decodeKey, encodeKey, type KeyBounds } from "./key_value.ts";
import { isLeaseLockKey } from "./foreign_lease.ts";
import { placeKey, type TenantShards } from "./tenants.ts";
import {
  TXN_PREPARED_CACHE_BYTES_MAX,
  TXN_RECORDS_DROP_BATCH,
  TXN_RECORDS_RETAIN,
} from "./limits.ts";
import { bytesOf, integer } from "./_kv_store.ts";
import type { LeaseEffect } from "./_txn_leases.ts";

/** A locked key and the transaction that holds it. */
export interface IntentEntry {
  readonly key: string;
  readonly holder: TxnHolder;
}

/** What a successful prepare found; a duplicate prepare returns it again. */
export interface PrepareVerdict {
  readonly compareSucceeded: boolean;
  readonly conflict: Conflict | null;
  /** What the commit does to leases (absent in rows written before lease steps: none). */
  readonly leases?: readonly LeaseEffect[];
  /**
   * The keys the prepare locked, in the order it locked them: the intents that last while the
   * row is prepared. Absent in rows prepared before schema 3, whose intents are `txn_intent`
   * rows.
   */
  readonly locks?: readonly string[];
  /**
   * The revision the prepare reserved (its own entry's): the commit-resolve writes the
   * branch's changes at it. Absent in rows prepared before one-round commits: those write at
   * the resolve's own revision.
   */
  readonly revision?: number;
  /**
   * Each branch's op results, computed by the prepare (absent without `revision`, or past
   * TXN_PREVIEW_BYTES_MAX).
   */
  readonly results?: BranchResults;
}

/** The op results of both branches of a participant, as its prepare computed them. */
export interface BranchResults {
  readonly success: readonly TxnOpResult[];
  readonly failure: readonly TxnOpResult[];
}

/** A participant row with everything the resolve needs. */
export interface ParticipantData extends TxnParticipantRow {
  readonly prepared: PrepareVerdict;
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
  /** The op results of the resolve; null while prepared. */
  readonly results: readonly TxnOpResult[] | null;
}

/** Rows hashed between two pauses of the state hash. */
const HASH_ROWS_PER_STEP = 2_000;
const RECORD_COLUMNS = "txn_id, status, home, participants, branch, deadline_ms, " +
  "created_revision, decided_revision, reason";
const PARTICIPANT_COLUMNS = "txn_id, home, state, prepared, success, failure, results, " +
  "resolved_revision";
/** The tables whose ended rows retention drops. */
type EndedTable = "txn_record" | "txn_participant";
const STATUSES: readonly TxnStatus[] = ["pending", "committed", "aborted"];
const STATES: readonly TxnParticipantState[] = ["prepared", "committed", "aborted"];

/** Typed statements over the transaction tables of one open database. */
export class TxnStore {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  /** Every live intent by key. */
  readonly #intents = new Map<string, TxnHolder>();
  /** The keys each transaction holds locked, by txnId. */
  readonly #keysOf = new Map<string, readonly string[]>();
  /** Transactions whose intents are `txn_intent` rows (locked before schema 3). */
  readonly #legacyTxns = new Set<string>();
  /** Decided records (decided_revision set), kept exact. */
  #decidedRecords = 0;
  /** Resolved participant rows (resolved_revision set), kept exact. */
  #resolvedRows = 0;
  /** Prepared rows by txnId, with the bytes of their JSON, within the cache's byte bound. */
  readonly #prepared = new Map<string, { readonly row: ParticipantData; readonly bytes: number }>();
  #preparedBytes = 0;
  /** The revision each prepared row reserved, by txnId (rows without one are left out). */
  readonly #reserved = new Map<string, number>();
  /** The oldest of #reserved (null: none), or undefined when it must be found again. */
  #oldestReserved: number | null | undefined = null;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.reload();
  }

  /** How many intents exist. */
  get intentCount(): number {
    return this.#intents.size;
  }

  /** Reads the counts and the intents from the tables again (after SQLite undid writes). */
  reload(): void {
    this.#intents.clear();
    this.#keysOf.clear();
    this.#legacyTxns.clear();
    for (const { key, holder } of legacyIntents(this.#db)) {
      this.#lock([key], holder);
      this.#legacyTxns.add(holder.txnId);
    }
    this.#decidedRecords = this.#countEnded("txn_record", "decided_revision");
    this.#resolvedRows = this.#countEnded("txn_participant", "resolved_revision");
    this.#reserved.clear();
    this.#oldestReserved = undefined;
    this.#prepared.clear();
    this.#preparedBytes = 0;
    const sql = `SELECT ${PARTICIPANT_COLUMNS} FROM txn_participant WHERE state = 'prepared'`;
    for (const row of this.#statement(sql).iterate()) {
      const participant = participantOf(row);
      this.#track(participant);
      this.#cache(participant, rowBytes(row));
      const locks = participant.prepared.locks ?? [];
      this.#lock(locks, { txnId: participant.txnId, home: participant.home });
    }
  }

  /**
   * The oldest revision a prepared row reserved, or null when none did: its writes will appear
   * at that revision, so no watcher may be given an event at or past it yet.
   */
  oldestReservedRevision(): number | null {
    if (this.#oldestReserved !== undefined) return this.#oldestReserved;
    let oldest: number | null = null;
    for (const revision of this.#reserved.values()) {
      if (oldest === null || revision < oldest) oldest = revision;
    }
    this.#oldestReserved = oldest;
    return oldest;
  }

  /** Keeps a prepared row in memory when it fits the cache's bound. */
  #cache(row: ParticipantData, bytes: number): void {
    assert(row.state === "prepared", "TxnStore: only prepared rows are cached");
    assert(!this.#prepared.has(row.txnId), "TxnStore: a row is cached once");
    if (this.#preparedBytes + bytes > TXN_PREPARED_CACHE_BYTES_MAX) return;
    this.#prepared.set(row.txnId, { row, bytes });
    this.#preparedBytes += bytes;
  }

  /** Keeps #reserved in step with a row written. */
  #track(row: ParticipantData): void {
    const revision = row.prepared.revision;
    if (row.state === "prepared" && revision !== undefined) {
      assert(Number.isSafeInteger(revision) && revision >= 1, "TxnStore: a reserved revision");
      this.#reserved.set(row.txnId, revision);
    } else if (!this.#reserved.delete(row.txnId)) {
      return;
    }
    this.#oldestReserved = undefined;
  }

  #countEnded(table: string, column: string): number {
    const sql = `SELECT COUNT(*) AS n FROM ${table} WHERE ${column} IS NOT NULL`;
    return integer(this.#statement(sql).get()?.n);
  }

  /** The transaction holding `key`, or null. */
  intentOf(key: string): TxnHolder | null {
    return this.#intents.get(key) ?? null;
  }

  /** The first of `keys` locked by a transaction other than `txnId` (null: any), or null. */
  firstLocked(keys: Iterable<string>, txnId: string | null): IntentEntry | null {
    if (this.#intents.size === 0) return null;
    for (const key of keys) {
      const holder = this.intentOf(key);
      if (holder !== null && holder.txnId !== txnId) return { key, holder };
    }
    return null;
  }

  /** The intents within `bounds`, in key order, at most `limit`. */
  intentsIn(bounds: KeyBounds, limit: number): IntentEntry[] {
    assert(Number.isSafeInteger(limit) && limit >= 1, "TxnStore.intentsIn: limit is positive");
    if (this.#intents.size === 0) return [];
    const found: IntentEntry[] = [];
    for (const [key, holder] of this.#intents) {
      if (isWithin(encodeKey(key), bounds)) found.push({ key, holder });
    }
    return found.sort((a, b) => compareUtf8(a.key, b.key)).slice(0, limit);
  }

  /**
   * The first locked key (in key order) attached to lease `id`, or null; `leaseOf` reads a
   * key's lease (0 when it has none or does not exist).
   */
  leaseIntent(id: number, leaseOf: (key: string) => number): IntentEntry | null {
    let first: IntentEntry | null = null;
    for (const [key, holder] of this.#intents) {
      if (isLeaseLockKey(key) || leaseOf(key) !== id) continue;
      if (first === null || compareUtf8(key, first.key) < 0) first = { key, holder };
    }
    return first;
  }

  /**
   * How many intents lie on user keys (not the U+0000 lock keys of leases) whose shard among
   * `count` shards is not `shard`.
   */
  intentsElsewhere(shard: number, count: number, tenants?: TenantShards): number {
    let elsewhere = 0;
    for (const key of this.#intents.keys()) {
      if (!isLeaseLockKey(key) && placeKey(key, count, tenants) !== shard) elsewhere++;
    }
    return elsewhere;
  }

  /** Locks `keys` for `holder` in memory (see the module doc for where they are durable). */
  #lock(keys: readonly string[], holder: TxnHolder): void {
    for (const key of keys) {
      const held = this.#intents.get(key);
      assert(held === undefined, "TxnStore: a key is locked by one transaction at a time");
      this.#intents.set(key, holder);
    }
    const before = this.#keysOf.get(holder.txnId) ?? [];
    this.#keysOf.set(holder.txnId, [...before, ...keys]);
  }

  /** Releases every intent of `txnId` (the rows of an intent locked before schema 3 too). */
  #unlock(txnId: string): void {
    for (const key of this.#keysOf.get(txnId) ?? []) this.#intents.delete(key);
    this.#keysOf.delete(txnId);
    if (!this.#legacyTxns.delete(txnId)) return;
    this.#statement("DELETE FROM txn_intent WHERE txn_id = ?").run(txnId);
  }

  /** The record of `txnId`, or null. */
  record(txnId: string): TxnRecord | null {
    const sql = `SELECT ${RECORD_COLUMNS} FROM txn_record WHERE txn_id = ?`;
    const row = this.#statement(sql).get(txnId);
    return row === undefined ? null : recordOf(row);
  }

  /**
   * At most `limit` records with `status`: pending ones oldest first (by deadline, then id),
   * decided ones newest first (by the revision that decided them, then id).
   */
  records(status: TxnStatus, limit: number): TxnRecord[] {
    assert(Number.isSafeInteger(limit) && limit >= 1, "TxnStore.records: limit is positive");
    const order = status === "pending"
      ? "deadline_ms, txn_id"
      : "decided_revision DESC, txn_id DESC";
    const sql = `SELECT ${RECORD_COLUMNS} FROM txn_record WHERE status = ? ORDER BY ${order} ` +
      "LIMIT ?";
    const rows = this.#statement(sql).all(status, limit);
    assert(rows.length <= limit, "TxnStore.records: at most limit rows");
    return rows.map(recordOf);
  }

  /** Creates the record of a transaction that has none. */
  insertRecord(record: TxnRecord): void {
    assert(record.status !== "pending" || record.decidedRevision === null, "pending: undecided");
    this.#statement(`INSERT INTO txn_record (${RECORD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)`).run(
      record.txnId,
      record.status,
      record.home,
      JSON.stringify(record.participants),
      record.branch,
      record.deadlineMs,
      record.createdRevision,
      record.decidedRevision,
      record.reason,
    );
    this.#decidedRecords += Number(record.decidedRevision !== null);
  }

  /** Decides the pending record `pending` (read by the caller in this entry). */
  decideRecord(
    pending: TxnRecord,
    decision: Pick<TxnRecord, "status" | "branch" | "decidedRevision" | "reason">,
  ): void {
    assert(pending.status === "pending", "TxnStore.decideRecord: the record was pending");
    assert(decision.status !== "pending", "TxnStore.decideRecord: it is decided");
    assert(decision.decidedRevision !== null, "TxnStore.decideRecord: at a revision");
    const changes = this.#statement(
      "UPDATE txn_record SET status = ?, branch = ?, decided_revision = ?, reason = ? " +
        "WHERE txn_id = ? AND decided_revision IS NULL",
    ).run(
      decision.status,
      decision.branch,
      decision.decidedRevision,
      decision.reason,
      pending.txnId,
    ).changes;
    assert(Number(changes) === 1, "TxnStore.decideRecord: the pending record is decided");
    this.#decidedRecords++;
  }

  /** The participant row of `txnId`, or null. */
  participant(txnId: string): ParticipantData | null {
    const cached = this.#prepared.get(txnId);
    if (cached !== undefined) return cached.row;
    const sql = `SELECT ${PARTICIPANT_COLUMNS} FROM txn_participant WHERE txn_id = ?`;
    const row = this.#statement(sql).get(txnId);
    return row === undefined ? null : participantOf(row);
  }

  /**
   * Creates the row of a transaction that has none on this shard; a prepared row locks the keys
   * its verdict names (`prepared.locks`), none of them locked by another transaction.
   */
  insertParticipant(row: ParticipantData): void {
    assert((row.state === "prepared") === (row.resolvedRevision === null), "resolved iff ended");
    assert((row.state === "prepared") === (row.results === null), "results iff resolved");
    assert(row.state === "prepared" || row.prepared.locks === undefined, "ended rows lock none");
    assert(!this.#keysOf.has(row.txnId), "TxnStore.insertParticipant: a new transaction");
    const columns = [
      JSON.stringify(row.prepared),
      JSON.stringify(row.success),
      JSON.stringify(row.failure),
    ] as const;
    this.#statement(
      `INSERT INTO txn_participant (${PARTICIPANT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)`,
    ).run(
      row.txnId,
      row.home,
      row.state,
      ...columns,
      row.results === null ? null : JSON.stringify(row.results),
      row.resolvedRevision,
    );
    this.#resolvedRows += Number(row.resolvedRevision !== null);
    this.#track(row);
    if (row.state !== "prepared") return;
    this.#cache(row, columns.join("").length);
    this.#lock(row.prepared.locks ?? [], { txnId: row.txnId, home: row.home });
  }

  /** Ends the prepared row `prepared` (read by the caller in this entry): releases its intents. */
  endParticipant(
    prepared: ParticipantData,
    end: Pick<ParticipantData, "state" | "resolvedRevision" | "results">,
  ): void {
    assert(prepared.state === "prepared", "TxnStore.endParticipant: the row was prepared");
    assert(end.state !== "prepared", "TxnStore.endParticipant: it ends");
    assert(end.resolvedRevision !== null, "TxnStore.endParticipant: at a revision");
    assert(end.results !== null, "TxnStore.endParticipant: with its results");
    const changes = this.#statement(
      "UPDATE txn_participant SET state = ?, results = ?, resolved_revision = ? " +
        "WHERE txn_id = ? AND resolved_revision IS NULL",
    ).run(end.state, JSON.stringify(end.results), end.resolvedRevision, prepared.txnId).changes;
    assert(Number(changes) === 1, "TxnStore.endParticipant: the prepared row ends");
    this.#unlock(prepared.txnId);
    this.#resolvedRows++;
    this.#track({ ...prepared, ...end });
    const cached = this.#prepared.get(prepared.txnId);
    if (cached === undefined) return;
    this.#prepared.delete(prepared.txnId);
    this.#preparedBytes -= cached.bytes;
    assert(this.#preparedBytes >= 0, "TxnStore.endParticipant: cached bytes stay counted");
  }

  /**
   * Drops the oldest decided records and resolved participant rows past TXN_RECORDS_RETAIN once
   * a table holds more than TXN_RECORDS_DROP_BATCH of them (by the revision that ended them,
   * then by id: the same rows on every replica, since the counts are exact). Pending records
   * and prepared rows are never dropped.
   */
  retain(): void {
    this.#decidedRecords = this.#drop("txn_record", "decided_revision", this.#decidedRecords);
    this.#resolvedRows = this.#drop("txn_participant", "resolved_revision", this.#resolvedRows);
  }

  /** Drops the oldest ended rows of `table` down to TXN_RECORDS_RETAIN when due; the count left. */
  #drop(table: EndedTable, column: string, count: number): number {
    if (count <= TXN_RECORDS_RETAIN + TXN_RECORDS_DROP_BATCH) return count;
    const excess = count - TXN_RECORDS_RETAIN;
    const changes = this.#statement(
      `DELETE FROM ${table} WHERE txn_id IN (SELECT txn_id FROM ${table} ` +
        `WHERE ${column} IS NOT NULL ORDER BY ${column}, txn_id LIMIT ?)`,
    ).run(excess).changes;
    assert(Number(changes) === excess, "TxnStore.retain: the oldest ended rows are dropped");
    return TXN_RECORDS_RETAIN;
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
}

/**
 * Hashes the transaction rows for the state hash: `intent` lines by key (the legacy rows and
 * the locks of prepared rows, as {@linkcode TxnStore} rebuilds them), `txn` lines (records) and
 * `participant` lines by id, each a JSON array; nothing when the tables are empty.
 */
export function* hashTxnRows(db: DatabaseSync, hash: Hash): Generator<void, void> {
  let rows = 0;
  const intents = legacyIntents(db);
  const preparedSql = `SELECT ${PARTICIPANT_COLUMNS} FROM txn_participant WHERE state = 'prepared'`;
  for (const row of db.prepare(preparedSql).iterate()) {
    const { txnId, home, prepared } = participantOf(row);
    for (const key of prepared.locks ?? []) intents.push({ key, holder: { txnId, home } });
  }
  for (const { key, holder } of intents.sort((a, b) => compareUtf8(a.key, b.key))) {
    hash.update(`intent ${JSON.stringify([key, holder.txnId, holder.home])}\n`);
    if (++rows % HASH_ROWS_PER_STEP === 0) yield;
  }
  const records = db.prepare(`SELECT ${RECORD_COLUMNS} FROM txn_record ORDER BY txn_id`);
  for (const row of records.iterate()) {
    hash.update(`txn ${JSON.stringify(Object.values(recordOf(row)))}\n`);
    if (++rows % HASH_ROWS_PER_STEP === 0) yield;
  }
  const sql = `SELECT ${PARTICIPANT_COLUMNS} FROM txn_participant ORDER BY txn_id`;
  for (const row of db.prepare(sql).iterate()) {
    hash.update(`participant ${JSON.stringify(Object.values(participantOf(row)))}\n`);
    if (++rows % HASH_ROWS_PER_STEP === 0) yield;
  }
}

/** The intents that are rows of `txn_intent` (locked before schema 3), in key order. */
function legacyIntents(db: DatabaseSync): IntentEntry[] {
  const rows = db.prepare("SELECT key, txn_id, home FROM txn_intent ORDER BY key").all();
  return rows.map((row) => ({ key: decodeKey(bytesOf(row.key)), holder: holderOf(row) }));
}

/** Compares key bytes as SQLite orders BLOBs (memcmp, then the shorter first): for bounds. */
function compareBytes(left: Uint8Array, right: Uint8Array): number {
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    if (left[i] !== right[i]) return left[i]! - right[i]!;
  }
  return left.length - right.length;
}

function isWithin(bytes: Uint8Array, bounds: KeyBounds): boolean {
  if (compareBytes(bytes, bounds.lower) < 0) return false;
  return bounds.upper === null || compareBytes(bytes, bounds.upper) < 0;
}

/** The bytes of a participant row's JSON columns, as the cache counts them. */
function rowBytes(row: Record<string, unknown>): number {
  return String(row.prepared).length + String(row.success).length + String(row.failure).length;
}

function holderOf(row: Record<string, unknown>): TxnHolder {
  assert(typeof row.txn_id === "string", "txn_intent: txn ids are text");
  return { txnId: row.txn_id, home: shardOf(row.home) };
}

function recordOf(row: Record<string, unknown>): TxnRecord {
  assert(typeof row.txn_id === "string", "txn_record: txn ids are text");
  const status = STATUSES.find((status) => status === row.status);
  assert(status !== undefined, "txn_record: the status is known");
  const participants: unknown = JSON.parse(String(row.participants));
  assert(Array.isArray(participants), "txn_record: participants are a list");
  const record: TxnRecord = {
    txnId: row.txn_id,
    status,
    home: shardOf(row.home),
    participants: participants.map(integer),
    branch: branchOf(row.branch),
    deadlineMs: integer(row.deadline_ms),
    createdRevision: integer(row.created_revision),
    decidedRevision: row.decided_revision === null ? null : integer(row.decided_revision),
    reason: String(row.reason),
  };
  assert((status === "pending") === (record.decidedRevision === null), "decided iff not pending");
  return record;
}

function participantOf(row: Record<string, unknown>): ParticipantData {
  assert(typeof row.txn_id === "string", "txn_participant: txn ids are text");
  const state = STATES.find((state) => state === row.state);
  assert(state !== undefined, "txn_participant: the state is known");
  return {
    txnId: row.txn_id,
    home: shardOf(row.home),
    state,
    resolvedRevision: row.resolved_revision === null ? null : integer(row.resolved_revision),
    prepared: JSON.parse(String(row.prepared)),
    success: JSON.parse(String(row.success)),
    failure: JSON.parse(String(row.failure)),
    results: row.results === null ? null : JSON.parse(String(row.results)),
  };
}

function branchOf(value: unknown): TxnBranch | null {
  if (value === null) return null;
  assert(value === "success" || value === "failure", "txn_record: the branch is known");
  return value;
}

/** A shard id column: -1 when unknown (see TxnRecord.home). */
function shardOf(value: unknown): number {
  assert(typeof value === "number" && Number.isSafeInteger(value), "a shard id is an integer");
  assert(value >= -1, "a shard id is -1 (unknown) or more");
  return value;
}
