/**
 * Evaluation of the compares of a conditional batch (etcd-style Txn).
 *
 * An absent key compares as version 0, createRevision 0, modRevision 0 and lease 0; a `value`
 * compare on an absent key is false whatever the operator (there is no value to compare).
 * Values compare by their bytes (UTF-8 for text), like keys.
 */

import { assert } from "../raft/mod.ts";
import type { Compare, CompareOp } from "./command.ts";
import { compareValues, type KeyValue } from "./key_value.ts";

/**
 * Whether `compare` holds for `kv`, the current state of `compare.key` (null when absent).
 */
export function evaluateCompare(compare: Compare, kv: KeyValue | null): boolean {
  if (kv !== null) assert(kv.key === compare.key, "evaluateCompare: kv is the compared key");
  if (compare.target === "value") {
    if (kv === null) return false;
    return holds(compare.op, compareValues(kv.value, compare.value));
  }
  const actual = kv === null ? 0 : kv[compare.target];
  assert(Number.isSafeInteger(actual), "evaluateCompare: compared numbers are integers");
  return holds(compare.op, actual - compare.value);
}

/** Whether `order` (negative, zero, positive: actual vs expected) satisfies `op`. */
function holds(op: CompareOp, order: number): boolean {
  switch (op) {
    case "=":
      return order === 0;
    case "!=":
      return order !== 0;
    case "<":
      return order < 0;
    case ">":
      return order > 0;
  }
}
