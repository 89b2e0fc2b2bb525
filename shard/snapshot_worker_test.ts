/**
 * The snapshot worker of a database in a file: the file is checkpointed at the call and held
 * unchanged until the worker has read it, so writes made meanwhile (which SQLite would
 * otherwise checkpoint into the file) are not in the snapshot. Real files and a real worker.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { snapshotBytes, snapshotBytesInWorker } from "./_snapshot.ts";

const CHECKPOINT_PAGES = 8;

function openWal(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(`PRAGMA wal_autocheckpoint = ${CHECKPOINT_PAGES}`);
  db.exec("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB) WITHOUT ROWID");
  return db;
}

/** Commits `count` rows of 1 KiB, one transaction each (each may trigger a checkpoint). */
function write(db: DatabaseSync, from: number, count: number): void {
  const insert = db.prepare("INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)");
  for (let k = from; k < from + count; k++) insert.run(k, new Uint8Array(1024).fill(k % 251));
}

function autocheckpointPages(db: DatabaseSync): number {
  return Number(db.prepare("PRAGMA wal_autocheckpoint").get()?.wal_autocheckpoint);
}

Deno.test("a file snapshot holds the state of its call while later writes go on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-snapshot-worker-" });
  const db = openWal(`${dir}/state.db`);
  try {
    write(db, 0, 500);
    const expected = snapshotBytes(db);
    const pending = snapshotBytesInWorker(db, `${dir}/state.db`);
    // Far past the checkpoint threshold, before the worker has started to read the file.
    write(db, 500, 400);
    deepEqual(await pending.bytes, expected);
    equal(autocheckpointPages(db), CHECKPOINT_PAGES, "automatic checkpoints are back on");
    const later = snapshotBytesInWorker(db, `${dir}/state.db`);
    deepEqual(await later.bytes, snapshotBytes(db), "the next one holds the later writes");
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a cancelled file snapshot turns automatic checkpoints back on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-snapshot-worker-" });
  const db = openWal(`${dir}/state.db`);
  try {
    write(db, 0, 50);
    const pending = snapshotBytesInWorker(db, `${dir}/state.db`);
    equal(autocheckpointPages(db), 0, "held while the worker reads");
    pending.cancel();
    await rejects(pending.bytes, /cancelled/);
    equal(autocheckpointPages(db), CHECKPOINT_PAGES);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file snapshot whose checkpoint is locked out copies the pages instead", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-snapshot-worker-" });
  const db = openWal(`${dir}/state.db`);
  try {
    write(db, 0, 300);
    const expected = snapshotBytes(db);
    // A statement still reading keeps the checkpoint from emptying the WAL.
    const reading = db.prepare("SELECT k FROM t ORDER BY k").iterate();
    equal(reading.next().done, false);
    const pending = snapshotBytesInWorker(db, `${dir}/state.db`);
    equal(autocheckpointPages(db), CHECKPOINT_PAGES, "nothing is held: the pages were copied");
    reading.return?.();
    write(db, 300, 200);
    deepEqual(await pending.bytes, expected);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
