/**
 * The LogStorage conformance suite: one set of behaviours (bootstrap, append with conflict
 * truncation, byte-capped reads, hard state, snapshots, compaction) checked against every
 * implementation — MemoryStorage and SqliteLogStorage — through a factory, plus reopening the
 * SQLite file after close to prove that what was written is what comes back.
 */
import { deepStrictEqual, equal, ok as check, throws } from "node:assert/strict";
import { AssertionError, MemoryStorage, replicaId } from "../raft/mod.ts";
import type { ConfState, Entry, LogIndex, Term, WritableLogStorage } from "../raft/mod.ts";
import { SqliteLogStorage } from "../shard/mod.ts";

interface Harness {
  /** Opens a storage; founding members pass their membership. */
  open(bootstrap: ConfState | null): WritableLogStorage;
  /** Closes and reopens the last storage (same contents expected); null when not durable. */
  reopen: ((storage: WritableLogStorage) => WritableLogStorage) | null;
  cleanup(): void;
}

function entry(index: number, entryTerm: number, text = ""): Entry {
  return {
    index: index as LogIndex,
    term: entryTerm as Term,
    type: "normal",
    data: new TextEncoder().encode(text),
  };
}

const VOTERS: ConfState = { voters: [replicaId(1), replicaId(2), replicaId(3)], learners: [] };

function memoryHarness(): Harness {
  return {
    open: (bootstrap) => new MemoryStorage(bootstrap ?? undefined),
    reopen: null,
    cleanup() {},
  };
}

function sqliteHarness(): Harness {
  const dir = Deno.makeTempDirSync({ prefix: "aspen-raft-log-" });
  const path = `${dir}/raft-log.db`;
  const opened: SqliteLogStorage[] = [];
  const open = (bootstrap: ConfState | null) => {
    const storage = SqliteLogStorage.open({ path, bootstrap });
    opened.push(storage);
    return storage;
  };
  return {
    open,
    reopen(storage) {
      (storage as SqliteLogStorage).close();
      return open(null);
    },
    cleanup() {
      for (const storage of opened) storage.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

type Case = (storage: WritableLogStorage, harness: Harness) => WritableLogStorage | void;

const CASES: Record<string, Case> = {
  "a founding member starts with one committed change per member at term 1": (storage) => {
    equal(storage.firstIndex(), 1);
    equal(storage.lastIndex(), 3);
    deepStrictEqual(storage.initialState().hardState, { term: 1, vote: null, commit: 3 });
    const entries = storage.entries(1 as LogIndex, 4 as LogIndex, 1e9);
    deepStrictEqual(entries?.map((item) => item.type), ["confChange", "confChange", "confChange"]);
    equal(storage.term(0 as LogIndex), 0);
    equal(storage.term(3 as LogIndex), 1);
    equal(storage.term(4 as LogIndex), null);
  },
  "append() truncates a conflicting suffix": (storage) => {
    storage.append([entry(4, 2, "a"), entry(5, 2, "b"), entry(6, 2, "c")]);
    storage.append([entry(5, 3, "x")]);
    equal(storage.lastIndex(), 5);
    equal(storage.term(5 as LogIndex), 3);
    deepStrictEqual(storage.entries(4 as LogIndex, 6 as LogIndex, 1e9)?.map((e) => e.term), [2, 3]);
  },
  "append() refuses a gap and a term that goes down": (storage) => {
    throws(() => storage.append([entry(9, 2)]), AssertionError);
    storage.append([entry(4, 3)]);
    throws(() => storage.append([entry(5, 2)]), AssertionError);
  },
  "entries() stops at the byte cap but returns at least one entry": (storage) => {
    storage.append([entry(4, 2, "12345"), entry(5, 2, "12345"), entry(6, 2, "12345")]);
    equal(storage.entries(4 as LogIndex, 7 as LogIndex, 1)?.length, 1);
    equal(storage.entries(4 as LogIndex, 7 as LogIndex, 10)?.length, 2);
    equal(storage.entries(4 as LogIndex, 7 as LogIndex, 1e9)?.length, 3);
    equal(storage.entries(4 as LogIndex, 4 as LogIndex, 1e9)?.length, 0);
  },
  "setHardState() persists and refuses a lower term": (storage) => {
    storage.setHardState({ term: 5 as Term, vote: replicaId(2), commit: 3 as LogIndex });
    deepStrictEqual(storage.initialState().hardState, { term: 5, vote: 2, commit: 3 });
    throws(() => storage.setHardState({ term: 4 as Term, vote: null, commit: 3 as LogIndex }));
  },
  "createSnapshot() keeps entries and compact() drops them up to an index": (storage) => {
    storage.append([entry(4, 2, "a"), entry(5, 2, "b"), entry(6, 3, "c")]);
    storage.createSnapshot(5 as LogIndex, VOTERS, new Uint8Array([9, 9]));
    equal(storage.snapshot().metadata.index, 5);
    equal(storage.snapshot().metadata.term, 2);
    equal(storage.firstIndex(), 1);
    storage.compact(4 as LogIndex);
    equal(storage.firstIndex(), 5);
    equal(storage.term(4 as LogIndex), 2);
    equal(storage.term(3 as LogIndex), null);
    equal(storage.entries(4 as LogIndex, 6 as LogIndex, 1e9), null);
    throws(() => storage.compact(6 as LogIndex), AssertionError);
  },
  "applySnapshot() replaces the whole log": (storage) => {
    storage.append([entry(4, 2, "a")]);
    const confState = { voters: [replicaId(1), replicaId(4)], learners: [replicaId(5)] };
    storage.applySnapshot({
      metadata: { index: 10 as LogIndex, term: 4 as Term, confState },
      data: new Uint8Array([1, 2, 3]),
    });
    equal(storage.firstIndex(), 11);
    equal(storage.lastIndex(), 10);
    equal(storage.term(10 as LogIndex), 4);
    deepStrictEqual(storage.initialState().confState, confState);
    storage.append([entry(11, 4, "next")]);
    equal(storage.lastIndex(), 11);
  },
  "reopen returns exactly what was written": (storage, harness) => {
    if (harness.reopen === null) return storage;
    storage.append([entry(4, 2, "a"), entry(5, 3, "b")]);
    storage.setHardState({ term: 3 as Term, vote: replicaId(1), commit: 4 as LogIndex });
    storage.createSnapshot(4 as LogIndex, VOTERS, new Uint8Array([7]));
    storage.compact(3 as LogIndex);
    const reopened = harness.reopen(storage);
    equal(reopened.firstIndex(), 4);
    equal(reopened.lastIndex(), 5);
    equal(reopened.term(3 as LogIndex), 1);
    deepStrictEqual(reopened.initialState().hardState, { term: 3, vote: 1, commit: 4 });
    deepStrictEqual(reopened.snapshot().metadata, { index: 4, term: 2, confState: VOTERS });
    deepStrictEqual([...reopened.snapshot().data], [7]);
    const entries = reopened.entries(4 as LogIndex, 6 as LogIndex, 1e9);
    deepStrictEqual(entries?.map((e) => new TextDecoder().decode(e.data)), ["a", "b"]);
    return reopened;
  },
  "a joining replica starts empty": (_storage, harness) => {
    const empty = harness.reopen === null ? harness.open(null) : null;
    if (empty === null) return;
    equal(empty.lastIndex(), 0);
    deepStrictEqual(empty.initialState().confState, { voters: [], learners: [] });
    check(empty.entries(1 as LogIndex, 1 as LogIndex, 10)?.length === 0);
  },
};

for (
  const [name, makeHarness] of [["MemoryStorage", memoryHarness], [
    "SqliteLogStorage",
    sqliteHarness,
  ]] as const
) {
  Deno.test(`LogStorage conformance: ${name}`, async (t) => {
    for (const [caseName, body] of Object.entries(CASES)) {
      await t.step(caseName, () => {
        const harness = makeHarness();
        try {
          body(harness.open(VOTERS), harness);
        } finally {
          harness.cleanup();
        }
      });
    }
  });
}
