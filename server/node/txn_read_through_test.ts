/**
 * The rules by which a read-only transaction reads through the intents it met
 * (txn_read_through.ts): when a holder committed before the reads' instant T, when it did
 * not, and when that cannot be told (the coordinator then waits, as before).
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { KeysRead, KeyValue, TxnParticipantVote } from "../../shard/mod.ts";
import { intentsMet, readThrough, seenAtT, type TwoReads } from "./txn_read_through.ts";

function kv(key: string, value: string, modRevision: number): KeyValue {
  return { key, value, version: 1, createRevision: 1, modRevision, lease: 0 };
}

function vote(reservedRevision: number | null, fields: Partial<TxnParticipantVote> = {}) {
  return {
    txnId: "x",
    home: 0,
    state: "prepared" as const,
    resolvedRevision: null,
    vote: "commit" as const,
    compareSucceeded: true,
    reservedRevision,
    ...fields,
  };
}

/** Shards 0 and 1 read at 10 then 20, one key each ("a", "b"), nothing held. */
function reads(first: Partial<KeysRead>[] = [], second: Partial<KeysRead>[] = []): TwoReads {
  const round = (revision: number, parts: Partial<KeysRead>[]) =>
    new Map([0, 1].map((shard) => [shard, {
      revision,
      kvs: [kv(shard === 0 ? "a" : "b", "1", 5)],
      intents: [null],
      changed: false,
      ...parts[shard],
    }]));
  return { first: round(10, first), second: round(20, second) };
}

const keysOf = new Map([[0, ["a"]], [1, ["b"]]]);
const X = { txnId: "x", home: 0 };

Deno.test("seenAtT() places a holder's commit before or after the reads, or not at all", () => {
  const two = reads();
  deepStrictEqual(seenAtT([0, 1], [vote(8), vote(10)], two), {
    kind: "committed",
    branch: "success",
  });
  deepStrictEqual(seenAtT([0, 1], [vote(8), vote(9, { compareSucceeded: false })], two), {
    kind: "committed",
    branch: "failure",
  });
  // Prepared after a second read began: it committed after T.
  deepStrictEqual(seenAtT([0, 1], [vote(8), vote(21)], two), { kind: "notCommitted" });
  // Voted against: it never commits.
  deepStrictEqual(seenAtT([0, 1], [vote(8), vote(9, { vote: "conflict" })], two), {
    kind: "notCommitted",
  });
  // A prepare between the two reads, a row not found, a participant not read, a row without a
  // reserved revision (an older node or a row prepared before one-round commits): unknown.
  deepStrictEqual(seenAtT([0, 1], [vote(8), vote(15)], two), { kind: "unknown" });
  deepStrictEqual(seenAtT([0, 1], [vote(8), null], two), { kind: "unknown" });
  deepStrictEqual(seenAtT([0, 2], [vote(8), vote(3)], two), { kind: "unknown" });
  deepStrictEqual(seenAtT([0, 1], [vote(8), vote(null)], two), { kind: "unknown" });
});

Deno.test("readThrough() answers each key's state at T, or names the intent to wait for", () => {
  const preview = { success: kv("a", "2", 8), failure: kv("a", "1", 5) };
  const held = reads([{ intents: [X], previews: [preview] }], [{ intents: [X] }]);
  strictEqual(intentsMet(keysOf, held).get("x")?.key, "a");
  const committed = new Map([["x", { kind: "committed" as const, branch: "success" as const }]]);
  const through = readThrough(keysOf, held, committed);
  deepStrictEqual(
    through.kind === "snapshot" && [...through.kvs.values()].map((item) => item?.value),
    ["2", "1"],
  );
  const under = readThrough(keysOf, held, new Map([["x", { kind: "notCommitted" as const }]]));
  deepStrictEqual(
    under.kind === "snapshot" && [...under.kvs.values()].map((item) => item?.value),
    ["1", "1"],
  );
  deepStrictEqual(readThrough(keysOf, held, new Map([["x", { kind: "unknown" as const }]])), {
    kind: "wait",
    held: { shard: 0, key: "a", holder: X },
  });
  // Committed, but the branch's state of the key cannot be told without running it.
  const unpreviewed = reads([{ intents: [X], previews: [{}] }]);
  strictEqual(readThrough(keysOf, unpreviewed, committed).kind, "wait");
  // An intent only the second read met: its holder prepared after the first read, so it is
  // read under when it did not commit before T, and waited for when that is unknown.
  const later = reads([], [{}, { intents: [X] }]);
  const notCommitted = new Map([["x", { kind: "notCommitted" as const }]]);
  strictEqual(readThrough(keysOf, later, notCommitted).kind, "snapshot");
  deepStrictEqual(readThrough(keysOf, later, new Map()), {
    kind: "wait",
    held: { shard: 1, key: "b", holder: X },
  });
});
