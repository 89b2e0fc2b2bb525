/**
 * A Raft log's snapshot data in a file of its own beside the log (private to shard/).
 *
 * A snapshot is the whole state machine (tens of MiB for a shard of 10,000 keys with its watch
 * history). Written into the log's SQLite file it held the event loop for the write, the FULL
 * sync and a later checkpoint. In a file it is written and synced on Deno's thread pool, and the
 * log commits only a row naming the file, its length and its CRC-32 once the file is durable.
 *
 * Names: `<log file>.snapshot-<index>-<random>`. The random part keeps two snapshots of one
 * index (one made here, one received from a leader) from writing the same file. A file is
 * written under a `.tmp` name, synced, renamed, and the directory synced, so a name without
 * `.tmp` always holds whole, durable bytes. Files the log's row does not name (left by a crash
 * between the file and the row, or before the previous file was removed) are removed at open.
 */
import { basename, dirname, join } from "node:path";
import { crc32 } from "node:zlib";

const TEMPORARY_SUFFIX = ".tmp";

/** What the log's row says of its snapshot file. */
export interface SnapshotFile {
  /** The file's name inside the log's directory. */
  readonly name: string;
  readonly bytes: number;
  readonly crc: number;
}

/** A new file name for a snapshot at `index` of the log at `logPath`. */
export function newSnapshotFileName(logPath: string, index: number): string {
  const random = crypto.getRandomValues(new Uint8Array(4));
  const suffix = Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${basename(logPath)}.snapshot-${index}-${suffix}`;
}

/** The description of `data` stored under `name`. */
export function describeSnapshotFile(name: string, data: Uint8Array): SnapshotFile {
  return { name, bytes: data.byteLength, crc: crc32(data) };
}

/**
 * Writes `data` as the snapshot file `name` beside `logPath`, durably, off the event loop.
 * On failure nothing is left under `name` (a partial temporary file is removed).
 */
export async function writeSnapshotFile(
  logPath: string,
  name: string,
  data: Uint8Array,
): Promise<void> {
  const path = join(dirname(logPath), name);
  const temporary = path + TEMPORARY_SUFFIX;
  try {
    const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
    try {
      let written = 0;
      while (written < data.byteLength) written += await file.write(data.subarray(written));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  const directory = await Deno.open(dirname(path), { read: true });
  try {
    await directory.sync();
  } finally {
    directory.close();
  }
}

/** {@linkcode writeSnapshotFile} on the event loop (a snapshot received inside a Ready). */
export function writeSnapshotFileSync(logPath: string, name: string, data: Uint8Array): void {
  const path = join(dirname(logPath), name);
  const temporary = path + TEMPORARY_SUFFIX;
  try {
    const file = Deno.openSync(temporary, { write: true, create: true, truncate: true });
    try {
      let written = 0;
      while (written < data.byteLength) written += file.writeSync(data.subarray(written));
      file.syncDataSync();
    } finally {
      file.close();
    }
    Deno.renameSync(temporary, path);
  } catch (error) {
    removeSnapshotFile(logPath, name + TEMPORARY_SUFFIX);
    throw error;
  }
  const directory = Deno.openSync(dirname(path), { read: true });
  try {
    directory.syncSync();
  } finally {
    directory.close();
  }
}

/**
 * Reads a snapshot file back.
 *
 * @returns its bytes, or a description of what is wrong with it (missing, another length,
 * another CRC-32), for the caller to report as corruption.
 */
export function readSnapshotFile(logPath: string, file: SnapshotFile): Uint8Array | string {
  let data: Uint8Array;
  try {
    data = Deno.readFileSync(join(dirname(logPath), file.name));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return `the snapshot file "${file.name}" is missing`;
    throw error;
  }
  if (data.byteLength !== file.bytes) {
    return `the snapshot file "${file.name}" has ${data.byteLength} bytes, not ${file.bytes}`;
  }
  if (crc32(data) !== file.crc) return `the snapshot file "${file.name}" fails its CRC-32`;
  return data;
}

/** Removes the snapshot file `name` beside `logPath`; one already gone is no error. */
export function removeSnapshotFile(logPath: string, name: string): void {
  try {
    Deno.removeSync(join(dirname(logPath), name));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Removes every snapshot file of the log at `logPath` except `keep` (see the module doc). */
export function removeStaleSnapshotFiles(logPath: string, keep: string | null): void {
  const prefix = `${basename(logPath)}.snapshot-`;
  for (const entry of Deno.readDirSync(dirname(logPath))) {
    if (!entry.isFile || !entry.name.startsWith(prefix) || entry.name === keep) continue;
    removeSnapshotFile(logPath, entry.name);
  }
}
