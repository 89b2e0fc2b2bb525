/**
 * Table tests of evaluateCompare(): every target (value, version, createRevision, modRevision,
 * lease) with every operator (=, !=, <, >) against a smaller, an equal and a larger expected
 * value, on a present key; and every target and operator on an absent key, which compares as
 * zeros and fails every value compare.
 */

import assert from "node:assert/strict";
import type { Compare, CompareOp } from "./command.ts";
import { evaluateCompare } from "./compare.ts";
import type { KeyValue } from "./key_value.ts";

const KV: KeyValue = {
  key: "k",
  value: "m\u00e9",
  version: 5,
  createRevision: 10,
  modRevision: 20,
  lease: 30,
};
const OPS: readonly CompareOp[] = ["=", "!=", "<", ">"];

/** What each operator returns when the actual value is below, equal to, above the expected. */
const TRUTH: Record<CompareOp, [boolean, boolean, boolean]> = {
  "=": [false, true, false],
  "!=": [true, false, true],
  "<": [true, false, false],
  ">": [false, false, true],
};

Deno.test("evaluateCompare() on a present key, every numeric target and operator", async (t) => {
  const targets = ["version", "createRevision", "modRevision", "lease"] as const;
  for (const target of targets) {
    for (const op of OPS) {
      await t.step(`${target} ${op}`, () => {
        const actual = KV[target];
        // Expected above the actual: actual is below; equal; expected below: actual is above.
        const expectations = [actual + 1, actual, actual - 1];
        expectations.forEach((value, i) => {
          const compare: Compare = { key: "k", target, op, value };
          assert.equal(evaluateCompare(compare, KV), TRUTH[op][i], `${actual} ${op} ${value}`);
        });
      });
    }
  }
});

Deno.test("evaluateCompare() on a present key, value target by UTF-8 bytes", async (t) => {
  // "m\u00e9" sorts after "m\u007f" and before "m\u{1F600}" in UTF-8 byte order, while in
  // UTF-16 order "m\u{1F600}" (a surrogate pair) would sort before "m\uffff".
  const expectations = ["m\u{1F600}", "m\u00e9", "m\u007f"];
  for (const op of OPS) {
    await t.step(`value ${op}`, () => {
      expectations.forEach((value, i) => {
        const compare: Compare = { key: "k", target: "value", op, value };
        assert.equal(evaluateCompare(compare, KV), TRUTH[op][i], `${KV.value} ${op} ${value}`);
      });
    });
  }
  await t.step("astral characters sort after U+FFFF", () => {
    const kv = { ...KV, value: "\u{1F600}" };
    assert.equal(
      evaluateCompare({ key: "k", target: "value", op: ">", value: "\uffff" }, kv),
      true,
    );
  });
});

Deno.test("evaluateCompare() on an absent key", async (t) => {
  for (const op of OPS) {
    await t.step(`value ${op} is always false`, () => {
      for (const value of ["", "a"]) {
        assert.equal(evaluateCompare({ key: "k", target: "value", op, value }, null), false);
      }
    });
    for (const target of ["version", "createRevision", "modRevision", "lease"] as const) {
      await t.step(`${target} ${op} compares as 0`, () => {
        assert.equal(evaluateCompare({ key: "k", target, op, value: 0 }, null), TRUTH[op][1]);
        assert.equal(evaluateCompare({ key: "k", target, op, value: 1 }, null), TRUTH[op][0]);
      });
    }
  }
});
