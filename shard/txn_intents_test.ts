/**
 * Where intents live since schema 3: in memory, with the prepared participant rows (their
 * `locks`) as the durable copy. A prepare writes no `txn_intent` row, a reopened file has its
 * intents back, a resolve releases them; a version 2 file's intent rows are loaded, honoured
 * and deleted when their transaction resolves; range reads of intents come in UTF-8 byte
 * order within their bounds, as SQLite's BLOB order gave them.
 */
import { deepEqual, equal } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { ApplyResult } from "./apply_result.ts";
import type { Command, TxnPrepareCommand } from "./command.ts";
import { encodeCommand } from "./command_codec.ts";
import { StateMachine } from "./state_machine.ts";

const TXN = "1.1000.1";

function prepare(keys: readonly string[]): TxnPrepareCommand {
  return {
    type: "txnPrepare",
    txnId: TXN,
    shard: 0,
    home: 1,
    participants: [0, 1],
    deadlineMs: 5_000,
    compare: [{ key: keys[0]!, target: "version", op: "=", value: 0 }],
    reads: [],
    success: keys.map((key) => ({ type: "put", key, value: "v", lease: 0, prevKv: false })),
    failure: [],
    leases: [],
  };
}

const RESOLVE: Command = { type: "txnResolve", txnId: TXN, outcome: "commit", branch: "success" };

/** A state machine on `path` that applies commands at the next indexes. */
function open(path: string) {
  const sm = StateMachine.open({ path, synchronous: "normal" });
  return {
    sm,
    run(command: Command): ApplyResult {
      const index = sm.appliedIndex() + 1;
      return sm.apply([{ index, data: encodeCommand(command) }])[0]!;
    },
  };
}

/** Runs `body` on the raw file (the state machine closed). */
function raw<T>(path: string, body: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(path);
  try {
    return body(db);
  } finally {
    db.close();
  }
}

function intentRows(path: string): number {
  return raw(path, (db) => Number(db.prepare("SELECT COUNT(*) AS n FROM txn_intent").get()?.n));
}

function withFile(body: (path: string) => void): void {
  const directory = Deno.makeTempDirSync({ prefix: "aspen-intents-" });
  try {
    body(`${directory}/state-machine.db`);
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
}

Deno.test("intents live in memory, and the prepared rows bring them back", () => {
  withFile((path) => {
    const first = open(path);
    equal(first.run(prepare(["a", "b"])).type, "txnPrepared");
    deepEqual(first.sm.intentOf("b"), { txnId: TXN, home: 1 });
    first.sm.close();
    equal(intentRows(path), 0, "a prepare writes no txn_intent row");
    const prepared = raw(path, (db) => db.prepare("SELECT prepared FROM txn_participant").get());
    deepEqual(JSON.parse(String(prepared?.prepared)).locks, ["a", "b"]);

    const second = open(path);
    equal(second.sm.intentCount(), 2);
    deepEqual(second.sm.intentOf("a"), { txnId: TXN, home: 1 });
    equal(
      second.run({ type: "put", key: "a", value: "x", lease: 0, prevKv: false }).type,
      "locked",
    );
    equal(second.run(RESOLVE).type, "txnResolved");
    equal(second.sm.intentCount(), 0);
    equal(second.run({ type: "put", key: "a", value: "x", lease: 0, prevKv: false }).type, "put");
    second.sm.close();

    const third = open(path);
    equal(third.sm.intentCount(), 0, "the ended row locks nothing");
    third.sm.close();
  });
});

Deno.test("a version 2 file's intent rows hold their keys until the resolve deletes them", () => {
  withFile((path) => {
    const first = open(path);
    first.run(prepare(["a", "b"]));
    first.sm.close();
    // As version 2 left it: the intents are rows, and the participant row names no locks.
    raw(path, (db) => {
      db.exec("UPDATE sys SET value = 2 WHERE name = 'schema_version'");
      db.exec("UPDATE txn_participant SET prepared = json_remove(prepared, '$.locks')");
      const insert = db.prepare("INSERT INTO txn_intent (key, txn_id, home) VALUES (?, ?, ?)");
      for (const key of ["a", "b"]) insert.run(new TextEncoder().encode(key), TXN, 1);
    });

    const legacy = open(path);
    deepEqual(legacy.sm.intentOf("b"), { txnId: TXN, home: 1 });
    equal(legacy.run({ type: "delete", key: "b", prevKv: false }).type, "locked");
    const hashWithRows = legacy.sm.stateHash();
    legacy.sm.close();
    equal(intentRows(path), 2, "opening the file kept its rows");
    equal(
      raw(path, (db) => db.prepare("SELECT value FROM sys WHERE name = 'schema_version'").get())
        ?.value,
      3,
    );

    const resolving = open(path);
    equal(resolving.sm.stateHash(), hashWithRows, "the rows are read the same way each time");
    equal(resolving.run(RESOLVE).type, "txnResolved");
    equal(resolving.sm.intentCount(), 0);
    resolving.sm.close();
    equal(intentRows(path), 0, "the resolve deleted the rows");
  });
});

Deno.test("intentsIn() answers in UTF-8 byte order within the bounds", () => {
  const machine = open(":memory:");
  // UTF-16 order would put U+10000 (a surrogate pair) before U+E000; UTF-8 puts it after.
  const keys = ["\u{10000}", "z", "\uE000", "a"];
  equal(machine.run(prepare(keys)).type, "txnPrepared");
  const found = (range: Parameters<StateMachine["intentsIn"]>[0], limit = 10) =>
    machine.sm.intentsIn(range, limit).map((entry) => entry.key);
  deepEqual(found({ prefix: "" }), ["a", "z", "\uE000", "\u{10000}"]);
  deepEqual(found({ prefix: "" }, 2), ["a", "z"]);
  deepEqual(found({ start: "b", end: "\uE000" }), ["z"]);
  deepEqual(found({ start: "\uE000", end: "\u{10FFFF}" }), ["\uE000", "\u{10000}"]);
  deepEqual(found({ prefix: "\u{10000}" }), ["\u{10000}"]);
  machine.sm.close();
});
