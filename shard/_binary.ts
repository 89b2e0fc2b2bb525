/**
 * A small binary writer and reader for command encoding (private to shard/).
 *
 * Integers are unsigned LEB128 varints limited to safe integers, with one canonical form;
 * strings are a varint byte length followed by UTF-8; booleans are one byte, 0 or 1. The
 * reader never throws anything but {@linkcode AspenError} `bad_request` on malformed input.
 */

import { assert } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const VARINT_BYTES_MAX = 8; // 8 * 7 = 56 bits hold every safe integer.
const INITIAL_CAPACITY_BYTES = 256;

/** Appends values to a growing byte buffer. */
export class ByteWriter {
  #bytes = new Uint8Array(INITIAL_CAPACITY_BYTES);
  #length = 0;

  /** Appends one byte. */
  u8(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xff, "u8 is a byte");
    this.#reserve(1);
    this.#bytes[this.#length++] = value;
  }

  /** Appends a boolean as 0 or 1. */
  bool(value: boolean): void {
    this.u8(value ? 1 : 0);
  }

  /** Appends a non-negative safe integer as a varint. */
  uint(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, "uint is a non-negative safe integer");
    let rest = value;
    while (rest >= 0x80) {
      this.u8((rest % 0x80) | 0x80);
      rest = Math.floor(rest / 0x80);
    }
    this.u8(rest);
  }

  /** Appends a string as its UTF-8 length and bytes. */
  string(value: string): void {
    this.bytes(encoder.encode(value));
  }

  /** Appends bytes as their length and themselves. */
  bytes(bytes: Uint8Array): void {
    this.uint(bytes.length);
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }

  #reserve(extra: number): void {
    const needed = this.#length + extra;
    if (needed <= this.#bytes.length) return;
    let capacity = this.#bytes.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }
}

/** Reads values written by {@linkcode ByteWriter}; every read checks bounds and form. */
export class ByteReader {
  readonly #bytes: Uint8Array;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** Reads one byte. */
  u8(): number {
    const value = this.#bytes[this.#offset];
    if (value === undefined) throw malformed(`it ends at byte ${this.#offset}`);
    this.#offset++;
    return value;
  }

  /** Reads a boolean written as 0 or 1. */
  bool(): boolean {
    const value = this.u8();
    if (value > 1) throw malformed(`byte ${this.#offset - 1} is ${value}, not a boolean`);
    return value === 1;
  }

  /** Reads a canonical varint holding a safe integer. */
  uint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (byte === 0 && i > 0) throw malformed("a varint is not in canonical form");
        if (!Number.isSafeInteger(value)) throw malformed("a varint is not a safe integer");
        return value;
      }
      scale *= 0x80;
    }
    throw malformed(`a varint is longer than ${VARINT_BYTES_MAX} bytes`);
  }

  /** Reads a string of at most `bytesMax` UTF-8 bytes. */
  string(bytesMax: number): string {
    const slice = this.bytes(bytesMax);
    try {
      return decoder.decode(slice);
    } catch (error) {
      throw new AspenError("bad_request", "Cannot decode command: a string is not UTF-8", {}, {
        cause: error,
      });
    }
  }

  /** Reads at most `bytesMax` bytes written by {@linkcode ByteWriter.bytes} (a view). */
  bytes(bytesMax: number): Uint8Array {
    const length = this.uint();
    if (length > bytesMax) throw malformed(`a string of ${length} bytes exceeds ${bytesMax}`);
    if (length > this.#bytes.length - this.#offset) throw malformed("a string is truncated");
    const slice = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return slice;
  }

  /** Reads a list length, at most `countMax`. */
  count(countMax: number): number {
    const count = this.uint();
    if (count > countMax) throw malformed(`a list of ${count} items exceeds ${countMax}`);
    return count;
  }

  /** Whether every byte has been read (a field added later is absent from older entries). */
  isAtEnd(): boolean {
    return this.#offset === this.#bytes.length;
  }

  /** Throws unless every byte has been read. */
  end(): void {
    const rest = this.#bytes.length - this.#offset;
    if (rest !== 0) throw malformed(`${rest} bytes follow the command`);
  }
}

function malformed(detail: string): AspenError {
  return new AspenError("bad_request", `Cannot decode command: ${detail}`);
}
