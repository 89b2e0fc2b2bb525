/**
 * The binary wire format of messages between replicas: compact (LEB128 varints, entry indexes
 * implied by `prevIndex`) and strict. Decoding never throws on bad bytes: it returns a failure
 * for truncated input, unknown tags, trailing bytes, non-canonical numbers and anything past a
 * named limit.
 *
 * ```text
 * message  = version(1) type(1) from term... (varints) body
 * entries  = count, then per entry: term, type(1), length, bytes   (index = prevIndex + 1 + i)
 * metadata = index, term, voter count, voters..., learner count, learners...
 * ```
 */
import { assert } from "./assert.ts";
import {
  APPEND_BYTES_MAX,
  APPEND_ENTRIES_MAX,
  ENTRY_BYTES_MAX,
  MESSAGE_BYTES_MAX,
  REPLICAS_MAX,
  SNAPSHOT_BYTES_MAX,
  SNAPSHOT_CHUNK_BYTES_MAX,
} from "./limits.ts";
import type {
  ConfState,
  Entry,
  LogIndex,
  Message,
  MessageType,
  ReplicaId,
  SnapshotMetadata,
  Term,
} from "./types.ts";

/** The outcome of {@linkcode decodeMessage}. */
export type DecodeResult =
  | { readonly ok: true; readonly message: Message }
  | { readonly ok: false; readonly error: string };

const VERSION = 1;
const TYPES: readonly MessageType[] = [
  "vote",
  "preVote",
  "voteResponse",
  "preVoteResponse",
  "append",
  "appendResponse",
  "heartbeat",
  "heartbeatResponse",
  "snapshotChunk",
  "snapshotAck",
  "timeoutNow",
];

/**
 * Encodes a message for the wire.
 *
 * @example
 * ```ts
 * const bytes = encodeMessage(message);
 * const decoded = decodeMessage(bytes); // { ok: true, message } with the same fields
 * ```
 */
export function encodeMessage(message: Message): Uint8Array {
  const writer = new Writer(64 + payloadBytes(message));
  writer.byte(VERSION);
  writer.byte(TYPES.indexOf(message.type));
  writer.uint(message.from);
  writer.uint(message.to);
  writer.uint(message.term);
  encodeBody(writer, message);
  const bytes = writer.finish();
  assert(bytes.byteLength <= MESSAGE_BYTES_MAX, "an encoded message must fit the limit");
  return bytes;
}

/** Decodes a message; returns a failure (never throws) for malformed or oversized input. */
export function decodeMessage(bytes: Uint8Array): DecodeResult {
  if (bytes.byteLength > MESSAGE_BYTES_MAX) {
    return { ok: false, error: `message is ${bytes.byteLength} bytes, over the limit` };
  }
  const reader = new Reader(bytes);
  try {
    const message = decodeFields(reader);
    if (reader.position !== bytes.byteLength) reader.fail("trailing bytes after the message");
    return { ok: true, message };
  } catch (error) {
    if (error instanceof DecodeFailure) return { ok: false, error: error.message };
    throw error;
  }
}

function payloadBytes(message: Message): number {
  if (message.type === "append") {
    let total = 0;
    for (const entry of message.entries) total += entry.data.byteLength + 24;
    return total;
  }
  if (message.type === "snapshotChunk") return message.data.byteLength + 200;
  return 0;
}

function encodeBody(writer: Writer, message: Message): void {
  switch (message.type) {
    case "vote":
    case "preVote":
      writer.uint(message.lastIndex);
      writer.uint(message.lastTerm);
      writer.byte(message.isTransfer ? 1 : 0);
      break;
    case "voteResponse":
    case "preVoteResponse":
      writer.byte(message.isRejected ? 1 : 0);
      break;
    case "append":
      writer.uint(message.prevIndex);
      writer.uint(message.prevTerm);
      writer.uint(message.commit);
      encodeEntries(writer, message.prevIndex, message.entries);
      break;
    case "appendResponse":
      writer.uint(message.index);
      writer.byte(message.isRejected ? 1 : 0);
      writer.uint(message.rejectHintIndex);
      writer.uint(message.rejectHintTerm);
      break;
    case "heartbeat":
      writer.uint(message.commit);
      writer.uint(message.round);
      // Only a quiescing heartbeat carries the flag byte: every other one keeps the old bytes.
      if (message.quiesce) writer.byte(1);
      break;
    case "heartbeatResponse":
      writer.uint(message.round);
      break;
    case "snapshotChunk":
      encodeMetadata(writer, message.metadata);
      writer.uint(message.offset);
      writer.uint(message.totalBytes);
      writer.bytes(message.data);
      break;
    case "snapshotAck":
      writer.uint(message.snapshotIndex);
      writer.uint(message.offset);
      break;
    case "timeoutNow":
      break;
  }
}

function encodeEntries(writer: Writer, prevIndex: LogIndex, entries: readonly Entry[]): void {
  writer.uint(entries.length);
  let expected = prevIndex + 1;
  for (const entry of entries) {
    assert(entry.index === expected, "appended entries must follow prevIndex contiguously");
    writer.uint(entry.term);
    writer.byte(entry.type === "normal" ? 0 : 1);
    writer.bytes(entry.data);
    expected++;
  }
}

function encodeMetadata(writer: Writer, metadata: SnapshotMetadata): void {
  writer.uint(metadata.index);
  writer.uint(metadata.term);
  writer.uint(metadata.confState.voters.length);
  for (const id of metadata.confState.voters) writer.uint(id);
  writer.uint(metadata.confState.learners.length);
  for (const id of metadata.confState.learners) writer.uint(id);
}

function decodeFields(reader: Reader): Message {
  const version = reader.byte();
  if (version !== VERSION) reader.fail(`unknown format version ${version}`);
  const typeCode = reader.byte();
  const type = TYPES[typeCode];
  if (type === undefined) return reader.fail(`unknown message type ${typeCode}`);
  const from = reader.replicaId();
  const to = reader.replicaId();
  const term = reader.uint() as Term;
  const header = { from, to, term };
  switch (type) {
    case "vote":
    case "preVote":
      return {
        ...header,
        type,
        lastIndex: reader.uint() as LogIndex,
        lastTerm: reader.uint() as Term,
        isTransfer: reader.boolean(),
      };
    case "voteResponse":
    case "preVoteResponse":
      return { ...header, type, isRejected: reader.boolean() };
    case "append":
      return decodeAppend(reader, header);
    case "appendResponse":
      return {
        ...header,
        type,
        index: reader.uint() as LogIndex,
        isRejected: reader.boolean(),
        rejectHintIndex: reader.uint() as LogIndex,
        rejectHintTerm: reader.uint() as Term,
      };
    case "heartbeat":
      return decodeHeartbeat(reader, header);
    case "heartbeatResponse":
      return { ...header, type, round: reader.uint() };
    case "snapshotChunk":
      return decodeChunk(reader, header);
    case "snapshotAck":
      return {
        ...header,
        type,
        snapshotIndex: reader.uint() as LogIndex,
        offset: reader.uint(),
      };
    case "timeoutNow":
      return { ...header, type };
  }
}

interface Header {
  readonly from: ReplicaId;
  readonly to: ReplicaId;
  readonly term: Term;
}

function decodeHeartbeat(reader: Reader, header: Header): Message {
  const commit = reader.uint() as LogIndex;
  const round = reader.uint();
  // The flag byte is present only when set (a 0 byte would not be canonical).
  let quiesce = false;
  if (!reader.isAtEnd) {
    if (reader.byte() !== 1) reader.fail("a heartbeat's quiesce byte must be 1 when present");
    quiesce = true;
  }
  return { ...header, type: "heartbeat", commit, round, quiesce };
}

function decodeAppend(reader: Reader, header: Header): Message {
  const prevIndex = reader.uint() as LogIndex;
  const prevTerm = reader.uint() as Term;
  const commit = reader.uint() as LogIndex;
  const count = reader.uint();
  if (count > APPEND_ENTRIES_MAX) reader.fail(`append has ${count} entries, over the limit`);
  const entries: Entry[] = [];
  let bytesTotal = 0;
  let previousTerm = prevTerm;
  for (let i = 0; i < count; i++) {
    const entryTerm = reader.uint() as Term;
    if (entryTerm < previousTerm) reader.fail("entry terms must not decrease");
    const typeCode = reader.byte();
    if (typeCode > 1) reader.fail(`unknown entry type ${typeCode}`);
    const data = reader.bytes(ENTRY_BYTES_MAX);
    bytesTotal += data.byteLength;
    if (bytesTotal > APPEND_BYTES_MAX) reader.fail("append payload over the limit");
    const index = prevIndex + 1 + i;
    if (!Number.isSafeInteger(index)) reader.fail("entry index overflows");
    const type = typeCode === 0 ? "normal" : "confChange";
    entries.push({ term: entryTerm, index: index as LogIndex, type, data });
    previousTerm = entryTerm;
  }
  return { ...header, type: "append", prevIndex, prevTerm, commit, entries };
}

function decodeChunk(reader: Reader, header: Header): Message {
  const index = reader.uint() as LogIndex;
  const snapshotTerm = reader.uint() as Term;
  const voters = reader.replicaIds();
  const learners = reader.replicaIds();
  if (voters.length + learners.length > REPLICAS_MAX) reader.fail("too many replicas");
  const confState: ConfState = { voters, learners };
  const offset = reader.uint();
  const totalBytes = reader.uint();
  if (totalBytes > SNAPSHOT_BYTES_MAX) reader.fail("snapshot over the size limit");
  const data = reader.bytes(SNAPSHOT_CHUNK_BYTES_MAX);
  if (offset + data.byteLength > totalBytes) reader.fail("chunk runs past the snapshot end");
  return {
    ...header,
    type: "snapshotChunk",
    metadata: { index, term: snapshotTerm, confState },
    offset,
    totalBytes,
    data,
  };
}

class DecodeFailure extends Error {
  override readonly name = "DecodeFailure";
}

class Writer {
  #buffer: Uint8Array;
  #length = 0;

  constructor(capacity: number) {
    this.#buffer = new Uint8Array(capacity);
  }

  byte(value: number): void {
    assert(value >= 0 && value <= 255, "a byte must be in 0..255");
    this.#reserve(1);
    this.#buffer[this.#length++] = value;
  }

  uint(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, "varints encode non-negative integers");
    this.#reserve(8);
    let rest = value;
    while (rest >= 0x80) {
      this.#buffer[this.#length++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.#buffer[this.#length++] = rest;
  }

  bytes(data: Uint8Array): void {
    this.uint(data.byteLength);
    this.#reserve(data.byteLength);
    this.#buffer.set(data, this.#length);
    this.#length += data.byteLength;
  }

  finish(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }

  #reserve(count: number): void {
    if (this.#length + count <= this.#buffer.byteLength) return;
    const grown = new Uint8Array(Math.max(this.#buffer.byteLength * 2, this.#length + count));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }
}

class Reader {
  readonly #bytes: Uint8Array;
  position = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get isAtEnd(): boolean {
    return this.position >= this.#bytes.byteLength;
  }

  fail(reason: string): never {
    throw new DecodeFailure(`Cannot decode message: ${reason} (at byte ${this.position})`);
  }

  byte(): number {
    const value = this.#bytes[this.position];
    if (value === undefined) return this.fail("truncated");
    this.position++;
    return value;
  }

  boolean(): boolean {
    const value = this.byte();
    if (value > 1) this.fail(`boolean byte is ${value}`);
    return value === 1;
  }

  /** A LEB128 varint of at most 8 bytes (53 bits), in canonical (shortest) form. */
  uint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const value = this.byte();
      result += (value & 0x7f) * scale;
      if (value < 0x80) {
        if (value === 0 && i > 0) this.fail("non-canonical varint");
        if (!Number.isSafeInteger(result)) this.fail("integer over 2^53");
        return result;
      }
      scale *= 0x80;
    }
    return this.fail("varint longer than 8 bytes");
  }

  replicaId(): ReplicaId {
    const value = this.uint();
    if (value === 0) this.fail("replica id 0");
    return value as ReplicaId;
  }

  replicaIds(): ReplicaId[] {
    const count = this.uint();
    if (count > REPLICAS_MAX) this.fail(`${count} replica ids, over the limit`);
    const ids: ReplicaId[] = [];
    for (let i = 0; i < count; i++) ids.push(this.replicaId());
    return ids;
  }

  bytes(bytesMax: number): Uint8Array {
    const length = this.uint();
    if (length > bytesMax) this.fail(`${length} bytes, over the limit of ${bytesMax}`);
    const end = this.position + length;
    if (end > this.#bytes.byteLength) this.fail("truncated");
    const data = this.#bytes.slice(this.position, end);
    this.position = end;
    return data;
  }
}
