/**
 * The SQLite storages on a really full disk: a small tmpfs is filled with a ballast file until
 * the kernel answers ENOSPC, then a write is tried. Each storage must fail the write with
 * `no_space` (never `storage_corrupt`, never a half-written state), keep serving what it held,
 * and accept the very same write once the ballast is removed: the Raft log (a Ready's entries
 * and hard state), the state machine (a batch of entries) and a state machine restore (which
 * must also remove its partial copy and keep the old state open). Opening a log on a full disk
 * is `no_space` too. Needs root to mount the tmpfs; skipped with that reason otherwise.
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { type LogIndex, replicaId, type Term } from "../raft/mod.ts";
import {
  AspenError,
  encodeCommand,
  SqliteLogStorage,
  StateMachine,
  storageFailureKind,
} from "../shard/mod.ts";
import { mountSmallFilesystem, type SmallFilesystem, tmpfsTestOptions } from "./_tmpfs.ts";

/** Large enough for SQLite's files and a few entries, small enough to fill at once. */
const FILESYSTEM_MIB = 4;
/** A payload larger than anything SQLite could still fit into a full file system. */
const LARGE_BYTES = 512 * 1024;

const VOTER = { voters: [replicaId(1)], learners: [] };

function isNoSpace(error: unknown): boolean {
  ok(error instanceof AspenError, `expected an AspenError, got ${error}`);
  equal(error.code, "no_space", error.message);
  equal(storageFailureKind(error), "no_space");
  return true;
}

async function withSmallFilesystem(body: (fs: SmallFilesystem) => Promise<void>): Promise<void> {
  const fs = await mountSmallFilesystem(FILESYSTEM_MIB);
  try {
    await body(fs);
  } finally {
    await fs.close();
  }
}

function put(index: number, key: string, value: string) {
  return {
    index,
    data: encodeCommand({ type: "put", key, value, lease: 0, prevKv: false }),
  };
}

Deno.test({
  ...tmpfsTestOptions(
    "SqliteLogStorage on a full disk: no_space, nothing written, the same write later",
  ),
  async fn() {
    await withSmallFilesystem(async (fs) => {
      const path = `${fs.dir}/raft-log.db`;
      const storage = SqliteLogStorage.open({ path, bootstrap: VOTER, isFlushDeferred: true });
      try {
        const before = storage.lastIndex();
        const hardStateBefore = storage.initialState().hardState;
        const writes = {
          hardState: { term: 2 as Term, vote: replicaId(1), commit: before },
          entries: [{
            index: (before + 1) as LogIndex,
            term: 2 as Term,
            type: "normal" as const,
            data: new Uint8Array(LARGE_BYTES).fill(7),
          }],
          snapshot: null,
        };
        ok(await fs.fill() > 0, "the ballast filled the file system");
        throws(() => storage.persist(writes, true), isNoSpace);
        equal(storage.lastIndex(), before, "no entry was added");
        deepEqual(storage.initialState().hardState, hardStateBefore, "nor the hard state");
        equal(storage.entries(1 as LogIndex, (before + 1) as LogIndex, 1e9)?.length, before);
        throws(() => storage.persist(writes, true), isNoSpace, "still full: fails again");
        await fs.free();
        await storage.persist(writes, true);
        equal(storage.lastIndex(), before + 1);
      } finally {
        storage.close();
      }
      const reopened = SqliteLogStorage.open({ path, bootstrap: null });
      try {
        equal(reopened.lastIndex(), 2);
        equal(reopened.initialState().hardState.term, 2);
        equal(reopened.entries(2 as LogIndex, 3 as LogIndex, 1e9)?.[0]?.data.length, LARGE_BYTES);
      } finally {
        reopened.close();
      }
    });
  },
});

Deno.test({
  ...tmpfsTestOptions(
    "SqliteLogStorage snapshots on a full disk: no_space, no file left, the same snapshot later",
  ),
  async fn() {
    await withSmallFilesystem(async (fs) => {
      const path = `${fs.dir}/raft-log.db`;
      const storage = SqliteLogStorage.open({ path, bootstrap: VOTER });
      const data = new Uint8Array(LARGE_BYTES).fill(9);
      const snapshotFiles = () =>
        [...Deno.readDirSync(fs.dir)].filter((entry) => entry.name.includes(".snapshot-"));
      try {
        const index = storage.lastIndex();
        await fs.fill();
        await rejects(async () => await storage.storeSnapshot(index, VOTER, data), isNoSpace);
        throws(() => storage.createSnapshot(index, VOTER, data), isNoSpace);
        equal(storage.snapshot().metadata.index, 0, "no snapshot was stored");
        equal(snapshotFiles().length, 0, "no partial file is left");
        await fs.free();
        await storage.storeSnapshot(index, VOTER, data);
        equal(storage.snapshot().metadata.index, index);
      } finally {
        storage.close();
      }
      const reopened = SqliteLogStorage.open({ path, bootstrap: null });
      try {
        deepEqual(reopened.snapshot().data, data);
        equal(snapshotFiles().length, 1);
      } finally {
        reopened.close();
      }
    });
  },
});

Deno.test({
  ...tmpfsTestOptions("SqliteLogStorage.open() on a full disk is no_space, not storage_corrupt"),
  async fn() {
    await withSmallFilesystem(async (fs) => {
      await fs.fill();
      throws(
        () => SqliteLogStorage.open({ path: `${fs.dir}/raft-log.db`, bootstrap: VOTER }).close(),
        isNoSpace,
      );
    });
  },
});

Deno.test({
  ...tmpfsTestOptions(
    "StateMachine.apply() on a full disk: no_space, nothing applied, the same batch later",
  ),
  async fn() {
    await withSmallFilesystem(async (fs) => {
      const machine = StateMachine.open({ path: `${fs.dir}/sm.db`, synchronous: "normal" });
      try {
        machine.apply([put(1, "a", "small")]);
        const batch = [put(2, "b", "x".repeat(LARGE_BYTES)), put(3, "c", "small")];
        await fs.fill();
        throws(() => machine.apply(batch), isNoSpace);
        equal(machine.appliedIndex(), 1, "nothing of the batch was applied");
        equal(machine.get("b"), null);
        equal(machine.get("a")?.value, "small", "what was applied is still served");
        await fs.free();
        const results = machine.apply(batch);
        deepEqual(results.map((result) => result.type), ["put", "put"]);
        equal(machine.appliedIndex(), 3);
        equal(machine.get("b")?.value.length, LARGE_BYTES);
      } finally {
        machine.close();
      }
    });
  },
});

Deno.test({
  ...tmpfsTestOptions(
    "StateMachine.restore() on a full disk keeps the old state open and works later",
  ),
  async fn() {
    await withSmallFilesystem(async (fs) => {
      const source = StateMachine.open({ path: ":memory:", synchronous: "normal" });
      source.apply([put(1, "new", "y".repeat(LARGE_BYTES)), put(2, "other", "z")]);
      const snapshot = source.snapshot();
      source.close();
      const path = `${fs.dir}/sm.db`;
      const machine = StateMachine.open({ path, synchronous: "normal" });
      try {
        machine.apply([put(1, "old", "kept")]);
        await fs.fill();
        throws(() => machine.restore(snapshot), isNoSpace);
        equal(machine.appliedIndex(), 1, "the old state stays");
        equal(machine.get("old")?.value, "kept");
        await rejects(Deno.stat(`${path}.restore`), Deno.errors.NotFound, "no partial copy");
        await fs.free();
        machine.restore(snapshot);
        equal(machine.appliedIndex(), 2);
        equal(machine.get("old"), null);
        equal(machine.get("new")?.value.length, LARGE_BYTES);
      } finally {
        machine.close();
      }
    });
  },
});
