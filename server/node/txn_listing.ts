/**
 * `GET /v1/txn?status=&limit=`: the cross-shard transactions whose record has a status, across
 * every shard, with their receipts. Each shard lists the records it holds as home (a `txnList`
 * shard request, linearizable on its leader); the lists are merged and cut to the limit; then
 * each participant shard is asked once for its rows of every listed transaction it takes part
 * in, with their prepares' votes (`txnVotes`; `txnParticipants` from a leader that predates
 * it). The votes give each item its `outcome` as `GET /v1/txn/{id}` does: a record still
 * pending whose participants all voted commit is committed in fact (its resolves may be held
 * for a while, see PROPOSAL_HOLD_MS). A shard that does not answer in time leaves a gap that the
 * answer names (`unavailableShards`, or an `unknown` receipt) instead of failing the whole
 * listing: the console shows what it can while a shard has no leader.
 */
import type { TxnListItem, TxnListReceipt, TxnListResponse } from "../../api/mod.ts";
import {
  allShardIds,
  AspenError,
  type TxnParticipantRow,
  type TxnParticipantVote,
  type TxnRecord,
  type TxnStatus,
} from "../../shard/mod.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import { impliedOutcome, type ParticipantRead, receiptOf } from "./cross_shard_txns.ts";

/** What {@linkcode listTxns} needs. */
export interface TxnListing {
  readonly status: TxnStatus;
  /** 1..TXN_LIST_LIMIT_MAX (checked by the route). */
  readonly limit: number;
  readonly shardCount: number;
  readonly router: Pick<ClusterRouter, "execute">;
  readonly deadlineMs: number;
}

/** Each participant shard's reads, by shard then txn id; a shard that failed is absent. */
type RowsByShard = ReadonlyMap<number, ReadonlyMap<string, ParticipantRead>>;

/** Lists the transactions with `status` across all shards; see the module doc. */
export async function listTxns(listing: TxnListing): Promise<TxnListResponse> {
  const { status, limit, router, deadlineMs } = listing;
  const shards = allShardIds(listing.shardCount);
  const answers = await Promise.allSettled(
    shards.map((shard) =>
      router.execute<{ records: TxnRecord[] }>(
        shard,
        { kind: "txnList", status, limit },
        deadlineMs,
      )
    ),
  );
  const unavailableShards: number[] = [];
  const listed: { home: number; record: TxnRecord }[] = [];
  answers.forEach((answer, i) => {
    const home = shards[i]!;
    if (answer.status === "rejected") unavailableShards.push(home);
    else listed.push(...answer.value.records.map((record) => ({ home, record })));
  });
  const chosen = listed.sort((a, b) => compareListed(status, a, b)).slice(0, limit);
  const rows = await participantRows(chosen.map((entry) => entry.record), listing);
  const txns = chosen.map(({ home, record }) => itemOf(home, record, rows));
  return { status, txns, unavailableShards };
}

/**
 * Pending: oldest deadline first. Decided: latest deadline first. Ties by home shard, then id,
 * so that the same records always list in the same order.
 */
function compareListed(
  status: TxnStatus,
  a: { home: number; record: TxnRecord },
  b: { home: number; record: TxnRecord },
): number {
  const byDeadline = a.record.deadlineMs - b.record.deadlineMs;
  if (byDeadline !== 0) return status === "pending" ? byDeadline : -byDeadline;
  if (a.home !== b.home) return a.home - b.home;
  return a.record.txnId < b.record.txnId ? -1 : a.record.txnId > b.record.txnId ? 1 : 0;
}

/** Each participant shard's rows with their votes, by shard then txn id. */
async function participantRows(
  records: readonly TxnRecord[],
  listing: TxnListing,
): Promise<RowsByShard> {
  const idsByShard = new Map<number, string[]>();
  for (const record of records) {
    for (const shard of record.participants) {
      const ids = idsByShard.get(shard) ?? [];
      ids.push(record.txnId);
      idsByShard.set(shard, ids);
    }
  }
  const byShard = new Map<number, Map<string, ParticipantRead>>();
  await Promise.all([...idsByShard].map(async ([shard, txnIds]) => {
    const reads = await readRows(listing, shard, txnIds).catch(() => null);
    if (reads !== null) byShard.set(shard, new Map(txnIds.map((id, i) => [id, reads[i]!])));
  }));
  return byShard;
}

/** One shard's rows of `txnIds` with their votes; without, from a leader that predates them. */
async function readRows(
  listing: TxnListing,
  shard: number,
  txnIds: readonly string[],
): Promise<ParticipantRead[]> {
  const { router, deadlineMs } = listing;
  try {
    const answer = await router.execute<{ rows: (TxnParticipantVote | null)[] }>(
      shard,
      { kind: "txnVotes", txnIds },
      deadlineMs,
    );
    return txnIds.map((_, i) => ({ hasVote: true, row: answer.rows[i] ?? null }));
  } catch (error) {
    if (!(error instanceof AspenError && error.code === "bad_request")) throw error;
    const answer = await router.execute<{ rows: (TxnParticipantRow | null)[] }>(
      shard,
      { kind: "txnParticipants", txnIds },
      deadlineMs,
    );
    return txnIds.map((_, i) => ({ hasVote: false, row: answer.rows[i] ?? null }));
  }
}

function itemOf(home: number, record: TxnRecord, rows: RowsByShard): TxnListItem {
  const reads = record.participants.map((shard) => rows.get(shard)?.get(record.txnId) ?? null);
  // A participant that did not answer may have voted either way: read as one that cannot tell,
  // it leaves the record's status unless another one's vote already rules out a commit.
  const implied = record.status !== "pending"
    ? null
    : impliedOutcome(reads.map((read) => read ?? { hasVote: false, row: null }));
  return {
    txnId: record.txnId,
    status: record.status,
    home,
    participants: record.participants,
    branch: record.branch,
    createdRevision: record.createdRevision,
    decidedRevision: record.decidedRevision,
    reason: record.reason,
    deadlineMs: record.deadlineMs,
    outcome: implied?.status ?? record.status,
    receipts: record.participants.map((shard, i): TxnListReceipt => {
      const read = reads[i]!;
      if (read === null) {
        return { shard, status: "unknown", resolvedRevision: null, prepare: "unknown" };
      }
      return receiptOf(shard, read);
    }),
  };
}
