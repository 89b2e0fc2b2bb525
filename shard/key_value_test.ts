/**
 * Tests of key ordering and ranges: compareUtf8() is checked against the obvious slow oracle
 * (comparing UTF-8 bytes) on many seeded random strings rich in surrogate pairs and characters
 * near the surrogate block, and prefixEnd()/keyRangeContains() on tables of cases. Binary
 * values: every byte and seeded random byte strings round-trip through the value string
 * (valueFromBytes/valueToBytes), and compareValues() follows byte order.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  compareUtf8,
  compareValues,
  encodeKey,
  isBinaryValue,
  keyRangeContains,
  prefixEnd,
  validateKey,
  validateValue,
  valueByteLength,
  valueFromBytes,
  valueToBytes,
} from "./key_value.ts";
import { AspenError } from "./errors.ts";
import { KEY_BYTES_MAX } from "./limits.ts";

/** A tiny seeded PRNG (a linear congruential generator), enough to draw test strings. */
class Prng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed;
  }
  int(n: number): number {
    this.#state = (Math.imul(this.#state, 1_103_515_245) + 12_345) >>> 0;
    return (this.#state >>> 8) % n;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error("empty list");
    return item;
  }
}

const ALPHABET = [
  "a",
  "b",
  "\u00e9",
  "\u07ff",
  "\u0800",
  "\ud7ff",
  "\ue000",
  "\uffff",
  "\u{10000}",
  "\u{1F600}",
  "\u{10FFFF}",
  "\u0000",
];

Deno.test("compareUtf8() agrees with comparing UTF-8 bytes", () => {
  const prng = new Prng(3);
  const sign = (n: number) => Math.sign(n);
  for (let i = 0; i < 20_000; i++) {
    const a = Array.from({ length: prng.int(5) }, () => prng.pick(ALPHABET)).join("");
    const b = Array.from({ length: prng.int(5) }, () => prng.pick(ALPHABET)).join("");
    const oracle = Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
    assert.equal(sign(compareUtf8(a, b)), oracle, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});

Deno.test("prefixEnd() is the next byte string after every extension", async (t) => {
  const cases: [string, number[], number[] | null][] = [
    ["empty prefix has no end", [], null],
    ["last byte incremented", [0x61], [0x62]],
    ["0xff bytes are dropped", [0x61, 0xff, 0xff], [0x62]],
    ["only 0xff has no end", [0xff], null],
  ];
  for (const [name, prefix, end] of cases) {
    await t.step(name, () => {
      const actual = prefixEnd(Uint8Array.from(prefix));
      assert.deepEqual(actual === null ? null : [...actual], end);
    });
  }
  await t.step("a multi-byte prefix ends before its successor", () => {
    const end = prefixEnd(encodeKey("\u00e9"));
    assert.ok(end !== null);
    assert.ok(Buffer.compare(Buffer.from("\u00e9\u{10FFFF}", "utf8"), end) < 0);
    assert.ok(Buffer.compare(Buffer.from("\u00ea", "utf8"), end) >= 0);
  });
});

Deno.test("keyRangeContains() follows byte order", async (t) => {
  const cases: [string, Parameters<typeof keyRangeContains>[0], string, boolean][] = [
    ["prefix matches itself", { prefix: "a/" }, "a/", true],
    ["prefix matches an extension", { prefix: "a/" }, "a/b", true],
    ["prefix rejects a sibling", { prefix: "a/" }, "ab", false],
    ["empty prefix matches all", { prefix: "" }, "\u{1F600}", true],
    ["start is inclusive", { start: "b", end: "d" }, "b", true],
    ["end is exclusive", { start: "b", end: "d" }, "d", false],
    ["byte order, not UTF-16 order", { start: "\ue000", end: "\u{1F601}" }, "\u{1F600}", true],
    ["empty when start is after end", { start: "d", end: "b" }, "c", false],
  ];
  for (const [name, range, key, expected] of cases) {
    await t.step(name, () => assert.equal(keyRangeContains(range, key), expected));
  }
});

Deno.test("validateKey() rejects empty, malformed and oversized keys", async (t) => {
  const cases: [string, unknown, string | null][] = [
    ["a plain key", "a", null],
    ["a key of exactly KEY_BYTES_MAX bytes", "\u00e9".repeat(KEY_BYTES_MAX / 2), null],
    ["one byte more", "\u00e9".repeat(KEY_BYTES_MAX / 2) + "a", "key_too_large"],
    ["an empty key", "", "bad_request"],
    ["a lone surrogate", "a\ud800", "bad_request"],
    ["not a string", 5, "bad_request"],
  ];
  for (const [name, key, code] of cases) {
    await t.step(name, () => {
      if (code === null) return validateKey(key, "test");
      assert.throws(() => validateKey(key, "test"), (error) => {
        return error instanceof AspenError && error.code === code;
      });
    });
  }
});

Deno.test("valueFromBytes() and valueToBytes() round-trip any bytes, text unchanged", async (t) => {
  await t.step("every single byte", () => {
    for (let byte = 0; byte < 256; byte++) {
      const value = valueFromBytes(Uint8Array.of(byte));
      assert.deepEqual(valueToBytes(value), Uint8Array.of(byte));
      assert.equal(isBinaryValue(value), byte >= 0x80, `byte ${byte}`);
      assert.equal(valueByteLength(value), 1);
    }
  });
  await t.step("seeded random byte strings, valid UTF-8 and not", () => {
    const prng = new Prng(17);
    for (let i = 0; i < 2_000; i++) {
      const pool = [0x00, 0x41, 0x80, 0xbf, 0xc2, 0xc3, 0xa9, 0xe0, 0xed, 0xa0, 0xf0, 0xf4, 0xff];
      const bytes = Uint8Array.from({ length: prng.int(12) }, () => {
        return prng.int(2) === 0 ? (pool[prng.int(pool.length)] ?? 0) : prng.int(256);
      });
      const value = valueFromBytes(bytes);
      assert.deepEqual(valueToBytes(value), bytes, `bytes ${bytes.join(",")}`);
      assert.equal(valueFromBytes(valueToBytes(value)), value, "the string is canonical");
      validateValue(value, "test");
    }
  });
  await t.step("text is its UTF-8 bytes", () => {
    for (const text of ["", "hello", "é", "\u{1f600}", "\ufffd", "a\u0000b"]) {
      assert.deepEqual(valueToBytes(text), new TextEncoder().encode(text));
      assert.equal(valueFromBytes(new TextEncoder().encode(text)), text);
      assert.equal(isBinaryValue(text), false);
    }
  });
});

Deno.test("validateValue() refuses lone surrogates that stand for no bytes", () => {
  for (const value of ["\ud800", "a\udc00", "\udcc3\udca9", "\udfff"]) {
    assert.throws(() => validateValue(value, "put"), AspenError, JSON.stringify(value));
  }
});

Deno.test("compareValues() orders binary values by their bytes", () => {
  const values = [[0x00], [0x41], [0x7f], [0x80], [0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xff]]
    .map((bytes) => valueFromBytes(Uint8Array.from(bytes)));
  for (let i = 0; i + 1 < values.length; i++) {
    const [left, right] = [values[i] ?? "", values[i + 1] ?? ""];
    assert.ok(compareValues(left, right) < 0, `${i} < ${i + 1}`);
    assert.ok(compareValues(right, left) > 0, `${i + 1} > ${i}`);
    assert.equal(compareValues(left, left), 0);
  }
});
