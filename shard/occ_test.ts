/**
 * Table-driven tests of validateReadSet, the pure read-set check of optimistic transactions:
 * each case is a key's counters now (or absent), one read record, and the conflict expected
 * (null when the read holds). The cases cover each field alone and together, absent keys, and
 * the delete and re-create that brings a key back to the version a read saw.
 */

import assert from "node:assert/strict";
import type { Conflict } from "./apply_result.ts";
import type { ReadRecord } from "./command.ts";
import { type KeyVersion, validateReadSet } from "./occ.ts";

const ABSENT: KeyVersion = { version: 0, modRevision: 0 };

interface Case {
  /** The key's counters now. */
  readonly now: KeyVersion;
  /** The read, without its key. */
  readonly read: Omit<ReadRecord, "key">;
  /** The failed check, or null when the read holds. */
  readonly failed: Conflict["field"] | null;
}

function read(fields: Partial<Omit<ReadRecord, "key">>): Omit<ReadRecord, "key"> {
  return { modRevision: null, version: null, revision: null, ...fields };
}

// In the comments, "k" was written at revision 10 (version 1) and read then. "Re-created"
// means it was deleted and put again at revision 14, back at version 1.
const AT_10: KeyVersion = { version: 1, modRevision: 10 };
const RECREATED: KeyVersion = { version: 1, modRevision: 14 };
const CASES: readonly [string, Case][] = [
  ["modRevision that matches", { now: AT_10, read: read({ modRevision: 10 }), failed: null }],
  ["modRevision after a change", {
    now: { version: 2, modRevision: 12 },
    read: read({ modRevision: 10 }),
    failed: "modRevision",
  }],
  ["modRevision after a re-create", {
    now: RECREATED,
    read: read({ modRevision: 10 }),
    failed: "modRevision",
  }],
  ["modRevision 0 while absent", { now: ABSENT, read: read({ modRevision: 0 }), failed: null }],
  ["modRevision 0 but created since", {
    now: AT_10,
    read: read({ modRevision: 0 }),
    failed: "modRevision",
  }],
  ["modRevision of a deleted key", {
    now: ABSENT,
    read: read({ modRevision: 10 }),
    failed: "modRevision",
  }],
  ["modRevision matches but the version does not", {
    now: AT_10,
    read: read({ modRevision: 10, version: 2 }),
    failed: "version",
  }],
  ["version only that matches", { now: AT_10, read: read({ version: 1 }), failed: null }],
  ["version only after a change", {
    now: { version: 2, modRevision: 12 },
    read: read({ version: 1 }),
    failed: "version",
  }],
  // The documented limit: a version alone cannot tell the re-created key from the one read.
  ["version only cannot see a re-create", {
    now: RECREATED,
    read: read({ version: 1 }),
    failed: null,
  }],
  ["version 0 while absent", { now: ABSENT, read: read({ version: 0 }), failed: null }],
  ["version 0 but created since", { now: AT_10, read: read({ version: 0 }), failed: "version" }],
  ["version and revision, unchanged", {
    now: AT_10,
    read: read({ version: 1, revision: 11 }),
    failed: null,
  }],
  ["version and revision, read at the change itself", {
    now: AT_10,
    read: read({ version: 1, revision: 10 }),
    failed: null,
  }],
  ["version and revision see a re-create", {
    now: RECREATED,
    read: read({ version: 1, revision: 11 }),
    failed: "revision",
  }],
  ["version and revision, changed to another version", {
    now: { version: 2, modRevision: 12 },
    read: read({ version: 1, revision: 11 }),
    failed: "version",
  }],
  ["version 0 and revision, still absent", {
    now: ABSENT,
    read: read({ version: 0, revision: 11 }),
    failed: null,
  }],
  ["version 0 and revision, created since", {
    now: { version: 1, modRevision: 12 },
    read: read({ version: 0, revision: 11 }),
    failed: "version",
  }],
  ["all three hold", {
    now: AT_10,
    read: read({ modRevision: 10, version: 1, revision: 11 }),
    failed: null,
  }],
];

Deno.test("validateReadSet() checks each field a read names", async (t) => {
  for (const [name, { now, read, failed }] of CASES) {
    await t.step(name, () => {
      const conflict = validateReadSet([{ key: "k", ...read }], { versionOf: () => now });
      if (failed === null) return assert.equal(conflict, null);
      assert.deepEqual(conflict, {
        key: "k",
        field: failed,
        expected: read.version,
        actual: now.version,
        expectedModRevision: read.modRevision,
        actualModRevision: now.modRevision,
        readRevision: read.revision,
      });
    });
  }
});

Deno.test("validateReadSet() names the first read that fails, in read-set order", () => {
  const now = new Map<string, KeyVersion>([["a", AT_10], ["b", RECREATED], ["c", RECREATED]]);
  const reader = { versionOf: (key: string) => now.get(key) ?? ABSENT };
  const reads: ReadRecord[] = ["a", "b", "c", "d"].map((key) => ({
    key,
    modRevision: 10,
    version: null,
    revision: null,
  }));
  assert.equal(validateReadSet(reads, reader)?.key, "b");
  assert.equal(validateReadSet(reads.slice(0, 1), reader), null);
  assert.equal(validateReadSet([], reader), null, "an empty read set always holds");
});

Deno.test("validateReadSet() asserts that a read names a modRevision or a version", () => {
  const reads: ReadRecord[] = [{ key: "k", modRevision: null, version: null, revision: 3 }];
  assert.throws(() => validateReadSet(reads, { versionOf: () => ABSENT }), /checks a field/);
});
