/**
 * A file-backed SqliteLogStorage keeps its snapshot's data in a file of its own
 * (_snapshot_file.ts): the row names the file, a reopened log reads it back and checks its length
 * and CRC-32, a replaced file is removed, files nobody names are removed at open, and a log
 * written before snapshot files (the data inline in the row) still opens. `storeSnapshot()`
 * writes the file off the event loop and makes the snapshot the log's only once its row is
 * committed; a snapshot received meanwhile, or a close, wins over it.
 */
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { replicaId } from "../raft/mod.ts";
import type { Entry, LogIndex, Snapshot, Term } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { SqliteLogStorage } from "./raft_log_storage.ts";

const VOTERS = { voters: [replicaId(1), replicaId(2), replicaId(3)], learners: [] };

function entries(from: number, to: number): Entry[] {
  const result: Entry[] = [];
  for (let index = from; index <= to; index++) {
    result.push({
      term: 2 as Term,
      index: index as LogIndex,
      type: "normal",
      data: new Uint8Array([index]),
    });
  }
  return result;
}

/** Bytes that stand for a state machine snapshot, different for each seed. */
function snapshotData(seed: number, length = 70_000): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

async function withLog(
  body: (dir: string, path: string, storage: SqliteLogStorage) => Promise<void> | void,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "aspen-snapshot-file-" });
  const path = `${dir}/raft-log.db`;
  const storage = SqliteLogStorage.open({ path, bootstrap: null });
  try {
    storage.append(entries(1, 20));
    await body(dir, path, storage);
  } finally {
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

function snapshotFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name)
    .filter((name) => name.includes(".snapshot-")).sort();
}

function reopen(path: string): SqliteLogStorage {
  return SqliteLogStorage.open({ path, bootstrap: null });
}

function isCorrupt(pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    ok(error instanceof AspenError, String(error));
    equal(error.code, "storage_corrupt", error.message);
    ok(pattern.test(error.message), error.message);
    return true;
  };
}

Deno.test("a snapshot's data lives in its own file, named by the row, replaced whole", async () => {
  await withLog((dir, path, storage) => {
    storage.createSnapshot(10 as LogIndex, VOTERS, snapshotData(1));
    const [first] = snapshotFiles(dir);
    ok(first?.startsWith("raft-log.db.snapshot-10-"), String(first));
    deepStrictEqual(Deno.readFileSync(`${dir}/${first}`), snapshotData(1));
    const inRow = new DatabaseSync(path).prepare("SELECT length(data) AS n FROM snapshot").get();
    equal(inRow?.n, 0, "the row holds no data");
    storage.createSnapshot(15 as LogIndex, VOTERS, snapshotData(2));
    const [second, ...others] = snapshotFiles(dir);
    ok(second?.startsWith("raft-log.db.snapshot-15-"), String(second));
    deepStrictEqual(others, [], "the replaced file is removed");
    storage.close();
    const reopened = reopen(path);
    try {
      deepStrictEqual(reopened.snapshot().metadata, { index: 15, term: 2, confState: VOTERS });
      deepStrictEqual(reopened.snapshot().data, snapshotData(2));
    } finally {
      reopened.close();
    }
  });
});

Deno.test("storeSnapshot() makes the snapshot the log's once its file is durable", async () => {
  await withLog(async (dir, path, storage) => {
    const stored = storage.storeSnapshot(12 as LogIndex, VOTERS, snapshotData(3));
    ok(stored instanceof Promise, "a file-backed log stores in the background");
    equal(storage.snapshot().metadata.index, 0, "not the log's before the row is committed");
    await stored;
    equal(storage.snapshot().metadata.index, 12);
    storage.compact(12 as LogIndex);
    storage.close();
    const reopened = reopen(path);
    try {
      equal(reopened.firstIndex(), 13);
      deepStrictEqual(reopened.snapshot().data, snapshotData(3));
      equal(snapshotFiles(dir).length, 1);
    } finally {
      reopened.close();
    }
  });
});

Deno.test("a snapshot received while one is stored wins, and the overtaken file goes", async () => {
  await withLog(async (dir, _path, storage) => {
    const stored = storage.storeSnapshot(12 as LogIndex, VOTERS, snapshotData(4));
    const received: Snapshot = {
      metadata: { index: 30 as LogIndex, term: 3 as Term, confState: VOTERS },
      data: snapshotData(5),
    };
    storage.persist({ hardState: null, entries: [], snapshot: received }, true);
    await stored;
    equal(storage.snapshot().metadata.index, 30);
    deepStrictEqual(storage.snapshot().data, snapshotData(5));
    const files = snapshotFiles(dir);
    equal(files.length, 1, files.join());
    ok(files[0]?.startsWith("raft-log.db.snapshot-30-"));
  });
});

Deno.test("a snapshot stored across close() is dropped, and its file removed at open", async () => {
  await withLog(async (dir, path, storage) => {
    storage.createSnapshot(8 as LogIndex, VOTERS, snapshotData(6));
    const stored = storage.storeSnapshot(14 as LogIndex, VOTERS, snapshotData(7));
    storage.close();
    await stored;
    equal(snapshotFiles(dir).length, 2, "the late file is written but named by no row");
    Deno.writeFileSync(`${path}.snapshot-20-00000000.tmp`, snapshotData(8, 100));
    const reopened = reopen(path);
    try {
      equal(reopened.snapshot().metadata.index, 8);
      deepStrictEqual(reopened.snapshot().data, snapshotData(6));
      const files = snapshotFiles(dir);
      equal(files.length, 1, files.join());
      ok(files[0]?.startsWith("raft-log.db.snapshot-8-"));
    } finally {
      reopened.close();
    }
  });
});

Deno.test("a snapshot file that is missing, short or altered is storage_corrupt", async (t) => {
  const cases: [string, (file: string) => void, RegExp][] = [
    ["missing", (file) => Deno.removeSync(file), /is missing/],
    ["short", (file) => Deno.truncateSync(file, 100), /has 100 bytes, not 70000/],
    ["altered", (file) => {
      const bytes = Deno.readFileSync(file);
      bytes[5_000] = bytes[5_000]! ^ 1;
      Deno.writeFileSync(file, bytes);
    }, /fails its CRC-32/],
  ];
  for (const [name, harm, pattern] of cases) {
    await t.step(name, async () => {
      await withLog((dir, path, storage) => {
        storage.createSnapshot(10 as LogIndex, VOTERS, snapshotData(9));
        storage.close();
        harm(`${dir}/${snapshotFiles(dir)[0]}`);
        throws(() => reopen(path), isCorrupt(pattern));
      });
    });
  }
});

Deno.test("a log written before snapshot files keeps its inline snapshot", async () => {
  await withLog((dir, path, storage) => {
    storage.close();
    const db = new DatabaseSync(path);
    try {
      // The table as it was, with the inline row that version wrote.
      db.exec("DROP TABLE snapshot");
      db.exec(`CREATE TABLE snapshot (
        id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL,
        voters TEXT NOT NULL, learners TEXT NOT NULL, data BLOB NOT NULL) STRICT`);
      db.prepare("INSERT INTO snapshot VALUES (1, 6, 2, ?, '[]', ?)")
        .run(JSON.stringify(VOTERS.voters), snapshotData(10, 500));
    } finally {
      db.close();
    }
    const old = reopen(path);
    try {
      deepStrictEqual(old.snapshot().data, snapshotData(10, 500));
      equal(snapshotFiles(dir).length, 0);
      old.createSnapshot(16 as LogIndex, VOTERS, snapshotData(11));
      equal(snapshotFiles(dir).length, 1, "the next snapshot goes to a file");
    } finally {
      old.close();
    }
    const reopened = reopen(path);
    try {
      deepStrictEqual(reopened.snapshot().data, snapshotData(11));
    } finally {
      reopened.close();
    }
  });
});

Deno.test("an in-memory log keeps its snapshot in the row and stores it at once", () => {
  const storage = SqliteLogStorage.open({ path: ":memory:", bootstrap: null });
  try {
    storage.append(entries(1, 5));
    equal(storage.storeSnapshot(4 as LogIndex, VOTERS, snapshotData(12)), undefined);
    equal(storage.snapshot().metadata.index, 4);
  } finally {
    storage.close();
  }
});

Deno.test("storeSnapshot() of an index a snapshot already covers is refused", async () => {
  await withLog(async (_dir, _path, storage) => {
    await storage.storeSnapshot(12 as LogIndex, VOTERS, snapshotData(13));
    await rejects(async () => {
      await storage.storeSnapshot(12 as LogIndex, VOTERS, snapshotData(14));
    }, /needs a newer index/);
  });
});

Deno.test("a stored snapshot's data is read from its file when asked for, not kept", async () => {
  await withLog(async (dir, path, storage) => {
    /** Alters the one snapshot file in place (same length) and expects the log to notice. */
    const alterAndExpectCorrupt = (log: SqliteLogStorage, expected: Uint8Array) => {
      const [name] = snapshotFiles(dir);
      deepStrictEqual(log.snapshot().data, expected);
      const altered = expected.slice();
      altered[17] = (expected[17] ?? 0) ^ 0xff;
      Deno.writeFileSync(`${dir}/${name}`, altered);
      throws(() => log.snapshot().data, isCorrupt(/fails its CRC-32/));
      Deno.writeFileSync(`${dir}/${name}`, expected);
      deepStrictEqual(log.snapshot().data, expected, "read again once the file is whole");
    };
    storage.createSnapshot(10 as LogIndex, VOTERS, snapshotData(20));
    alterAndExpectCorrupt(storage, snapshotData(20));
    await storage.storeSnapshot(15 as LogIndex, VOTERS, snapshotData(21));
    alterAndExpectCorrupt(storage, snapshotData(21));
    const received: Snapshot = {
      metadata: { index: 40 as LogIndex, term: 3 as Term, confState: VOTERS },
      data: snapshotData(22),
    };
    storage.persist({ hardState: null, entries: [], snapshot: received }, true);
    alterAndExpectCorrupt(storage, snapshotData(22));
    storage.close();
    const reopened = reopen(path);
    try {
      alterAndExpectCorrupt(reopened, snapshotData(22));
      Deno.removeSync(`${dir}/${snapshotFiles(dir)[0]}`);
      throws(() => reopened.snapshot().data, isCorrupt(/is missing/));
      equal(reopened.snapshot().metadata.index, 40, "the metadata needs no file");
    } finally {
      reopened.close();
    }
  });
});

Deno.test("a staged received snapshot's file is the one its persist stores", async () => {
  await withLog(async (dir, path, storage) => {
    const received: Snapshot = {
      metadata: { index: 30 as LogIndex, term: 3 as Term, confState: VOTERS },
      data: snapshotData(6),
    };
    await storage.stageSnapshot(received);
    const staged = snapshotFiles(dir);
    equal(staged.length, 1, "the file is written and synced before the persist");
    equal(storage.snapshot().metadata.index, 0, "staging alone changes nothing the log holds");
    storage.persist({ hardState: null, entries: [], snapshot: received }, true);
    deepStrictEqual(snapshotFiles(dir), staged, "the persist wrote no second file");
    equal(storage.snapshot().metadata.index, 30);
    storage.close();
    const reopened = reopen(path);
    try {
      deepStrictEqual(reopened.snapshot().data, snapshotData(6));
    } finally {
      reopened.close();
    }
  });
});

Deno.test("a staged file that no persist takes is removed", async (t) => {
  const snapshotAt = (index: number, seed: number): Snapshot => ({
    metadata: { index: index as LogIndex, term: 3 as Term, confState: VOTERS },
    data: snapshotData(seed),
  });
  await t.step("by the persist of another snapshot", async () => {
    await withLog(async (dir, _path, storage) => {
      await storage.stageSnapshot(snapshotAt(30, 7));
      const other = snapshotAt(31, 8);
      storage.persist({ hardState: null, entries: [], snapshot: other }, true);
      const files = snapshotFiles(dir);
      equal(files.length, 1, files.join());
      ok(files[0]?.startsWith("raft-log.db.snapshot-31-"));
      deepStrictEqual(storage.snapshot().data, snapshotData(8));
    });
  });
  await t.step("by a newer staging, even one that overtakes it while it writes", async () => {
    await withLog(async (dir, _path, storage) => {
      const first = storage.stageSnapshot(snapshotAt(30, 7));
      const second = snapshotAt(32, 9);
      await Promise.all([first, storage.stageSnapshot(second)]);
      const files = snapshotFiles(dir);
      equal(files.length, 1, files.join());
      ok(files[0]?.startsWith("raft-log.db.snapshot-32-"));
      storage.persist({ hardState: null, entries: [], snapshot: second }, true);
      deepStrictEqual(snapshotFiles(dir), files);
    });
  });
  await t.step("by close, and by the next open after a crash", async () => {
    await withLog(async (dir, path, storage) => {
      await storage.stageSnapshot(snapshotAt(30, 7));
      storage.close();
      deepStrictEqual(snapshotFiles(dir), []);
      const crashed = reopen(path);
      await crashed.stageSnapshot(snapshotAt(33, 10));
      equal(snapshotFiles(dir).length, 1);
      // A crash now: the file was written, the row never was (no close runs).
      const next = reopen(path);
      try {
        deepStrictEqual(snapshotFiles(dir), [], "no row names it: removed at open");
      } finally {
        next.close();
        crashed.close();
      }
    });
  });
});
