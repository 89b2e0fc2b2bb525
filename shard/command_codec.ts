/**
 * The binary encoding of {@linkcode Command}s, the data of a shard's Raft entries.
 *
 * Layout: a format byte, a command tag byte, then the fields in declaration order (varint
 * integers, length-prefixed UTF-8 strings, 0/1 booleans, and a nullable integer as a boolean
 * "present" then the integer). One command has exactly one encoding. Empty data decodes to a
 * noop, because the Raft layer appends empty entries of its own.
 *
 * Versioning: the layout of a tag never changes. A new layout for a command takes a new tag,
 * and the old tag stays decodable forever, since replicas replay their logs and leaders send
 * lagging followers entries written before the change. A new tag rather than a new format byte
 * keeps every other command readable by a replica that does not know the new layout yet. Tag 5
 * is the optimistic transaction whose reads carry only a version (the layout before reads could
 * name a modRevision and a revision); tag 11 replaced it. Tags 12 to 14 are the phases of a
 * cross-shard transaction (txnPrepare, txnDecide, txnResolve); tag 15 is the prepare
 * with lease steps (cross-shard leases), which replaced tag 12. Tag 16 is txnFence (the recovery
 * of a parallel commit); tags 17 to 19 are free; tags 20 to 23 are online resharding's
 * (ownership, import, dropMoved, leaseHolderAdd).
 */

import { assert } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { ByteReader, ByteWriter } from "./_binary.ts";
import {
  type Command,
  type Compare,
  type CompareOp,
  type ImportedKv,
  type PutItem,
  type RangeRequest,
  type ReadRecord,
  type TxnBranch,
  type TxnLeaseStep,
  type TxnOp,
  type TxnOutcome,
  type TxnPrepareCommand,
  validateCommand,
  type WriteOp,
} from "./command.ts";
import { type KeyRange, valueFromBytes, valueToBytes } from "./key_value.ts";
import { REQUEST_BYTES_MAX } from "./limits.ts";
import type { Ownership } from "./ownership.ts";
import type { TenantShards } from "./tenants.ts";

const FORMAT_VERSION = 1;
/**
 * The command type of each tag; a type's current tag is its last one (see the module doc).
 * Null: a tag kept for a change that is not here.
 */
const COMMAND_TAGS: readonly (Command["type"] | null)[] = [
  "put",
  "delete",
  "deleteRange",
  "multiPut",
  "txn",
  "optimisticTxn", // Decoded only: reads are (key, version).
  "leaseGrant",
  "leaseRevoke",
  "leaseExpire",
  "meta",
  "noop",
  "optimisticTxn", // Reads are (key, modRevision?, version?, revision?).
  "txnPrepare",
  "txnDecide",
  "txnResolve",
  "txnPrepare", // With lease steps.
  "txnFence",
  null,
  null,
  null,
  "ownership",
  "import",
  "dropMoved",
  "leaseHolderAdd",
];
/** The tag of the optimistic transaction whose reads carry only a version. */
const OPTIMISTIC_VERSION_ONLY_TAG = 5;
/** The tag of the cross-shard prepare without lease steps. */
const PREPARE_WITHOUT_LEASES_TAG = 12;
const LEASE_ACTIONS: readonly TxnLeaseStep["action"][] = ["attach", "revoke"];
const TARGETS: readonly Compare["target"][] = [
  "value",
  "version",
  "createRevision",
  "modRevision",
  "lease",
];
const OPS: readonly CompareOp[] = ["=", "!=", "<", ">"];
const TXN_OP_TAGS: readonly TxnOp["type"][] = ["put", "delete", "get", "range"];
const OUTCOMES: readonly TxnOutcome[] = ["commit", "abort"];
/** A nullable branch: tag 0 is null. */
const BRANCHES: readonly (TxnBranch | null)[] = [null, "success", "failure"];

/**
 * Encodes a command for a Raft entry, after validating it.
 *
 * @throws {AspenError} from {@linkcode validateCommand}, or `request_too_large` when the
 * encoding exceeds REQUEST_BYTES_MAX.
 */
export function encodeCommand(command: Command): Uint8Array {
  validateCommand(command);
  const writer = new ByteWriter();
  writer.u8(FORMAT_VERSION);
  const tag = COMMAND_TAGS.lastIndexOf(command.type);
  assert(tag >= 0, "encodeCommand: every command type has a tag");
  assert(tag !== OPTIMISTIC_VERSION_ONLY_TAG, "encodeCommand: old layouts are only decoded");
  assert(tag !== PREPARE_WITHOUT_LEASES_TAG, "encodeCommand: old layouts are only decoded");
  writer.u8(tag);
  writeFields(writer, command);
  const bytes = writer.finish();
  if (bytes.length > REQUEST_BYTES_MAX) {
    throw new AspenError(
      "request_too_large",
      `Cannot encode ${command.type}: it is ${bytes.length} bytes but the limit is ` +
        `${REQUEST_BYTES_MAX}`,
      { bytes: bytes.length, limit: REQUEST_BYTES_MAX },
    );
  }
  return bytes;
}

/**
 * Decodes and validates a command from a Raft entry's data.
 *
 * @throws {AspenError} `bad_request` for malformed bytes, or any code of
 * {@linkcode validateCommand}; never another kind of error.
 */
export function decodeCommand(bytes: Uint8Array): Command {
  if (bytes.length === 0) return { type: "noop" };
  if (bytes.length > REQUEST_BYTES_MAX) {
    throw new AspenError(
      "request_too_large",
      `Cannot decode command: it is ${bytes.length} bytes but the limit is ${REQUEST_BYTES_MAX}`,
      { bytes: bytes.length, limit: REQUEST_BYTES_MAX },
    );
  }
  const reader = new ByteReader(bytes);
  const format = reader.u8();
  if (format !== FORMAT_VERSION) {
    throw new AspenError("bad_request", `Cannot decode command: unknown format ${format}`);
  }
  const tag = reader.u8();
  const type = pick(COMMAND_TAGS, tag, "command");
  if (type === null) {
    throw new AspenError("bad_request", `Cannot decode command: unknown command tag ${tag}`);
  }
  const command = tag === OPTIMISTIC_VERSION_ONLY_TAG
    ? readVersionOnlyOptimistic(reader)
    : tag === PREPARE_WITHOUT_LEASES_TAG
    ? { ...readTxnPrepare(reader), leases: [] }
    : readFields(reader, type);
  reader.end();
  validateCommand(command);
  return command;
}

function writeFields(writer: ByteWriter, command: Command): void {
  switch (command.type) {
    case "put":
      writePut(writer, command);
      return writer.bool(command.prevKv);
    case "delete":
      writer.string(command.key);
      return writer.bool(command.prevKv);
    case "deleteRange":
      return writeRange(writer, command.range);
    case "multiPut":
      return writeList(writer, command.puts, (put) => writePut(writer, put));
    case "txn":
      writeList(writer, command.compare, (compare) => writeCompare(writer, compare));
      writeList(writer, command.success, (op) => writeTxnOp(writer, op));
      return writeList(writer, command.failure, (op) => writeTxnOp(writer, op));
    case "optimisticTxn":
      writeList(writer, command.reads, (read) => writeRead(writer, read));
      return writeList(writer, command.writes, (write) => writeWriteOp(writer, write));
    case "leaseGrant":
      return writer.uint(command.ttlSeconds);
    case "leaseRevoke":
      return writer.uint(command.id);
    case "leaseExpire":
      return writeList(writer, command.ids, (id) => writer.uint(id));
    case "meta":
      writer.string(command.name);
      return writer.string(command.value);
    case "noop":
      return;
    case "txnPrepare":
      return writeTxnPrepare(writer, command);
    case "ownership":
      return writeOwnership(writer, command.ownership);
    case "import":
      writer.uint(command.pass);
      writeList(writer, command.kvs, (kv) => writeImported(writer, kv));
      return writeList(writer, command.deletes, (key) => writer.string(key));
    case "dropMoved":
      return writer.uint(command.limit);
    case "leaseHolderAdd":
      writer.uint(command.id);
      return writer.uint(command.holder);
    case "txnDecide":
      writer.string(command.txnId);
      writer.u8(OUTCOMES.indexOf(command.outcome));
      writer.u8(BRANCHES.indexOf(command.branch));
      return writer.string(command.reason);
    case "txnResolve":
      writer.string(command.txnId);
      writer.u8(OUTCOMES.indexOf(command.outcome));
      return writer.u8(BRANCHES.indexOf(command.branch));
    case "txnFence":
      return writer.string(command.txnId);
  }
}

function readFields(reader: ByteReader, type: Command["type"]): Command {
  switch (type) {
    case "put":
      return { type, ...readPut(reader), prevKv: reader.bool() };
    case "delete":
      return { type, key: readString(reader), prevKv: reader.bool() };
    case "deleteRange":
      return { type, range: readRange(reader) };
    case "multiPut":
      return { type, puts: readList(reader, () => readPut(reader)) };
    case "txn": {
      const compare = readList(reader, () => readCompare(reader));
      const success = readList(reader, () => readTxnOp(reader));
      return { type, compare, success, failure: readList(reader, () => readTxnOp(reader)) };
    }
    case "optimisticTxn": {
      const reads = readList(reader, () => readRead(reader));
      return { type, reads, writes: readList(reader, () => readWriteOp(reader)) };
    }
    case "leaseGrant":
      return { type, ttlSeconds: reader.uint() };
    case "leaseRevoke":
      return { type, id: reader.uint() };
    case "leaseExpire":
      return { type, ids: readList(reader, () => reader.uint()) };
    case "meta":
      return { type, name: readString(reader), value: readString(reader) };
    case "noop":
      return { type };
    case "txnPrepare":
      return { ...readTxnPrepare(reader), leases: readList(reader, () => readLeaseStep(reader)) };
    case "ownership":
      return { type, ownership: readOwnership(reader) };
    case "import": {
      const pass = reader.uint();
      const kvs = readList(reader, () => readImported(reader));
      return { type, pass, kvs, deletes: readList(reader, () => readString(reader)) };
    }
    case "dropMoved":
      return { type, limit: reader.uint() };
    case "leaseHolderAdd":
      return { type, id: reader.uint(), holder: reader.uint() };
    case "txnDecide": {
      const txnId = readString(reader);
      const outcome = pick(OUTCOMES, reader.u8(), "txn outcome");
      const branch = pick(BRANCHES, reader.u8(), "txn branch");
      return { type, txnId, outcome, branch, reason: readString(reader) };
    }
    case "txnResolve": {
      const txnId = readString(reader);
      const outcome = pick(OUTCOMES, reader.u8(), "txn outcome");
      return { type, txnId, outcome, branch: pick(BRANCHES, reader.u8(), "txn branch") };
    }
    case "txnFence":
      return { type, txnId: readString(reader) };
  }
}

function writeTxnPrepare(writer: ByteWriter, command: TxnPrepareCommand): void {
  writer.string(command.txnId);
  writer.uint(command.shard);
  writer.uint(command.home);
  writeList(writer, command.participants, (shard) => writer.uint(shard));
  writer.uint(command.deadlineMs);
  writeList(writer, command.compare, (compare) => writeCompare(writer, compare));
  writeList(writer, command.reads, (read) => writeRead(writer, read));
  writeList(writer, command.success, (op) => writeTxnOp(writer, op));
  writeList(writer, command.failure, (op) => writeTxnOp(writer, op));
  writeList(writer, command.leases, (step) => writeLeaseStep(writer, step));
}

function writeOwnership(writer: ByteWriter, ownership: Ownership): void {
  writer.uint(ownership.shard);
  writer.uint(ownership.readCount);
  writer.uint(ownership.writeCount);
  writer.bool(ownership.isActive);
  writer.bool(ownership.isSettled);
  writer.uint(ownership.copyPass);
  // Tenants and the stage came later: an entry without them ends here (the command is the last
  // thing in an entry, so a reader tells them apart by what is left).
  const { readTenants, writeTenants, stage } = ownership;
  if (readTenants === undefined && writeTenants === undefined && stage === undefined) return;
  writer.string(JSON.stringify({ readTenants, writeTenants, stage }));
}

function readOwnership(reader: ByteReader): Ownership {
  const shard = reader.uint();
  const readCount = reader.uint();
  const writeCount = reader.uint();
  const isActive = reader.bool();
  const isSettled = reader.bool();
  const copyPass = reader.uint();
  const ownership = { shard, readCount, writeCount, isActive, isSettled, copyPass };
  if (reader.isAtEnd()) return ownership;
  const text = readString(reader);
  let extra: Record<string, unknown>;
  try {
    extra = JSON.parse(text);
  } catch (error) {
    throw new AspenError("bad_request", "Cannot decode command: ownership tenants not JSON", {}, {
      cause: error,
    });
  }
  if (typeof extra !== "object" || extra === null) {
    throw new AspenError("bad_request", "Cannot decode command: ownership tenants not an object");
  }
  return {
    ...ownership,
    ...(extra.readTenants === undefined ? {} : { readTenants: extra.readTenants as TenantShards }),
    ...(extra.writeTenants === undefined
      ? {}
      : { writeTenants: extra.writeTenants as TenantShards }),
    ...(extra.stage === undefined ? {} : { stage: extra.stage as number }),
  };
}

function writeImported(writer: ByteWriter, kv: ImportedKv): void {
  writePut(writer, kv);
  writer.uint(kv.version);
  writer.uint(kv.createRevision);
}

function readImported(reader: ByteReader): ImportedKv {
  const put = readPut(reader);
  const version = reader.uint();
  return { ...put, version, createRevision: reader.uint() };
}

function writeLeaseStep(writer: ByteWriter, step: TxnLeaseStep): void {
  writer.u8(LEASE_ACTIONS.indexOf(step.action));
  writer.uint(step.id);
  if (step.action === "attach") {
    writer.uint(step.holder);
    return writer.string(step.key);
  }
  writeList(writer, step.holders, (shard) => writer.uint(shard));
}

function readLeaseStep(reader: ByteReader): TxnLeaseStep {
  const action = pick(LEASE_ACTIONS, reader.u8(), "lease step");
  const id = reader.uint();
  if (action === "attach") return { action, id, holder: reader.uint(), key: readString(reader) };
  return { action, id, holders: readList(reader, () => reader.uint()) };
}

/** The fields of a prepare up to its lease steps (all of a tag-12 prepare). */
function readTxnPrepare(reader: ByteReader): Omit<TxnPrepareCommand, "leases"> {
  const txnId = readString(reader);
  const shard = reader.uint();
  const home = reader.uint();
  const participants = readList(reader, () => reader.uint());
  const deadlineMs = reader.uint();
  const compare = readList(reader, () => readCompare(reader));
  const reads = readList(reader, () => readRead(reader));
  const success = readList(reader, () => readTxnOp(reader));
  const failure = readList(reader, () => readTxnOp(reader));
  return {
    type: "txnPrepare",
    txnId,
    shard,
    home,
    participants,
    deadlineMs,
    compare,
    reads,
    success,
    failure,
  };
}

function writeRead(writer: ByteWriter, read: ReadRecord): void {
  writer.string(read.key);
  writeNullableUint(writer, read.modRevision);
  writeNullableUint(writer, read.version);
  writeNullableUint(writer, read.revision);
}

function readRead(reader: ByteReader): ReadRecord {
  return {
    key: readString(reader),
    modRevision: readNullableUint(reader),
    version: readNullableUint(reader),
    revision: readNullableUint(reader),
  };
}

/** An optimistic transaction of tag 5, whose reads are (key, version). */
function readVersionOnlyOptimistic(reader: ByteReader): Command {
  const reads = readList(reader, (): ReadRecord => {
    const key = readString(reader);
    return { key, modRevision: null, version: reader.uint(), revision: null };
  });
  return { type: "optimisticTxn", reads, writes: readList(reader, () => readWriteOp(reader)) };
}

function writeNullableUint(writer: ByteWriter, value: number | null): void {
  writer.bool(value !== null);
  if (value !== null) writer.uint(value);
}

function readNullableUint(reader: ByteReader): number | null {
  return reader.bool() ? reader.uint() : null;
}

function writePut(writer: ByteWriter, put: PutItem): void {
  writer.string(put.key);
  writeValue(writer, put.value);
  writer.uint(put.lease);
}

function readPut(reader: ByteReader): PutItem {
  return { key: readString(reader), value: readValue(reader), lease: reader.uint() };
}

function writeRange(writer: ByteWriter, range: KeyRange): void {
  if ("prefix" in range) {
    writer.u8(0);
    return writer.string(range.prefix);
  }
  writer.u8(1);
  writer.string(range.start);
  writer.string(range.end);
}

function readRange(reader: ByteReader): KeyRange {
  const kind = reader.u8();
  if (kind === 0) return { prefix: readString(reader) };
  if (kind === 1) return { start: readString(reader), end: readString(reader) };
  throw new AspenError("bad_request", `Cannot decode command: unknown range kind ${kind}`);
}

function writeCompare(writer: ByteWriter, compare: Compare): void {
  writer.string(compare.key);
  writer.u8(TARGETS.indexOf(compare.target));
  writer.u8(OPS.indexOf(compare.op));
  if (compare.target === "value") return writeValue(writer, compare.value);
  writer.uint(compare.value);
}

function readCompare(reader: ByteReader): Compare {
  const key = readString(reader);
  const target = pick(TARGETS, reader.u8(), "compare target");
  const op = pick(OPS, reader.u8(), "compare operator");
  if (target === "value") return { key, target, op, value: readValue(reader) };
  return { key, target, op, value: reader.uint() };
}

function writeTxnOp(writer: ByteWriter, op: TxnOp): void {
  writer.u8(TXN_OP_TAGS.indexOf(op.type));
  switch (op.type) {
    case "put":
      writePut(writer, op);
      return writer.bool(op.prevKv);
    case "delete":
      writer.string(op.key);
      return writer.bool(op.prevKv);
    case "get":
      return writer.string(op.key);
    case "range":
      return writeRangeRequest(writer, op.request);
  }
}

function readTxnOp(reader: ByteReader): TxnOp {
  const type = pick(TXN_OP_TAGS, reader.u8(), "txn op");
  switch (type) {
    case "put":
      return { type, ...readPut(reader), prevKv: reader.bool() };
    case "delete":
      return { type, key: readString(reader), prevKv: reader.bool() };
    case "get":
      return { type, key: readString(reader) };
    case "range":
      return { type, request: readRangeRequest(reader) };
  }
}

function writeRangeRequest(writer: ByteWriter, request: RangeRequest): void {
  writeRange(writer, request.range);
  writer.uint(request.limit);
  writer.bool(request.after !== null);
  if (request.after !== null) writer.string(request.after);
  writer.bool(request.keysOnly);
  writer.bool(request.countOnly);
  writer.bool(request.reverse);
}

function readRangeRequest(reader: ByteReader): RangeRequest {
  const range = readRange(reader);
  const limit = reader.uint();
  const after = reader.bool() ? readString(reader) : null;
  const keysOnly = reader.bool();
  const countOnly = reader.bool();
  return { range, limit, after, keysOnly, countOnly, reverse: reader.bool() };
}

function writeWriteOp(writer: ByteWriter, write: WriteOp): void {
  writer.string(write.key);
  writer.bool(write.op === "set");
  if (write.op === "set") writeValue(writer, write.value);
}

function readWriteOp(reader: ByteReader): WriteOp {
  const key = readString(reader);
  if (reader.bool()) return { op: "set", key, value: readValue(reader) };
  return { op: "delete", key };
}

function writeList<T>(writer: ByteWriter, list: readonly T[], writeItem: (item: T) => void): void {
  writer.uint(list.length);
  for (const item of list) writeItem(item);
}

function readList<T>(reader: ByteReader, readItem: () => T): T[] {
  // Every item takes at least one byte, so the request limit bounds the count.
  const count = reader.count(REQUEST_BYTES_MAX);
  const items: T[] = [];
  for (let i = 0; i < count; i++) items.push(readItem());
  return items;
}

function readString(reader: ByteReader): string {
  return reader.string(REQUEST_BYTES_MAX);
}

/** Writes a value as the bytes it stands for (text as UTF-8, so text is encoded as before). */
function writeValue(writer: ByteWriter, value: string): void {
  writer.bytes(valueToBytes(value));
}

/** Reads a value: any bytes, text or not ({@linkcode valueFromBytes}). */
function readValue(reader: ByteReader): string {
  return valueFromBytes(reader.bytes(REQUEST_BYTES_MAX));
}

function pick<T>(choices: readonly T[], index: number, what: string): T {
  const choice = choices[index];
  if (choice === undefined) {
    throw new AspenError("bad_request", `Cannot decode command: unknown ${what} tag ${index}`);
  }
  return choice;
}
