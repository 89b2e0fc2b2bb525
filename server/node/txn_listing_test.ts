/**
 * `GET /v1/txn`'s server side with a fake router: listTxns() merges each shard's records
 * (pending oldest deadline first, decided latest first), cuts them to the limit, asks each
 * participant shard once for its receipts with their votes (the plain rows from a leader that
 * predates votes), gives each item the outcome its votes imply, and names a shard that did not
 * answer instead of failing; and the txnList, txnParticipants and txnVotes requests cross the
 * peer channel checked.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { AspenError, TXN_LIST_LIMIT_MAX, type TxnRecord } from "../../shard/mod.ts";
import { decodeShardRequest, encodeShardRequest, type ShardRequest } from "./shard_request.ts";
import { listTxns } from "./txn_listing.ts";

function record(txnId: string, deadlineMs: number, participants: number[]): TxnRecord {
  return {
    txnId,
    status: "pending",
    home: 0,
    participants,
    branch: null,
    deadlineMs,
    createdRevision: 1,
    decidedRevision: null,
    reason: "",
  };
}

/**
 * Shard 0 and 1 hold records; shard 2 answers no listing; shard 3 answers no receipts. With
 * `isOld`, shards answer `txnVotes` with bad_request, as a leader that predates it does.
 */
function fakeRouter(asked: string[], isOld = false) {
  const records = new Map<number, TxnRecord[]>([
    [0, [record("a", 300, [0, 1]), record("b", 900, [0, 3])]],
    [1, [record("c", 100, [1, 2])]],
    [3, []],
  ]);
  return {
    execute<T>(shard: number, request: ShardRequest): Promise<T> {
      if (request.kind === "txnList") {
        asked.push(`list ${shard}`);
        const listed = records.get(shard);
        if (listed === undefined) return Promise.reject(new AspenError("timeout", "no leader"));
        return Promise.resolve({ records: listed.slice(0, request.limit) } as T);
      }
      if (request.kind === "txnVotes" && isOld) {
        return Promise.reject(new AspenError("bad_request", "unknown kind txnVotes"));
      }
      if (request.kind === "txnParticipants" || request.kind === "txnVotes") {
        asked.push(`rows ${shard} ${request.txnIds.join(",")}`);
        if (shard === 3) return Promise.reject(new AspenError("timeout", "no leader"));
        const rows = request.txnIds.map((txnId) =>
          txnId === "c" && shard === 1
            ? { txnId, home: 1, state: "committed" as const, resolvedRevision: 7 }
            : { txnId, home: 0, state: "prepared" as const, resolvedRevision: null }
        );
        if (request.kind === "txnParticipants") return Promise.resolve({ rows } as T);
        const vote = { vote: "commit" as const, compareSucceeded: true };
        return Promise.resolve({ rows: rows.map((row) => ({ ...row, ...vote })) } as T);
      }
      throw new Error(`unexpected ${request.kind}`);
    },
  };
}

Deno.test("listTxns() merges shards oldest first, with receipts and gaps named", async () => {
  const asked: string[] = [];
  const answer = await listTxns({
    status: "pending",
    limit: 2,
    shardCount: 4,
    router: fakeRouter(asked),
    deadlineMs: 1_000,
  });
  deepEqual(answer.txns.map((txn) => [txn.txnId, txn.home, txn.deadlineMs]), [
    ["c", 1, 100],
    ["a", 0, 300],
  ]);
  deepEqual(answer.unavailableShards, [2]);
  deepEqual(answer.txns[0]!.receipts, [
    { shard: 1, status: "committed", resolvedRevision: 7, prepare: "prepared" },
    { shard: 2, status: "pending", resolvedRevision: null, prepare: "prepared" },
  ]);
  deepEqual(answer.txns[1]!.receipts.map((receipt) => receipt.status), ["pending", "pending"]);
  // Every participant voted commit: committed in fact, though the records still say pending.
  deepEqual(answer.txns.map((txn) => [txn.status, txn.outcome]), [
    ["pending", "committed"],
    ["pending", "committed"],
  ]);
  ok(!asked.some((line) => line.includes("b")), "a record cut by the limit is not read further");
  deepEqual(asked.filter((line) => line.startsWith("rows")).sort(), [
    "rows 0 a",
    "rows 1 c,a",
    "rows 2 c",
  ]);
  const all = await listTxns({
    status: "pending",
    limit: 10,
    shardCount: 4,
    router: fakeRouter([]),
    deadlineMs: 1_000,
  });
  equal(all.txns.length, 3);
  deepEqual(all.txns[2]!.receipts, [
    { shard: 0, status: "pending", resolvedRevision: null, prepare: "prepared" },
    { shard: 3, status: "unknown", resolvedRevision: null, prepare: "unknown" },
  ]);
  equal(all.txns[2]!.outcome, "pending", "a participant that did not answer could vote either way");
});

Deno.test("listTxns() reads plain rows from older leaders: outcomes are the records'", async () => {
  const asked: string[] = [];
  const answer = await listTxns({
    status: "pending",
    limit: 10,
    shardCount: 4,
    router: fakeRouter(asked, true),
    deadlineMs: 1_000,
  });
  deepEqual(answer.txns.map((txn) => txn.outcome), ["pending", "pending", "pending"]);
  deepEqual(answer.txns[0]!.receipts, [
    { shard: 1, status: "committed", resolvedRevision: 7, prepare: "unknown" },
    { shard: 2, status: "pending", resolvedRevision: null, prepare: "unknown" },
  ]);
  ok(asked.includes("rows 1 c,a"), "the plain rows are read instead");
});

Deno.test("listTxns() says aborted for a pending record a participant voted against", async () => {
  const router = {
    execute<T>(shard: number, request: ShardRequest): Promise<T> {
      if (request.kind === "txnList") {
        return Promise.resolve({ records: shard === 0 ? [record("x", 5, [0, 1])] : [] } as T);
      }
      ok(request.kind === "txnVotes");
      const row = { txnId: "x", home: 0, state: "prepared" as const, resolvedRevision: null };
      // Shard 0 found a conflict; shard 1 has not answered its prepare yet.
      const rows = shard === 0 ? [{ ...row, vote: "conflict", compareSucceeded: true }] : [null];
      return Promise.resolve({ rows } as T);
    },
  };
  const answer = await listTxns({
    status: "pending",
    limit: 10,
    shardCount: 2,
    router,
    deadlineMs: 1_000,
  });
  deepEqual(answer.txns.map((txn) => [txn.status, txn.outcome]), [["pending", "aborted"]]);
  deepEqual(answer.txns[0]!.receipts.map((receipt) => receipt.prepare), ["conflict", "none"]);
});

Deno.test("listTxns() lists decided txns latest deadline first", async () => {
  const answer = await listTxns({
    status: "committed",
    limit: 10,
    shardCount: 4,
    router: fakeRouter([]),
    deadlineMs: 1_000,
  });
  deepEqual(answer.txns.map((txn) => txn.txnId), ["b", "a", "c"]);
});

Deno.test("txnList, txnParticipants and txnVotes requests cross the peer channel checked", () => {
  const good: ShardRequest[] = [
    { kind: "txnList", status: "aborted", limit: TXN_LIST_LIMIT_MAX },
    { kind: "txnParticipants", txnIds: ["1.2.3", "4.5.6"] },
    { kind: "txnVotes", txnIds: ["1.2.3"] },
  ];
  for (const request of good) deepEqual(decodeShardRequest(encodeShardRequest(request)), request);
  const bad: unknown[] = [
    { kind: "txnList", status: "done", limit: 1 },
    { kind: "txnList", status: "pending", limit: 0 },
    { kind: "txnList", status: "pending", limit: TXN_LIST_LIMIT_MAX + 1 },
    { kind: "txnParticipants", txnIds: [] },
    { kind: "txnParticipants", txnIds: ["ok", 7] },
    { kind: "txnParticipants", txnIds: Array(TXN_LIST_LIMIT_MAX + 1).fill("x") },
    { kind: "txnVotes", txnIds: [] },
    { kind: "txnVotes", txnIds: "1.2.3" },
  ];
  for (const request of bad) {
    const bytes = new TextEncoder().encode(JSON.stringify(request));
    throws(() => decodeShardRequest(bytes), (error: unknown) => {
      ok(error instanceof AspenError, JSON.stringify(request));
      equal(error.code, "bad_request");
      return true;
    });
  }
});
