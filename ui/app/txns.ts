/**
 * The Transactions view's logic, pure: cross-shard rates from successive status snapshots, the
 * intents each shard holds, how a pending transaction stands against its deadline, and the
 * checked reading of a `GET /v1/txn` answer.
 *
 * Each node counts the cross-shard transactions it coordinated (`nodes[].crossShardTxns`), so
 * a rate is the sum over nodes of each node's own increase: a node that is down in one of two
 * snapshots adds nothing for that step (its counters are unknown, not zero), and a node whose
 * counters went down restarted and counts its new value (as rates.ts does for shards).
 */
import type {
  ClusterStatus,
  CrossShardTxnCounts,
  TxnListItem,
  TxnListReceipt,
  TxnListResponse,
  TxnPrepareState,
  TxnStatus,
} from "../../api/mod.ts";
import { JsonReader } from "./json_read.ts";
import { STATUS_SHARDS_MAX, TXN_LIST_SHOWN } from "./limits.ts";
import { counterIncrease, type Sample } from "./rates.ts";

/** The cross-shard figures over a window of snapshots; null where they cannot be known. */
export interface CrossShardRates {
  readonly commitsPerSecond: number | null;
  /** Transactions that did not commit (conflict, timeout, error), per second. */
  readonly abortsPerSecond: number | null;
  /** Of the transactions that ended in the window, the share that did not commit. */
  readonly abortRate: number | null;
  /** Of the transactions that ended in the window, the share that ended on a conflict. */
  readonly conflictRate: number | null;
  /** Transactions that ended in the window, by outcome. */
  readonly ended: CrossShardTxnCounts;
}

const OUTCOMES = ["committed", "conflict", "timeout", "error"] as const;

/** The cross-shard rates over `samples` (oldest first); see the module doc. */
export function crossShardRates(samples: readonly Sample[]): CrossShardRates {
  const ended = { committed: 0, conflict: 0, timeout: 0, error: 0 };
  let seconds = 0;
  let isCounted = false;
  for (let i = 1; i < samples.length; i++) {
    const older = samples[i - 1]!;
    const newer = samples[i]!;
    const stepSeconds = (newer.atMs - older.atMs) / 1_000;
    if (stepSeconds <= 0) continue;
    let isStepCounted = false;
    for (const node of newer.status.nodes) {
      const before = countsOf(older.status, node.id);
      const after = node.crossShardTxns ?? null;
      if (before === null || after === null) continue;
      for (const outcome of OUTCOMES) {
        ended[outcome] += counterIncrease(before[outcome], after[outcome]);
      }
      isStepCounted = true;
    }
    if (!isStepCounted) continue;
    seconds += stepSeconds;
    isCounted = true;
  }
  const aborts = ended.conflict + ended.timeout + ended.error;
  const total = ended.committed + aborts;
  return {
    commitsPerSecond: isCounted ? ended.committed / seconds : null,
    abortsPerSecond: isCounted ? aborts / seconds : null,
    abortRate: total > 0 ? aborts / total : null,
    conflictRate: total > 0 ? ended.conflict / total : null,
    ended,
  };
}

/** Whether any node of `status` reports cross-shard counters (servers before them do not). */
export function hasCrossShardCounters(status: ClusterStatus): boolean {
  return status.nodes.some((node) => node.crossShardTxns !== undefined);
}

/** One shard's intents as the view lists them; null when the shard did not say. */
export interface ShardIntents {
  readonly shard: number;
  readonly intents: number | null;
  readonly leader: number | null;
}

/** The intents of every shard of `status`, busiest first, then by shard id. */
export function intentsPerShard(status: ClusterStatus): ShardIntents[] {
  return status.shards
    .map((shard) => ({
      shard: shard.id,
      intents: shard.stats.intents ?? null,
      leader: shard.leader,
    }))
    .sort((a, b) => (b.intents ?? -1) - (a.intents ?? -1) || a.shard - b.shard);
}

/** How a pending transaction stands against its deadline at `nowMs` (the node's clock). */
export function deadlineText(deadlineMs: number, nowMs: number): string {
  if (deadlineMs === 0) return "no deadline known";
  const seconds = Math.round((deadlineMs - nowMs) / 1_000);
  if (seconds > 0) return `deadline in ${seconds} s`;
  if (seconds === 0) return "deadline now";
  return `${-seconds} s past its deadline: readers and the sweeper abort it`;
}

/**
 * A receipt's label: its status, and for one still pending how its prepare went there (a
 * participant that prepared waits only for its resolve).
 */
export function receiptLabel(receipt: Pick<TxnListReceipt, "status" | "prepare">): string {
  const labels: Readonly<Record<TxnListReceipt["status"], string>> = {
    pending: "pending",
    committed: "committed",
    aborted: "aborted",
    unknown: "no answer",
  };
  const prepares: Readonly<Record<TxnPrepareState, string>> = {
    prepared: "prepared",
    conflict: "conflict",
    aborted: "refused",
    none: "not prepared",
    unknown: "",
  };
  const prepare = receipt.status === "pending" ? prepares[receipt.prepare] : "";
  return prepare === "" ? labels[receipt.status] : `pending, ${prepare}`;
}

/**
 * What a listed transaction's status cell says: the record's status, and the outcome its
 * participants' votes already decided when the record has not caught up (its resolves may be
 * held for a few milliseconds after the reply).
 */
export function statusText(txn: Pick<TxnListItem, "status" | "outcome">): string {
  if (txn.outcome === txn.status) return txn.status;
  return `${txn.status}, ${txn.outcome} by its votes`;
}

/** The path that lists transactions with `status`. */
export function txnListPath(status: TxnStatus): string {
  return `/v1/txn?status=${status}&limit=${TXN_LIST_SHOWN}`;
}

const STATUSES: readonly TxnStatus[] = ["pending", "committed", "aborted"];
const RECEIPT_STATUSES: readonly TxnListReceipt["status"][] = [...STATUSES, "unknown"];
const PREPARE_STATES: readonly TxnPrepareState[] = [
  "prepared",
  "conflict",
  "aborted",
  "none",
  "unknown",
];
const BRANCHES = ["success", "failure"] as const;

/**
 * Checks a `GET /v1/txn` answer against the contract.
 *
 * @throws {JsonFormatError} naming the first field that is missing or of the wrong kind.
 */
export function parseTxnListResponse(body: unknown): TxnListResponse {
  const read = new JsonReader("the transaction list");
  const fields = read.object(body, "response");
  const unavailable = read.list(fields.unavailableShards, "unavailableShards", STATUS_SHARDS_MAX);
  return {
    status: read.choice(fields.status, "status", STATUSES),
    txns: read.list(fields.txns, "txns", TXN_LIST_SHOWN).map((item, i) =>
      parseItem(read, item, `txns[${i}]`)
    ),
    unavailableShards: unavailable.map((shard, i) => read.count(shard, `unavailableShards[${i}]`)),
  };
}

function parseItem(read: JsonReader, value: unknown, where: string): TxnListItem {
  const fields = read.object(value, where);
  const participants = read.list(fields.participants, `${where}.participants`, STATUS_SHARDS_MAX);
  const receipts = read.list(fields.receipts, `${where}.receipts`, STATUS_SHARDS_MAX);
  return {
    txnId: read.text(fields.txnId, `${where}.txnId`),
    status: read.choice(fields.status, `${where}.status`, STATUSES),
    home: read.count(fields.home, `${where}.home`),
    participants: participants.map((shard, i) => read.count(shard, `${where}.participants[${i}]`)),
    branch: fields.branch === null ? null : read.choice(fields.branch, `${where}.branch`, BRANCHES),
    createdRevision: read.count(fields.createdRevision, `${where}.createdRevision`),
    decidedRevision: read.optionalNumber(fields.decidedRevision, `${where}.decidedRevision`),
    reason: read.text(fields.reason, `${where}.reason`),
    deadlineMs: read.count(fields.deadlineMs, `${where}.deadlineMs`),
    outcome: read.choice(fields.outcome, `${where}.outcome`, STATUSES),
    receipts: receipts.map((receipt, i) => {
      const at = `${where}.receipts[${i}]`;
      const entry = read.object(receipt, at);
      return {
        shard: read.count(entry.shard, `${at}.shard`),
        status: read.choice(entry.status, `${at}.status`, RECEIPT_STATUSES),
        resolvedRevision: read.optionalNumber(entry.resolvedRevision, `${at}.resolvedRevision`),
        prepare: read.choice(entry.prepare, `${at}.prepare`, PREPARE_STATES),
      };
    }),
  };
}

function countsOf(status: ClusterStatus, nodeId: number): CrossShardTxnCounts | null {
  return status.nodes.find((node) => node.id === nodeId)?.crossShardTxns ?? null;
}
