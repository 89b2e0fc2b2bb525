/**
 * The server's cross-shard pieces without a cluster: the `txnRecord` and `txnParticipant`
 * shard requests survive the peer channel's encoding and a bad txn id is refused naming the
 * limit; `GET /v1/txn/{id}`'s reader finds the record on whichever shard holds it (that shard
 * is the home), turns participant rows into receipts, answers `txn_not_found` only when every
 * shard answered, and passes a shard's failure on otherwise; the reply fields order revisions
 * by shard; the metrics count outcomes and commit latency.
 */
import { deepEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import {
  AspenError,
  TXN_ID_CHARS_MAX,
  type TxnParticipantRow,
  type TxnRecord,
} from "../../shard/mod.ts";
import { CrossShardStats, outcomeOfError } from "./cross_shard_stats.ts";
import { crossShardFields, readTxnStatus } from "./cross_shard_txns.ts";
import {
  decodeShardRequest,
  encodeShardRequest,
  type ShardRequest,
  TXN_READ_KEYS_MAX,
} from "./shard_request.ts";

const RECORD: TxnRecord = {
  txnId: "1.5.7",
  status: "committed",
  home: 2,
  participants: [0, 2, 3],
  branch: "success",
  deadlineMs: 99,
  createdRevision: 10,
  decidedRevision: 12,
  reason: "",
};

function row(state: TxnParticipantRow["state"], resolvedRevision: number | null) {
  return { txnId: RECORD.txnId, home: 2, state, resolvedRevision };
}

Deno.test("txnRecord and txnParticipant requests cross the peer channel checked", async (t) => {
  await t.step("round trip", () => {
    for (const kind of ["txnRecord", "txnParticipant"] as const) {
      const request: ShardRequest = { kind, txnId: "3.1700000000000.42" };
      deepEqual(decodeShardRequest(encodeShardRequest(request)), request);
    }
  });
  const bad: [string, unknown][] = [
    ["a number", 7],
    ["empty", ""],
    ["too long", "x".repeat(TXN_ID_CHARS_MAX + 1)],
    ["not ASCII", "1.2.é"],
    ["a space", "1 2"],
  ];
  for (const [name, txnId] of bad) {
    await t.step(`refuses a txn id that is ${name}`, () => {
      const bytes = new TextEncoder().encode(JSON.stringify({ kind: "txnRecord", txnId }));
      throws(() => decodeShardRequest(bytes), (error: unknown) => {
        ok(error instanceof AspenError);
        equal(error.code, "bad_request");
        match(error.message, /TXN_ID_CHARS_MAX/);
        return true;
      });
    });
  }
});

Deno.test("txnReadKeys requests cross the peer channel checked", async (t) => {
  await t.step("round trip", () => {
    for (const changedAfter of [null, 0, 41]) {
      const request: ShardRequest = { kind: "txnReadKeys", keys: ["a", "b/c"], changedAfter };
      deepEqual(decodeShardRequest(encodeShardRequest(request)), request);
    }
  });
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ["no keys", { keys: [], changedAfter: null }, /TXN_READ_KEYS_MAX/],
    ["too many keys", {
      keys: Array.from({ length: TXN_READ_KEYS_MAX + 1 }, (_, i) => `k${i}`),
      changedAfter: null,
    }, /TXN_READ_KEYS_MAX/],
    ["keys not a list", { keys: "a", changedAfter: null }, /TXN_READ_KEYS_MAX/],
    ["an empty key", { keys: [""], changedAfter: null }, /key/],
    ["a negative revision", { keys: ["a"], changedAfter: -1 }, /changedAfter/],
    ["a fractional revision", { keys: ["a"], changedAfter: 1.5 }, /changedAfter/],
  ];
  for (const [name, fields, message] of bad) {
    await t.step(`refuses ${name}`, () => {
      const bytes = new TextEncoder().encode(JSON.stringify({ kind: "txnReadKeys", ...fields }));
      throws(() => decodeShardRequest(bytes), (error: unknown) => {
        ok(error instanceof AspenError);
        equal(error.code, "bad_request");
        match(error.message, message);
        return true;
      });
    });
  }
});

Deno.test("readTxnStatus() reads the record where it is, and a receipt per shard", async () => {
  const asked: string[] = [];
  const status = await readTxnStatus({
    txnId: RECORD.txnId,
    shardCount: 4,
    deadlineMs: 1_000,
    transport: {
      readRecord: (shard) => {
        asked.push(`record ${shard}`);
        return Promise.resolve(shard === 2 ? { ...RECORD, home: -1 } : null);
      },
      readParticipant: (shard) => {
        asked.push(`row ${shard}`);
        const rows = new Map([[0, row("committed", 40)], [2, row("prepared", null)]]);
        return Promise.resolve(rows.get(shard) ?? null);
      },
    },
  });
  deepEqual(asked.sort(), [
    "record 0",
    "record 1",
    "record 2",
    "record 3",
    "row 0",
    "row 2",
    "row 3",
  ]);
  equal(status.home, 2, "the shard that holds the record is the home, whatever it says");
  equal(status.status, "committed");
  deepEqual(status.receipts, [
    { shard: 0, status: "committed", resolvedRevision: 40 },
    { shard: 2, status: "pending", resolvedRevision: null },
    { shard: 3, status: "pending", resolvedRevision: null },
  ]);
});

Deno.test("readTxnStatus() says txn_not_found only when every shard answered", async () => {
  const transport = (failing: number | null) => ({
    readRecord: (shard: number) =>
      shard === failing
        ? Promise.reject(new AspenError("timeout", "Shard did not answer in time"))
        : Promise.resolve(null),
    readParticipant: () => Promise.resolve(null),
  });
  const read = { txnId: "1.1.1", shardCount: 3, deadlineMs: 1_000 };
  await rejects(readTxnStatus({ ...read, transport: transport(null) }), (error: unknown) => {
    ok(error instanceof AspenError);
    equal(error.code, "txn_not_found");
    match(error.message, /TXN_RECORDS_RETAIN/);
    return true;
  });
  await rejects(readTxnStatus({ ...read, transport: transport(1) }), (error: unknown) => {
    ok(error instanceof AspenError);
    equal(error.code, "timeout");
    return true;
  });
});

Deno.test("crossShardFields() names the home's revision and every shard's in order", () => {
  const fields = crossShardFields({
    txnId: "1.2.3",
    home: 3,
    revisions: new Map([[10, 5], [3, 8], [1, 2]]),
  });
  deepEqual(fields, {
    shard: 3,
    revision: 8,
    txnId: "1.2.3",
    revisions: { "1": 2, "3": 8, "10": 5 },
  });
  deepEqual(Object.keys(fields.revisions), ["1", "3", "10"]);
});

Deno.test("CrossShardStats counts outcomes and the latency of commits only", () => {
  const stats = new CrossShardStats();
  stats.record("committed", 0.02);
  stats.record("committed", 3);
  stats.record(outcomeOfError(new AspenError("conflict", "c")), 0.5);
  stats.record(outcomeOfError(new AspenError("timeout", "t")), 5);
  stats.record(outcomeOfError(new Error("bug")), 0);
  const text = stats.format('node="1"').join("\n");
  match(text, /^aspen_cross_shard_transactions_total\{node="1",outcome="committed"\} 2$/m);
  match(text, /^aspen_cross_shard_transactions_total\{node="1",outcome="conflict"\} 1$/m);
  match(text, /^aspen_cross_shard_transactions_total\{node="1",outcome="timeout"\} 1$/m);
  match(text, /^aspen_cross_shard_transactions_total\{node="1",outcome="error"\} 1$/m);
  match(text, /^aspen_cross_shard_commit_seconds_bucket\{node="1",le="0\.025"\} 1$/m);
  match(text, /^aspen_cross_shard_commit_seconds_bucket\{node="1",le="5"\} 2$/m);
  match(text, /^aspen_cross_shard_commit_seconds_count\{node="1"\} 2$/m);
});
