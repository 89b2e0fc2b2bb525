/**
 * The API side of cross-shard transactions that is not the coordinator's: the reply fields a
 * cross-shard transaction adds (`txnId`, `revisions`, and the home shard as `shard`), and
 * `GET /v1/txn/{id}` (the record read on the shard that holds it, with one receipt per
 * participant read from that participant's own row).
 */
import type { TxnReceipt, TxnStatusResponse } from "../../api/mod.ts";
import {
  allShardIds,
  AspenError,
  TXN_RECORDS_RETAIN,
  type TxnParticipantRow,
  type TxnRecord,
} from "../../shard/mod.ts";
import type { RouterTxnTransport } from "./txn_transport.ts";

/** The fields every cross-shard reply carries beside its own. */
export function crossShardFields(
  result: {
    readonly txnId: string | null;
    readonly home: number;
    revisions: ReadonlyMap<number, number>;
  },
): { shard: number; revision: number; txnId?: string; revisions: Record<string, number> } {
  const revision = result.revisions.get(result.home);
  if (revision === undefined) {
    throw new AspenError(
      "shard_unavailable",
      `Cannot answer txn "${result.txnId}": no revision of its home shard ${result.home}`,
      { shard: result.home },
    );
  }
  const revisions: Record<string, number> = {};
  for (const shard of [...result.revisions.keys()].sort((a, b) => a - b)) {
    revisions[String(shard)] = result.revisions.get(shard)!;
  }
  // A lock-free read-only transaction has no record, so no id to look up.
  const txnId = result.txnId === null ? {} : { txnId: result.txnId };
  return { shard: result.home, revision, ...txnId, revisions };
}

/** What {@linkcode readTxnStatus} needs. */
export interface TxnStatusRead {
  readonly txnId: string;
  readonly shardCount: number;
  readonly transport: Pick<RouterTxnTransport, "readRecord" | "readParticipant">;
  readonly deadlineMs: number;
}

/**
 * Reads a transaction's record and its receipts. The id does not name the home shard, so
 * every shard is asked (linearizably, in parallel); the one that holds the record is home.
 *
 * @throws {AspenError} `txn_not_found` when no shard holds it; a shard's error when one could
 * not answer and no other shard held the record.
 */
export async function readTxnStatus(read: TxnStatusRead): Promise<TxnStatusResponse> {
  const { txnId, transport, deadlineMs } = read;
  const answers = await Promise.allSettled(
    allShardIds(read.shardCount).map((shard) => transport.readRecord(shard, txnId, deadlineMs)),
  );
  const home = answers.findIndex((answer) => answer.status === "fulfilled" && answer.value);
  const found = answers[home];
  const record: TxnRecord | null = found?.status === "fulfilled" ? found.value : null;
  if (record === null) {
    const failure = answers.find((answer) => answer.status === "rejected");
    if (failure !== undefined) throw failure.reason;
    throw new AspenError(
      "txn_not_found",
      `Cannot read txn "${txnId}": no shard holds its record (an unknown id, or one of more ` +
        `than ${TXN_RECORDS_RETAIN} (TXN_RECORDS_RETAIN) older transactions of its home shard)`,
      { txnId },
    );
  }
  const rows = await Promise.all(
    record.participants.map((shard) => transport.readParticipant(shard, txnId, deadlineMs)),
  );
  return {
    txnId,
    status: record.status,
    // The shard that holds the record is the home; a record that a pusher created by aborting
    // a transaction whose prepare never reached the home does not know it (-1).
    home,
    participants: record.participants,
    branch: record.branch,
    createdRevision: record.createdRevision,
    decidedRevision: record.decidedRevision,
    reason: record.reason,
    receipts: record.participants.map((shard, i) => receiptOf(shard, rows[i] ?? null)),
  };
}

/** A participant's receipt from its row: pending until the row resolved (or absent). */
function receiptOf(shard: number, row: TxnParticipantRow | null): TxnReceipt {
  if (row === null || row.state === "prepared") {
    return { shard, status: "pending", resolvedRevision: null };
  }
  return { shard, status: row.state, resolvedRevision: row.resolvedRevision };
}
