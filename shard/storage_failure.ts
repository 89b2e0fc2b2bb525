/**
 * Failures of a write to disk, sorted by what a node can safely do about them.
 *
 * - `no_space`: SQLite's SQLITE_FULL ("database or disk is full"), or ENOSPC / EDQUOT from a
 *   file write. The SQLite transaction rolled back, so nothing was half-written, and the same
 *   write can be tried again once space returns.
 * - `storage_error`: another I/O error on a write (SQLITE_IOERR "disk I/O error", a read-only
 *   file system, EIO, a permission taken away). Also rolled back, also retried.
 * - fatal, as a {@linkcode FatalStorageError}: a failed fsync or fdatasync, and anything else
 *   where going on could lose or corrupt acknowledged data. After a failed writeback Linux may
 *   drop the dirty pages and mark them clean, so a retried fsync can report success for data
 *   that never reached the disk ("fsyncgate", found by PostgreSQL in 2018): the node must stop
 *   and recover from what is durable.
 *
 * Anything else (an assertion, `storage_corrupt`, an unknown error) is not a storage failure
 * and keeps its own meaning. Deno's node:sqlite reports every SQLite failure as
 * `ERR_SQLITE_ERROR` without its result code, so the primary code is read from `errcode` where
 * a runtime sets it, and otherwise from the fixed text SQLite gives that code (sqlite3_errstr).
 */
import { AspenError } from "./errors.ts";

/** A write that failed and may be tried again. */
export type StorageFailureKind = "no_space" | "storage_error";

/** SQLite primary result codes (the low byte of an extended code). */
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;

/** The texts SQLite gives the primary codes above, as node:sqlite reports them. */
const SQLITE_TEXTS: readonly [RegExp, StorageFailureKind][] = [
  [/^database or disk is full\b/, "no_space"],
  [/^disk I\/O error\b/, "storage_error"],
  [/^attempt to write a readonly database\b/, "storage_error"],
];

/** Operating system error codes of a failed file operation. */
const ERRNO_KINDS: ReadonlyMap<string, StorageFailureKind> = new Map([
  ["ENOSPC", "no_space"],
  ["EDQUOT", "no_space"],
  ["EIO", "storage_error"],
  ["EROFS", "storage_error"],
  ["EACCES", "storage_error"],
  ["EPERM", "storage_error"],
  ["EMFILE", "storage_error"],
  ["ENFILE", "storage_error"],
]);

/**
 * Whether `error`, thrown by a write, is a storage failure that may be retried, and which.
 *
 * @returns `no_space`, `storage_error`, or null for anything else (a bug, corruption, a fatal
 * storage error): the caller must not treat null as retryable.
 */
export function storageFailureKind(error: unknown): StorageFailureKind | null {
  if (error instanceof AspenError) {
    if (error.code === "no_space" || error.code === "storage_error") return error.code;
    return null;
  }
  if (!(error instanceof Error) || !("code" in error)) return null;
  if (error.code === "ERR_SQLITE_ERROR") return sqliteKind(error);
  if (typeof error.code !== "string") return null;
  return ERRNO_KINDS.get(error.code) ?? null;
}

function sqliteKind(error: Error): StorageFailureKind | null {
  if ("errcode" in error && typeof error.errcode === "number") {
    const primary = error.errcode & 0xff;
    if (primary === SQLITE_FULL) return "no_space";
    if (primary === SQLITE_IOERR || primary === SQLITE_READONLY) return "storage_error";
    return null;
  }
  for (const [pattern, kind] of SQLITE_TEXTS) {
    if (pattern.test(error.message)) return kind;
  }
  return null;
}

/**
 * A storage failure the process must not survive: what is durable is unknown, and going on
 * could lose acknowledged data. Never caught as an operating condition; it ends the node, which
 * recovers from its durable state when restarted.
 */
export class FatalStorageError extends Error {
  override readonly name = "FatalStorageError";
}

/**
 * The error for a failed fsync or fdatasync of `path`: fatal, with a message that says why.
 *
 * @param what the file's role, as in `the Raft log "data/shard-0/raft-log.db"`.
 */
export function syncFailedError(what: string, cause: unknown): FatalStorageError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new FatalStorageError(
    `Cannot make ${what} durable: the fsync failed (${reason}). The kernel may have dropped ` +
      "the unwritten pages, so a retried fsync could report success for data that is lost; " +
      "continuing could lose acknowledged writes, so this node stops. Restart it once the disk " +
      "is healthy: it recovers from what is durable and catches up from its peers",
    { cause },
  );
}

/** A short description of a storage failure for messages and alarms: its first line. */
export function describeStorageFailure(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n", 1)[0]!.slice(0, STORAGE_FAILURE_TEXT_MAX);
}

/** The longest storage failure text kept for messages and alarms, in characters. */
export const STORAGE_FAILURE_TEXT_MAX = 200;
