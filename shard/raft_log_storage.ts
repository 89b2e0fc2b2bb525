/**
 * The durable Raft log of one replica in SQLite (`raft-log.db`, `node:sqlite`, WAL mode).
 *
 * Tables: `entries` (index, term, type, data), `state` (one row: hard state plus the compacted
 * prefix's last index and term) and `snapshot` (one row: metadata, and the data: in a file of
 * its own beside the log, which the row names with its length and CRC-32, see
 * _snapshot_file.ts; inline in the row for an in-memory log, and in files written before
 * snapshot files). The data of a snapshot in a file is not kept in memory: it is read and
 * checked again whenever it is asked for (a follower needs it, a restart restores from it).
 *
 * Durability: {@linkcode SqliteLogStorage.persist} writes everything of one Ready in ONE
 * transaction. When the Ready says `mustSync`, the commit runs with `synchronous = FULL`, so the
 * WAL is fsynced before `persist` returns; otherwise with `synchronous = NORMAL`, which survives
 * a process crash but may lose the last commits on power loss. That is what Raft allows: the
 * commit index is volatile state, which a replica learns again from its leader (and the state
 * machine's applied index, never past it, restores a floor: see Raft's `config.applied`). So a
 * Ready that changes nothing but the commit index (the leader's, once its followers answered;
 * a follower's on a heartbeat) writes nothing at all: the new commit index is kept in memory
 * and written with the next transaction, so the file's may lag by those Readies. That saves a
 * transaction per write at low load. Because the WAL is sequential, a later FULL commit also
 * makes every earlier NORMAL one durable. Snapshots and compaction always commit with FULL.
 * A snapshot this replica made ({@linkcode SqliteLogStorage.createSnapshot}) has its file
 * written and synced off the event loop; its row is committed once the file is durable.
 *
 * With `isFlushDeferred`, `persist` commits with NORMAL even when `mustSync`, and returns a
 * promise of {@linkcode SqliteLogStorage.flush}, which makes the log durable by fsyncing the WAL
 * file on Deno's blocking thread pool: `node:sqlite` is synchronous, and a FULL commit holds the
 * event loop (and every other shard of the node) for the whole fsync. The WAL holds every
 * commit since the last checkpoint, and a checkpoint (at commit, in this thread) syncs the WAL
 * and the database before it lets the WAL restart, so syncing the WAL file makes every
 * committed transaction durable.
 *
 * Everything read back is validated (safe non-negative integers, contiguous indexes,
 * non-decreasing terms, known entry types); a violation is reported as
 * `AspenError("storage_corrupt")`, never silently repaired.
 *
 * A write that fails (a full disk, an I/O error) leaves nothing behind: its transaction is
 * rolled back, the in-memory state is reloaded from the file, and it throws `no_space` or
 * `storage_error`, so the caller may try the same write again later (see storage_failure.ts).
 * A failed fsync is never retried: it throws a {@linkcode FatalStorageError}, and so does an
 * I/O error in a commit that syncs (SQLite reports a failed fsync as a plain I/O error).
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  assert,
  bootstrapEntries,
  bootstrapHardState,
  checkAppendable,
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  initialSnapshot,
} from "../raft/mod.ts";
import type {
  ConfState,
  Entry,
  HardState,
  InitialState,
  LogIndex,
  ReplicaId,
  Snapshot,
  SnapshotMetadata,
  Term,
  WritableLogStorage,
} from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import {
  describeStorageFailure,
  FatalStorageError,
  type StorageFailureKind,
  storageFailureKind,
  syncFailedError,
} from "./storage_failure.ts";
import { EntryCache } from "./_entry_cache.ts";
import {
  describeSnapshotFile,
  newSnapshotFileName,
  readSnapshotFile,
  removeSnapshotFile,
  removeStaleSnapshotFiles,
  type SnapshotFile,
  writeSnapshotFile,
  writeSnapshotFileSync,
} from "./_snapshot_file.ts";

/** The writes of one Ready, persisted together. */
export interface ReadyWrites {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
}

/** How to open a log storage. */
/** A received snapshot and the file stageSnapshot() writes its data to. */
interface StagedSnapshot {
  readonly snapshot: Snapshot;
  readonly file: SnapshotFile;
}

export interface SqliteLogStorageOptions {
  /** The path of the database file (conventionally `<dir>/raft-log.db`). */
  readonly path: string;
  /** For a founding member of a new group: its initial membership; null to join empty. */
  readonly bootstrap: ConfState | null;
  /** `persist` never waits for the disk; `flush()` syncs off the event loop (see above). */
  readonly isFlushDeferred?: boolean;
  /** How `flush()` syncs the WAL file; `file.syncData()` unless a test injects a failure. */
  readonly syncData?: (file: Deno.FsFile) => Promise<void>;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL, data BLOB NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote INTEGER NOT NULL,
    commit_index INTEGER NOT NULL, offset_index INTEGER NOT NULL, offset_term INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL,
    voters TEXT NOT NULL, learners TEXT NOT NULL, data BLOB NOT NULL,
    file TEXT, file_bytes INTEGER, file_crc INTEGER
  ) STRICT;
`;

/** The snapshot file columns, added to a log created before them. */
const SNAPSHOT_FILE_COLUMNS = ["file TEXT", "file_bytes INTEGER", "file_crc INTEGER"];

/** A snapshot row whose data is in its file holds this in its (NOT NULL) data column. */
const EMPTY_DATA = new Uint8Array(0);

/**
 * A {@linkcode WritableLogStorage} in SQLite. Open with {@linkcode SqliteLogStorage.open}, and
 * always {@linkcode SqliteLogStorage.close} it.
 *
 * @example
 * ```ts
 * const storage = SqliteLogStorage.open({ path: "data/raft-log.db", bootstrap: null });
 * try {
 *   storage.persist({ hardState, entries, snapshot }, ready.mustSync);
 * } finally {
 *   storage.close();
 * }
 * ```
 */
export class SqliteLogStorage implements WritableLogStorage {
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #isFlushDeferred: boolean;
  readonly #syncData: (file: Deno.FsFile) => Promise<void>;
  /** Commits made with NORMAL that no fsync started since covers. */
  #isFlushNeeded = false;
  /** The fsync in flight, if any. */
  #syncing: Promise<void> | null = null;
  /** The WAL file, opened at the first flush (SQLite creates it). */
  #wal: Deno.FsFile | null = null;
  #hardState: HardState = EMPTY_HARD_STATE;
  #transactions = 0;
  /** Whether #hardState's commit index is ahead of the file's (held, not written yet). */
  #isCommitHeld = false;
  #snapshot: Snapshot = initialSnapshot(EMPTY_CONF_STATE);
  /** The file holding #snapshot's data; null when the row holds it (or there is none). */
  #snapshotFile: SnapshotFile | null = null;
  #offset = 0 as LogIndex;
  #offsetTerm = 0 as Term;
  #lastIndex = 0 as LogIndex;
  #isFullSync: boolean | null = null;
  #isOpen = true;
  /** A received snapshot whose file stageSnapshot() is writing, until it is synced. */
  #staging: StagedSnapshot | null = null;
  /** A received snapshot whose file stageSnapshot() wrote, for the persist that stores it. */
  #staged: StagedSnapshot | null = null;
  readonly #statements = new Map<string, StatementSync>();
  /** The newest entries, as written; reads it covers skip SQLite (see _entry_cache.ts). */
  readonly #cache = new EntryCache();

  private constructor(db: DatabaseSync, path: string, options: SqliteLogStorageOptions) {
    this.#db = db;
    this.#path = path;
    this.#isFlushDeferred = (options.isFlushDeferred ?? false) && path !== ":memory:";
    this.#syncData = options.syncData ?? ((file) => file.syncData());
  }

  /**
   * Opens (creating if needed) the log at `options.path`.
   *
   * @throws {AspenError} `storage_corrupt` when the file holds invalid data, `no_space` or
   * `storage_error` when it cannot be read or prepared.
   */
  static open(options: SqliteLogStorageOptions): SqliteLogStorage {
    const db = new DatabaseSync(options.path);
    const storage = new SqliteLogStorage(db, options.path, options);
    try {
      db.exec("PRAGMA journal_mode = WAL");
      // SQLite reads pages lazily: check them all now rather than fail in the middle of a run.
      const check = db.prepare("PRAGMA quick_check").all();
      if (check.length !== 1 || check[0]?.quick_check !== "ok") {
        storage.#corrupt(`quick_check reports ${JSON.stringify(check.slice(0, 3))}`);
      }
      db.exec(SCHEMA);
      addSnapshotFileColumns(db);
      storage.#load(options.bootstrap);
      if (options.path !== ":memory:") {
        syncExistingFiles([options.path, `${options.path}-wal`]);
        removeStaleSnapshotFiles(options.path, storage.#snapshotFile?.name ?? null);
      }
    } catch (error) {
      db.close();
      if (error instanceof AspenError) throw error;
      const failure = storageFailureKind(error);
      if (failure !== null) throw storage.#failure(failure, "open", error);
      if (!isSqliteDamage(error)) throw error;
      return storage.#corrupt(error instanceof Error ? error.message : String(error));
    }
    return storage;
  }

  /** Closes the database; the storage must not be used afterwards. */
  close(): void {
    if (!this.#isOpen) return;
    this.#dropStaged();
    this.#isOpen = false;
    this.#wal?.close();
    this.#db.close();
  }

  /** Write transactions committed since open (see ReplicaLogStorage.transactions). */
  get transactions(): number {
    return this.#transactions;
  }

  initialState(): InitialState {
    return { hardState: this.#hardState, confState: this.#snapshot.metadata.confState };
  }

  firstIndex(): LogIndex {
    return (this.#offset + 1) as LogIndex;
  }

  lastIndex(): LogIndex {
    return this.#lastIndex;
  }

  term(index: LogIndex): Term | null {
    if (index === this.#offset) return this.#offsetTerm;
    if (index < this.#offset || index > this.#lastIndex) return null;
    const cached = this.#cache.term(index);
    if (cached !== null) return cached;
    const row = this.#read(() =>
      this.#prepare("SELECT term FROM entries WHERE idx = ?").get(index)
    );
    if (row === undefined) this.#corrupt(`entry ${index} is missing`);
    return this.#readInteger(row.term, `term of entry ${index}`) as Term;
  }

  entries(low: LogIndex, high: LogIndex, bytesMax: number): readonly Entry[] | null {
    assert(low <= high, "entries() needs low <= high");
    assert(high <= this.#lastIndex + 1, "entries() past the last index");
    if (low <= this.#offset) return null;
    const cached = this.#cache.slice(low, high, bytesMax);
    if (cached !== null) return cached;
    const statement = this.#prepare(
      "SELECT idx, term, type, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
    );
    const result: Entry[] = [];
    let bytes = 0;
    this.#read(() => {
      for (const row of statement.iterate(low, high)) {
        const entry = this.#readEntry(row, (low + result.length) as LogIndex);
        bytes += entry.data.byteLength;
        if (result.length > 0 && bytes > bytesMax) break;
        result.push(entry);
      }
    });
    if (result.length === 0 && low < high) this.#corrupt(`entry ${low} is missing`);
    return result;
  }

  snapshot(): Snapshot {
    return this.#snapshot;
  }

  /**
   * Persists one Ready's writes in one transaction. When `mustSync`, they are durable on
   * return, or, with deferred flushes, once the returned {@linkcode flush} resolves.
   *
   * @throws {AspenError} `no_space` or `storage_error`: nothing was written; retry later.
   * @throws {FatalStorageError} when a syncing commit failed with an I/O error.
   */
  persist(writes: ReadyWrites, mustSync: boolean): Promise<void> | undefined {
    // A Ready of messages only (heartbeats and their answers) writes nothing: no transaction.
    const isEmpty = writes.snapshot === null && writes.entries.length === 0 &&
      writes.hardState === null;
    if (isEmpty && !mustSync) return undefined;
    if (!mustSync && isCommitOnly(writes, this.#hardState)) {
      this.#holdCommit(writes.hardState!);
      return undefined;
    }
    const hardState = writes.hardState ?? (this.#isCommitHeld ? this.#hardState : null);
    const file = this.#writeReceivedSnapshotFile(writes.snapshot);
    this.#snapshotTransaction(mustSync && !this.#isFlushDeferred, file, () => {
      if (writes.snapshot !== null) this.#writeSnapshot(writes.snapshot, file);
      if (writes.entries.length > 0) this.#writeEntries(writes.entries);
      if (hardState !== null) this.#writeHardState(hardState);
    });
    if (!mustSync || !this.#isFlushDeferred) return undefined;
    this.#isFlushNeeded = true;
    return this.flush();
  }

  /**
   * Makes every write committed before this call durable without blocking the event loop:
   * fsyncs the WAL file on Deno's blocking thread pool (waiting first for an fsync already
   * running, which may have started before those writes). Resolves at once when nothing waits
   * (a storage without deferred flushes syncs in `persist`).
   *
   * @throws {FatalStorageError} when the sync fails: what is durable is then unknown.
   */
  async flush(): Promise<void> {
    while (this.#isFlushNeeded || this.#syncing !== null) {
      this.#syncing ??= this.#syncWal().finally(() => this.#syncing = null);
      await this.#syncing;
    }
  }

  async #syncWal(): Promise<void> {
    assert(this.#isOpen, `the log storage "${this.#path}" is closed`);
    this.#isFlushNeeded = false;
    try {
      this.#wal ??= await Deno.open(`${this.#path}-wal`, { read: true, write: true });
      await this.#syncData(this.#wal);
    } catch (error) {
      this.#isFlushNeeded = true;
      // Never retried: after a failed fsync, a second one may succeed without the lost pages.
      throw syncFailedError(`the Raft log "${this.#path}"`, error);
    }
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.#transaction(true, () => this.#writeEntries(entries));
  }

  setHardState(hardState: HardState): void {
    this.#transaction(true, () => this.#writeHardState(hardState));
  }

  applySnapshot(snapshot: Snapshot): void {
    const file = this.#writeReceivedSnapshotFile(snapshot);
    this.#snapshotTransaction(true, file, () => this.#writeSnapshot(snapshot, file));
  }

  /** Stores a snapshot of the state machine at `index`; durable on return. */
  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): void {
    const snapshot = this.#newSnapshot(index, confState, data);
    const file = this.#path === ":memory:" ? null : this.#writeSnapshotFileSync(snapshot);
    this.#snapshotTransaction(true, file, () => this.#saveSnapshotRow(snapshot, file));
    this.#snapshot = this.#kept(snapshot, file);
  }

  /**
   * {@linkcode createSnapshot} with the snapshot file written and synced off the event loop
   * (a file-backed log): the promise resolves once the row naming the file is committed, and
   * the snapshot is the log's only from then on. One that a newer snapshot overtook meanwhile
   * (received from the leader) is dropped, and so is one that finishes after `close()`.
   *
   * @throws {AspenError} `no_space` or `storage_error` (the promise rejects): nothing was
   * stored; retry later.
   */
  storeSnapshot(
    index: LogIndex,
    confState: ConfState,
    data: Uint8Array,
  ): Promise<void> | undefined {
    if (this.#path !== ":memory:") {
      return this.#createSnapshotFile(this.#newSnapshot(index, confState, data));
    }
    this.createSnapshot(index, confState, data);
    return undefined;
  }

  #newSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): Snapshot {
    assert(index > this.#snapshot.metadata.index, "createSnapshot() needs a newer index");
    assert(index <= this.#lastIndex, "createSnapshot() past the last index");
    const term = this.term(index);
    assert(term !== null, "createSnapshot() at a compacted index");
    return { metadata: { index, term, confState }, data };
  }

  async #createSnapshotFile(snapshot: Snapshot): Promise<void> {
    const name = newSnapshotFileName(this.#path, snapshot.metadata.index);
    try {
      await writeSnapshotFile(this.#path, name, snapshot.data);
    } catch (error) {
      throw this.#snapshotFileFailure(error);
    }
    const file = describeSnapshotFile(name, snapshot.data);
    if (!this.#isOpen || snapshot.metadata.index <= this.#snapshot.metadata.index) {
      if (this.#isOpen) removeSnapshotFile(this.#path, name);
      return;
    }
    this.#snapshotTransaction(true, file, () => this.#saveSnapshotRow(snapshot, file));
    this.#snapshot = this.#kept(snapshot, file);
  }

  /**
   * The snapshot as the log keeps it once stored: a snapshot whose data is in a file keeps
   * only its metadata in memory and reads the data from the file when asked (see
   * {@linkcode FileSnapshot}); one stored inline keeps its bytes.
   */
  #kept(snapshot: Snapshot, file: SnapshotFile | null): Snapshot {
    if (file === null) return snapshot;
    return new FileSnapshot(snapshot.metadata, () => {
      const data = readSnapshotFile(this.#path, file);
      return typeof data === "string" ? this.#corrupt(data) : data;
    });
  }

  /**
   * Writes the file of a snapshot received from a leader and syncs it on Deno's thread pool,
   * before the Ready that carries the snapshot is persisted: `persist` of that snapshot (the
   * same object) then names this file instead of writing the bytes on the event loop (60-130
   * ms for 30 MiB on a quiet machine, bench/NOTES.md). Nothing else may be persisted in between
   * (the replica holds the Ready). A file that no persist takes is removed by the next staging
   * or persist of a snapshot, or when the log closes; after a crash, when it opens (no row
   * names it). An in-memory log has nothing to write.
   *
   * @throws {AspenError} `no_space` or `storage_error` when the file could not be written
   *   (nothing was staged).
   */
  async stageSnapshot(snapshot: Snapshot): Promise<void> {
    assert(this.#isOpen, `the log storage "${this.#path}" is closed`);
    this.#dropStaged();
    if (this.#path === ":memory:") return;
    const data = snapshot.data;
    const name = newSnapshotFileName(this.#path, snapshot.metadata.index);
    const staging = { snapshot, file: describeSnapshotFile(name, data) };
    this.#staging = staging;
    try {
      await writeSnapshotFile(this.#path, name, data);
    } catch (error) {
      if (this.#staging === staging) this.#staging = null;
      throw this.#snapshotFileFailure(error);
    }
    if (this.#staging !== staging || !this.#isOpen) {
      // A persist of a snapshot, a newer staging or a close came meanwhile.
      if (this.#isOpen) removeSnapshotFile(this.#path, name);
      return;
    }
    this.#staging = null;
    this.#staged = staging;
  }

  /** Forgets a staged snapshot file and removes it. */
  #dropStaged(): void {
    const staged = this.#staged;
    this.#staged = null;
    this.#staging = null;
    if (staged === null) return;
    try {
      removeSnapshotFile(this.#path, staged.file.name);
    } catch {
      // Best effort: a file no row names is removed when the log next opens.
    }
  }

  /**
   * The file of a snapshot received from a leader (null for none, or in an in-memory log):
   * the one stageSnapshot() wrote for it, or written now, on the event loop (the snapshot is
   * part of the Ready that must be durable next).
   */
  #writeReceivedSnapshotFile(snapshot: Snapshot | null): SnapshotFile | null {
    if (snapshot === null) return null;
    const staged = this.#staged;
    if (staged !== null && staged.snapshot === snapshot) {
      this.#staged = null;
      return staged.file;
    }
    this.#dropStaged();
    if (this.#path === ":memory:") return null;
    return this.#writeSnapshotFileSync(snapshot);
  }

  #writeSnapshotFileSync(snapshot: Snapshot): SnapshotFile {
    const name = newSnapshotFileName(this.#path, snapshot.metadata.index);
    try {
      writeSnapshotFileSync(this.#path, name, snapshot.data);
    } catch (error) {
      throw this.#snapshotFileFailure(error);
    }
    return describeSnapshotFile(name, snapshot.data);
  }

  /**
   * A failed write of a snapshot file as the log's retryable error. A failed sync of it is
   * retryable too: no row names that file, and the next attempt writes a new one.
   */
  #snapshotFileFailure(error: unknown): unknown {
    const failure = storageFailureKind(error);
    return failure === null ? error : this.#failure(failure, "write", error);
  }

  /**
   * Runs a transaction that may name a new snapshot file, then removes the file that lost:
   * the new one if the transaction failed, else the one it replaced.
   */
  #snapshotTransaction(isFullSync: boolean, file: SnapshotFile | null, body: () => void): void {
    const previous = this.#snapshotFile;
    try {
      this.#transaction(isFullSync, body);
    } catch (error) {
      if (file !== null) removeSnapshotFile(this.#path, file.name);
      throw error;
    }
    if (file === null) return;
    this.#snapshotFile = file;
    if (previous !== null) removeSnapshotFile(this.#path, previous.name);
  }

  compact(index: LogIndex): void {
    assert(index <= this.#snapshot.metadata.index, "compact() must not pass the snapshot");
    if (index <= this.#offset) return;
    const compactedTerm = this.term(index);
    assert(compactedTerm !== null, "compact() index must be stored");
    // Not synced: a compaction lost in a crash leaves the entries behind the snapshot in place,
    // which is where they were, and the next fsync of the log makes it durable. Synced, each
    // step of a long compaction waited for the disk on the event loop.
    this.#transaction(false, () => {
      this.#prepare("DELETE FROM entries WHERE idx <= ?").run(index);
      this.#prepare("UPDATE state SET offset_index = ?, offset_term = ? WHERE id = 1")
        .run(index, compactedTerm);
    });
    this.#offset = index;
    this.#offsetTerm = compactedTerm;
    this.#cache.dropThrough(index);
  }

  /** Prepares `sql` once per connection; the hot reads (term, entries) run many times. */
  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs `body` in one transaction. On failure nothing of it is written and the in-memory state
   * is reloaded from the file, so the same write can be tried again.
   *
   * @throws {AspenError} `no_space` or `storage_error` for a failed write that may be retried.
   * @throws {FatalStorageError} when an I/O error hit a synchronous commit (it may be a failed
   * fsync), or the state cannot be reloaded after a failed write.
   */
  #transaction(isFullSync: boolean, body: () => void): void {
    assert(this.#isOpen, `the log storage "${this.#path}" is closed`);
    const wasFlushNeeded = this.#isFlushNeeded;
    // A FULL commit syncs the WAL, and with it every deferred commit before it.
    if (isFullSync) this.#isFlushNeeded = false;
    try {
      if (this.#isFullSync !== isFullSync) {
        this.#db.exec(`PRAGMA synchronous = ${isFullSync ? "FULL" : "NORMAL"}`);
        this.#isFullSync = isFullSync;
      }
      this.#db.exec("BEGIN IMMEDIATE");
      body();
      this.#db.exec("COMMIT");
      this.#transactions++;
    } catch (error) {
      this.#isFlushNeeded = wasFlushNeeded;
      this.#rollBack(error);
      const failure = storageFailureKind(error);
      if (failure === null) throw error;
      if (isFullSync && failure === "storage_error") {
        throw syncFailedError(`the Raft log "${this.#path}"`, error);
      }
      throw this.#failure(failure, "write", error);
    }
  }

  /**
   * Undoes a failed transaction. SQLite may have rolled it back itself (it does after a full
   * disk or an I/O error at COMMIT); the in-memory caches may be ahead of the file either way.
   */
  #rollBack(cause: unknown): void {
    try {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      this.#cache.clear();
      this.#loadState();
    } catch (error) {
      if (error instanceof AspenError && error.code === "storage_corrupt") throw error;
      throw new FatalStorageError(
        `Cannot reload the Raft log "${this.#path}" after a failed write ` +
          `(${describeStorageFailure(cause)}): ${describeStorageFailure(error)}; what it holds ` +
          "is unknown, so this node stops",
        { cause: error },
      );
    }
  }

  /** The retryable error for a failed write or open of this log. */
  #failure(kind: StorageFailureKind, action: "open" | "write", cause: unknown): AspenError {
    const what = kind === "no_space" ? "the disk is full" : "an I/O error";
    return new AspenError(
      kind,
      `Cannot ${action} the Raft log "${this.#path}": ${what} (${describeStorageFailure(cause)})`,
      { path: this.#path },
      { cause },
    );
  }

  #writeEntries(entries: readonly Entry[]): void {
    checkAppendable(this, entries);
    const first = entries[0];
    assert(first !== undefined, "#writeEntries() needs entries");
    assert(first.index > this.#offset, "append() must not rewrite compacted entries");
    this.#prepare("DELETE FROM entries WHERE idx >= ?").run(first.index);
    const insert = this.#prepare(
      "INSERT INTO entries (idx, term, type, data) VALUES (?, ?, ?, ?)",
    );
    for (const entry of entries) {
      insert.run(entry.index, entry.term, entry.type === "normal" ? 0 : 1, entry.data);
    }
    this.#lastIndex = entries[entries.length - 1]!.index;
    this.#cache.append(entries);
  }

  #writeHardState(hardState: HardState): void {
    assert(hardState.term >= this.#hardState.term, "the persisted term must not go back");
    this.#prepare("UPDATE state SET term = ?, vote = ?, commit_index = ? WHERE id = 1")
      .run(hardState.term, hardState.vote ?? 0, hardState.commit);
    this.#hardState = hardState;
    this.#isCommitHeld = false;
  }

  /**
   * Keeps a hard state that moves only the commit index in memory until the next transaction
   * writes it (see {@linkcode SqliteLogStorage.persist}).
   */
  #holdCommit(hardState: HardState): void {
    assert(hardState.commit >= this.#hardState.commit, "a held commit index moves forward");
    assert(hardState.commit <= this.#lastIndex, "a held commit index is within the log");
    this.#hardState = hardState;
    this.#isCommitHeld = true;
  }

  #writeSnapshot(snapshot: Snapshot, file: SnapshotFile | null): void {
    const { index, term } = snapshot.metadata;
    assert(index > this.#snapshot.metadata.index, "applySnapshot() needs a newer snapshot");
    this.#saveSnapshotRow(snapshot, file);
    this.#db.exec("DELETE FROM entries");
    this.#cache.clear();
    this.#prepare("UPDATE state SET offset_index = ?, offset_term = ? WHERE id = 1")
      .run(index, term);
    this.#snapshot = this.#kept(snapshot, file);
    this.#offset = index;
    this.#offsetTerm = term;
    this.#lastIndex = index;
  }

  /** Writes the snapshot row: with the data inline, or naming `file`, which holds it. */
  #saveSnapshotRow(snapshot: Snapshot, file: SnapshotFile | null): void {
    const { index, term, confState } = snapshot.metadata;
    this.#prepare(
      "INSERT OR REPLACE INTO snapshot " +
        "(id, idx, term, voters, learners, data, file, file_bytes, file_crc) " +
        "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      index,
      term,
      JSON.stringify(confState.voters),
      JSON.stringify(confState.learners),
      file === null ? snapshot.data : EMPTY_DATA,
      file?.name ?? null,
      file?.bytes ?? null,
      file?.crc ?? null,
    );
  }

  #load(bootstrap: ConfState | null): void {
    const row = this.#prepare("SELECT id FROM state WHERE id = 1").get();
    if (row === undefined) {
      const counts = this.#prepare(
        "SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM snapshot) AS n",
      ).get();
      if (counts?.n !== 0) this.#corrupt("the state row is missing but the log is not empty");
      this.#prepare("INSERT INTO state VALUES (1, 0, 0, 0, 0, 0)").run();
      if (bootstrap !== null && bootstrap.voters.length > 0) {
        this.#transaction(true, () => {
          this.#writeEntries(bootstrapEntries(bootstrap));
          this.#writeHardState(bootstrapHardState(bootstrap));
        });
      }
    }
    this.#read(() => this.#loadState());
  }

  /** Runs a read; node:sqlite's RangeError for an integer past 2^53 means a corrupt file. */
  #read<T>(body: () => T): T {
    try {
      return body();
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      return this.#corrupt(error.message);
    }
  }

  #loadState(): void {
    const state = this.#prepare("SELECT * FROM state WHERE id = 1").get();
    if (state === undefined) return this.#corrupt("the state row is missing");
    const vote = this.#readInteger(state.vote, "vote");
    this.#hardState = {
      term: this.#readInteger(state.term, "term") as Term,
      vote: vote === 0 ? null : vote as ReplicaId,
      commit: this.#readInteger(state.commit_index, "commit index") as LogIndex,
    };
    this.#isCommitHeld = false;
    this.#offset = this.#readInteger(state.offset_index, "offset index") as LogIndex;
    this.#offsetTerm = this.#readInteger(state.offset_term, "offset term") as Term;
    this.#snapshot = this.#loadSnapshot();
    const last = this.#prepare("SELECT max(idx) AS last, count(*) AS n FROM entries").get();
    const count = this.#readInteger(last?.n, "entry count");
    const lastIndex = count === 0 ? this.#offset : this.#readInteger(last?.last, "last index");
    if (lastIndex - this.#offset !== count) this.#corrupt("the stored entries have gaps");
    this.#lastIndex = lastIndex as LogIndex;
    if (this.#snapshot.metadata.index < this.#offset) {
      this.#corrupt("the snapshot is older than the compacted prefix");
    }
    if (this.#hardState.commit > this.#lastIndex) this.#corrupt("commit is past the last entry");
  }

  #loadSnapshot(): Snapshot {
    const row = this.#prepare("SELECT * FROM snapshot WHERE id = 1").get();
    const loaded = this.#snapshotFile;
    this.#snapshotFile = null;
    if (row === undefined) return initialSnapshot(EMPTY_CONF_STATE);
    if (!(row.data instanceof Uint8Array)) return this.#corrupt("snapshot data is not a blob");
    const metadata = {
      index: this.#readInteger(row.idx, "snapshot index") as LogIndex,
      term: this.#readInteger(row.term, "snapshot term") as Term,
      confState: {
        voters: this.#readIds(row.voters, "snapshot voters"),
        learners: this.#readIds(row.learners, "snapshot learners"),
      },
    };
    if (row.file === null) return { metadata, data: row.data };
    const file = this.#loadSnapshotFile(row, loaded);
    return this.#kept({ metadata, data: EMPTY_DATA }, file);
  }

  /**
   * The snapshot file a row names, checked: read whole at open (its length and CRC-32), but
   * not when a rollback reloads the state and the row names the file already checked.
   */
  #loadSnapshotFile(row: Record<string, unknown>, loaded: SnapshotFile | null): SnapshotFile {
    if (typeof row.file !== "string") return this.#corrupt("the snapshot file name is not text");
    const file: SnapshotFile = {
      name: row.file,
      bytes: this.#readInteger(row.file_bytes, "snapshot file length"),
      crc: this.#readInteger(row.file_crc, "snapshot file CRC-32"),
    };
    const isLoaded = loaded?.name === file.name && loaded.bytes === file.bytes &&
      loaded.crc === file.crc;
    if (!isLoaded) {
      const data = readSnapshotFile(this.#path, file);
      if (typeof data === "string") return this.#corrupt(data);
    }
    this.#snapshotFile = file;
    return file;
  }

  #readEntry(row: Record<string, unknown>, expected: LogIndex): Entry {
    const index = this.#readInteger(row.idx, "entry index");
    if (index !== expected) this.#corrupt(`expected entry ${expected} but found ${index}`);
    const type = this.#readInteger(row.type, `type of entry ${index}`);
    if (type > 1) this.#corrupt(`entry ${index} has unknown type ${type}`);
    if (!(row.data instanceof Uint8Array)) this.#corrupt(`entry ${index} data is not a blob`);
    return {
      index: index as LogIndex,
      term: this.#readInteger(row.term, `term of entry ${index}`) as Term,
      type: type === 0 ? "normal" : "confChange",
      data: row.data as Uint8Array,
    };
  }

  #readInteger(value: unknown, what: string): number {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      return this.#corrupt(`${what} is ${String(value)}, not a non-negative integer`);
    }
    return value;
  }

  #readIds(value: unknown, what: string): ReplicaId[] {
    let parsed: unknown = null;
    try {
      parsed = typeof value === "string" ? JSON.parse(value) : null;
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      return this.#corrupt(`${what} is not valid JSON: ${error.message}`);
    }
    if (!Array.isArray(parsed)) return this.#corrupt(`${what} is not a list`);
    return parsed.map((id) => {
      const checked = this.#readInteger(id, what);
      if (checked === 0) this.#corrupt(`${what} holds replica id 0`);
      return checked as ReplicaId;
    });
  }

  #corrupt(reason: string): never {
    throw new AspenError(
      "storage_corrupt",
      `Cannot read the Raft log "${this.#path}": ${reason}`,
      { path: this.#path },
    );
  }
}

/**
 * Whether an error thrown while opening says the file is damaged. node:sqlite in Deno reports
 * every SQLite failure as `ERR_SQLITE_ERROR` without the result code, so a lock held by another
 * process (busy, locked) is told apart by its message; it is not damage.
 */
/**
 * Whether `writes` change nothing but the commit index (no entries, no snapshot, the same term
 * and vote as `current`).
 */
function isCommitOnly(writes: ReadyWrites, current: HardState): boolean {
  const hardState = writes.hardState;
  return hardState !== null && writes.entries.length === 0 && writes.snapshot === null &&
    hardState.term === current.term && hardState.vote === current.vote;
}

/** Adds the snapshot file columns to a log created before them (its rows keep inline data). */
function addSnapshotFileColumns(db: DatabaseSync): void {
  const columns = new Set(
    db.prepare("SELECT name FROM pragma_table_info('snapshot')").all().map((row) => row.name),
  );
  for (const column of SNAPSHOT_FILE_COLUMNS) {
    if (!columns.has(column.split(" ")[0])) db.exec(`ALTER TABLE snapshot ADD COLUMN ${column}`);
  }
}

function isSqliteDamage(error: unknown): boolean {
  if (!(error instanceof Error) || !("code" in error)) return false;
  if (error.code !== "ERR_SQLITE_ERROR") return false;
  return !/\b(locked|busy)\b/i.test(error.message);
}

/**
 * Makes what the log holds at open durable before anything is built on it. After a crash of
 * the process (not of the machine) the page cache can still hold log writes that no fsync
 * covered; the replica reads them, applies them, and its state machine makes that durable on
 * its own. A power loss after that would take the entries back and leave the state machine
 * ahead of the log. Missing files are skipped (SQLite creates the WAL on the first write).
 */
function syncExistingFiles(paths: readonly string[]): void {
  for (const path of paths) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    try {
      file.syncDataSync();
    } finally {
      file.close();
    }
  }
}

/**
 * A stored snapshot whose data lives in its file: the log keeps the metadata and reads the
 * bytes, checked against the length and CRC-32 its row names, each time `data` is asked for.
 * Keeping them instead cost a shard's whole state in memory (31 MiB for 10,000 keys of 256 B
 * with a full watch history) per shard, for data wanted only when a follower needs a snapshot
 * (the leader's progress keeps the bytes it sends, see raft/replication.ts) or a restart
 * restores a state machine that fell behind its log.
 */
class FileSnapshot implements Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly #read: () => Uint8Array;

  constructor(metadata: SnapshotMetadata, read: () => Uint8Array) {
    this.metadata = metadata;
    this.#read = read;
  }

  /**
   * @throws {AspenError} `storage_corrupt` when the file is missing, short or altered.
   */
  get data(): Uint8Array {
    return this.#read();
  }
}
