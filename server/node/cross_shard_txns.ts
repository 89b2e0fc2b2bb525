/**
 * The API side of cross-shard transactions that is not the coordinator's: the reply fields a
 * cross-shard transaction adds (`txnId`, `revisions`, and the home shard as `shard`), and
 * `GET /v1/txn/{id}` (the record read on the shard that holds it, with one receipt per
 * participant read from that participant's own row, and the outcome the participants' votes
 * imply while the record is staging).
 */
import type { TxnPrepareState, TxnReceipt, TxnStatusResponse } from "../../api/mod.ts";
import { assert } from "../../raft/mod.ts";
import {
  allShardIds,
  AspenError,
  TXN_RECORDS_RETAIN,
  type TxnBranch,
  type TxnParticipantRow,
  type TxnParticipantVote,
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
  readonly transport: Pick<RouterTxnTransport, "readRecord" | "readParticipant" | "readVote">;
  readonly deadlineMs: number;
}

/**
 * Reads a transaction's record and its receipts. The id does not name the home shard, so
 * every shard is asked (linearizably, in parallel); the one that holds the record is home.
 * Each participant's row is then read with its prepare's vote, linearizably on its leader and
 * without writing anything (a status read never changes an outcome). A record still pending
 * (staging) whose participants all voted commit is committed in fact (parallel commits: the
 * coordinator replied once the prepares applied, before the home's resolve marks the record),
 * so its status says so; one a participant voted against can never commit, so it says aborted.
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
    record.participants.map((shard) => readRow(read, shard)),
  );
  const implied = record.status === "pending" ? impliedOutcome(rows) : null;
  return {
    txnId,
    status: implied?.status ?? record.status,
    recordStatus: record.status,
    // The shard that holds the record is the home; a record that a pusher created by aborting
    // a transaction whose prepare never reached the home does not know it (-1).
    home,
    participants: record.participants,
    branch: implied === null ? record.branch : implied.branch,
    createdRevision: record.createdRevision,
    decidedRevision: record.decidedRevision,
    reason: implied?.reason ?? record.reason,
    receipts: record.participants.map((shard, i) => receiptOf(shard, rows[i]!)),
  };
}

/**
 * A participant's row as the status read got it: with its vote, or (from a leader on a node
 * that predates the `txnVote` read) without.
 */
export type ParticipantRead =
  | { readonly hasVote: true; readonly row: TxnParticipantVote | null }
  | { readonly hasVote: false; readonly row: TxnParticipantRow | null };

/** What a pending record's votes imply, when they decide it. */
export interface ImpliedOutcome {
  readonly status: "committed" | "aborted";
  readonly branch: TxnBranch | null;
  /** Why it aborts ("" for a commit). */
  readonly reason: string;
}

/**
 * The outcome a pending (staging) record's participants imply, as a recovery would decide it
 * (TxnCoordinator's outcomeOf): aborted as soon as one voted against (an OCC conflict, or an
 * aborted row: neither ever changes), committed when every one voted commit (the branch:
 * success when every compare held), null otherwise (one not prepared yet, or one that could
 * not tell its vote): then the record's own status stands.
 */
export function impliedOutcome(rows: readonly ParticipantRead[]): ImpliedOutcome | null {
  for (const read of rows) {
    if (!read.hasVote || read.row === null) continue;
    if (read.row.vote === "conflict") {
      return { status: "aborted", branch: null, reason: "conflict" };
    }
    if (read.row.vote === "aborted") return { status: "aborted", branch: null, reason: "refused" };
  }
  let isSuccess = true;
  for (const read of rows) {
    if (!read.hasVote || read.row === null) return null;
    assert(read.row.vote === "commit", "impliedOutcome: every other vote returned above");
    isSuccess &&= read.row.compareSucceeded;
  }
  if (rows.length === 0) return null;
  return { status: "committed", branch: isSuccess ? "success" : "failure", reason: "" };
}

/**
 * One participant's row with its vote; from a node that does not know the `txnVote` read
 * (`bad_request`: a rolling upgrade), the plain row.
 */
async function readRow(read: TxnStatusRead, shard: number): Promise<ParticipantRead> {
  const { transport, txnId, deadlineMs } = read;
  try {
    return { hasVote: true, row: await transport.readVote(shard, txnId, deadlineMs) };
  } catch (error) {
    if (!(error instanceof AspenError && error.code === "bad_request")) throw error;
    return { hasVote: false, row: await transport.readParticipant(shard, txnId, deadlineMs) };
  }
}

/** A participant's receipt from its row: pending until the row resolved (or absent). */
export function receiptOf(shard: number, read: ParticipantRead): TxnReceipt {
  const prepare = prepareOf(read);
  const row = read.row;
  if (row === null || row.state === "prepared") {
    return { shard, status: "pending", resolvedRevision: null, prepare };
  }
  return { shard, status: row.state, resolvedRevision: row.resolvedRevision, prepare };
}

function prepareOf(read: ParticipantRead): TxnPrepareState {
  if (!read.hasVote) return "unknown";
  if (read.row === null) return "none";
  if (read.row.vote === "commit") return "prepared";
  return read.row.vote;
}
