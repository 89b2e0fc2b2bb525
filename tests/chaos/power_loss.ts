/**
 * Power-loss restarts for chaos runs: a node runs under the LD_PRELOAD shim of
 * `power_loss_shim.c`, which journals the old bytes of every write to its data files; after
 * the harness SIGKILLs it, {@linkcode rollBackToLastSync} undoes, newest first, every write
 * that no completed fsync covered, and removes SQLite's `-shm` files (rebuilt on open). The
 * node then restarts from its data files exactly as they stood at their last fsyncs: what a
 * power cut leaves when the page cache is lost whole (a real disk may also keep some unsynced
 * writes, or tear one; this is the strictest clean case).
 *
 * What is modelled: file contents only. Directory entries (a file created, renamed or unlinked)
 * are taken as durable at once; our code fsyncs the folder after its renames, and SQLite fsyncs
 * it after creating a journal. The chaos harness resets the journals whenever it starts a node,
 * so the files as they stand then count as durable: a power loss is modelled within one
 * process's life. A test that keeps the journals across processes models a process crash
 * followed later by a power loss (tests/log_open_sync_test.ts).
 */
import { PROJECT_ROOT } from "../_source_files.ts";

/** The shim's C source. */
export const POWER_LOSS_SHIM_SOURCE = `${PROJECT_ROOT}tests/chaos/power_loss_shim.c`;
/** The compiler the shim is built with. */
export const C_COMPILER = "cc";
/** The size of a journal record's header (kind, padding, four u64 fields). */
const RECORD_HEADER_BYTES = 40;

/** The shim, built; or why it could not be (no C compiler on the machine). */
export type PowerLossShim = { readonly path: string } | { readonly skipReason: string };

/** What one rollback undid. */
export interface RollbackFigures {
  /** Files that lost writes. */
  readonly files: number;
  /** Writes and truncations undone. */
  readonly records: number;
  /** Bytes of written data taken back (old bytes restored or the file cut back). */
  readonly bytes: number;
}

/**
 * Builds the shim as `<dir>/power_loss_shim.so` with the system's C compiler.
 *
 * @returns the library's path, or a skip reason when no C compiler is installed.
 * @throws when the compiler exists but fails (a bug in the shim).
 */
export async function buildPowerLossShim(dir: string): Promise<PowerLossShim> {
  const path = `${dir}/power_loss_shim.so`;
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(C_COMPILER, {
      args: ["-shared", "-fPIC", "-O2", "-o", path, POWER_LOSS_SHIM_SOURCE, "-ldl", "-lpthread"],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return { skipReason: `no C compiler ("${C_COMPILER}") to build the power-loss shim` };
  }
  if (!output.success) {
    throw new Error(`Cannot build the power-loss shim: ${new TextDecoder().decode(output.stderr)}`);
  }
  return { path };
}

/** The environment that runs a process under the shim, tracking `dataDir`. */
export function powerLossEnv(
  shimPath: string,
  dirs: { readonly dataDir: string; readonly journalDir: string },
): Record<string, string> {
  return {
    LD_PRELOAD: shimPath,
    ASPEN_POWER_LOSS_ROOT: dirs.dataDir,
    ASPEN_POWER_LOSS_JOURNAL: dirs.journalDir,
  };
}

/** Empties (or creates) a journal folder before a tracked process starts. */
export function resetJournals(journalDir: string): void {
  try {
    Deno.removeSync(journalDir, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  Deno.mkdirSync(journalDir, { recursive: true });
}

/**
 * Rolls every file under `dataDir` back to its bytes at its last completed fsync, using the
 * journals the shim wrote, and removes `-shm` files. The process must be dead.
 */
export async function rollBackToLastSync(
  dirs: { readonly dataDir: string; readonly journalDir: string },
): Promise<RollbackFigures> {
  const files = await filesByInode(dirs.dataDir);
  let changed = 0;
  let records = 0;
  let bytes = 0;
  for await (const entry of Deno.readDir(dirs.journalDir)) {
    const path = files.get(entry.name);
    if (!entry.isFile || path === undefined) continue;
    const undo = unsyncedRecords(await Deno.readFile(`${dirs.journalDir}/${entry.name}`));
    if (undo.length === 0) continue;
    changed++;
    records += undo.length;
    bytes += await undoRecords(path, undo);
  }
  for (const path of files.values()) {
    if (path.endsWith("-shm")) await Deno.remove(path);
  }
  return { files: changed, records, bytes };
}

/** One journal record: a write or a truncation to undo. */
interface UndoRecord {
  readonly kind: "write" | "truncate";
  /** A write's offset, or a truncation's new size. */
  readonly at: number;
  /** The file's size before. */
  readonly sizeBefore: number;
  /** The old bytes from `at` on. */
  readonly old: Uint8Array;
}

/**
 * The records of one journal that no sync covers, oldest first. A record cut short at the end
 * (the process died while writing it) is dropped: its write never started.
 */
export function unsyncedRecords(journal: Uint8Array): UndoRecord[] {
  const view = new DataView(journal.buffer, journal.byteOffset, journal.byteLength);
  const field = (offset: number) => Number(view.getBigUint64(offset, true));
  const found: { position: number; record: UndoRecord }[] = [];
  let base = 0;
  let cutoff = 0;
  for (let offset = 0; offset + RECORD_HEADER_BYTES <= journal.length;) {
    const kind = String.fromCharCode(journal[offset]!);
    const length = field(offset + 32);
    const end = offset + RECORD_HEADER_BYTES + length;
    if (end > journal.length) break;
    if (kind === "B") {
      if (offset !== 0) throw new Error(`A journal header at byte ${offset}, not at 0`);
      base = field(offset + 8);
      cutoff = base;
    } else if (kind === "S") {
      cutoff = Math.max(cutoff, field(offset + 8));
    } else if (kind === "W" || kind === "T") {
      found.push({
        position: base + offset,
        record: {
          kind: kind === "W" ? "write" : "truncate",
          at: field(offset + 8),
          sizeBefore: field(offset + 16),
          old: journal.subarray(offset + RECORD_HEADER_BYTES, end),
        },
      });
    } else {
      throw new Error(`An unknown journal record "${kind}" at byte ${offset}`);
    }
    offset = end;
  }
  return found.filter((item) => item.position >= cutoff).map((item) => item.record);
}

/** Undoes `records` (oldest first) on `path`, newest first; returns the bytes taken back. */
async function undoRecords(path: string, records: readonly UndoRecord[]): Promise<number> {
  const file = await Deno.open(path, { read: true, write: true });
  let bytes = 0;
  try {
    for (let i = records.length - 1; i >= 0; i--) {
      const record = records[i]!;
      const sizeNow = (await file.stat()).size;
      if (record.kind === "truncate") await file.truncate(record.sizeBefore);
      await writeAt(file, record.old, record.at);
      if (record.kind === "write") await file.truncate(record.sizeBefore);
      bytes += Math.max(record.old.length, Math.abs(sizeNow - record.sizeBefore));
    }
  } finally {
    file.close();
  }
  return bytes;
}

async function writeAt(file: Deno.FsFile, bytes: Uint8Array, offset: number): Promise<void> {
  if (bytes.length === 0) return;
  await file.seek(offset, Deno.SeekMode.Start);
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** Every regular file under `dir`, by "<dev>.<ino>" (the shim's journal names). */
async function filesByInode(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const folders = [dir];
  for (let folder = folders.pop(); folder !== undefined; folder = folders.pop()) {
    for await (const entry of Deno.readDir(folder)) {
      const path = `${folder}/${entry.name}`;
      if (entry.isDirectory) folders.push(path);
      if (!entry.isFile) continue;
      const info = await Deno.lstat(path);
      files.set(`${info.dev}.${info.ino}`, path);
    }
  }
  return files;
}

/**
 * Runs a Deno program (with the project's config) under `env` until it prints its first line,
 * then kills it with -9: a process crash at a known point, for the power-loss tests.
 *
 * @returns the first line it printed, trimmed.
 * @throws when the program ends before printing a line.
 */
export async function runUntilLineAndKill(
  program: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--config=${PROJECT_ROOT}deno.json`, program, ...args],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  while (!output.includes("\n")) {
    const chunk = await reader.read();
    if (chunk.done) throw new Error(`The program ended before it printed a line: ${output}`);
    output += chunk.value;
  }
  child.kill("SIGKILL");
  await reader.cancel();
  await child.status;
  return output.trim();
}

/**
 * Runs `body` with the shim built in a fresh temporary folder (removed afterwards), or ignores
 * the test step with the reason where no C compiler can build it.
 */
export async function withPowerLossShim(
  t: Deno.TestContext,
  body: (setup: { readonly dir: string; readonly shimPath: string }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-power-loss-" });
  try {
    const shim = await buildPowerLossShim(dir);
    if ("skipReason" in shim) {
      console.log(`skipped: ${shim.skipReason}`);
      await t.step({ name: shim.skipReason, ignore: true, fn: () => {} });
      return;
    }
    await body({ dir, shimPath: shim.path });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
