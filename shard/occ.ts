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
 */

import { assert } from "../raft/mod.ts";
import type { ReadVersion } from "./command.ts";
import type { Conflict } from "./apply_result.ts";

/** Reads the current version of a key: 0 when absent. */
export interface VersionReader {
  /** The version of `key` now; 0 when absent. */
  versionOf(key: string): number;
}

/**
 * Checks that every read still sees the version it recorded.
 *
 * @returns the first read (in read-set order) whose version moved, or null when all hold.
 */
export function validateReadSet(
  reads: readonly ReadVersion[],
  reader: VersionReader,
): Conflict | null {
  for (const read of reads) {
    const actual = reader.versionOf(read.key);
    assert(Number.isSafeInteger(actual) && actual >= 0, "validateReadSet: versions are counts");
    if (actual !== read.version) return { key: read.key, expected: read.version, actual };
  }
  return null;
}
