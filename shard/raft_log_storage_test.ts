/**
 * SqliteLogStorage beyond the shared conformance suite (tests/raft_storage_conformance_test.ts):
 * a corrupt file is reported as AspenError("storage_corrupt") for each kind of damage, a failed
 * persist() rolls back the whole Ready, the in-memory cache of recent entries always answers
 * what the file holds (checked against a fresh connection after appends, overwrites,
 * compactions and a rolled-back write), and a three-replica cluster on SQLite survives every
 * replica closing and reopening its file, restarting from snapshot plus log with nothing lost.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { AssertionError, RawNode, replicaId, SeededPrng } from "../raft/mod.ts";
import type { Prng } from "../raft/mod.ts";
import type { Entry, LogIndex, Message, ReplicaId, Term } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { SqliteLogStorage } from "./raft_log_storage.ts";
import { FatalStorageError } from "./storage_failure.ts";

const VOTERS = { voters: [replicaId(1), replicaId(2), replicaId(3)], learners: [] };

/** A one-byte entry of term 2 at `index`. */
function entry(index: number): Entry {
  return {
    term: 2 as Term,
    index: index as LogIndex,
    type: "normal",
    data: new Uint8Array([index]),
  };
}

function withDir(body: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "aspen-raft-log-" });
  try {
    body(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function damage(path: string, sql: string): void {
  const db = new DatabaseSync(path);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

const SNAPSHOT_COLUMNS = "(id, idx, term, voters, learners, data)";

Deno.test("SqliteLogStorage.open() reports corruption as storage_corrupt", async (t) => {
  const cases: Record<string, string> = {
    "a negative term": "UPDATE state SET term = -1",
    "a term past 2^53": "UPDATE state SET term = 9007199254740993",
    "a gap in the entries": "DELETE FROM entries WHERE idx = 2",
    "a commit past the log": "UPDATE state SET commit_index = 99",
    "a missing state row": "DELETE FROM state",
    "voters that are not JSON":
      `INSERT INTO snapshot ${SNAPSHOT_COLUMNS} VALUES (1, 0, 0, '[1,', '[]', x'')`,
    "a replica id of zero":
      `INSERT INTO snapshot ${SNAPSHOT_COLUMNS} VALUES (1, 0, 0, '[0]', '[]', x'')`,
    "a snapshot file length that is negative":
      "INSERT INTO snapshot VALUES (1, 0, 0, '[1]', '[]', x'', 'f', -1, 0)",
  };
  for (const [name, sql] of Object.entries(cases)) {
    await t.step(name, () => {
      withDir((dir) => {
        const path = `${dir}/raft-log.db`;
        SqliteLogStorage.open({ path, bootstrap: VOTERS }).close();
        damage(path, sql);
        const error = (() => {
          try {
            SqliteLogStorage.open({ path, bootstrap: null }).close();
          } catch (caught) {
            return caught;
          }
          return null;
        })();
        ok(error instanceof AspenError, `expected AspenError, got ${error}`);
        equal(error.code, "storage_corrupt");
      });
    });
  }
});

Deno.test("SqliteLogStorage.entries() reports a corrupt entry type on read", () => {
  withDir((dir) => {
    const path = `${dir}/raft-log.db`;
    SqliteLogStorage.open({ path, bootstrap: VOTERS }).close();
    damage(path, "UPDATE entries SET type = 7 WHERE idx = 2");
    const storage = SqliteLogStorage.open({ path, bootstrap: null });
    try {
      throws(() => storage.entries(1 as LogIndex, 4 as LogIndex, 1e9), AspenError);
    } finally {
      storage.close();
    }
  });
});

Deno.test("SqliteLogStorage.persist() writes a Ready in one transaction or not at all", () => {
  withDir((dir) => {
    const path = `${dir}/raft-log.db`;
    const storage = SqliteLogStorage.open({ path, bootstrap: VOTERS });
    try {
      const good: Entry = {
        term: 2 as Term,
        index: 4 as LogIndex,
        type: "normal",
        data: new Uint8Array([1]),
      };
      // The hard state is invalid (its term goes back), so the entry must not stay either.
      throws(
        () =>
          storage.persist({
            hardState: { term: 0 as Term, vote: null, commit: 0 as LogIndex },
            entries: [good],
            snapshot: null,
          }, true),
        AssertionError,
      );
      equal(storage.lastIndex(), 3);
      storage.persist({
        hardState: { term: 2 as Term, vote: replicaId(1), commit: 4 as LogIndex },
        entries: [good],
        snapshot: null,
      }, false);
      equal(storage.lastIndex(), 4);
    } finally {
      storage.close();
    }
    const reopened = SqliteLogStorage.open({ path, bootstrap: null });
    try {
      equal(reopened.lastIndex(), 4);
      deepStrictEqual(reopened.initialState().hardState, { term: 2, vote: 1, commit: 4 });
    } finally {
      reopened.close();
    }
  });
});

/** Compares every term and some slices of `storage` with a fresh, cache-less connection. */
function checkAgainstFile(storage: SqliteLogStorage, path: string, prng: Prng): void {
  const fresh = SqliteLogStorage.open({ path, bootstrap: null });
  try {
    equal(storage.firstIndex(), fresh.firstIndex());
    equal(storage.lastIndex(), fresh.lastIndex());
    for (let index = storage.firstIndex() - 1; index <= storage.lastIndex(); index++) {
      equal(storage.term(index as LogIndex), fresh.term(index as LogIndex), `term ${index}`);
    }
    for (let probe = 0; probe < 8; probe++) {
      const span = storage.lastIndex() - storage.firstIndex() + 1;
      const low = storage.firstIndex() + prng.nextInt(span);
      const high = low + prng.nextInt(storage.lastIndex() + 2 - low);
      const bytesMax = 1 + prng.nextInt(400);
      deepStrictEqual(
        storage.entries(low as LogIndex, high as LogIndex, bytesMax),
        fresh.entries(low as LogIndex, high as LogIndex, bytesMax),
        `entries [${low}, ${high}) under ${bytesMax} bytes`,
      );
    }
  } finally {
    fresh.close();
  }
}

Deno.test("SqliteLogStorage.persist() holds a commit-only hard state for the next write", () => {
  withDir((dir) => {
    const path = `${dir}/raft-log.db`;
    const at = (commit: number) => ({
      term: 2 as Term,
      vote: replicaId(1),
      commit: commit as LogIndex,
    });
    const reopen = (body: (storage: SqliteLogStorage) => void) => {
      const storage = SqliteLogStorage.open({ path, bootstrap: null });
      try {
        body(storage);
      } finally {
        storage.close();
      }
    };
    const storage = SqliteLogStorage.open({ path, bootstrap: VOTERS });
    try {
      storage.persist({ hardState: at(3), entries: [entry(4), entry(5)], snapshot: null }, true);
      // The commit index alone moved: nothing is written, but the storage answers it.
      equal(storage.persist({ hardState: at(5), entries: [], snapshot: null }, false), undefined);
      deepStrictEqual(storage.initialState().hardState, at(5));
    } finally {
      storage.close();
    }
    // The file kept the last written commit index (Raft learns a commit index again).
    reopen((reopened) => {
      deepStrictEqual(reopened.initialState().hardState, at(3));
      reopened.persist({ hardState: at(4), entries: [], snapshot: null }, false);
      reopened.persist({ hardState: at(5), entries: [], snapshot: null }, false);
      // The next transaction writes the held commit index with its own writes.
      reopened.persist({ hardState: null, entries: [entry(6)], snapshot: null }, true);
    });
    reopen((reopened) => {
      deepStrictEqual(reopened.initialState().hardState, at(5));
      // A new term is never held, even without entries.
      const next = { term: 3 as Term, vote: null, commit: 5 as LogIndex };
      reopened.persist({ hardState: next, entries: [], snapshot: null }, true);
    });
    reopen((reopened) => {
      deepStrictEqual(reopened.initialState().hardState, { term: 3, vote: null, commit: 5 });
      equal(reopened.lastIndex(), 6);
    });
  });
});

Deno.test("SqliteLogStorage's entry cache answers what the file holds", () => {
  withDir((dir) => {
    const path = `${dir}/raft-log.db`;
    const storage = SqliteLogStorage.open({ path, bootstrap: VOTERS });
    const prng = new SeededPrng(11);
    try {
      let term = 1;
      for (let step = 0; step < 40; step++) {
        const last = storage.lastIndex();
        const floor = Math.max(storage.firstIndex(), storage.initialState().hardState.commit + 1);
        const isOverwrite = prng.nextInt(4) === 0 && last >= floor;
        const first = isOverwrite ? Math.max(floor, last - prng.nextInt(5)) : last + 1;
        term += isOverwrite ? 1 : prng.nextInt(2);
        const entries = Array.from({ length: 1 + prng.nextInt(30) }, (_, i): Entry => ({
          index: (first + i) as LogIndex,
          term: term as Term,
          type: "normal",
          data: new Uint8Array(prng.nextInt(100)).fill(step),
        }));
        storage.persist({ hardState: null, entries, snapshot: null }, true);
        if (step % 10 === 9) {
          const index = storage.lastIndex() - 10;
          storage.createSnapshot(index as LogIndex, VOTERS, new Uint8Array([step]));
          storage.compact((index - 3) as LogIndex);
        }
        checkAgainstFile(storage, path, prng);
      }
      // A failed write that overwrote the last entry rolls back: the cache must forget it.
      const last = storage.lastIndex();
      throws(() =>
        storage.persist({
          hardState: { term: 0 as Term, vote: null, commit: 0 as LogIndex },
          entries: [{ index: last, term: (term + 1) as Term, type: "normal", data: EMPTY }],
          snapshot: null,
        }, true), AssertionError);
      checkAgainstFile(storage, path, prng);
    } finally {
      storage.close();
    }
  });
});

const EMPTY = new Uint8Array(0);

interface Member {
  id: ReplicaId;
  storage: SqliteLogStorage;
  node: RawNode;
  applied: string[];
}

function startMember(dir: string, id: ReplicaId, bootstrap: boolean): Member {
  const storage = SqliteLogStorage.open({
    path: `${dir}/raft-log-${id}.db`,
    bootstrap: bootstrap ? VOTERS : null,
  });
  const node = new RawNode({
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    prng: new SeededPrng(id),
    preVote: true,
    checkQuorum: true,
    leaseReads: false,
  }, storage);
  const snapshot = storage.snapshot();
  const applied = snapshot.data.byteLength === 0
    ? []
    : JSON.parse(new TextDecoder().decode(snapshot.data)) as string[];
  return { id, storage, node, applied };
}

function drain(members: Map<number, Member>): void {
  for (let round = 0; round < 100; round++) {
    const outbox: Message[] = [];
    for (const member of members.values()) {
      if (!member.node.hasReady()) continue;
      const ready = member.node.ready();
      member.storage.persist(ready, ready.mustSync);
      if (ready.snapshot !== null) {
        member.applied = JSON.parse(new TextDecoder().decode(ready.snapshot.data));
      }
      for (const entry of ready.committed) {
        if (entry.type === "normal" && entry.data.byteLength > 0) {
          member.applied.push(new TextDecoder().decode(entry.data));
        }
      }
      outbox.push(...ready.messages);
      member.node.advance(ready);
      const status = member.node.status();
      if (status.applied - member.storage.snapshot().metadata.index >= 5) {
        const data = new TextEncoder().encode(JSON.stringify(member.applied));
        member.storage.createSnapshot(
          status.applied,
          member.node.confStateAt(status.applied),
          data,
        );
        member.storage.compact(status.applied);
      }
    }
    if (outbox.length === 0) return;
    for (const message of outbox) members.get(message.to)?.node.step(message);
  }
}

Deno.test("RawNode on SqliteLogStorage restarts from snapshot plus log, losing nothing", () => {
  withDir((dir) => {
    const members = new Map<number, Member>();
    try {
      for (const id of VOTERS.voters) members.set(id, startMember(dir, id, true));
      members.get(1)!.node.campaign();
      drain(members);
      equal(members.get(1)!.node.status().role, "leader");
      const written: string[] = [];
      for (let i = 0; i < 23; i++) {
        const text = `write-${i}`;
        equal(members.get(1)!.node.propose(new TextEncoder().encode(text)).kind, "ok");
        written.push(text);
        drain(members);
        if (i % 7 === 3) {
          // Restart every replica from its file: snapshot plus the log after it.
          for (const [id, member] of members) {
            member.storage.close();
            members.set(id, startMember(dir, member.id, false));
          }
          members.get(1)!.node.campaign();
          drain(members);
        }
      }
      for (const member of members.values()) {
        deepStrictEqual(member.applied, written, `replica ${member.id} applied the same writes`);
        ok(member.storage.firstIndex() > 1, "the log was compacted");
      }
    } finally {
      for (const member of members.values()) member.storage.close();
    }
  });
});

Deno.test("SqliteLogStorage with deferred flushes: flush() makes persist() durable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-raft-log-" });
  try {
    const path = `${dir}/raft-log.db`;
    const hardState = { term: 2 as Term, vote: replicaId(1), commit: 3 as LogIndex };
    const storage = SqliteLogStorage.open({ path, bootstrap: VOTERS, isFlushDeferred: true });
    try {
      await storage.flush(); // nothing to flush: resolves at once
      const persisted = storage.persist(
        { hardState, entries: [entry(4), entry(5)], snapshot: null },
        true,
      );
      equal(storage.lastIndex(), 5);
      // flush() called while persist()'s fsync runs waits for it.
      await storage.flush();
      await persisted;
      await storage.flush();
    } finally {
      storage.close();
    }
    const reopened = SqliteLogStorage.open({ path, bootstrap: VOTERS, isFlushDeferred: true });
    try {
      equal(reopened.lastIndex(), 5);
      deepStrictEqual(reopened.initialState().hardState, hardState);
      // A failed sync is reported as fatal, never taken for success (here: the WAL file is
      // gone), by persist() and by every flush() after it.
      await Deno.remove(`${path}-wal`);
      const persisted = reopened.persist(
        { hardState: null, entries: [entry(6)], snapshot: null },
        true,
      );
      ok(persisted !== undefined, "a deferred must-sync write returns its flush");
      let failure: unknown = null;
      await persisted.catch((error) => failure = error);
      ok(failure instanceof FatalStorageError, `persist() rejects: ${failure}`);
      ok(failure.cause instanceof Deno.errors.NotFound, `with the cause: ${failure.cause}`);
      failure = null;
      await reopened.flush().catch((error) => failure = error);
      ok(failure instanceof FatalStorageError, `flush() rejects: ${failure}`);
    } finally {
      reopened.close();
    }
    // Without deferral (and in memory) persist() syncs itself and flush() has nothing to do.
    const memory = SqliteLogStorage.open({
      path: ":memory:",
      bootstrap: VOTERS,
      isFlushDeferred: true,
    });
    try {
      equal(memory.persist({ hardState, entries: [entry(4)], snapshot: null }, true), undefined);
      await memory.flush();
    } finally {
      memory.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
