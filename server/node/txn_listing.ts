/**
 * `GET /v1/txn?status=&limit=`: the cross-shard transactions whose record has a status, across
 * every shard, with their receipts. Each shard lists the records it holds as home (a `txnList`
 * shard request, linearizable on its leader); the lists are merged and cut to the limit; then
 * each participant shard is asked once for its rows of every listed transaction it takes part
 * in (`txnParticipants`). A shard that does not answer in time leaves a gap that the answer
 * names (`unavailableShards`, or an `unknown` receipt) instead of failing the whole listing:
 * the console shows what it can while a shard has no leader.
 */
import type { TxnListItem, TxnListReceipt, TxnListResponse } from "../../api/mod.ts";
import {
  allShardIds,
  type TxnParticipantRow,
  type TxnRecord,
  type TxnStatus,
} from "../../shard/mod.ts";
import type { ClusterRouter } from "./cluster_router.ts";

/** What {@linkcode listTxns} needs. */
export interface TxnListing {
  readonly status: TxnStatus;
  /** 1..TXN_LIST_LIMIT_MAX (checked by the route). */
  readonly limit: number;
  readonly shardCount: number;
  readonly router: Pick<ClusterRouter, "execute">;
  readonly deadlineMs: number;
}

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

/** Each participant shard's rows, by shard then txn id; a shard that failed is absent. */
async function participantRows(
  records: readonly TxnRecord[],
  listing: TxnListing,
): Promise<Map<number, Map<string, TxnParticipantRow | null>>> {
  const idsByShard = new Map<number, string[]>();
  for (const record of records) {
    for (const shard of record.participants) {
      const ids = idsByShard.get(shard) ?? [];
      ids.push(record.txnId);
      idsByShard.set(shard, ids);
    }
  }
  const byShard = new Map<number, Map<string, TxnParticipantRow | null>>();
  await Promise.all([...idsByShard].map(async ([shard, txnIds]) => {
    const answer = await listing.router.execute<{ rows: (TxnParticipantRow | null)[] }>(
      shard,
      { kind: "txnParticipants", txnIds },
      listing.deadlineMs,
    ).catch(() => null);
    if (answer === null) return;
    byShard.set(shard, new Map(txnIds.map((id, i) => [id, answer.rows[i] ?? null])));
  }));
  return byShard;
}

function itemOf(
  home: number,
  record: TxnRecord,
  rows: ReadonlyMap<number, ReadonlyMap<string, TxnParticipantRow | null>>,
): TxnListItem {
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
    receipts: record.participants.map((shard) => {
      const shardRows = rows.get(shard);
      if (shardRows === undefined) return { shard, status: "unknown", resolvedRevision: null };
      return receiptOf(shard, shardRows.get(record.txnId) ?? null);
    }),
  };
}

/** A receipt from a participant's row: pending until the row resolved (or absent). */
function receiptOf(shard: number, row: TxnParticipantRow | null): TxnListReceipt {
  if (row === null || row.state === "prepared") {
    return { shard, status: "pending", resolvedRevision: null };
  }
  return { shard, status: row.state, resolvedRevision: row.resolvedRevision };
}
