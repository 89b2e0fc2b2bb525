/**
 * Applying the phases of a cross-shard transaction, and the intent check of every other write
 * (private to shard/).
 *
 * Every phase is idempotent by txnId, and deterministic: it reads only the command, the
 * entry's revision and the state.
 *
 * ```text
 *   participant row:  (none) --prepare--> prepared --resolve commit--> committed
 *                       |                    '------resolve abort---> aborted
 *                       '--resolve abort or fence (prepare never applied)--> aborted
 *   home record:      (none) --prepare--> pending (staging) --home's resolve or decide-->
 *                       |                                        committed | aborted
 *                       '---------decide (a pusher's abort)--> aborted
 * ```
 *
 * Parallel commits: the record the home's prepare writes is a staging record that lists every
 * participant, and the transaction is committed as soon as every participant's prepare applied
 * without an optimistic read conflict (the branch: success when every compare held). So the
 * commit point is no single entry; the record turns committed later, in the same entry as the
 * home's commit-resolve (or by a pusher's decide), and never disagrees with the prepares: a
 * row leaves `prepared` only by a resolve of the outcome the prepares imply, and a recovery
 * that finds a participant without its prepare fences it (txnFence) before it aborts.
 *
 * One-round commits: a prepare reserves its own entry's revision R (kept in its row) and
 * returns both branches' results from a dry run at R, undone (see previewResults); the
 * commit-resolve, a later entry, runs the branch at R. Nothing else changed those keys in
 * between (they were locked), so the state, the results and the watch events are those the
 * branch would have given at R; the shard's watchers wait below R until then
 * (StateMachine.deliverableRevision). So the coordinator may answer after the prepares.
 *
 * A prepare that meets another transaction's intent locks nothing and stores nothing: the
 * coordinator fences that participant before it aborts (a copy of the prepare still in flight
 * could otherwise lock later). A resolve-abort or a fence that finds no row stores an aborted
 * one, so that a prepare arriving late finds it and locks nothing.
 */

import { assert } from "../raft/mod.ts";
import type { ApplyResult, TxnOpResult, TxnParticipantVote } from "./apply_result.ts";
import type {
  Command,
  TxnDecideCommand,
  TxnFenceCommand,
  TxnOp,
  TxnPrepareCommand,
  TxnResolveCommand,
} from "./command.ts";
import { evaluateCompare } from "./compare.ts";
import { AspenError } from "./errors.ts";
import { keyRangeBounds, type KeyValue, kvResponseBytes } from "./key_value.ts";
import { TXN_PREVIEW_BYTES_MAX, TXN_RESPONSE_BYTES_MAX } from "./limits.ts";
import { validateReadSet } from "./occ.ts";
import type { EntryContext, KvStore } from "./_kv_store.ts";
import { previewTxnOps, runTxnOps, txnOpResultBytes } from "./_txn_ops.ts";
import { isForeignLease, leaseLockKey } from "./foreign_lease.ts";
import {
  applyLeaseEffects,
  checkLeaseRoom,
  checkLeaseSteps,
  leaseStepKeys,
} from "./_txn_leases.ts";
import type { BranchResults, IntentEntry, ParticipantData, TxnStore } from "./_txn_store.ts";

/** The phase commands. */
export type TxnPhaseCommand =
  | TxnPrepareCommand
  | TxnDecideCommand
  | TxnResolveCommand
  | TxnFenceCommand;

/** Applies one phase of a cross-shard transaction at `context.revision`. */
export function executeTxnPhase(
  store: KvStore,
  txns: TxnStore,
  context: EntryContext,
  command: TxnPhaseCommand,
): ApplyResult {
  switch (command.type) {
    case "txnPrepare":
      return prepare(store, txns, context, command);
    case "txnDecide":
      return decide(txns, context.revision, command);
    case "txnResolve":
      return resolve(store, txns, context, command);
    case "txnFence":
      return fence(txns, context.revision, command.txnId);
  }
}

/**
 * The first key `command` touches that another transaction holds, or null. A range delete, or
 * a lease revocation or expiry, meets an intent when any key it would remove is locked.
 *
 * Lease expiry: an expiry that would delete a locked key expires nothing (not even the other
 * leases it names) and returns `locked`. The lessor proposes the expiry again after
 * LEASE_EXPIRE_RETRY_MS while the lease lives, by which time the transaction has normally
 * resolved; skipping the locked lease alone would report it expired while it still exists.
 */
export function lockedBy(store: KvStore, txns: TxnStore, command: Command): IntentEntry | null {
  const leaseIntent = (id: number) => txns.leaseIntent(id, (key) => store.get(key)?.lease ?? 0);
  switch (command.type) {
    case "put":
      return txns.firstLocked([command.key, ...leaseLockKeys([command])], null);
    case "delete":
      return txns.firstLocked([command.key], null);
    case "multiPut": {
      const keys = [...command.puts.map((put) => put.key), ...leaseLockKeys(command.puts)];
      return txns.firstLocked(keys, null);
    }
    case "deleteRange":
      return txns.intentsIn(keyRangeBounds(command.range), 1)[0] ?? null;
    case "txn":
      return lockedByTxn(txns, command);
    case "optimisticTxn": {
      const keys = [...command.reads, ...command.writes].map((item) => item.key);
      return txns.firstLocked(keys, null);
    }
    case "leaseRevoke":
      return txns.firstLocked([leaseLockKey(command.id)], null) ?? leaseIntent(command.id);
    case "leaseExpire":
      for (const id of command.ids) {
        const locked = txns.firstLocked([leaseLockKey(id)], null) ?? leaseIntent(id);
        if (locked !== null) return locked;
      }
      return null;
    case "leaseGrant":
    case "meta":
    case "noop":
    case "txnPrepare":
    case "txnDecide":
    case "txnResolve":
    case "txnFence":
    case "ownership":
    case "dropMoved":
      return null;
    case "leaseHolderAdd":
      return txns.firstLocked([leaseLockKey(command.id)], null) ?? leaseIntent(command.id);
    case "import": {
      // A new shard being filled holds no intents; checked all the same.
      return txns.firstLocked([...command.kvs.map((kv) => kv.key), ...command.deletes], null);
    }
  }
}

function lockedByTxn(
  txns: TxnStore,
  command: Extract<Command, { type: "txn" }>,
): IntentEntry | null {
  const keys: string[] = command.compare.map((compare) => compare.key);
  for (const op of [...command.success, ...command.failure]) {
    if (op.type !== "range") {
      keys.push(op.key, ...(op.type === "put" ? leaseLockKeys([op]) : []));
      continue;
    }
    const inRange = txns.intentsIn(keyRangeBounds(op.request.range), 1)[0];
    if (inRange !== undefined) return inRange;
  }
  return txns.firstLocked(keys, null);
}

/**
 * The lock keys of the leases of this shard that `puts` attach keys to: a put must not attach a
 * key to a lease that a cross-shard transaction is revoking (or attaching to).
 */
function leaseLockKeys(puts: readonly { readonly lease: number }[]): string[] {
  return puts.flatMap((put) =>
    put.lease === 0 || isForeignLease(put.lease) ? [] : [leaseLockKey(put.lease)]
  );
}

function prepare(
  store: KvStore,
  txns: TxnStore,
  context: EntryContext,
  command: TxnPrepareCommand,
): ApplyResult {
  const revision = context.revision;
  const { txnId, home } = command;
  const row = txns.participant(txnId);
  if (row !== null) return preparedAgain(row, revision);
  const isHome = command.shard === home;
  const record = isHome ? txns.record(txnId) : null;
  if (record !== null && record.status !== "pending") return refused(revision, "aborted");
  const keys = [...prepareKeys(command), ...leaseStepKeys(store, command.leases)];
  const locked = txns.firstLocked(keys, txnId);
  if (locked !== null) {
    return { type: "txnPrepared", revision, ok: false, reason: "locked", ...locked };
  }
  // Checked before anything is written: the locked keys and leases cannot change until the
  // resolve, so a commit-resolve then cannot fail on the size of its results, on a lease
  // that is gone or on a lease's key limit.
  const current = currentState(store);
  for (const ops of [command.success, command.failure]) {
    checkResultBytes(current, txnId, ops);
    checkLeaseRoom(store, ops);
  }
  const leases = checkLeaseSteps(store, command);
  const compareSucceeded = command.compare.every((compare) =>
    evaluateCompare(compare, current(compare.key))
  );
  const conflict = validateReadSet(command.reads, {
    versionOf(key) {
      const kv = current(key);
      return { version: kv?.version ?? 0, modRevision: kv?.modRevision ?? 0 };
    },
  });
  const results = previewResults(store, context, command, current);
  if (isHome && record === null) {
    txns.insertRecord({
      txnId,
      status: "pending",
      home,
      participants: command.participants,
      branch: null,
      deadlineMs: command.deadlineMs,
      createdRevision: revision,
      decidedRevision: null,
      reason: "",
    });
  }
  // The row names the keys it locks: it is the durable copy of its intents (_txn_store.ts).
  const locks = [...new Set(keys)];
  txns.insertParticipant({
    txnId,
    home,
    state: "prepared",
    resolvedRevision: null,
    prepared: {
      compareSucceeded,
      conflict,
      leases,
      revision,
      locks,
      ...(results ? { results } : {}),
    },
    success: command.success,
    failure: command.failure,
    results: null,
  });
  return {
    type: "txnPrepared",
    revision,
    ok: true,
    compareSucceeded,
    conflict,
    reservedRevision: revision,
    results: results ?? null,
  };
}

/**
 * Each key's state as it was when the prepare began, read once: a prepare reads the same keys
 * for its checks, its compares, its reads and its preview, and writes none of them (its dry
 * run undoes what it wrote).
 */
function currentState(store: KvStore): (key: string) => KeyValue | null {
  const states = new Map<string, KeyValue | null>();
  return (key) => {
    let kv = states.get(key);
    if (kv === undefined) {
      kv = store.get(key);
      states.set(key, kv);
    }
    return kv;
  };
}

/**
 * The results each branch will give when it runs at the resolve, computed now as if it ran at
 * this entry's revision. The resolve runs it at this same revision, over keys (and leases)
 * locked from now until then, so it gives the same results (it asserts so), and the coordinator
 * may answer as soon as every participant prepared. Undefined when they hold more than
 * TXN_PREVIEW_BYTES_MAX bytes: the resolve's answer carries them then.
 *
 * A branch whose results follow from its keys' states alone (each key named once, no lease
 * attached: see previewTxnOps) is computed from them; any other runs inside a savepoint that
 * is undone (a dry run), which costs SQLite writes to roll back.
 */
function previewResults(
  store: KvStore,
  context: EntryContext,
  command: TxnPrepareCommand,
  current: (key: string) => KeyValue | null,
): BranchResults | undefined {
  const dryRun = (ops: readonly TxnOp[]) =>
    previewTxnOps(current, ops) ??
      store.undone(() => runTxnOps(store, { ...context, seq: 0, eventBytes: 0 }, ops));
  const results = { success: dryRun(command.success), failure: dryRun(command.failure) };
  assert(results.success.length === command.success.length, "preview: one result per op");
  assert(results.failure.length === command.failure.length, "preview: one result per op");
  let bytes = 0;
  for (const result of [...results.success, ...results.failure]) {
    bytes += txnOpResultBytes(result);
  }
  return bytes <= TXN_PREVIEW_BYTES_MAX ? results : undefined;
}

/**
 * Throws when `ops` would return more than TXN_RESPONSE_BYTES_MAX bytes of results, counted as
 * {@linkcode runTxnOps} counts them, by a dry run over the current state of their keys.
 *
 * @throws {AspenError} `request_too_large`.
 */
function checkResultBytes(
  current: (key: string) => KeyValue | null,
  txnId: string,
  ops: readonly TxnOp[],
): void {
  const values = new Map<string, string | null>();
  let bytes = 0;
  for (const op of ops) {
    assert(op.type !== "range", "checkResultBytes: validation refuses range ops");
    if (!values.has(op.key)) values.set(op.key, current(op.key)?.value ?? null);
    const value = values.get(op.key) ?? null;
    const isReturned = op.type === "get" || op.prevKv;
    if (isReturned && value !== null) bytes += kvResponseBytes({ ...EMPTY_KV, key: op.key, value });
    if (op.type === "put") values.set(op.key, op.value);
    if (op.type === "delete") values.set(op.key, null);
  }
  if (bytes > TXN_RESPONSE_BYTES_MAX) {
    throw new AspenError(
      "request_too_large",
      `Cannot prepare txn "${txnId}": its results on this shard would exceed ` +
        `${TXN_RESPONSE_BYTES_MAX} bytes; read less per txn`,
      { limit: TXN_RESPONSE_BYTES_MAX },
    );
  }
}

const EMPTY_KV: KeyValue = {
  key: "",
  value: "",
  version: 1,
  createRevision: 1,
  modRevision: 1,
  lease: 0,
};

/** Every key a prepare locks, once each, in the order the command names them. */
function prepareKeys(command: TxnPrepareCommand): string[] {
  const keys = new Set<string>();
  for (const compare of command.compare) keys.add(compare.key);
  for (const read of command.reads) keys.add(read.key);
  for (const op of [...command.success, ...command.failure]) {
    assert(op.type !== "range", "prepare: validation refuses range ops");
    keys.add(op.key);
  }
  return [...keys];
}

function preparedAgain(row: ParticipantData, revision: number): ApplyResult {
  if (row.state === "aborted") return refused(revision, "aborted");
  const { compareSucceeded, conflict } = row.prepared;
  return {
    type: "txnPrepared",
    revision,
    ok: true,
    compareSucceeded,
    conflict,
    reservedRevision: row.prepared.revision ?? null,
    results: row.prepared.results ?? null,
  };
}

/**
 * The vote of a participant row, as {@linkcode preparedAgain} (and so a recovery's fence)
 * answers it, without writing anything: aborted rows refuse, others are their prepare's
 * verdict.
 */
export function voteOf(row: ParticipantData): TxnParticipantVote {
  const { txnId, home, state, resolvedRevision } = row;
  const reservedRevision = row.prepared.revision ?? null;
  const base = { txnId, home, state, resolvedRevision, reservedRevision };
  if (state === "aborted") return { ...base, vote: "aborted", compareSucceeded: false };
  const vote = row.prepared.conflict === null ? "commit" : "conflict";
  const compareSucceeded = row.prepared.compareSucceeded;
  assert(typeof compareSucceeded === "boolean", "voteOf: a prepared row knows its compares");
  return { ...base, vote, compareSucceeded };
}

function refused(revision: number, reason: "aborted"): ApplyResult {
  return { type: "txnPrepared", revision, ok: false, reason, key: null, holder: null };
}

function decide(txns: TxnStore, revision: number, command: TxnDecideCommand): ApplyResult {
  const record = txns.record(command.txnId);
  if (record !== null && record.status !== "pending") {
    return { type: "txnDecided", revision, status: record.status, branch: record.branch };
  }
  // Without a record the home prepare never applied: only an abort is possible.
  const isCommitted = record !== null && command.outcome === "commit";
  const status = isCommitted ? "committed" : "aborted";
  const branch = isCommitted ? command.branch : null;
  const reason = record === null && command.outcome === "commit"
    ? "no record: the prepare never applied on the home shard"
    : command.reason;
  if (record === null) {
    txns.insertRecord({
      txnId: command.txnId,
      status,
      home: -1,
      participants: [],
      branch,
      deadlineMs: 0,
      createdRevision: revision,
      decidedRevision: revision,
      reason,
    });
  } else {
    txns.decideRecord(record, { status, branch, decidedRevision: revision, reason });
  }
  txns.retain();
  assert(txns.record(command.txnId)?.status === status, "decide: the record reads back");
  return { type: "txnDecided", revision, status, branch };
}

function resolve(
  store: KvStore,
  txns: TxnStore,
  context: EntryContext,
  command: TxnResolveCommand,
): ApplyResult {
  const revision = context.revision;
  const { txnId, outcome } = command;
  const row = txns.participant(txnId);
  if (row === null) {
    if (outcome === "commit") {
      throw new AspenError(
        "txn_not_prepared",
        `Cannot commit txn "${txnId}" on this shard: it was never prepared here`,
        { txnId },
      );
    }
    writeRefusedRow(txns, txnId, revision);
    return { type: "txnResolved", revision, outcome, results: [] };
  }
  if (row.state !== "prepared") {
    const stored = row.state === "committed" ? "commit" : "abort";
    return { type: "txnResolved", revision, outcome: stored, results: row.results ?? [] };
  }
  settleRecord(txns, revision, command);
  let results: TxnOpResult[] = [];
  let revokedLeases: number[] = [];
  // This cannot fail: the prepare checked the result bytes and the leases' room over keys and
  // leases locked ever since (a locked lease cannot be revoked, and the lease of a locked key
  // cannot be either).
  if (outcome === "commit") {
    const isFailure = command.branch === "failure";
    // The changes carry the revision the prepare reserved (this entry's, for a row prepared
    // before one-round commits); the entry's event counts still add up in `context`.
    const reserved = row.prepared.revision ?? revision;
    assert(reserved <= revision, "resolve: the reserved revision is not in the future");
    const at: EntryContext = { ...context, revision: reserved };
    results = runTxnOps(store, at, isFailure ? row.failure : row.success);
    revokedLeases = applyLeaseEffects(store, at, row.prepared.leases ?? []);
    context.seq = at.seq;
    context.eventBytes = at.eventBytes;
    context.isHistoryDropped = at.isHistoryDropped;
    const preview = row.prepared.results;
    if (preview !== undefined) {
      const expected = JSON.stringify(isFailure ? preview.failure : preview.success);
      assert(JSON.stringify(results) === expected, "resolve: the results its prepare previewed");
    }
  }
  const state = outcome === "commit" ? "committed" : "aborted";
  // Ending the row releases its intents.
  txns.endParticipant(row, { state, resolvedRevision: revision, results });
  txns.retain();
  if (txns.intentCount > 0) {
    assert(txns.firstLocked(prepareKeysOf(row), null) === null, "resolve: no intent is left");
  }
  const removed = revokedLeases.length > 0 ? { revokedLeases } : {};
  return { type: "txnResolved", revision, outcome, results, ...removed };
}

function prepareKeysOf(row: ParticipantData): string[] {
  return [...row.success, ...row.failure].flatMap((op) => op.type === "range" ? [] : [op.key]);
}

/** Stores the aborted row of a participant whose prepare never applied (refuses it forever). */
function writeRefusedRow(txns: TxnStore, txnId: string, revision: number): void {
  txns.insertParticipant({
    txnId,
    home: -1,
    state: "aborted",
    resolvedRevision: revision,
    prepared: { compareSucceeded: false, conflict: null },
    success: [],
    failure: [],
    results: [],
  });
  txns.retain();
}

/**
 * The recovery's question to a participant: its prepare's verdict when it applied (also once
 * resolved commit), `aborted` when it was resolved abort, and when it never applied, an aborted
 * row stored now so that it never will.
 */
function fence(txns: TxnStore, revision: number, txnId: string): ApplyResult {
  const row = txns.participant(txnId);
  if (row !== null) return preparedAgain(row, revision);
  writeRefusedRow(txns, txnId, revision);
  return refused(revision, "aborted");
}

/**
 * On the home shard (the one holding the record), the resolve of a prepared row also decides a
 * pending (staging) record, in the same entry: its intents and its pending status end together,
 * so a record is never left pending without an intent that a pusher would find. A resolve that
 * contradicts a decided record is a protocol bug and changes nothing.
 *
 * A log written before parallel commits resolved only after the decide, so its records are
 * already decided here and this changes nothing in its replay.
 *
 * @throws {AspenError} `txn_not_prepared` when the record was decided the other way.
 */
function settleRecord(txns: TxnStore, revision: number, command: TxnResolveCommand): void {
  const record = txns.record(command.txnId);
  if (record === null) return;
  const status = command.outcome === "commit" ? "committed" : "aborted";
  if (record.status === "pending") {
    txns.decideRecord(record, {
      status,
      branch: command.outcome === "commit" ? command.branch : null,
      decidedRevision: revision,
      reason: command.outcome === "commit" ? "" : "resolved abort",
    });
    return;
  }
  if (record.status !== status) {
    throw new AspenError(
      "txn_not_prepared",
      `Cannot ${command.outcome} txn "${command.txnId}": its record is ${record.status}`,
      { txnId: command.txnId },
    );
  }
}
