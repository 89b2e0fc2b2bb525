/**
 * RaftLog over a MemoryStorage: reads that span storage and the unstable tail, conflict
 * detection and truncation (Raft §5.3), fast-backtracking hints, the up-to-date rule (§5.4.1),
 * commit and applied bounds, snapshot restore, and marking entries stable.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { AssertionError } from "./assert.ts";
import { RaftLog } from "./log.ts";
import { MemoryStorage } from "./storage.ts";
import type { Entry, LogIndex, Term } from "./types.ts";

const at = (value: number) => value as LogIndex;

function entry(index: number, entryTerm: number): Entry {
  return { index: at(index), term: entryTerm as Term, type: "normal", data: new Uint8Array(1) };
}

/** Storage with entries 1..3 at term 1, then unstable 4..5 at term 2. */
function makeLog(): RaftLog {
  const storage = new MemoryStorage();
  storage.append([entry(1, 1), entry(2, 1), entry(3, 1)]);
  const log = new RaftLog(storage);
  log.append([entry(4, 2), entry(5, 2)]);
  return log;
}

Deno.test("RaftLog reads terms and slices across storage and the unstable tail", () => {
  const log = makeLog();
  equal(log.firstIndex(), 1);
  equal(log.lastIndex(), 5);
  equal(log.term(at(3)), 1);
  equal(log.term(at(5)), 2);
  equal(log.term(at(6)), null);
  deepStrictEqual(log.slice(at(2), at(6), 1e9)?.map((item) => item.index), [2, 3, 4, 5]);
  deepStrictEqual(log.slice(at(2), at(6), 2)?.map((item) => item.index), [2, 3]);
});

Deno.test("RaftLog.findConflict() finds the first new or different entry", async (t) => {
  const cases: [string, Entry[], number | null][] = [
    ["all present", [entry(2, 1), entry(3, 1)], null],
    ["one new at the end", [entry(5, 2), entry(6, 2)], 6],
    ["a different term", [entry(3, 1), entry(4, 3)], 4],
  ];
  for (const [name, entries, expected] of cases) {
    await t.step(name, () => equal(makeLog().findConflict(entries), expected));
  }
});

Deno.test("RaftLog.append() truncates a conflicting unstable suffix", () => {
  const log = makeLog();
  log.append([entry(5, 3), entry(6, 3)]);
  equal(log.lastIndex(), 6);
  equal(log.term(at(5)), 3);
  log.append([entry(4, 4)]);
  equal(log.lastIndex(), 4);
  equal(log.term(at(4)), 4);
});

Deno.test("RaftLog.append() never overwrites committed entries", () => {
  const log = makeLog();
  log.commitTo(at(4));
  throws(() => log.append([entry(4, 9)]), AssertionError);
});

Deno.test("RaftLog.findConflictByTerm() skips whole terms for fast backtracking", () => {
  const log = makeLog();
  deepStrictEqual(log.findConflictByTerm(at(5), 1 as Term), { index: 3, term: 1 });
  deepStrictEqual(log.findConflictByTerm(at(5), 2 as Term), { index: 5, term: 2 });
  deepStrictEqual(log.findConflictByTerm(at(9), 5 as Term), { index: 5, term: 2 });
  deepStrictEqual(log.findConflictByTerm(at(5), 0 as Term), { index: 0, term: 0 });
});

Deno.test("RaftLog.isAtLeastAsNew() compares last term, then length (Raft §5.4.1)", () => {
  const log = makeLog();
  ok(log.isAtLeastAsNew(at(1), 3 as Term));
  ok(log.isAtLeastAsNew(at(5), 2 as Term));
  ok(!log.isAtLeastAsNew(at(4), 2 as Term));
  ok(!log.isAtLeastAsNew(at(100), 1 as Term));
});

Deno.test("RaftLog keeps applied <= committed <= lastIndex", () => {
  const log = makeLog();
  throws(() => log.commitTo(at(6)), AssertionError);
  throws(() => log.appliedTo(at(1)), AssertionError);
  log.commitTo(at(4));
  log.appliedTo(at(3));
  log.commitTo(at(2));
  equal(log.committed, 4, "commitTo() never moves back");
  throws(() => log.appliedTo(at(2)), AssertionError);
});

Deno.test("RaftLog.restore() replaces the log with a snapshot and commits it", () => {
  const log = makeLog();
  log.restore({
    metadata: { index: at(10), term: 3 as Term, confState: { voters: [], learners: [] } },
    data: new Uint8Array(0),
  });
  equal(log.firstIndex(), 11);
  equal(log.lastIndex(), 10);
  equal(log.term(at(10)), 3);
  equal(log.term(at(5)), null);
  equal(log.committed, 10);
});

Deno.test("RaftLog.stableTo() only drops unstable entries whose term still matches", () => {
  const log = makeLog();
  log.stableTo(at(4), 9 as Term);
  equal(log.unstable.entries.length, 2, "a mismatched term leaves entries unstable");
  log.stableTo(at(4), 2 as Term);
  equal(log.unstable.entries.length, 1);
  equal(log.unstable.offset, 5);
});
