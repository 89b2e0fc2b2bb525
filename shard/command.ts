/**
 * The commands a shard proposes through Raft, and their validation.
 *
 * A command is the data of one Raft entry. Every field is required (no optional fields), so a
 * command has exactly one encoding and decoding gives back an equal object. The server builds
 * commands from validated requests; {@linkcode validateCommand} checks them again at both ends
 * of the log (encode and decode), so that no replica ever applies an oversized or malformed
 * command.
 */

import { AspenError } from "./errors.ts";
import {
  type KeyRange,
  utf8ByteLength,
  validateKey,
  validateKeyRange,
  validateText,
  validateValue,
} from "./key_value.ts";
import {
  LEASE_EXPIRE_IDS_MAX,
  LEASE_SHARDS_MAX,
  LEASE_TTL_SECONDS_MAX,
  LEASE_TTL_SECONDS_MIN,
  META_NAME_BYTES_MAX,
  META_VALUE_BYTES_MAX,
  MULTI_PUT_KEYS_MAX,
  OPTIMISTIC_READS_MAX,
  OPTIMISTIC_WRITES_MAX,
  RANGE_LIMIT_MAX,
  TXN_ID_CHARS_MAX,
  TXN_OPS_MAX,
  TXN_REASON_BYTES_MAX,
  TXN_SHARDS_MAX,
} from "./limits.ts";
import { ROUTER_SHARDS_MAX } from "./router.ts";
import { isForeignLease } from "./foreign_lease.ts";
import { DROP_MOVED_KEYS_MAX, type Ownership, validateOwnership } from "./ownership.ts";

/** The most keys (written and deleted together) one `import` command carries. */
export const IMPORT_KEYS_MAX = 1_000;

/**
 * A key as a shard move copies it to its new shard: its value, version, createRevision and
 * lease (as the new shard stores it: a lease of the old shard is a foreign lease there).
 */
export interface ImportedKv {
  readonly key: string;
  readonly value: string;
  readonly version: number;
  readonly createRevision: number;
  readonly lease: number;
}

/** What a compare looks at. */
export type CompareTarget = "value" | "version" | "createRevision" | "modRevision" | "lease";
/** How a compare compares. */
export type CompareOp = "=" | "!=" | "<" | ">";

/**
 * One condition of a conditional batch. A value compare on an absent key is always false.
 * `shard`, when given, is the shard the compared value was read on: revisions are per shard, so
 * the node refuses (409 `conflict`) to check it on another one, after a shard move. It is checked
 * where the batch is routed and never reaches the log.
 */
export type Compare =
  & { readonly shard?: number }
  & (
    | {
      readonly key: string;
      readonly target: "value";
      readonly op: CompareOp;
      readonly value: string;
    }
    | {
      readonly key: string;
      readonly target: "version" | "createRevision" | "modRevision" | "lease";
      readonly op: CompareOp;
      readonly value: number;
    }
  );

/** A fully specified range read (inside a conditional batch, or after defaults are applied). */
export interface RangeRequest {
  /** The keys to read. */
  readonly range: KeyRange;
  /** The most kvs to return, 1..RANGE_LIMIT_MAX. */
  readonly limit: number;
  /** Continue after this key (before it when `reverse`); null to start at the range's edge. */
  readonly after: string | null;
  /** Return kvs with empty values. */
  readonly keysOnly: boolean;
  /** Return no kvs, only how many keys the range holds after the cursor. */
  readonly countOnly: boolean;
  /** Walk the range in descending key order. */
  readonly reverse: boolean;
}

/** One operation of a conditional batch. */
export type TxnOp =
  | {
    readonly type: "put";
    readonly key: string;
    readonly value: string;
    readonly lease: number;
    readonly prevKv: boolean;
  }
  | { readonly type: "delete"; readonly key: string; readonly prevKv: boolean }
  | { readonly type: "get"; readonly key: string }
  | { readonly type: "range"; readonly request: RangeRequest };

/** One key of a multi-put. */
export interface PutItem {
  /** The key to write. */
  readonly key: string;
  /** Its new value. */
  readonly value: string;
  /** The lease to attach it to; 0 for none (detaches it). */
  readonly lease: number;
}

/**
 * One entry of an optimistic transaction's read set: what the read saw, null for what it does
 * not say. It names a `modRevision`, a `version`, or both; shard/occ.ts says what each checks.
 */
export interface ReadRecord {
  /** The key that was read. */
  readonly key: string;
  /** The modRevision it had (0: absent): the check that sees every change. */
  readonly modRevision: number | null;
  /** The version it had (0: absent). */
  readonly version: number | null;
  /** The shard revision of the answer the read came from: the key must not change after it. */
  readonly revision: number | null;
  /**
   * The shard the read was made on, when the client names it: revisions are per shard, so the
   * node refuses (409 `conflict`) to check the read on another one, after a shard move.
   * Checked where the transaction is routed; it never reaches the log.
   */
  readonly shard?: number;
}

/** One entry of an optimistic transaction's write set. */
export type WriteOp =
  | { readonly op: "set"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string };

/** How a cross-shard transaction ends. */
export type TxnOutcome = "commit" | "abort";
/** The branch of a cross-shard transaction that runs when it commits. */
export type TxnBranch = "success" | "failure";

/**
 * Phase 1 of a cross-shard transaction, on each participant: check this shard's compares and
 * reads, and lock every key the transaction names on this shard with an intent. On the home
 * shard it also creates the transaction record.
 */
export interface TxnPrepareCommand {
  readonly type: "txnPrepare";
  /** The coordinator's id of the transaction, unique cluster-wide (printable ASCII). */
  readonly txnId: string;
  /**
   * The shard this prepare is addressed to. A state machine does not know its own shard id, and
   * it must know whether it is the home shard (which creates the record).
   */
  readonly shard: number;
  /** The shard that holds the transaction record (the shard of the smallest key). */
  readonly home: number;
  /** Every participant shard, ascending; holds `home`. */
  readonly participants: readonly number[];
  /** Coordinator wall clock ms after which a pusher may abort the transaction. */
  readonly deadlineMs: number;
  /** This shard's compares. */
  readonly compare: readonly Compare[];
  /** This shard's optimistic reads. */
  readonly reads: readonly ReadRecord[];
  /** This shard's ops of the success branch, in request order (no range ops). */
  readonly success: readonly TxnOp[];
  /** This shard's ops of the failure branch, in request order (no range ops). */
  readonly failure: readonly TxnOp[];
  /** The leases of this shard (or stand-ins of other shards' leases) the txn locks. */
  readonly leases: readonly TxnLeaseStep[];
}

/**
 * What a cross-shard transaction does to one lease on one shard, besides its ops. Each step
 * locks the lease there (an intent on its lock key) until the transaction resolves.
 *
 * - `attach`, on the lease's home: the lease must exist (else `lease_not_found`); the commit
 *   records `holder` among the shards holding its keys (nothing when it is this shard).
 * - `revoke`: locks every key attached to lease `id` here; the commit deletes them and the
 *   lease (or its stand-in). On the home shard the lease must exist, and every shard holding
 *   its keys must be among `holders` (else `conflict`: the caller reads them again).
 */
export type TxnLeaseStep =
  | {
    readonly action: "attach";
    readonly id: number;
    readonly holder: number;
    /** A key the transaction attaches (named in errors). */
    readonly key: string;
  }
  | { readonly action: "revoke"; readonly id: number; readonly holders: readonly number[] };

/** Phase 2, on the home shard only: the commit point (or a pusher's abort). */
export interface TxnDecideCommand {
  readonly type: "txnDecide";
  readonly txnId: string;
  readonly outcome: TxnOutcome;
  /** The branch to run when `outcome` is commit; null for abort. */
  readonly branch: TxnBranch | null;
  /** Why, as in "conflict", "locked", "deadline", "pushed"; may be empty for a commit. */
  readonly reason: string;
}

/** Phase 3, on every participant: apply the decided outcome and release the intents. */
export interface TxnResolveCommand {
  readonly type: "txnResolve";
  readonly txnId: string;
  readonly outcome: TxnOutcome;
  /** The branch to run when `outcome` is commit; null for abort. */
  readonly branch: TxnBranch | null;
}

/**
 * Recovery of a cross-shard transaction, on one participant (parallel commits): answers like a
 * duplicate prepare when this shard's prepare applied (its verdict, or `aborted`), and when it
 * never applied stores an aborted row first, so that the prepare, should it still arrive, is
 * refused forever. Changes nothing else: a prepared row stays prepared.
 */
export interface TxnFenceCommand {
  readonly type: "txnFence";
  readonly txnId: string;
}

/** Every command a shard's log carries. */
export type Command =
  | {
    readonly type: "put";
    readonly key: string;
    readonly value: string;
    readonly lease: number;
    readonly prevKv: boolean;
  }
  | { readonly type: "delete"; readonly key: string; readonly prevKv: boolean }
  | { readonly type: "deleteRange"; readonly range: KeyRange }
  | { readonly type: "multiPut"; readonly puts: readonly PutItem[] }
  | {
    readonly type: "txn";
    readonly compare: readonly Compare[];
    readonly success: readonly TxnOp[];
    readonly failure: readonly TxnOp[];
  }
  | {
    readonly type: "optimisticTxn";
    readonly reads: readonly ReadRecord[];
    readonly writes: readonly WriteOp[];
  }
  | { readonly type: "leaseGrant"; readonly ttlSeconds: number }
  | { readonly type: "leaseRevoke"; readonly id: number }
  | { readonly type: "leaseExpire"; readonly ids: readonly number[] }
  | { readonly type: "meta"; readonly name: string; readonly value: string }
  | { readonly type: "noop" }
  /** Sets the shard's ownership record (shard/ownership.ts): a move's fence, hand-off, etc. */
  | { readonly type: "ownership"; readonly ownership: Ownership }
  /**
   * A move's copy on the new shard: writes `kvs` keeping their version and createRevision
   * (modRevision is this entry's revision) and removes `deletes`, without watch events.
   */
  | {
    readonly type: "import";
    /** The copy pass it belongs to: the shard takes it only in that pass (ownership.ts). */
    readonly pass: number;
    readonly kvs: readonly ImportedKv[];
    readonly deletes: readonly string[];
  }
  /**
   * A move's clean-up on a source: removes up to `limit` keys the shard no longer owns,
   * without watch events (they moved, they were not deleted); settles the shard when none
   * is left.
   */
  | { readonly type: "dropMoved"; readonly limit: number }
  /**
   * A move's hand-off on a lease's home: shard `holder` now holds keys of lease `id` (moved
   * there from a third shard), so that the lease's revocation and expiry reach them. Waits
   * (`locked`) while a cross-shard transaction holds the lease.
   */
  | { readonly type: "leaseHolderAdd"; readonly id: number; readonly holder: number }
  | TxnPrepareCommand
  | TxnDecideCommand
  | TxnResolveCommand
  | TxnFenceCommand;

/** The `type` of a command. */
export type CommandType = Command["type"];

const COMPARE_TARGETS: readonly string[] = [
  "value",
  "version",
  "createRevision",
  "modRevision",
  "lease",
];
const COMPARE_OPS: readonly string[] = ["=", "!=", "<", ">"];

/**
 * Whether `command` only removes data (or reads): deletes, range deletes, lease revocations,
 * and transactions whose writes are all deletes. A node short of disk space still accepts these
 * (as etcd does under its NOSPACE alarm): they let an operator make room. They do not shrink the
 * files at once, but the pages they free inside SQLite are reused by later writes.
 */
export function isDeleteOnly(command: Command): boolean {
  switch (command.type) {
    case "delete":
    case "deleteRange":
    case "leaseRevoke":
    case "ownership":
    case "dropMoved":
      return true;
    case "txn":
      return [...command.success, ...command.failure].every((op) => op.type !== "put");
    case "optimisticTxn":
      return command.writes.every((write) => write.op === "delete");
    case "txnDecide":
    case "txnResolve":
      // An abort only releases intents; letting it through frees the keys it locked.
      return command.outcome === "abort";
    case "txnFence":
      // It leads to an abort or a commit already made; letting it through frees locked keys.
      return true;
    case "txnPrepare":
    case "put":
    case "multiPut":
    case "leaseGrant":
    case "leaseExpire":
    case "meta":
    case "noop":
    case "import":
    case "leaseHolderAdd":
      return false;
  }
}

/**
 * Checks a command against its shape and every limit.
 *
 * @throws {AspenError} `bad_request`, `key_too_large`, `value_too_large` or
 * `request_too_large` (too many operations).
 */
export function validateCommand(command: Command): void {
  switch (command.type) {
    case "put":
      return validatePut(command, "put");
    case "delete":
      validateKey(command.key, "delete");
      return validateFlag(command.prevKv, "delete", "prevKv");
    case "deleteRange":
      return validateKeyRange(command.range, "delete range");
    case "multiPut":
      return validateMultiPut(command.puts);
    case "txn":
      return validateTxn(command.compare, command.success, command.failure);
    case "optimisticTxn":
      return validateOptimistic(command.reads, command.writes);
    case "leaseGrant":
      return validateTtl(command.ttlSeconds);
    case "leaseRevoke":
      return validateCount(command.id, { min: 1, action: "revoke lease", field: "id" });
    case "leaseExpire":
      return validateLeaseExpire(command.ids);
    case "meta":
      return validateMeta(command.name, command.value);
    case "noop":
      return;
    case "ownership":
      return validateOwnership(command.ownership);
    case "import":
      validateCount(command.pass, { min: 1, action: "import keys", field: "pass" });
      return validateImport(command.kvs, command.deletes);
    case "leaseHolderAdd":
      validateCount(command.id, { min: 1, action: "add lease holder", field: "id" });
      validateCount(command.holder, { min: 0, action: "add lease holder", field: "holder" });
      if (command.holder < ROUTER_SHARDS_MAX && !isForeignLease(command.id)) return;
      throw new AspenError(
        "bad_request",
        "Cannot add lease holder: the lease must be the shard's own and the holder a shard id",
      );
    case "dropMoved":
      validateCount(command.limit, { min: 1, action: "drop moved keys", field: "limit" });
      if (command.limit <= DROP_MOVED_KEYS_MAX) return;
      throw new AspenError(
        "bad_request",
        `Cannot drop moved keys: limit is ${command.limit} but the maximum is ` +
          `${DROP_MOVED_KEYS_MAX} (DROP_MOVED_KEYS_MAX)`,
      );
    case "txnPrepare":
      return validateTxnPrepare(command);
    case "txnDecide":
      validateTxnId(command.txnId, "decide txn");
      validateOutcome(command, "decide txn");
      return validateReason(command.txnId, command.reason);
    case "txnResolve":
      validateTxnId(command.txnId, "resolve txn");
      return validateOutcome(command, "resolve txn");
    case "txnFence":
      return validateTxnId(command.txnId, "fence txn");
  }
  const unknown: { type?: unknown } = command;
  throw new AspenError("bad_request", `Cannot run command "${String(unknown.type)}": unknown type`);
}

function validatePut(put: Omit<PutItem, "lease"> & { lease: number }, action: string): void {
  validateKey(put.key, action);
  validateValue(put.value, action);
  validateCount(put.lease, { min: 0, action, field: "lease" });
}

function validateImport(kvs: readonly ImportedKv[], deletes: readonly string[]): void {
  const action = "import keys";
  validateList(kvs, { max: IMPORT_KEYS_MAX, action, field: "kvs" });
  validateList(deletes, { max: IMPORT_KEYS_MAX - kvs.length, action, field: "deletes" });
  for (const kv of kvs) {
    validatePut(kv, action);
    validateCount(kv.version, { min: 1, action, field: "version" });
    validateCount(kv.createRevision, { min: 1, action, field: "createRevision" });
  }
  for (const key of deletes) validateKey(key, action);
}

function validateFlag(flag: unknown, action: string, field: string): void {
  if (typeof flag !== "boolean") {
    throw new AspenError("bad_request", `Cannot ${action}: ${field} is not a boolean`);
  }
}

function validateMultiPut(puts: readonly PutItem[]): void {
  validateList(puts, { max: MULTI_PUT_KEYS_MAX, action: "multi-put", field: "puts" });
  for (const put of puts) validatePut(put, "multi-put");
}

function validateTxn(
  compare: readonly Compare[],
  success: readonly TxnOp[],
  failure: readonly TxnOp[],
): void {
  validateList(compare, { max: TXN_OPS_MAX, action: "run txn", field: "compare" });
  validateList(success, { max: TXN_OPS_MAX, action: "run txn", field: "success" });
  validateList(failure, { max: TXN_OPS_MAX, action: "run txn", field: "failure" });
  for (const item of compare) validateCompare(item);
  for (const op of success) validateTxnOp(op);
  for (const op of failure) validateTxnOp(op);
}

function validateCompare(compare: Compare): void {
  validateKey(compare.key, "compare");
  if (!COMPARE_TARGETS.includes(compare.target)) {
    throw new AspenError("bad_request", `Cannot compare: unknown target "${compare.target}"`);
  }
  if (!COMPARE_OPS.includes(compare.op)) {
    throw new AspenError("bad_request", `Cannot compare: unknown operator "${compare.op}"`);
  }
  if (compare.target === "value") return validateValue(compare.value, "compare");
  validateCount(compare.value, { min: 0, action: "compare", field: "value" });
}

function validateTxnOp(op: TxnOp): void {
  switch (op.type) {
    case "put":
      validatePut(op, "put in txn");
      return validateFlag(op.prevKv, "put in txn", "prevKv");
    case "delete":
      validateKey(op.key, "delete in txn");
      return validateFlag(op.prevKv, "delete in txn", "prevKv");
    case "get":
      return validateKey(op.key, "get in txn");
    case "range":
      return validateRangeRequest(op.request);
  }
  const unknown: { type?: unknown } = op;
  throw new AspenError("bad_request", `Cannot run txn: unknown op "${String(unknown.type)}"`);
}

/**
 * Checks a fully specified range read.
 *
 * @throws {AspenError} `bad_request` or `key_too_large`.
 */
export function validateRangeRequest(request: RangeRequest): void {
  validateKeyRange(request.range, "read range");
  validateCount(request.limit, { min: 1, action: "read range", field: "limit" });
  if (request.limit > RANGE_LIMIT_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot read range: limit is ${request.limit} but the maximum is ${RANGE_LIMIT_MAX}`,
      { limit: RANGE_LIMIT_MAX },
    );
  }
  if (request.after !== null) validateKey(request.after, "read range after key");
  validateFlag(request.keysOnly, "read range", "keysOnly");
  validateFlag(request.countOnly, "read range", "countOnly");
  validateFlag(request.reverse, "read range", "reverse");
}

function validateOptimistic(reads: readonly ReadRecord[], writes: readonly WriteOp[]): void {
  const action = "commit optimistic txn";
  validateList(reads, { max: OPTIMISTIC_READS_MAX, action, field: "reads" });
  validateList(writes, { max: OPTIMISTIC_WRITES_MAX, action, field: "writes" });
  for (const read of reads) validateRead(read, action);
  for (const write of writes) {
    validateKey(write.key, action);
    if (write.op === "set") {
      validateValue(write.value, action);
    } else if (write.op !== "delete") {
      const unknown: { op?: unknown } = write;
      throw new AspenError("bad_request", `Cannot ${action}: unknown write "${unknown.op}"`);
    }
  }
}

function validateRead(read: ReadRecord, action: string): void {
  if (typeof read !== "object" || read === null) {
    throw new AspenError("bad_request", `Cannot ${action}: a read is not an object`);
  }
  validateKey(read.key, action);
  if (read.modRevision === null && read.version === null) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: the read of key "${read.key}" names neither a modRevision nor a version`,
      { field: "modRevision" },
    );
  }
  for (const field of ["modRevision", "version", "revision"] as const) {
    const value = read[field];
    if (value !== null) validateCount(value, { min: 0, action, field });
  }
}

function validateTtl(ttlSeconds: number): void {
  validateCount(ttlSeconds, { min: 0, action: "grant lease", field: "ttl" });
  if (ttlSeconds < LEASE_TTL_SECONDS_MIN || ttlSeconds > LEASE_TTL_SECONDS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot grant lease: ttl is ${ttlSeconds} s but it must be between ` +
        `${LEASE_TTL_SECONDS_MIN} and ${LEASE_TTL_SECONDS_MAX}`,
      { min: LEASE_TTL_SECONDS_MIN, max: LEASE_TTL_SECONDS_MAX },
    );
  }
}

function validateLeaseExpire(ids: readonly number[]): void {
  const action = "expire leases";
  validateList(ids, { max: LEASE_EXPIRE_IDS_MAX, action, field: "ids" });
  for (const id of ids) validateCount(id, { min: 1, action, field: "id" });
}

function validateMeta(name: string, value: string): void {
  if (typeof name !== "string" || name.length === 0) {
    throw new AspenError("bad_request", "Cannot write meta record: the name is empty");
  }
  if (typeof value !== "string") {
    throw new AspenError("bad_request", `Cannot write meta record "${name}": value not a string`);
  }
  validateText(name, "write meta record: the name");
  validateText(value, "write meta record: the value");
  if (utf8ByteLength(name) > META_NAME_BYTES_MAX) {
    throw new AspenError(
      "key_too_large",
      `Cannot write meta record: the name is longer than ${META_NAME_BYTES_MAX} bytes`,
      { limit: META_NAME_BYTES_MAX },
    );
  }
  const bytes = utf8ByteLength(value);
  if (bytes > META_VALUE_BYTES_MAX) {
    throw new AspenError(
      "value_too_large",
      `Cannot write meta record "${name}": value is ${bytes} bytes but the limit is ` +
        `${META_VALUE_BYTES_MAX}`,
      { bytes, limit: META_VALUE_BYTES_MAX },
    );
  }
}

function validateTxnPrepare(command: TxnPrepareCommand): void {
  const action = "prepare txn";
  validateTxnId(command.txnId, action);
  validateShardId(command.shard, action, "shard");
  validateShardId(command.home, action, "home");
  validateList(command.participants, { max: TXN_SHARDS_MAX, action, field: "participants" });
  command.participants.forEach((shard, i) => {
    validateShardId(shard, action, "participant");
    const previous = command.participants[i - 1];
    if (previous !== undefined && previous >= shard) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action} "${command.txnId}": participants are not in ascending order`,
      );
    }
  });
  for (const [field, shard] of [["home", command.home], ["shard", command.shard]] as const) {
    if (!command.participants.includes(shard)) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action} "${command.txnId}": ${field} ${shard} is not a participant`,
      );
    }
  }
  validateCount(command.deadlineMs, { min: 0, action, field: "deadlineMs" });
  validateList(command.compare, { max: TXN_OPS_MAX, action, field: "compare" });
  validateList(command.reads, { max: OPTIMISTIC_READS_MAX, action, field: "reads" });
  validateList(command.success, { max: OPTIMISTIC_WRITES_MAX, action, field: "success" });
  validateList(command.failure, { max: OPTIMISTIC_WRITES_MAX, action, field: "failure" });
  for (const item of command.compare) validateCompare(item);
  for (const read of command.reads) validateRead(read, action);
  for (const op of [...command.success, ...command.failure]) {
    validateTxnOp(op);
    if (op.type === "range") {
      throw new AspenError(
        "bad_request",
        `Cannot ${action} "${command.txnId}": a range op cannot run in a cross-shard txn`,
        { op: "range" },
      );
    }
    // A lease of this shard must be locked by the same prepare: a commit must not fail on a
    // lease revoked since the prepare. Another shard's lease is locked by its home's prepare.
    const isUnlocked = op.type === "put" && op.lease !== 0 && !isForeignLease(op.lease) &&
      !command.leases.some((step) => step.id === op.lease);
    if (isUnlocked) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action} "${command.txnId}": the put of key "${op.key}" names lease ` +
          `${op.lease} of this shard, but the prepare does not lock it with a lease step`,
        { op: "put", key: op.key },
      );
    }
  }
  validateLeaseSteps(command, action);
}

function validateLeaseSteps(command: TxnPrepareCommand, action: string): void {
  validateList(command.leases, { max: TXN_OPS_MAX, action, field: "leases" });
  for (const step of command.leases) {
    if (step.action !== "attach" && step.action !== "revoke") {
      throw new AspenError("bad_request", `Cannot ${action}: unknown lease step action`);
    }
    validateCount(step.id, { min: 1, action, field: "leases.id" });
    if (step.action === "attach") {
      validateShardId(step.holder, action, "leases.holder");
      validateKey(step.key, action);
      if (isForeignLease(step.id)) {
        throw new AspenError(
          "bad_request",
          `Cannot ${action} "${command.txnId}": lease ${step.id} is another shard's; a key is ` +
            "attached to a lease on the lease's home shard",
        );
      }
      continue;
    }
    validateList(step.holders, { max: LEASE_SHARDS_MAX, action, field: "leases.holders" });
    for (const shard of step.holders) validateShardId(shard, action, "leases.holders");
  }
}

function validateTxnId(txnId: unknown, action: string): void {
  if (typeof txnId !== "string" || txnId.length === 0) {
    throw new AspenError("bad_request", `Cannot ${action}: txnId is empty or not a string`);
  }
  if (txnId.length > TXN_ID_CHARS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: txnId has ${txnId.length} characters but the limit is ` +
        `${TXN_ID_CHARS_MAX} (TXN_ID_CHARS_MAX)`,
      { limit: TXN_ID_CHARS_MAX, name: "TXN_ID_CHARS_MAX" },
    );
  }
  if (!/^[\x21-\x7e]+$/.test(txnId)) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: txnId "${txnId}" is not printable ASCII without spaces`,
    );
  }
}

function validateShardId(shard: unknown, action: string, field: string): void {
  validateCount(shard, { min: 0, action, field });
  if (shard >= ROUTER_SHARDS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: ${field} is shard ${shard} but shard ids are below ${ROUTER_SHARDS_MAX}`,
    );
  }
}

function validateOutcome(
  command: { readonly txnId: string; readonly outcome: unknown; readonly branch: unknown },
  action: string,
): void {
  const { txnId, outcome, branch } = command;
  if (outcome === "commit") {
    if (branch !== "success" && branch !== "failure") {
      throw new AspenError(
        "bad_request",
        `Cannot ${action} "${txnId}": a commit names the branch "success" or "failure", ` +
          `not ${JSON.stringify(branch)}`,
      );
    }
    return;
  }
  if (outcome !== "abort") {
    throw new AspenError(
      "bad_request",
      `Cannot ${action} "${txnId}": outcome is ${JSON.stringify(outcome)}, not commit or abort`,
    );
  }
  if (branch !== null) {
    throw new AspenError("bad_request", `Cannot ${action} "${txnId}": an abort names no branch`);
  }
}

function validateReason(txnId: string, reason: unknown): void {
  if (typeof reason !== "string") {
    throw new AspenError("bad_request", `Cannot decide txn "${txnId}": reason is not a string`);
  }
  validateText(reason, "decide txn: the reason");
  const bytes = utf8ByteLength(reason);
  if (bytes > TXN_REASON_BYTES_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot decide txn "${txnId}": the reason is ${bytes} bytes but the limit is ` +
        `${TXN_REASON_BYTES_MAX} (TXN_REASON_BYTES_MAX)`,
      { limit: TXN_REASON_BYTES_MAX, name: "TXN_REASON_BYTES_MAX" },
    );
  }
}

interface CountRule {
  readonly min: number;
  readonly action: string;
  readonly field: string;
}

/**
 * Checks that a number is a safe integer at least `rule.min`.
 *
 * @throws {AspenError} `bad_request` otherwise.
 */
export function validateCount(value: unknown, rule: CountRule): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < rule.min) {
    throw new AspenError(
      "bad_request",
      `Cannot ${rule.action}: ${rule.field} is ${String(value)} but it must be an integer ` +
        `of at least ${rule.min}`,
    );
  }
}

interface ListRule {
  readonly max: number;
  readonly action: string;
  readonly field: string;
}

function validateList(list: unknown, rule: ListRule): void {
  if (!Array.isArray(list)) {
    throw new AspenError("bad_request", `Cannot ${rule.action}: ${rule.field} is not a list`);
  }
  if (list.length > rule.max) {
    throw new AspenError(
      "request_too_large",
      `Cannot ${rule.action}: ${rule.field} has ${list.length} items but the limit is ${rule.max}`,
      { limit: rule.max },
    );
  }
}
