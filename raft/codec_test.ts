/**
 * The wire codec: every message type round-trips field for field; decoding rejects (never
 * throws on) truncated input, trailing bytes, unknown tags, non-canonical varints and lengths
 * past the named limits; and random bytes never make it throw.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { decodeMessage, encodeMessage } from "./codec.ts";
import { APPEND_ENTRIES_MAX, ENTRY_BYTES_MAX } from "./limits.ts";
import { SeededPrng } from "./prng.ts";
import type { LogIndex, Message, ReplicaId, Term } from "./types.ts";

const header = { from: 3 as ReplicaId, to: 7 as ReplicaId, term: 123456789012 as Term };
const bytes = (...values: number[]) => new Uint8Array(values);

const SAMPLES: Message[] = [
  { ...header, type: "vote", lastIndex: 9 as LogIndex, lastTerm: 4 as Term, isTransfer: true },
  { ...header, type: "preVote", lastIndex: 0 as LogIndex, lastTerm: 0 as Term, isTransfer: false },
  { ...header, type: "voteResponse", isRejected: true },
  { ...header, type: "preVoteResponse", isRejected: false },
  {
    ...header,
    type: "append",
    prevIndex: 2 ** 40 as LogIndex,
    prevTerm: 5 as Term,
    commit: 17 as LogIndex,
    entries: [
      { index: 2 ** 40 + 1 as LogIndex, term: 5 as Term, type: "normal", data: bytes(1, 2) },
      { index: 2 ** 40 + 2 as LogIndex, term: 6 as Term, type: "confChange", data: bytes() },
    ],
  },
  {
    ...header,
    type: "appendResponse",
    index: 44 as LogIndex,
    isRejected: true,
    rejectHintIndex: 40 as LogIndex,
    rejectHintTerm: 3 as Term,
  },
  { ...header, type: "heartbeat", commit: 12 as LogIndex, round: 99, quiesce: false },
  { ...header, type: "heartbeat", commit: 12 as LogIndex, round: 100, quiesce: true },
  { ...header, type: "heartbeatResponse", round: Number.MAX_SAFE_INTEGER },
  {
    ...header,
    type: "snapshotChunk",
    metadata: {
      index: 77 as LogIndex,
      term: 5 as Term,
      confState: { voters: [1, 2, 3] as ReplicaId[], learners: [9] as ReplicaId[] },
    },
    offset: 4,
    totalBytes: 10,
    data: bytes(5, 6, 7),
  },
  { ...header, type: "snapshotAck", snapshotIndex: 77 as LogIndex, offset: 7 },
  { ...header, type: "timeoutNow" },
];

Deno.test("encodeMessage()/decodeMessage() round-trip every message type", async (t) => {
  for (const message of SAMPLES) {
    await t.step(message.type, () => {
      const decoded = decodeMessage(encodeMessage(message));
      ok(decoded.ok);
      deepStrictEqual(decoded.message, message);
    });
  }
});

Deno.test("decodeMessage() rejects every truncation and any trailing byte", () => {
  for (const message of SAMPLES) {
    const encoded = encodeMessage(message);
    for (let length = 0; length < encoded.length; length++) {
      // Without its flag byte a quiescing heartbeat is a whole plain one (tested below).
      const isPlainHeartbeat = message.type === "heartbeat" && length === encoded.length - 1 &&
        message.quiesce;
      if (isPlainHeartbeat) continue;
      equal(decodeMessage(encoded.subarray(0, length)).ok, false, `${message.type} @${length}`);
    }
    const longer = new Uint8Array(encoded.length + 1);
    longer.set(encoded);
    equal(decodeMessage(longer).ok, false);
  }
});

Deno.test("decodeMessage() rejects bad tags, varints and limits", async (t) => {
  const cases: [string, Uint8Array][] = [
    ["unknown version", bytes(9, 0, 1, 1, 0)],
    ["unknown type", bytes(1, 200, 1, 1, 0)],
    ["replica id zero", bytes(1, 10, 0, 1, 0)],
    ["non-canonical varint", bytes(1, 10, 0x81, 0x00, 1, 0)],
    ["varint over 8 bytes", bytes(1, 10, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1)],
    ["boolean byte 2", bytes(1, 2, 1, 2, 1, 2)],
    // version, type heartbeat, from 3, to 7, term 1, commit 0, round 1, then a quiesce byte 0.
    ["heartbeat quiesce byte 0", bytes(1, 6, 3, 7, 1, 0, 1, 0)],
  ];
  const tooMany = encodeMessage(SAMPLES[4]!);
  await t.step("only a quiescing heartbeat adds a byte (the flag)", () => {
    const base = { ...header, type: "heartbeat", commit: 12 as LogIndex, round: 99 } as const;
    const plain = encodeMessage({ ...base, quiesce: false });
    const quiet = encodeMessage({ ...base, quiesce: true });
    deepStrictEqual([...quiet], [...plain, 1]);
  });
  for (const [name, input] of cases) {
    await t.step(name, () => equal(decodeMessage(input).ok, false));
  }
  await t.step("entry count over APPEND_ENTRIES_MAX", () => {
    // version, type append, from 3, to 7, term 1, prevIndex 0, prevTerm 0, commit 0, count.
    const count = APPEND_ENTRIES_MAX + 1;
    const input = bytes(1, 4, 3, 7, 1, 0, 0, 0, (count % 128) | 0x80, Math.floor(count / 128));
    const decoded = decodeMessage(input);
    ok(!decoded.ok && decoded.error.includes("entries"));
  });
  await t.step("entry length over ENTRY_BYTES_MAX", () => {
    const varint: number[] = [];
    for (let rest = ENTRY_BYTES_MAX + 1; rest > 0; rest = Math.floor(rest / 128)) {
      varint.push((rest % 128) | (rest >= 128 ? 0x80 : 0));
    }
    const input = bytes(1, 4, 3, 7, 1, 0, 0, 0, 1, 1, 0, ...varint);
    const decoded = decodeMessage(input);
    ok(!decoded.ok && decoded.error.includes("limit"));
  });
  ok(tooMany.length > 0);
});

Deno.test("decodeMessage() never throws on random bytes or mutated messages", () => {
  const prng = new SeededPrng(5);
  for (let round = 0; round < 20_000; round++) {
    const base = encodeMessage(SAMPLES[prng.nextInt(SAMPLES.length)]!);
    const input = round % 2 === 0
      ? new Uint8Array(prng.nextInt(40)).map(() => prng.nextInt(256))
      : base.map((value) => (prng.nextInt(8) === 0 ? prng.nextInt(256) : value));
    decodeMessage(input);
  }
});
