/**
 * The cross-shard transaction commands (txnPrepare, txnDecide, txnResolve): their encoding
 * round-trips through the codec under new tags while the old tags keep their bytes, and
 * validation refuses each malformed field with a message naming the problem and the limit.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import type { Command, TxnPrepareCommand } from "./command.ts";
import { isDeleteOnly, validateCommand } from "./command.ts";
import { decodeCommand, encodeCommand } from "./command_codec.ts";
import { AspenError } from "./errors.ts";
import {
  OPTIMISTIC_WRITES_MAX,
  TXN_ID_CHARS_MAX,
  TXN_REASON_BYTES_MAX,
  TXN_SHARDS_MAX,
} from "./limits.ts";

const PREPARE: TxnPrepareCommand = {
  type: "txnPrepare",
  txnId: "2.1767000000000.7",
  shard: 3,
  home: 1,
  participants: [1, 3],
  deadlineMs: 1_767_000_005_000,
  compare: [{ key: "a", target: "value", op: "=", value: "x" }],
  reads: [{ key: "b", modRevision: 4, version: null, revision: 9 }],
  success: [
    { type: "put", key: "a", value: "\u0000bin", lease: 0, prevKv: true },
    { type: "delete", key: "c", prevKv: false },
    { type: "get", key: "d" },
  ],
  failure: [{ type: "get", key: "a" }],
  leases: [],
};

Deno.test("txn commands round-trip through the codec under tags 13 to 16", async (t) => {
  const cases: [string, Command, number][] = [
    ["prepare", PREPARE, 15],
    ["prepare with empty lists", {
      ...PREPARE,
      compare: [],
      reads: [],
      success: [],
      failure: [],
    }, 15],
    ["prepare with lease steps", {
      ...PREPARE,
      success: [{ type: "put", key: "a", value: "v", lease: 9, prevKv: false }],
      leases: [
        { action: "attach", id: 9, holder: 1, key: "a" },
        { action: "revoke", id: 2 ** 52 + 5123, holders: [] },
        { action: "revoke", id: 4, holders: [0, 2] },
      ],
    }, 15],
    ["decide commit", {
      type: "txnDecide",
      txnId: "t",
      outcome: "commit",
      branch: "failure",
      reason: "",
    }, 13],
    ["decide abort", {
      type: "txnDecide",
      txnId: "t",
      outcome: "abort",
      branch: null,
      reason: "pushed",
    }, 13],
    [
      "resolve commit",
      { type: "txnResolve", txnId: "t", outcome: "commit", branch: "success" },
      14,
    ],
    ["resolve abort", { type: "txnResolve", txnId: "t", outcome: "abort", branch: null }, 14],
    ["fence", { type: "txnFence", txnId: "2.1767000000000.7" }, 16],
  ];
  for (const [name, command, tag] of cases) {
    await t.step(name, () => {
      const bytes = encodeCommand(command);
      equal(bytes[1], tag);
      deepEqual(decodeCommand(bytes), command);
    });
  }
});

Deno.test("a prepare of tag 12 (before lease steps) decodes with no lease steps", () => {
  const bytes = encodeCommand(PREPARE);
  equal(bytes[1], 15);
  equal(bytes.at(-1), 0, "the empty list of lease steps is the last byte");
  const old = bytes.slice(0, -1);
  old[1] = 12;
  deepEqual(decodeCommand(old), PREPARE);
});

Deno.test("the old command tags keep their bytes", () => {
  const put = encodeCommand({ type: "put", key: "k", value: "v", lease: 0, prevKv: false });
  deepEqual([...put], [1, 0, 1, 107, 1, 118, 0, 0]);
  const optimistic = encodeCommand({ type: "optimisticTxn", reads: [], writes: [] });
  deepEqual([...optimistic], [1, 11, 0, 0]);
  deepEqual([...encodeCommand({ type: "noop" })], [1, 10]);
});

Deno.test("validateCommand() refuses malformed txn commands, naming the problem", async (t) => {
  const tooMany = Array.from({ length: TXN_SHARDS_MAX + 1 }, (_, i) => i);
  const get = { type: "get", key: "k" } as const;
  const cases: [string, Command, string, RegExp][] = [
    ["empty txnId", { ...PREPARE, txnId: "" }, "bad_request", /txnId is empty/],
    [
      "txnId too long",
      { ...PREPARE, txnId: "t".repeat(TXN_ID_CHARS_MAX + 1) },
      "bad_request",
      /TXN_ID_CHARS_MAX/,
    ],
    ["txnId with a space", { ...PREPARE, txnId: "a b" }, "bad_request", /printable ASCII/],
    ["txnId not ASCII", { ...PREPARE, txnId: "tö" }, "bad_request", /printable ASCII/],
    ["home not a participant", { ...PREPARE, home: 2 }, "bad_request", /home 2 is not/],
    [
      "shard not a participant",
      { ...PREPARE, shard: 2 },
      "bad_request",
      /shard 2 is not a participant/,
    ],
    ["participants unsorted", { ...PREPARE, participants: [3, 1] }, "bad_request", /ascending/],
    ["participants repeated", { ...PREPARE, participants: [1, 1] }, "bad_request", /ascending/],
    [
      "too many participants",
      { ...PREPARE, home: 0, shard: 0, participants: tooMany },
      "request_too_large",
      /limit is 16/,
    ],
    ["negative shard", { ...PREPARE, home: -1 }, "bad_request", /home is -1/],
    ["fractional deadline", { ...PREPARE, deadlineMs: 1.5 }, "bad_request", /deadlineMs/],
    [
      "range op",
      {
        ...PREPARE,
        success: [{
          type: "range",
          request: {
            range: { prefix: "a" },
            limit: 1,
            after: null,
            keysOnly: false,
            countOnly: false,
            reverse: false,
          },
        }],
      },
      "bad_request",
      /range op cannot run/,
    ],
    [
      "put with a lease of the shard it does not lock",
      { ...PREPARE, failure: [{ type: "put", key: "k", value: "v", lease: 3, prevKv: false }] },
      "bad_request",
      /key "k" names lease 3 of this shard, but the prepare does not lock it/,
    ],
    [
      "attach step naming another shard's lease",
      { ...PREPARE, leases: [{ action: "attach", id: 2 ** 52 + 1025, holder: 3, key: "k" }] },
      "bad_request",
      /another shard's/,
    ],
    [
      "revoke step with too many holders",
      {
        ...PREPARE,
        leases: [{ action: "revoke", id: 4, holders: Array.from({ length: 17 }, (_, i) => i) }],
      },
      "request_too_large",
      /leases.holders has 17 items/,
    ],
    [
      "too many ops",
      { ...PREPARE, failure: Array.from({ length: OPTIMISTIC_WRITES_MAX + 1 }, () => get) },
      "request_too_large",
      /failure has 1025 items/,
    ],
    [
      "decide commit without a branch",
      { type: "txnDecide", txnId: "t", outcome: "commit", branch: null, reason: "" },
      "bad_request",
      /names the branch/,
    ],
    [
      "decide abort with a branch",
      { type: "txnDecide", txnId: "t", outcome: "abort", branch: "success", reason: "" },
      "bad_request",
      /names no branch/,
    ],
    [
      "reason too long",
      {
        type: "txnDecide",
        txnId: "t",
        outcome: "abort",
        branch: null,
        reason: "r".repeat(TXN_REASON_BYTES_MAX + 1),
      },
      "bad_request",
      /TXN_REASON_BYTES_MAX/,
    ],
    [
      "resolve with an unknown outcome",
      { type: "txnResolve", txnId: "t", outcome: "maybe", branch: null } as unknown as Command,
      "bad_request",
      /outcome is "maybe"/,
    ],
  ];
  for (const [name, command, code, message] of cases) {
    await t.step(name, () => {
      throws(() => validateCommand(command), (error) => {
        equal(error instanceof AspenError && error.code, code);
        return message.test((error as Error).message);
      });
    });
  }
});

Deno.test("isDeleteOnly() lets txn aborts through and holds back prepares and commits", () => {
  equal(isDeleteOnly(PREPARE), false);
  const abort = { type: "txnResolve", txnId: "t", outcome: "abort", branch: null } as const;
  equal(isDeleteOnly(abort), true);
  equal(isDeleteOnly({ ...abort, outcome: "commit", branch: "success" }), false);
  equal(isDeleteOnly({ ...abort, type: "txnDecide", reason: "pushed" }), true);
});
