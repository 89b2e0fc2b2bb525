/**
 * The pure parts of the chaos harness, table-driven: how an HTTP answer counts for the history
 * (2xx ok, 4xx not applied, 5xx and no answer unknown), and
 * how replica reports are compared (settled only when every replica of every shard reports one
 * applied index; equal indexes with different state hashes are divergence), how the heavy
 * writer's keys read back are judged (lost, changed, stray or unexpected keys are caught), and
 * which records of a power-loss journal are undone (those after the last completed sync), and
 * how the bank workload's reads and final balances are judged (a torn total, a missing account
 * or a changed final total is caught).
 */
import { deepEqual, equal } from "node:assert/strict";
import { bankAccounts, checkBankFinal, checkBankReads } from "./chaos/bank.ts";
import { ACKNOWLEDGED, checkHeavyKeys, FAILED, UNKNOWN, UNWRITTEN } from "./chaos/heavy.ts";
import { unsyncedRecords } from "./chaos/power_loss.ts";
import { compareReplicas } from "./chaos/verify.ts";
import { classifyAnswer } from "./chaos/workload.ts";
import type { ReplicaDebugState } from "../server/http/mod.ts";

Deno.test("classifyAnswer() maps statuses to outcomes", async (t) => {
  const cases: [number | null, string][] = [
    [200, "ok"],
    [204, "ok"],
    [400, "failed"],
    [404, "failed"],
    [409, "failed"],
    [412, "failed"],
    [429, "failed"],
    [500, "unknown"],
    [503, "unknown"],
    [504, "unknown"],
    [null, "unknown"],
  ];
  for (const [status, expected] of cases) {
    await t.step(`${status} is ${expected}`, () => equal(classifyAnswer(status), expected));
  }
});

function replica(
  shard: number,
  appliedIndex: number,
  stateHash: string | null = "h",
): ReplicaDebugState {
  return {
    shard,
    role: "follower",
    term: 2,
    leader: 1,
    commitIndex: appliedIndex,
    appliedIndex,
    stateHash,
  };
}

Deno.test("compareReplicas() settles, waits and finds divergence", async (t) => {
  const shape = { shards: 2, replicasPerShard: 2 };
  await t.step("equal indexes and hashes: settled", () => {
    const states = new Map([[1, [replica(0, 9), replica(1, 4)]], [2, [
      replica(0, 9),
      replica(1, 4),
    ]]]);
    deepEqual(compareReplicas(states, shape), { isSettled: true, divergences: [], pending: [] });
  });
  await t.step("different indexes: pending", () => {
    const states = new Map([[1, [replica(0, 9), replica(1, 4)]], [2, [
      replica(0, 8),
      replica(1, 4),
    ]]]);
    const verdict = compareReplicas(states, shape);
    equal(verdict.isSettled, false);
    deepEqual(verdict.divergences, []);
    deepEqual(verdict.pending, ["shard 0: applied indexes differ (n1@9 n2@8)"]);
  });
  await t.step("a missing replica or shard: pending", () => {
    const states = new Map([[1, [replica(0, 9)]], [2, [replica(0, 9)]]]);
    const verdict = compareReplicas(states, shape);
    equal(verdict.isSettled, false);
    deepEqual(verdict.pending, ["shard 1: 0 of 2 replicas answer"]);
  });
  await t.step("one shard compared on its own", () => {
    const states = new Map([[1, [replica(1, 4, "aaaa")]], [2, [replica(1, 4, "bbbb")]]]);
    const verdict = compareReplicas(states, { ...shape, shards: 1, firstShard: 1 });
    deepEqual(verdict.pending, []);
    deepEqual(verdict.divergences, [
      "shard 1: replicas at applied index 4 differ: n1=aaaa n2=bbbb",
    ]);
  });
  await t.step("states read without hashes settle the indexes only", () => {
    const states = new Map([[1, [replica(0, 9, null), replica(1, 4, null)]], [2, [
      replica(0, 9, null),
      replica(1, 4, null),
    ]]]);
    deepEqual(compareReplicas(states, shape), { isSettled: true, divergences: [], pending: [] });
  });
  await t.step("equal indexes, different hashes: divergence", () => {
    const states = new Map([[1, [replica(0, 9, "aaaa"), replica(1, 4)]], [2, [
      replica(0, 9, "bbbb"),
      replica(1, 4),
    ]]]);
    const verdict = compareReplicas(states, shape);
    deepEqual(verdict.divergences, [
      "shard 0: replicas at applied index 9 differ: n1=aaaa n2=bbbb",
    ]);
  });
});

Deno.test("checkHeavyKeys() finds lost, changed, stray and unexpected keys", async (t) => {
  const keyOf = (sequence: number) => `h/${sequence}`;
  // Keys 0..4: acknowledged, unknown, failed, never written (another shard's), acknowledged.
  const fates = new Uint8Array([ACKNOWLEDGED, UNKNOWN, FAILED, UNWRITTEN, ACKNOWLEDGED]);
  const cases: [string, [number, string][], string[]][] = [
    ["everything acknowledged is there", [[0, "v0"], [4, "v4"]], []],
    ["an unknown write may have landed", [[0, "v0"], [1, "v1"], [4, "v4"]], []],
    ["a lost acknowledged write", [[0, "v0"]], [
      "heavy check: acknowledged key h/4 is missing",
      "heavy check: 1 acknowledged writes lost in all",
    ]],
    ["a changed value", [[0, "v0"], [4, "v9"]], ['heavy check: key h/4 holds "v9", not "v4"']],
    ["a failed write that landed", [[0, "v0"], [2, "v2"], [4, "v4"]], [
      "heavy check: key h/2 exists although its put failed or never ran",
    ]],
    ["a key never written", [[0, "v0"], [3, "v3"], [4, "v4"], [7, "v7"]], [
      "heavy check: key h/3 exists although its put failed or never ran",
      "heavy check: key h/7 was never written",
    ]],
  ];
  for (const [name, found, expected] of cases) {
    await t.step(name, () => {
      deepEqual(checkHeavyKeys(fates, new Map(found), keyOf), expected);
    });
  }
});

Deno.test("unsyncedRecords() keeps the writes after the last completed sync", async (t) => {
  const record = (kind: string, a: number, b = 0, data: number[] = []) => {
    const bytes = new Uint8Array(40 + data.length);
    const view = new DataView(bytes.buffer);
    bytes[0] = kind.charCodeAt(0);
    view.setBigUint64(8, BigInt(a), true);
    view.setBigUint64(16, BigInt(b), true);
    view.setBigUint64(32, BigInt(data.length), true);
    bytes.set(data, 40);
    return [...bytes];
  };
  const journal = (...records: number[][]) => new Uint8Array(records.flat());
  const summary = (bytes: Uint8Array) =>
    unsyncedRecords(bytes).map((item) => `${item.kind}@${item.at}/${item.sizeBefore}:${item.old}`);
  await t.step("no sync: every write after the header", () => {
    deepEqual(summary(journal(record("B", 0), record("W", 0, 0), record("W", 3, 5, [7, 8]))), [
      "write@0/0:",
      "write@3/5:7,8",
    ]);
  });
  await t.step("a sync covers the records logged before it started", () => {
    // Logical positions: B at 0, W at 40, W at 80, S at 122 (cutoff 80: the second W raced).
    const bytes = journal(record("B", 0), record("W", 0, 0), record("W", 1, 1, [9, 9]));
    deepEqual(summary(journal([...bytes], record("S", 80))), ["write@1/1:9,9"]);
    deepEqual(summary(journal([...bytes], record("S", 122))), []);
  });
  await t.step("a journal restarted at a base counts positions from it", () => {
    const bytes = journal(record("B", 1_000), record("T", 4, 10, [1, 2, 3, 4, 5, 6]));
    deepEqual(summary(bytes), ["truncate@4/10:1,2,3,4,5,6"]);
    deepEqual(summary(journal([...bytes], record("S", 1_040))), ["truncate@4/10:1,2,3,4,5,6"]);
    deepEqual(summary(journal([...bytes], record("S", 1_086))), []);
  });
  await t.step("a record cut short by the kill is dropped (its write never started)", () => {
    const whole = record("W", 0, 0, [1, 2, 3]);
    deepEqual(summary(journal(record("B", 0), whole, whole.slice(0, 41))), ["write@0/0:1,2,3"]);
  });
  await t.step("an empty journal (restarted by a full sync) undoes nothing", () => {
    deepEqual(summary(new Uint8Array(0)), []);
  });
});

Deno.test("checkBankReads() and checkBankFinal() catch torn and changed totals", async (t) => {
  const accounts = ["a", "b", "c"];
  const read = (balances: Record<string, number | null>, node = 1) => ({
    node,
    callMs: 100,
    returnMs: 140,
    balances,
  });
  await t.step("consistent reads: no anomaly", () => {
    deepEqual(
      checkBankReads([read({ a: 10, b: 20, c: 30 }), read({ a: 0, b: 5, c: 55 })], accounts, 60),
      [],
    );
  });
  await t.step("a read that saw half a transfer is torn", () => {
    // A transfer of 7 from a to c: the reader saw a debited, c not yet credited.
    const reads = [read({ a: 10, b: 20, c: 30 }), read({ a: 3, b: 20, c: 30 }, 2)];
    deepEqual(checkBankReads(reads, accounts, 60), [
      "bank: a read-only txn through node 2 (100-140 ms) saw a torn state: total 53, not 60",
    ]);
  });
  await t.step("a read missing an account", () => {
    deepEqual(checkBankReads([read({ a: 30, b: null, c: 30 })], accounts, 60), [
      "bank: a read-only txn through node 1 (100-140 ms) found no account b",
    ]);
  });
  await t.step("final balances: unchanged, changed, missing", () => {
    deepEqual(checkBankFinal(new Map([["a", 1], ["b", 2], ["c", 57]]), accounts, 60), []);
    deepEqual(checkBankFinal(new Map([["a", 1], ["b", 2], ["c", 50]]), accounts, 60), [
      "bank: final total 53, not 60: money was made or lost",
    ]);
    deepEqual(checkBankFinal(new Map([["a", 1], ["c", 59]]), accounts, 60), [
      "bank: final read found no account b",
    ]);
  });
  await t.step("accounts spread evenly over the shards", () => {
    const keys = bankAccounts("b1/", 4);
    equal(keys.length, 12);
    deepEqual(keys, [...keys].sort());
  });
});
