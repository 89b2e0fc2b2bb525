/**
 * Snapshots and the state hash of a state machine database (private to shard/).
 *
 * A snapshot is the database rebuilt by VACUUM in memory: every table is keyed without hidden
 * row ids, so replicas holding equal rows produce byte-identical snapshots whatever their batch
 * boundaries were. The state hash covers the replicated state only (keys, leases, meta, the
 * applied index and the optimistic transaction counters), not the watch history.
 */

import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { assert } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { storageFailureKind } from "./storage_failure.ts";
import { integer, kvFromRow, verifyRowsInSteps } from "./_kv_store.ts";
import { SNAPSHOT_CHECK_STEP_KEYS } from "./limits.ts";
import { metaChecksum, verifyChecksum } from "./_row_checksum.ts";
import { migrateSchema, quickCheck, readSys, verifyDatabase } from "./_schema.ts";
import { hashTxnRows } from "./_txn_store.ts";
import type { PendingSnapshot } from "./replica_options.ts";

const SQLITE_MAGIC = "SQLite format 3\u0000";
const HEADER_WRITE_VERSION_OFFSET = 18;
const HEADER_READ_VERSION_OFFSET = 19;
const HEADER_BYTES = 100;
const LEGACY_JOURNAL = 1;
/** Header counters that record how a file was produced, not what it holds. */
const HEADER_COUNTER_OFFSETS = [
  24, // file change counter
  40, // schema cookie
  92, // version-valid-for number (must equal the change counter)
];

/** Where SQLite's file header keeps what canonical snapshot bytes rewrite (byte offsets). */
interface HeaderLayout {
  readonly writeVersion: number;
  readonly readVersion: number;
  readonly legacyJournal: number;
  readonly headerBytes: number;
  readonly counters: readonly number[];
}

const HEADER_LAYOUT: HeaderLayout = {
  writeVersion: HEADER_WRITE_VERSION_OFFSET,
  readVersion: HEADER_READ_VERSION_OFFSET,
  legacyJournal: LEGACY_JOURNAL,
  headerBytes: HEADER_BYTES,
  counters: HEADER_COUNTER_OFFSETS,
};

/**
 * The canonical snapshot bytes of a database image (the pages `serialize()` copied): the image
 * rebuilt by VACUUM in memory, with the header counters that record how it was produced reset
 * (so that a snapshot of a restored snapshot has the same bytes). `image` is consumed.
 *
 * A worker runs this function from its source text, so it names nothing but its arguments.
 */
function canonicalBytes(
  Database: typeof DatabaseSync,
  image: Uint8Array,
  layout: HeaderLayout,
): Uint8Array {
  // SQLite cannot open an in-memory image in WAL mode: switch it to the rollback journal.
  image[layout.writeVersion] = layout.legacyJournal;
  image[layout.readVersion] = layout.legacyJournal;
  const memory = new Database(":memory:");
  try {
    memory.deserialize(image);
    memory.exec("VACUUM");
    const bytes = memory.serialize();
    const view = new DataView(bytes.buffer, bytes.byteOffset, layout.headerBytes);
    for (const offset of layout.counters) view.setUint32(offset, 1);
    return bytes;
  } finally {
    memory.close();
  }
}

/** The canonical bytes of the whole database behind `db`. */
export function snapshotBytes(db: DatabaseSync): Uint8Array {
  return canonicalBytes(DatabaseSync, db.serialize(), HEADER_LAYOUT);
}

/**
 * {@linkcode snapshotBytes} with the costly part off the event loop. A database in a file
 * (`path`) is checkpointed now, so that its file holds the state of this instant, and the
 * worker reads that file; SQLite's automatic checkpoints wait until it has, so the file does
 * not change under the worker while later applies go to the WAL. An in-memory database's
 * pages are copied now instead. The VACUUM runs in a worker of its own.
 *
 * Copying the pages on the loop (`serialize()`) and starting the worker held the event loop
 * 200-260 ms of CPU for a state of 30 MiB, 400-700 ms of wall time on a busy node
 * (bench/NOTES.md); the checkpoint writes what the WAL holds, work that SQLite's automatic
 * checkpoint does anyway.
 *
 * When the checkpoint cannot empty the WAL for a reason other than storage (a statement of
 * this connection still reading: "database table is locked"), the pages are copied now as for
 * an in-memory database: slower on the loop, but the snapshot is taken.
 *
 * @throws the checkpoint's storage error (a full disk, an I/O error): nothing was started.
 */
export function snapshotBytesInWorker(db: DatabaseSync, path: string): PendingSnapshot {
  const release = path === ":memory:" ? null : holdDatabaseFile(db);
  let worker: Worker;
  try {
    worker = new Worker(snapshotWorkerUrl(), { type: "module" });
  } catch (error) {
    release?.();
    throw error;
  }
  let cancel = () => {};
  const bytes = new Promise<Uint8Array>((resolve, reject) => {
    const finish = (error: Error | null, result?: Uint8Array) => {
      worker.terminate();
      release?.();
      if (error === null && result instanceof Uint8Array) resolve(result);
      else reject(error ?? new Error("the snapshot worker answered no bytes"));
    };
    worker.onmessage = (
      event: MessageEvent<{ isRead?: true; bytes?: Uint8Array; error?: string }>,
    ) => {
      if (event.data.isRead === true) return release?.();
      const error = event.data.error;
      finish(error === undefined ? null : new Error(error), event.data.bytes);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      finish(new Error(`the snapshot worker failed: ${event.message}`));
    };
    cancel = () => finish(new Error("the snapshot was cancelled"));
  });
  if (release !== null) {
    worker.postMessage({ path, layout: HEADER_LAYOUT });
  } else {
    const image = db.serialize();
    worker.postMessage({ image, layout: HEADER_LAYOUT }, [image.buffer as ArrayBuffer]);
  }
  return { bytes, cancel: () => cancel() };
}

/**
 * Writes every page of the WAL into the database file and stops automatic checkpoints, so
 * that the file holds the state of this instant until the returned function (idempotent) is
 * called: it turns them back on, unless the connection was closed meanwhile (a restore
 * replaced it, or the state machine closed).
 *
 * @returns null, with automatic checkpoints as they were, when the WAL could not be emptied
 *   for a reason other than storage (an open statement locks a table; a checkpoint left
 *   frames behind): the file does not hold the state, and the caller must copy the pages.
 * @throws a storage error of the checkpoint (a full disk, an I/O error).
 */
function holdDatabaseFile(db: DatabaseSync): (() => void) | null {
  const pages = Number(db.prepare("PRAGMA wal_autocheckpoint").get()?.wal_autocheckpoint);
  db.exec("PRAGMA wal_autocheckpoint = 0");
  let isHeld = true;
  const release = () => {
    if (!isHeld) return;
    isHeld = false;
    if (db.isOpen) db.exec(`PRAGMA wal_autocheckpoint = ${pages}`);
  };
  let result: Record<string, unknown> | undefined;
  try {
    result = db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get();
  } catch (error) {
    release();
    if (storageFailureKind(error) !== null) throw error;
    return null;
  }
  // In exclusive locking mode no reader holds a checkpoint back; should one stop short anyway,
  // the file is not the state of this instant.
  if (result?.busy !== 0 || result?.log !== 0) {
    release();
    return null;
  }
  return release;
}

let workerUrl: string | null = null;

/**
 * A URL of the worker's module, made from source text: it needs no file beside the
 * executable, so `deno compile` and the bundle carry it as they carry this module.
 */
function snapshotWorkerUrl(): string {
  if (workerUrl !== null) return workerUrl;
  const source = [
    'import { DatabaseSync } from "node:sqlite";',
    `const canonicalBytes = ${canonicalBytes.toString()};`,
    "self.onmessage = (event) => {",
    "  try {",
    "    const image = event.data.image ?? Deno.readFileSync(event.data.path);",
    "    self.postMessage({ isRead: true });",
    "    const bytes = canonicalBytes(DatabaseSync, image, event.data.layout);",
    "    self.postMessage({ bytes }, [bytes.buffer]);",
    "  } catch (error) {",
    "    self.postMessage({ error: String(error?.message ?? error) });",
    "  }",
    "};",
  ].join("\n");
  workerUrl = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  return workerUrl;
}

/**
 * Checks snapshot bytes before they replace a state machine.
 *
 * @returns the applied index the snapshot holds.
 * @throws {AspenError} `bad_request` when the bytes are not a healthy state machine database.
 */
export function checkSnapshot(bytes: Uint8Array): number {
  const magic = new TextDecoder().decode(bytes.subarray(0, SQLITE_MAGIC.length));
  if (bytes.length < HEADER_BYTES || magic !== SQLITE_MAGIC) {
    throw new AspenError("bad_request", "Cannot restore snapshot: it is not a SQLite database");
  }
  let memory: DatabaseSync | null = null;
  try {
    memory = openMemoryCopy(bytes);
    // A snapshot sent by a replica of the previous version is migrated like its files are.
    migrateSchema(memory);
    verifyDatabase(memory, { path: "snapshot", isVerified: false });
    return readSys(memory, "last_applied");
  } catch (error) {
    throw refusedSnapshot(error);
  } finally {
    memory?.close();
  }
}

/**
 * {@linkcode checkSnapshot} with the event loop let run between its parts: the copy and the
 * migration, SQLite's structure check, then the rows' checksums `stepKeys` keys at a time.
 * The checks are the same; they run on a private copy that nothing else changes.
 *
 * @returns the applied index the snapshot holds.
 * @throws {AspenError} `bad_request` when the bytes are not a healthy state machine database.
 */
export async function checkSnapshotInSteps(
  bytes: Uint8Array,
  stepKeys: number = SNAPSHOT_CHECK_STEP_KEYS,
): Promise<number> {
  const magic = new TextDecoder().decode(bytes.subarray(0, SQLITE_MAGIC.length));
  if (bytes.length < HEADER_BYTES || magic !== SQLITE_MAGIC) {
    throw new AspenError("bad_request", "Cannot restore snapshot: it is not a SQLite database");
  }
  const pause = () => new Promise<void>((resolve) => setImmediate(resolve));
  let memory: DatabaseSync | null = null;
  try {
    memory = openMemoryCopy(bytes);
    migrateSchema(memory);
    await pause();
    quickCheck(memory, "snapshot");
    await pause();
    // The structure is checked: what remains is the schema, the sys rows and every row.
    verifyDatabase(memory, { path: "snapshot", isVerified: true });
    await verifyRowsInSteps(memory, stepKeys, pause);
    return readSys(memory, "last_applied");
  } catch (error) {
    throw refusedSnapshot(error);
  } finally {
    memory?.close();
  }
}

/** The `bad_request` that refuses snapshot bytes which failed a check (`error`). */
function refusedSnapshot(error: unknown): AspenError {
  const detail = error instanceof Error ? error.message : String(error);
  return new AspenError("bad_request", `Cannot restore snapshot: ${detail}`, {}, { cause: error });
}

/**
 * Copies database bytes into a private in-memory database. The header is switched from WAL
 * to the rollback journal first: SQLite cannot open an in-memory image in WAL mode.
 */
export function openMemoryCopy(bytes: Uint8Array): DatabaseSync {
  const copy = bytes.slice();
  copy[HEADER_WRITE_VERSION_OFFSET] = LEGACY_JOURNAL;
  copy[HEADER_READ_VERSION_OFFSET] = LEGACY_JOURNAL;
  const memory = new DatabaseSync(":memory:");
  try {
    memory.deserialize(copy);
    return memory;
  } catch (error) {
    memory.close();
    throw error;
  }
}

/**
 * The sha-256 (hex) of a canonical dump of the replicated state.
 *
 * The dump is text lines: a version line, `last_applied`, `optimistic_txns` and `conflicts`
 * lines, then one `kv` line per key in key byte order, one `lease` line per lease by id
 * (with its key count), and one `meta` line per record by name, each a JSON array; then the
 * cross-shard transaction rows (`intent`, `txn`, `participant` lines, see
 * {@linkcode hashTxnRows}), of which a shard without any has none. The reference model in
 * tests/ writes the same dump (it has no cross-shard transactions).
 */
export function stateHash(db: DatabaseSync): string {
  const steps = stateHashSteps(db);
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/** Rows {@linkcode stateHashSteps} hashes between two of its pauses. */
export const STATE_HASH_ROWS_PER_STEP = 2_000;

/**
 * {@linkcode stateHash} in steps: the generator pauses after every STATE_HASH_ROWS_PER_STEP
 * rows and returns the hash, so that a caller can let other work run in between (the rows
 * must then be read inside one read transaction of a connection nobody else writes through).
 */
export function* stateHashSteps(db: DatabaseSync): Generator<void, string> {
  const hash = createHash("sha256");
  hash.update("aspen-state-v1\n");
  for (const name of ["last_applied", "optimistic_txns", "conflicts"] as const) {
    hash.update(`${name} ${readSys(db, name)}\n`);
  }
  let rows = 0;
  const kvs = db.prepare(
    "SELECT key, value, version, create_revision, mod_revision, lease, crc FROM kv ORDER BY key",
  );
  for (const row of kvs.iterate()) {
    const kv = kvFromRow(row);
    const fields = [kv.key, kv.value, kv.version, kv.createRevision, kv.modRevision, kv.lease];
    hash.update(`kv ${JSON.stringify(fields)}\n`);
    if (++rows % STATE_HASH_ROWS_PER_STEP === 0) yield;
  }
  const leases = db.prepare("SELECT id, ttl_seconds, key_count FROM lease ORDER BY id");
  for (const row of leases.iterate()) {
    const fields = [integer(row.id), integer(row.ttl_seconds), integer(row.key_count)];
    hash.update(`lease ${JSON.stringify(fields)}\n`);
    if (++rows % STATE_HASH_ROWS_PER_STEP === 0) yield;
  }
  for (const row of db.prepare("SELECT name, value, crc FROM meta ORDER BY name").iterate()) {
    assert(typeof row.name === "string", "stateHash: meta names are text");
    const value = String(row.value);
    verifyChecksum(row.crc, metaChecksum(row.name, value), `meta record "${row.name}"`);
    hash.update(`meta ${JSON.stringify([row.name, value])}\n`);
  }
  yield* hashTxnRows(db, hash);
  return hash.digest("hex");
}
