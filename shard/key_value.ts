/**
 * Keys, values and key ranges: the shapes every read and write of the state machine shares.
 *
 * Keys are UTF-8 strings; values are UTF-8 text or any bytes (see {@linkcode valueToBytes}).
 * Keys are ordered by their UTF-8 bytes (the order SQLite uses for the BLOB keys it stores),
 * which equals Unicode code point order. JavaScript's own `<` compares UTF-16 code units and
 * disagrees for characters above U+FFFF, so every comparison of keys goes through
 * {@linkcode compareUtf8}, and of values through {@linkcode compareValues}.
 */

import { Buffer } from "node:buffer";
import { assert } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { KEY_BYTES_MAX, KV_RESPONSE_OVERHEAD_BYTES, VALUE_BYTES_MAX } from "./limits.ts";

/** A stored key with its metadata, as the HTTP API returns it. */
export interface KeyValue {
  /** The key (non-empty UTF-8, at most KEY_BYTES_MAX bytes). */
  readonly key: string;
  /** The value (UTF-8, at most VALUE_BYTES_MAX bytes; empty in keys-only reads). */
  readonly value: string;
  /** 1 when created, +1 on every change. */
  readonly version: number;
  /** The log index of the entry that created the key. */
  readonly createRevision: number;
  /** The log index of the entry that last changed the key. */
  readonly modRevision: number;
  /** The lease the key is attached to; 0 when none. */
  readonly lease: number;
}

/** A set of keys: every key that starts with `prefix`, or every key in `[start, end)`. */
export type KeyRange =
  | { readonly prefix: string }
  | { readonly start: string; readonly end: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Compares two strings by their UTF-8 bytes (equivalently, by code points).
 *
 * @returns a negative number, zero or a positive number, like `Array.prototype.sort` expects.
 */
export function compareUtf8(left: string, right: string): number {
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    const a = left.charCodeAt(i);
    const b = right.charCodeAt(i);
    if (a !== b) return codeUnitRank(a) - codeUnitRank(b);
  }
  return left.length - right.length;
}

/** Ranks a UTF-16 code unit so that surrogates sort after U+E000..U+FFFF, as in UTF-8. */
function codeUnitRank(unit: number): number {
  if (unit >= 0xd800) {
    if (unit <= 0xdfff) return unit + 0x2000;
    return unit - 0x800;
  }
  return unit;
}

/** The number of bytes `text` takes in UTF-8. */
export function utf8ByteLength(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/**
 * The bytes a stored value stands for. A value is held as a string: valid UTF-8 bytes as
 * their text, and every byte that is not part of a valid UTF-8 sequence as the lone surrogate
 * U+DC80..U+DCFF (byte 0x80..0xFF; bytes below 0x80 are always valid). Text values are thus
 * exactly what they always were, and any bytes map to one canonical string, losslessly
 * (see {@linkcode valueFromBytes}).
 */
export function valueToBytes(value: string): Uint8Array {
  if (value.isWellFormed()) return encoder.encode(value);
  const bytes: number[] = [];
  for (const char of value) {
    const point = char.codePointAt(0);
    assert(point !== undefined, "valueToBytes: a character has a code point");
    if (point >= ESCAPE_FIRST && point <= ESCAPE_LAST) {
      bytes.push(point - ESCAPE_BASE);
    } else {
      assert(point < 0xd800 || point > 0xdfff, "valueToBytes: no lone surrogate but escapes");
      bytes.push(...encoder.encode(char));
    }
  }
  return Uint8Array.from(bytes);
}

/** The canonical value string of `bytes` (the inverse of {@linkcode valueToBytes}). */
export function valueFromBytes(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    // Not valid UTF-8: the bytes are a binary value, decoded sequence by sequence below.
  }
  let text = "";
  let i = 0;
  while (i < bytes.length) {
    const length = utf8SequenceLength(bytes, i);
    if (length === 0) {
      text += String.fromCharCode(ESCAPE_BASE + (bytes[i] ?? 0));
      i++;
    } else {
      text += decoder.decode(bytes.subarray(i, i + length));
      i += length;
    }
  }
  assert(valueToBytes(text).length === bytes.length, "valueFromBytes: every byte is kept");
  return text;
}

/** Whether a value holds bytes that are not UTF-8 text (see {@linkcode valueToBytes}). */
export function isBinaryValue(value: string): boolean {
  return !value.isWellFormed();
}

/** The number of bytes a value stands for. */
export function valueByteLength(value: string): number {
  if (value.isWellFormed()) return utf8ByteLength(value);
  return valueToBytes(value).length;
}

/** Compares two values by their bytes. */
export function compareValues(left: string, right: string): number {
  if (left.isWellFormed() && right.isWellFormed()) return compareUtf8(left, right);
  const a = valueToBytes(left);
  const b = valueToBytes(right);
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const order = (a[i] ?? 0) - (b[i] ?? 0);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

/** Whether a string with lone surrogates is the canonical string of some bytes. */
function isCanonicalBinary(value: string): boolean {
  for (const char of value) {
    const point = char.codePointAt(0) ?? 0;
    const isSurrogate = point >= 0xd800 && point <= 0xdfff;
    if (isSurrogate && (point < ESCAPE_FIRST || point > ESCAPE_LAST)) return false;
  }
  return valueFromBytes(valueToBytes(value)) === value;
}

/** The first code point that stands for a byte of a binary value (byte 0x80). */
const ESCAPE_FIRST = 0xdc80;
/** The last code point that stands for a byte of a binary value (byte 0xff). */
const ESCAPE_LAST = 0xdcff;
const ESCAPE_BASE = 0xdc00;

/**
 * The length of the valid UTF-8 sequence at `bytes[start]`, or 0 when none starts there
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
 */
function utf8SequenceLength(bytes: Uint8Array, start: number): number {
  const lead = bytes[start] ?? 0;
  if (lead < 0x80) return 1;
  let length: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  for (let i = 1; i < length; i++) {
    const byte = bytes[start + i];
    if (byte === undefined) return 0;
    const min = i === 1 ? low : 0x80;
    const max = i === 1 ? high : 0xbf;
    if (byte < min || byte > max) return 0;
  }
  return length;
}

/** Encodes a key to the UTF-8 bytes stored in SQLite. */
export function encodeKey(key: string): Uint8Array {
  return encoder.encode(key);
}

/** Decodes UTF-8 key bytes read from SQLite. */
export function decodeKey(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * The size of one kv in a response: key bytes, value bytes and a fixed overhead.
 *
 * Range reads and conditional batches bound their responses with this count, so it is part of
 * the replicated semantics: the reference model in tests/ computes the same number.
 */
export function kvResponseBytes(kv: KeyValue): number {
  return KV_RESPONSE_OVERHEAD_BYTES + utf8ByteLength(kv.key) + valueByteLength(kv.value);
}

/**
 * The byte bounds of a range: keys `k` with `lower <= k` and, when `upper` is not null,
 * `k < upper`.
 */
export interface KeyBounds {
  readonly lower: Uint8Array;
  readonly upper: Uint8Array | null;
}

/** Converts a {@linkcode KeyRange} to byte bounds. */
export function keyRangeBounds(range: KeyRange): KeyBounds {
  if ("prefix" in range) {
    const lower = encodeKey(range.prefix);
    return { lower, upper: prefixEnd(lower) };
  }
  return { lower: encodeKey(range.start), upper: encodeKey(range.end) };
}

/** Whether `key` lies in `range`. */
export function keyRangeContains(range: KeyRange, key: string): boolean {
  if ("prefix" in range) return key.startsWith(range.prefix);
  return compareUtf8(range.start, key) <= 0 && compareUtf8(key, range.end) < 0;
}

/**
 * The smallest byte string greater than every string that starts with `prefix`, or null when
 * there is none (empty prefix, or only 0xff bytes, which UTF-8 never contains).
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array | null {
  let length = prefix.length;
  while (length > 0 && prefix[length - 1] === 0xff) length--;
  if (length === 0) return null;
  const end = prefix.slice(0, length);
  const last = end[length - 1];
  assert(last !== undefined && last < 0xff, "prefixEnd: the last byte can be incremented");
  end[length - 1] = last + 1;
  return end;
}

/**
 * Checks a key from a client: a non-empty, well-formed string of at most KEY_BYTES_MAX bytes.
 *
 * @throws {AspenError} `bad_request` for an empty or malformed key, `key_too_large` past the
 * limit.
 */
export function validateKey(key: unknown, action: string): asserts key is string {
  if (typeof key !== "string") {
    throw new AspenError("bad_request", `Cannot ${action}: the key is not a string`);
  }
  if (key.length === 0) throw new AspenError("bad_request", `Cannot ${action}: the key is empty`);
  validateText(key, `${action}: the key`);
  const bytes = utf8ByteLength(key);
  if (bytes > KEY_BYTES_MAX) {
    throw new AspenError(
      "key_too_large",
      `Cannot ${action}: key "${key.slice(0, 32)}…" is ${bytes} bytes but the limit is ` +
        `${KEY_BYTES_MAX}`,
      { bytes, limit: KEY_BYTES_MAX },
    );
  }
}

/**
 * Checks a value: text, or the canonical string of binary bytes ({@linkcode valueToBytes}), of
 * at most VALUE_BYTES_MAX bytes. Text from a client's `value` field must also pass
 * {@linkcode validateText}: only `valueBase64` may carry bytes that are not UTF-8.
 *
 * @throws {AspenError} `bad_request` for a malformed value, `value_too_large` past the limit.
 */
export function validateValue(value: unknown, action: string): asserts value is string {
  if (typeof value !== "string") {
    throw new AspenError("bad_request", `Cannot ${action}: the value is not a string`);
  }
  if (!value.isWellFormed() && !isCanonicalBinary(value)) {
    throw new AspenError("bad_request", `Cannot ${action}: the value holds a lone surrogate`);
  }
  const bytes = valueByteLength(value);
  if (bytes > VALUE_BYTES_MAX) {
    throw new AspenError(
      "value_too_large",
      `Cannot ${action}: value is ${bytes} bytes but the limit is ${VALUE_BYTES_MAX}`,
      { bytes, limit: VALUE_BYTES_MAX },
    );
  }
}

/**
 * Checks that a string is well-formed UTF-16 (no lone surrogate), so that it survives UTF-8.
 *
 * @throws {AspenError} `bad_request` otherwise.
 */
export function validateText(text: string, what: string): void {
  if (!text.isWellFormed()) {
    throw new AspenError("bad_request", `Cannot ${what} holds a lone surrogate`);
  }
}

/**
 * Checks a key range: a prefix (possibly empty, meaning every key) or a start and an end.
 *
 * @throws {AspenError} `bad_request` or `key_too_large`.
 */
export function validateKeyRange(range: unknown, action: string): asserts range is KeyRange {
  if (typeof range !== "object" || range === null) {
    throw new AspenError("bad_request", `Cannot ${action}: the range is not an object`);
  }
  if ("prefix" in range) {
    const prefix = range.prefix;
    if (prefix !== "") validateKey(prefix, `${action} with prefix`);
    return;
  }
  if ("start" in range && "end" in range) {
    validateKey(range.start, `${action} from start`);
    validateKey(range.end, `${action} to end`);
    return;
  }
  throw new AspenError(
    "bad_request",
    `Cannot ${action}: the range needs a prefix or start and end`,
  );
}
