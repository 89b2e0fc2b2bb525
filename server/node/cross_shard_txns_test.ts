/**
 * The server's cross-shard pieces without a cluster: the `txnRecord`, `txnParticipant` and
 * `txnVote` shard requests survive the peer channel's encoding and a bad txn id is refused
 * naming the limit; `GET /v1/txn/{id}`'s reader finds the record on whichever shard holds it
 * (that shard is the home), turns participant rows into receipts, answers `txn_not_found` only
 * when every shard answered, and passes a shard's failure on otherwise; with a fake transport
 * (reads only: it cannot propose), a staging record whose participants all voted commit reads
 * committed, one with a participant not prepared reads pending, one with a refusal or conflict
 * reads aborted, and a participant on a node that predates `txnVote` leaves the record's
 * status; the reply fields order revisions by shard; the metrics count outcomes and commit
 * latency.
 */
import { deepEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import {
  AspenError,
  TXN_ID_CHARS_MAX,
  type TxnParticipantRow,
  type TxnParticipantVote,
  type TxnRecord,
} from "../../shard/mod.ts";
import { CrossShardStats, outcomeOfError } from "./cross_shard_stats.ts";
import {
  crossShardFields,
  impliedOutcome,
  type ParticipantRead,
  readTxnStatus,
} from "./cross_shard_txns.ts";
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

/** A participant row with its vote: prepared and voting commit unless told otherwise. */
function voted(fields: Partial<TxnParticipantVote> = {}): TxnParticipantVote {
  return { ...row("prepared", null), vote: "commit", compareSucceeded: true, ...fields };
}

/** The record of RECORD's transaction still staging. */
const STAGING: TxnRecord = { ...RECORD, status: "pending", branch: null, decidedRevision: null };

/**
 * A fake transport with STAGING on shard 2 of 4 and `rows` as the participants' votes (a
 * rejected promise: that shard's read fails); it has no way to propose anything, so a status
 * read cannot change an outcome. Calls are logged in `asked`.
 */
function stagingTransport(
  votes: ReadonlyMap<number, () => Promise<TxnParticipantVote | null>>,
  asked: string[] = [],
) {
  return {
    txnId: RECORD.txnId,
    shardCount: 4,
    deadlineMs: 1_000,
    transport: {
      readRecord: (shard: number) => Promise.resolve(shard === 2 ? STAGING : null),
      readVote: (shard: number) => {
        asked.push(`vote ${shard}`);
        return votes.get(shard)?.() ?? Promise.resolve(null);
      },
      readParticipant: (shard: number) => {
        asked.push(`row ${shard}`);
        return Promise.resolve(row("prepared", null) as TxnParticipantRow | null);
      },
    },
  };
}

function answer(vote: TxnParticipantVote | null) {
  return () => Promise.resolve(vote);
}

Deno.test("txn record, participant and vote requests cross the peer channel checked", async (t) => {
  await t.step("round trip", () => {
    for (const kind of ["txnRecord", "txnParticipant", "txnVote"] as const) {
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
      readVote: (shard) => {
        asked.push(`vote ${shard}`);
        const rows = new Map([[0, voted(row("committed", 40))], [2, voted()]]);
        return Promise.resolve(rows.get(shard) ?? null);
      },
      readParticipant: () => Promise.reject(new Error("not asked: every shard knows txnVote")),
    },
  });
  deepEqual(asked.sort(), [
    "record 0",
    "record 1",
    "record 2",
    "record 3",
    "vote 0",
    "vote 2",
    "vote 3",
  ]);
  equal(status.home, 2, "the shard that holds the record is the home, whatever it says");
  equal(status.status, "committed");
  equal(status.recordStatus, "committed");
  deepEqual(status.receipts, [
    { shard: 0, status: "committed", resolvedRevision: 40, prepare: "prepared" },
    { shard: 2, status: "pending", resolvedRevision: null, prepare: "prepared" },
    { shard: 3, status: "pending", resolvedRevision: null, prepare: "none" },
  ]);
});

Deno.test("readTxnStatus() of a staging record: the outcome its votes imply", async (t) => {
  await t.step("every participant prepared: committed, the record still pending", async () => {
    const votes = new Map([[0, answer(voted())], [2, answer(voted())], [3, answer(voted())]]);
    const status = await readTxnStatus(stagingTransport(votes));
    equal(status.status, "committed");
    equal(status.recordStatus, "pending");
    equal(status.branch, "success");
    equal(status.decidedRevision, null, "the record is not decided yet");
    equal(status.reason, "");
    deepEqual(status.receipts.map((receipt) => [receipt.status, receipt.prepare]), [
      ["pending", "prepared"],
      ["pending", "prepared"],
      ["pending", "prepared"],
    ]);
  });
  await t.step("one resolved already, one compare failed: committed, failure branch", async () => {
    const votes = new Map([
      [0, answer(voted(row("committed", 40)))],
      [2, answer(voted({ compareSucceeded: false }))],
      [3, answer(voted())],
    ]);
    const status = await readTxnStatus(stagingTransport(votes));
    equal(status.status, "committed");
    equal(status.branch, "failure");
    deepEqual(status.receipts[0], {
      shard: 0,
      status: "committed",
      resolvedRevision: 40,
      prepare: "prepared",
    });
  });
  await t.step("one not prepared yet: pending, as the record says", async () => {
    const votes = new Map([[0, answer(voted())], [2, answer(voted())], [3, answer(null)]]);
    const status = await readTxnStatus(stagingTransport(votes));
    equal(status.status, "pending");
    equal(status.recordStatus, "pending");
    equal(status.branch, null);
    equal(status.receipts[2]?.prepare, "none");
  });
  const refusals: [string, TxnParticipantVote, string][] = [
    ["an OCC conflict", voted({ vote: "conflict" }), "conflict"],
    ["a refused prepare", voted({ ...row("aborted", 41), vote: "aborted" }), "refused"],
  ];
  for (const [name, refusal, reason] of refusals) {
    await t.step(`${name}: aborted (it can never commit), not committed`, async () => {
      const votes = new Map([[0, answer(voted())], [2, answer(refusal)], [3, answer(null)]]);
      const status = await readTxnStatus(stagingTransport(votes));
      equal(status.status, "aborted");
      equal(status.recordStatus, "pending");
      equal(status.branch, null);
      equal(status.reason, reason);
      equal(status.receipts[1]?.prepare, refusal.vote === "conflict" ? "conflict" : "aborted");
    });
  }
  await t.step("a node that predates txnVote: its plain row, and the record's status", async () => {
    const old = () => Promise.reject(new AspenError("bad_request", "Cannot decode a forwarded"));
    const asked: string[] = [];
    const votes = new Map([[0, answer(voted())], [2, old], [3, answer(voted())]]);
    const status = await readTxnStatus(stagingTransport(votes, asked));
    deepEqual(asked.sort(), ["row 2", "vote 0", "vote 2", "vote 3"]);
    equal(status.status, "pending", "its vote is unknown, so the record's status stands");
    deepEqual(status.receipts[1], {
      shard: 2,
      status: "pending",
      resolvedRevision: null,
      prepare: "unknown",
    });
  });
  await t.step("a participant that does not answer fails the read", async () => {
    const late = () => Promise.reject(new AspenError("timeout", "Shard did not answer in time"));
    const votes = new Map([[0, answer(voted())], [2, late], [3, answer(voted())]]);
    await rejects(readTxnStatus(stagingTransport(votes)), (error: unknown) => {
      ok(error instanceof AspenError);
      equal(error.code, "timeout");
      return true;
    });
  });
});

Deno.test("impliedOutcome() decides only on every vote, or on one against", async (t) => {
  const vote = (fields: Partial<TxnParticipantVote> = {}): ParticipantRead => ({
    hasVote: true,
    row: voted(fields),
  });
  const cases: [string, ParticipantRead[], string | null][] = [
    ["no participants", [], null],
    ["all commit", [vote(), vote()], "committed success"],
    ["a failed compare", [vote(), vote({ compareSucceeded: false })], "committed failure"],
    ["one not prepared", [vote(), { hasVote: true, row: null }], null],
    ["one unknown", [vote(), { hasVote: false, row: row("prepared", null) }], null],
    ["a conflict beside an unknown", [
      { hasVote: false, row: null },
      vote({ vote: "conflict" }),
    ], "aborted conflict"],
    ["an aborted row beside one not prepared", [
      { hasVote: true, row: null },
      vote({ vote: "aborted" }),
    ], "aborted refused"],
  ];
  for (const [name, rows, expected] of cases) {
    await t.step(name, () => {
      const implied = impliedOutcome(rows);
      const text = implied === null
        ? null
        : `${implied.status} ${implied.status === "committed" ? implied.branch : implied.reason}`;
      equal(text, expected);
    });
  }
});

Deno.test("readTxnStatus() says txn_not_found only when every shard answered", async () => {
  const transport = (failing: number | null) => ({
    readRecord: (shard: number) =>
      shard === failing
        ? Promise.reject(new AspenError("timeout", "Shard did not answer in time"))
        : Promise.resolve(null),
    readParticipant: () => Promise.resolve(null),
    readVote: () => Promise.resolve(null),
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
