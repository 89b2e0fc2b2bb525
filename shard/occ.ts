/**
 * Optimistic concurrency control: validation of a transaction's read set.
 *
 * This is the seam a cross-shard two-phase commit reuses. Today one shard applies an optimistic
 * transaction in a single entry: {@linkcode validateReadSet} against the current state, then the
 * write set. With 2PC, each participant shard will run the same validation at *prepare* (and
 * lock the read and write keys until the decision), and write the buffered set at *commit*;
 * nothing here assumes both steps happen in one entry. Validation is a pure function over a
 * {@linkcode VersionReader}, so the prepare step can read through its own view (for example
 * state plus locks).
 *
 * What a read checks (every field it gives is one condition, and all must hold):
 *
 * - `modRevision`: the key's modRevision now equals it (0: the key is absent). A modRevision is
 *   the index of the entry that last changed the key, so it never repeats for a key: this is
 *   the check that sees every change, a delete and re-create included.
 * - `version`: the key's version now equals it (0: absent). Versions restart at 1 when a key is
 *   re-created, so on its own this check cannot see a delete and re-create that came back to
 *   the same version.
 * - `revision`: the shard revision of the answer the read came from. The key must not have
 *   changed after it: its modRevision now is at most `revision` (FoundationDB's read-version
 *   rule). With `version` it sees a delete and re-create, since the re-create is newer.
 *
 * A key read absent and absent again holds whatever happened in between: its state at commit
 * is the state the transaction saw, so the transaction serializes at its commit.
 */

import { assert } from "../raft/mod.ts";
import type { ReadRecord } from "./command.ts";
import type { Conflict } from "./apply_result.ts";

/** A key's change counters now; both are 0 when the key is absent. */
export interface KeyVersion {
  /** The key's version: 1 when created, +1 per change; 0 when absent. */
  readonly version: number;
  /** The revision (log index) of the entry that last changed the key; 0 when absent. */
  readonly modRevision: number;
}

/** Reads the current change counters of a key. */
export interface VersionReader {
  /** The version and modRevision of `key` now; both 0 when absent. */
  versionOf(key: string): KeyVersion;
}

/**
 * Checks that every read still holds (see the module comment for what each field checks).
 *
 * @returns the first read (in read-set order) that no longer holds, with the first of its
 * checks that failed (modRevision, then version, then revision), or null when all hold.
 */
export function validateReadSet(
  reads: readonly ReadRecord[],
  reader: VersionReader,
): Conflict | null {
  for (const read of reads) {
    assert(read.modRevision !== null || read.version !== null, "validateReadSet: checks a field");
    const now = reader.versionOf(read.key);
    assert(Number.isSafeInteger(now.version) && now.version >= 0, "validateReadSet: version");
    assert(Number.isSafeInteger(now.modRevision) && now.modRevision >= 0, "validateReadSet: rev");
    assert((now.version === 0) === (now.modRevision === 0), "validateReadSet: absent is 0 and 0");
    const field = failedCheck(read, now);
    if (field !== null) {
      return {
        key: read.key,
        field,
        expected: read.version,
        actual: now.version,
        expectedModRevision: read.modRevision,
        actualModRevision: now.modRevision,
        readRevision: read.revision,
      };
    }
  }
  return null;
}

/** The first check of `read` that fails against `now`, or null when the read holds. */
function failedCheck(read: ReadRecord, now: KeyVersion): Conflict["field"] | null {
  if (read.modRevision !== null && read.modRevision !== now.modRevision) return "modRevision";
  if (read.version !== null && read.version !== now.version) return "version";
  if (read.revision !== null && now.modRevision > read.revision) return "revision";
  return null;
}
