/**
 * The SQLite schema of `state-machine.db`, and opening it safely (private to shard/).
 *
 * Every table is WITHOUT ROWID or keyed by an INTEGER PRIMARY KEY, so the file holds no hidden
 * row ids: two replicas with equal rows have equal files after VACUUM, which keeps snapshots
 * deterministic. A file that is not a database, fails `quick_check`, or holds an unexpected
 * schema is reported as `storage_corrupt` and never served.
 */

import { DatabaseSync } from "node:sqlite";
import { assert } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { storageFailureKind } from "./storage_failure.ts";
import { verifyRows } from "./_kv_store.ts";
import { STATE_MACHINE_WAL_CHECKPOINT_PAGES } from "./limits.ts";

/**
 * The schema version stored in `sys`; bump it with a migration when the schema changes.
 * Version 2 added the cross-shard transaction tables ({@linkcode migrateSchema}). Version 3
 * keeps the same tables but no longer writes `txn_intent`: a prepared participant row names
 * the keys it locks (`PrepareVerdict.locks`), and the intents are rebuilt from those rows (see
 * _txn_store.ts). A version 2 file's intents stay rows until their transactions resolve. A
 * node of version 2 refuses a version 3 file (its intents would be invisible to it).
 */
export const SCHEMA_VERSION = 3;

/** The names of the integer rows of the `sys` table. */
export type SysName =
  | "schema_version"
  | "last_applied"
  | "compacted_revision"
  | "optimistic_txns"
  | "conflicts";

/** Sys rows and their values in a new database. */
const SYS_INITIAL: readonly [SysName, number][] = [
  ["schema_version", SCHEMA_VERSION],
  ["last_applied", 0],
  ["compacted_revision", 0],
  ["optimistic_txns", 0],
  ["conflicts", 0],
];

/** The exact CREATE statements of version 1, as SQLite keeps them in sqlite_schema. */
const SCHEMA_V1: ReadonlyMap<string, string> = new Map([
  [
    "kv",
    "CREATE TABLE kv (key BLOB PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL, " +
    "create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL, lease INTEGER NOT NULL, " +
    "crc INTEGER NOT NULL) WITHOUT ROWID",
  ],
  ["kv_by_lease", "CREATE INDEX kv_by_lease ON kv (lease, key) WHERE lease != 0"],
  [
    "lease",
    "CREATE TABLE lease (id INTEGER PRIMARY KEY, ttl_seconds INTEGER NOT NULL, " +
    "key_count INTEGER NOT NULL)",
  ],
  [
    "meta",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL, crc INTEGER NOT NULL) " +
    "WITHOUT ROWID",
  ],
  ["sys", "CREATE TABLE sys (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID"],
  [
    "history",
    "CREATE TABLE history (revision INTEGER NOT NULL, seq INTEGER NOT NULL, " +
    "type INTEGER NOT NULL, key BLOB NOT NULL, value TEXT, version INTEGER, " +
    "create_revision INTEGER, lease INTEGER, prev_value TEXT, prev_version INTEGER, " +
    "prev_create_revision INTEGER, prev_mod_revision INTEGER, prev_lease INTEGER, " +
    "bytes INTEGER NOT NULL, PRIMARY KEY (revision, seq)) WITHOUT ROWID",
  ],
]);

/**
 * The tables version 2 added: cross-shard transaction intents (one lock per key; written only
 * by version 2, see SCHEMA_VERSION), the home
 * shard's transaction records, and each participant's row (its branches as JSON, and after
 * the resolve the op results as JSON). The partial indexes order the resolved ones for
 * retention (TXN_RECORDS_RETAIN).
 */
const SCHEMA_TXN: ReadonlyMap<string, string> = new Map([
  [
    "txn_intent",
    "CREATE TABLE txn_intent (key BLOB PRIMARY KEY, txn_id TEXT NOT NULL, " +
    "home INTEGER NOT NULL) WITHOUT ROWID",
  ],
  ["txn_intent_by_txn", "CREATE INDEX txn_intent_by_txn ON txn_intent (txn_id, key)"],
  [
    "txn_record",
    "CREATE TABLE txn_record (txn_id TEXT PRIMARY KEY, status TEXT NOT NULL, " +
    "home INTEGER NOT NULL, participants TEXT NOT NULL, branch TEXT, " +
    "deadline_ms INTEGER NOT NULL, created_revision INTEGER NOT NULL, " +
    "decided_revision INTEGER, reason TEXT NOT NULL) WITHOUT ROWID",
  ],
  [
    "txn_record_by_decided",
    "CREATE INDEX txn_record_by_decided ON txn_record (decided_revision, txn_id) " +
    "WHERE decided_revision IS NOT NULL",
  ],
  [
    "txn_participant",
    "CREATE TABLE txn_participant (txn_id TEXT PRIMARY KEY, home INTEGER NOT NULL, " +
    "state TEXT NOT NULL, prepared TEXT NOT NULL, success TEXT NOT NULL, " +
    "failure TEXT NOT NULL, results TEXT, resolved_revision INTEGER) WITHOUT ROWID",
  ],
  [
    "txn_participant_by_resolved",
    "CREATE INDEX txn_participant_by_resolved ON txn_participant (resolved_revision, txn_id) " +
    "WHERE resolved_revision IS NOT NULL",
  ],
]);

/** Every CREATE statement of the current version, keyed by name. */
const SCHEMA: ReadonlyMap<string, string> = new Map([...SCHEMA_V1, ...SCHEMA_TXN]);

/** How hard SQLite syncs commits (the state machine can be rebuilt from the Raft log). */
export type Synchronous = "normal" | "full";

/** What {@linkcode verifyDatabase} checks. */
export interface VerifyOptions {
  /** Named in errors. */
  readonly path: string;
  /**
   * True for a file whose pages and rows were checked a moment ago (a restore's new file, from
   * bytes just checked; or the file it failed to replace, open and in use until then): only
   * the schema and the sys rows are checked. Otherwise `quick_check` and every row's checksum
   * run too.
   */
  readonly isVerified: boolean;
}

/** How to open a state machine database. */
export interface OpenOptions extends VerifyOptions {
  readonly synchronous: Synchronous;
}

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

/**
 * Opens (creating if needed) a state machine database and checks it.
 *
 * The connection takes an exclusive lock, so a second process cannot open the same file, and
 * uses WAL. `":memory:"` opens a private in-memory database (for tests and snapshot checks).
 *
 * @throws {AspenError} `storage_corrupt` when the file is not a healthy state machine database;
 * `no_space` or `storage_error` when it cannot be read or prepared.
 */
export function openDatabase(options: OpenOptions): DatabaseSync {
  const { path, synchronous } = options;
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    if (path !== ":memory:") {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(`PRAGMA wal_autocheckpoint = ${STATE_MACHINE_WAL_CHECKPOINT_PAGES}`);
    }
    db.exec(`PRAGMA synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`);
    db.exec("PRAGMA foreign_keys = OFF");
    prepareSchema(db, options);
    return db;
  } catch (error) {
    db.close();
    if (error instanceof AspenError) throw error;
    if (isLockError(error)) throw error;
    const failure = storageFailureKind(error);
    if (failure !== null) {
      // A full disk or an I/O error says nothing about the file's health.
      throw new AspenError(
        failure,
        `Cannot open state machine "${path}": ${describe(error)}`,
        { path },
        { cause: error },
      );
    }
    throw new AspenError(
      "storage_corrupt",
      `Cannot open state machine "${path}": ${describe(error)}`,
      { path },
      { cause: error },
    );
  }
}

/** Creates the schema in an empty database, or verifies the schema of an existing one. */
function prepareSchema(db: DatabaseSync, options: OpenOptions): void {
  const names = db.prepare("SELECT name FROM sqlite_schema").all();
  if (names.length === 0) {
    createSchema(db);
    return;
  }
  migrateSchema(db);
  verifyDatabase(db, options);
}

/**
 * Brings a database written by an older version up to SCHEMA_VERSION, in one transaction:
 * version 1 gains the (empty) cross-shard transaction tables; versions 1 and 2 then take the
 * current number (version 2's intent rows stay valid). A database of the current version is
 * left alone; anything else is left for {@linkcode verifyDatabase} to refuse.
 */
export function migrateSchema(db: DatabaseSync): void {
  const sys = db.prepare("SELECT name FROM sqlite_schema WHERE name = 'sys'").get();
  if (sys === undefined) return;
  const row = db.prepare("SELECT value FROM sys WHERE name = 'schema_version'").get();
  if (row?.value !== 1 && row?.value !== 2) return;
  db.exec("BEGIN");
  try {
    if (row.value === 1) { for (const sql of SCHEMA_TXN.values()) db.exec(sql); }
    db.prepare("UPDATE sys SET value = ? WHERE name = 'schema_version'").run(SCHEMA_VERSION);
    db.exec("COMMIT");
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
  assert(readSys(db, "schema_version") === SCHEMA_VERSION, "migrateSchema: version is current");
}

function createSchema(db: DatabaseSync): void {
  db.exec("BEGIN");
  for (const sql of SCHEMA.values()) db.exec(sql);
  const insert = db.prepare("INSERT INTO sys (name, value) VALUES (?, ?)");
  for (const [name, value] of SYS_INITIAL) insert.run(name, value);
  db.exec("COMMIT");
}

/**
 * Checks page integrity, the exact schema and the sys rows.
 *
 * @throws {AspenError} `storage_corrupt` on any mismatch.
 */
export function verifyDatabase(db: DatabaseSync, options: VerifyOptions): void {
  const path = options.path;
  if (!options.isVerified) quickCheck(db, path);
  const rows = db.prepare("SELECT name, sql FROM sqlite_schema ORDER BY name").all();
  if (rows.length !== SCHEMA.size) throw corrupt(path, `it holds ${rows.length} schema objects`);
  for (const row of rows) {
    const expected = SCHEMA.get(String(row.name));
    if (expected !== row.sql) throw corrupt(path, `unexpected schema object "${row.name}"`);
  }
  const sys = db.prepare("SELECT name, value FROM sys ORDER BY name").all();
  if (sys.length !== SYS_INITIAL.length) throw corrupt(path, `it holds ${sys.length} sys rows`);
  for (const [name] of SYS_INITIAL) {
    const value = sys.find((row) => row.name === name)?.value;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw corrupt(path, `sys row "${name}" is ${String(value)}`);
    }
  }
  const version = sys.find((row) => row.name === "schema_version")?.value;
  if (version !== SCHEMA_VERSION) throw corrupt(path, `schema version is ${String(version)}`);
  if (options.isVerified) return;
  try {
    verifyRows(db);
  } catch (error) {
    if (error instanceof AspenError) throw corrupt(path, error.message);
    throw error;
  }
}

/**
 * SQLite's check of the pages' structure (`PRAGMA quick_check`).
 *
 * @throws {AspenError} `storage_corrupt` naming what it reports.
 */
export function quickCheck(db: DatabaseSync, path: string): void {
  const check = db.prepare("PRAGMA quick_check").all();
  const verdict = check.length === 1 ? check[0]?.quick_check : undefined;
  if (verdict !== "ok") {
    throw corrupt(path, `quick_check reports ${JSON.stringify(check.slice(0, 3))}`);
  }
}

/** Reads one sys row, asserting it is a non-negative safe integer. */
export function readSys(db: DatabaseSync, name: SysName): number {
  const row = db.prepare("SELECT value FROM sys WHERE name = ?").get(name);
  const value = row?.value;
  assert(typeof value === "number", `sys row "${name}" exists`);
  assert(Number.isSafeInteger(value) && value >= 0, `sys row "${name}" is a count`);
  return value;
}

function corrupt(path: string, detail: string): AspenError {
  return new AspenError(
    "storage_corrupt",
    `Cannot open state machine "${path}": ${detail}`,
    { path },
  );
}

function isLockError(error: unknown): boolean {
  if (typeof error !== "object" || error === null || !("errcode" in error)) return false;
  return error.errcode === SQLITE_BUSY || error.errcode === SQLITE_LOCKED;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
