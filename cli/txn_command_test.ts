/**
 * `aspen txn status`'s table (formatRecord): the transaction's line, a note when its outcome is
 * ahead of the home shard's record (parallel commits: every participant prepared, the record
 * not marked yet), and one receipt per shard with how its prepare went.
 */
import { equal, match } from "node:assert/strict";
import type { TxnStatusResponse } from "../api/mod.ts";
import { formatRecord } from "./txn_command.ts";

const COMMITTED: TxnStatusResponse = {
  txnId: "1.1700000000000.4",
  status: "committed",
  recordStatus: "committed",
  home: 1,
  participants: [0, 1],
  branch: "success",
  createdRevision: 7,
  decidedRevision: 9,
  reason: "",
  receipts: [
    { shard: 0, status: "committed", resolvedRevision: 12, prepare: "prepared" },
    { shard: 1, status: "committed", resolvedRevision: 9, prepare: "prepared" },
  ],
};

Deno.test("formatRecord() prints the outcome, a note while the record lags, the receipts", () => {
  const decided = formatRecord(COMMITTED);
  match(decided, /^TXN\s+STATUS\s+HOME\s+BRANCH\s+CREATED\s+DECIDED\s+REASON\n/);
  match(decided, /1\.1700000000000\.4\s+committed\s+1\s+success\s+7\s+9\s+-\n/);
  equal(decided.includes("note:"), false, "no note once the record is decided");
  match(decided, /SHARD\s+STATUS\s+RESOLVED\s+PREPARE\n0\s+committed\s+12\s+prepared\n/);
  const staging = formatRecord({
    ...COMMITTED,
    recordStatus: "pending",
    decidedRevision: null,
    receipts: [
      { shard: 0, status: "committed", resolvedRevision: 12, prepare: "prepared" },
      { shard: 1, status: "pending", resolvedRevision: null, prepare: "prepared" },
    ],
  });
  match(staging, /1\.1700000000000\.4\s+committed\s+1\s+success\s+7\s+-\s+-\n/);
  const note = "note: committed because every participant prepared without a conflict; " +
    "the record on shard 1 still says pending until its resolve applies\n";
  equal(staging.includes(note), true, staging);
  match(staging, /1\s+pending\s+-\s+prepared\n/);
  // A server that predates recordStatus and prepare: no note, an empty PREPARE cell.
  const { recordStatus: _, ...older } = COMMITTED;
  const receipts = COMMITTED.receipts.map(({ prepare: _, ...receipt }) => receipt);
  const old = formatRecord({ ...older, receipts } as unknown as TxnStatusResponse);
  equal(old.includes("note:"), false, old);
  match(old, /SHARD\s+STATUS\s+RESOLVED\s+PREPARE\n0\s+committed\s+12\n/);
});
