/**
 * storageFailureKind() sorts errors thrown by writes: each case is an error as node:sqlite or
 * Deno throws it (the SQLite texts and errno codes were observed on a full tmpfs and a
 * read-only one), and what a replica must do with it. syncFailedError() says why it stops.
 */
import { equal, match, ok } from "node:assert/strict";
import { AssertionError } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import {
  FatalStorageError,
  type StorageFailureKind,
  storageFailureKind,
  syncFailedError,
} from "./storage_failure.ts";

function sqliteError(message: string, errcode?: number): Error {
  const error = Object.assign(new Error(message), { code: "ERR_SQLITE_ERROR" });
  return errcode === undefined ? error : Object.assign(error, { errcode });
}

function systemError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

Deno.test("storageFailureKind() sorts write failures into retryable kinds", async (t) => {
  const cases: [string, unknown, StorageFailureKind | null][] = [
    ["SQLITE_FULL by text", sqliteError("database or disk is full"), "no_space"],
    ["SQLITE_IOERR by text", sqliteError("disk I/O error"), "storage_error"],
    [
      "SQLITE_READONLY by text",
      sqliteError("attempt to write a readonly database"),
      "storage_error",
    ],
    ["SQLITE_FULL by errcode", sqliteError("whatever", 13), "no_space"],
    ["SQLITE_IOERR_FSYNC by errcode", sqliteError("whatever", 10 | (4 << 8)), "storage_error"],
    ["SQLITE_CORRUPT", sqliteError("database disk image is malformed"), null],
    ["SQLITE_CORRUPT by errcode", sqliteError("database disk image is malformed", 11), null],
    ["a constraint (a bug)", sqliteError("UNIQUE constraint failed: entries.idx"), null],
    ["ENOSPC", systemError("ENOSPC", "No space left on device (os error 28)"), "no_space"],
    ["EDQUOT", systemError("EDQUOT", "Disk quota exceeded (os error 122)"), "no_space"],
    ["EIO", systemError("EIO", "Input/output error (os error 5)"), "storage_error"],
    ["EROFS", systemError("EROFS", "Read-only file system (os error 30)"), "storage_error"],
    ["ENOENT", systemError("ENOENT", "No such file or directory (os error 2)"), null],
    ["AspenError no_space", new AspenError("no_space", "full"), "no_space"],
    ["AspenError storage_error", new AspenError("storage_error", "eio"), "storage_error"],
    ["AspenError storage_corrupt", new AspenError("storage_corrupt", "bad"), null],
    ["an assertion", new AssertionError("broken invariant"), null],
    ["a fatal storage error", new FatalStorageError("fsync failed"), null],
    ["a plain Error", new Error("database or disk is full"), null],
    ["not an Error", "database or disk is full", null],
  ];
  for (const [name, error, expected] of cases) {
    await t.step(name, () => equal(storageFailureKind(error), expected));
  }
});

Deno.test("syncFailedError() is fatal and says that acknowledged writes are at stake", () => {
  const cause = systemError("EIO", "Input/output error (os error 5)");
  const error = syncFailedError('the Raft log "d/raft-log.db"', cause);
  ok(error instanceof FatalStorageError);
  equal(storageFailureKind(error), null, "never retried");
  equal(error.cause, cause);
  match(error.message, /^Cannot make the Raft log "d\/raft-log.db" durable: the fsync failed/);
  match(error.message, /Input\/output error/);
  match(error.message, /retried fsync could report success for data that is lost/);
  match(error.message, /this node stops/);
});
