/**
 * The state machine's side of a shard move: the fence and hand-off refusals, the import that
 * keeps version and createRevision, the clean-up that writes no watch event, and idempotent
 * re-application (shard/ownership.ts, shard/_move_apply.ts).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { type ApplyResult, applyResultError } from "./apply_result.ts";
import type { Command, ImportedKv } from "./command.ts";
import { decodeCommand, encodeCommand } from "./command_codec.ts";
import { foreignLeaseId } from "./foreign_lease.ts";
import type { Ownership } from "./ownership.ts";
import { shardForKey } from "./router.ts";
import { StateMachine } from "./state_machine.ts";

class Shard {
  readonly sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  index = 0;

  run(command: Command): ApplyResult {
    this.index++;
    const [result] = this.sm.apply([{ index: this.index, data: encodeCommand(command) }]);
    return result!;
  }

  /** The error code of `command`'s result, or null when it succeeded. */
  code(command: Command): string | null {
    return applyResultError(this.run(command))?.code ?? null;
  }
}

/** Keys of shard 0 among 1 split by their shard among 2: [stay on 0, move to 1]. */
function splitKeys(count: number): [string[], string[]] {
  const keys = Array.from({ length: count }, (_, i) => `key-${i}`);
  return [
    keys.filter((key) => shardForKey(key, 2) === 0),
    keys.filter((key) => shardForKey(key, 2) === 1),
  ];
}

const FENCED: Ownership = {
  shard: 0,
  readCount: 1,
  writeCount: 2,
  isActive: true,
  isSettled: true,
  copyPass: 0,
};
const HANDED_OFF: Ownership = { ...FENCED, readCount: 2, isSettled: false };

function put(key: string, value = "v", lease = 0): Command {
  return { type: "put", key, value, lease, prevKv: false };
}

Deno.test("the move commands round-trip through the codec (tags 20 to 23)", () => {
  const commands: Command[] = [
    { type: "ownership", ownership: HANDED_OFF },
    {
      type: "import",
      pass: 2,
      kvs: [{ key: "a", value: "x", version: 7, createRevision: 3, lease: foreignLeaseId(1024) }],
      deletes: ["b"],
    },
    { type: "dropMoved", limit: 10 },
    { type: "leaseHolderAdd", id: 7, holder: 3 },
  ];
  for (const [i, command] of commands.entries()) {
    const bytes = encodeCommand(command);
    equal(bytes[1], 20 + i);
    deepEqual(decodeCommand(bytes), command);
  }
  // A tag kept for another change decodes to a clear error, not a crash.
  const kept = new Uint8Array([1, 17]);
  let message = "";
  try {
    decodeCommand(kept);
  } catch (error) {
    message = (error as Error).message;
  }
  ok(message.includes("unknown command tag 17"), message);
});

Deno.test("a fenced source refuses writes to moving keys and still serves the others", () => {
  const shard = new Shard();
  const [stay, move] = splitKeys(40);
  for (const key of [...stay, ...move]) shard.run(put(key));
  equal(shard.run({ type: "ownership", ownership: FENCED }).type, "meta");
  equal(shard.code(put(move[0]!)), "wrong_shard");
  equal(shard.code({ type: "delete", key: move[0]!, prevKv: false }), "wrong_shard");
  equal(shard.code({ type: "deleteRange", range: { prefix: "key-" } }), "wrong_shard");
  equal(
    shard.code({ type: "optimisticTxn", reads: [], writes: [{ op: "delete", key: move[1]! }] }),
    "wrong_shard",
  );
  equal(
    shard.code({ type: "txn", compare: [], success: [put(move[1]!) as never], failure: [] }),
    "wrong_shard",
  );
  equal(shard.code(put(stay[0]!, "new")), null);
  // Reads are still this shard's: the moving key is readable, with its old value.
  equal(shard.sm.get(move[0]!)?.value, "v");
  equal(shard.sm.get(stay[0]!)?.version, 2);
});

Deno.test("import keeps version, createRevision and lease, writes no event, and re-applies", () => {
  const target = new Shard();
  const kv: ImportedKv = {
    key: "a",
    value: "x",
    version: 7,
    createRevision: 900,
    lease: foreignLeaseId(2048),
  };
  // An active shard (or one that never took part in a move) refuses imports.
  equal(target.code({ type: "import", pass: 1, kvs: [kv], deletes: [] }), "bad_request");
  const inactive: Ownership = {
    shard: 1,
    readCount: 2,
    writeCount: 2,
    isActive: false,
    isSettled: true,
    copyPass: 1,
  };
  target.run({ type: "ownership", ownership: inactive });
  equal(target.code(put("a")), "wrong_shard");
  const events = target.sm.stats().historyEvents;
  for (let round = 0; round < 2; round++) {
    equal(target.code({ type: "import", pass: 1, kvs: [kv], deletes: [] }), null);
    const stored = target.sm.get("a");
    equal(stored?.version, 7);
    equal(stored?.createRevision, 900);
    equal(stored?.modRevision, target.index);
    equal(stored?.lease, kv.lease);
  }
  equal(target.sm.lease(kv.lease)?.keys.length, 1, "the stand-in counts the key once");
  equal(target.code({ type: "import", pass: 1, kvs: [], deletes: ["a", "never-there"] }), null);
  equal(target.sm.get("a"), null);
  equal(target.sm.stats().historyEvents, events, "imports write no watch event");
  // Activated, the new shard takes writes of its keys; a put after the import bumps the
  // version although createRevision (from the old shard) is above this shard's revisions.
  target.run({ type: "import", pass: 1, kvs: [kv], deletes: [] });
  target.run({ type: "ownership", ownership: { ...inactive, isActive: true } });
  const key = ["a", ...Array.from({ length: 20 }, (_, i) => `k${i}`)]
    .find((item) => shardForKey(item, 2) === 1)!;
  equal(target.code(put(key, "y")), null);
});

Deno.test("hand-off refuses reads' ranges; clean-up drops moved keys silently and settles", () => {
  const source = new Shard();
  const [stay, move] = splitKeys(60);
  const granted = source.run({ type: "leaseGrant", ttlSeconds: 60 });
  equal(granted.type, "leaseGrant");
  for (const key of stay) source.run(put(key));
  for (const key of move) source.run(put(key, "v", 1));
  source.run({ type: "ownership", ownership: FENCED });
  source.run({ type: "ownership", ownership: HANDED_OFF });
  equal(source.sm.ownership()?.isSettled, false);
  equal(source.code({ type: "leaseRevoke", id: 1 }), "wrong_shard");
  const events = source.sm.stats().historyEvents;
  const first = source.run({ type: "dropMoved", limit: 5 });
  deepEqual(first, { type: "deleteRange", revision: source.index, deleted: 5 });
  equal(source.sm.ownership()?.isSettled, false);
  let rounds = 0;
  while (source.sm.ownership()?.isSettled !== true && rounds++ < 100) {
    source.run({ type: "dropMoved", limit: 5 });
  }
  equal(source.sm.ownership()?.isSettled, true);
  for (const key of move) equal(source.sm.get(key), null);
  for (const key of stay) equal(source.sm.get(key)?.value, "v");
  equal(source.sm.stats().historyEvents, events, "moved keys leave no delete event");
  // Re-applied after it settled, the clean-up does nothing.
  deepEqual(source.run({ type: "dropMoved", limit: 5 }), {
    type: "deleteRange",
    revision: source.index,
    deleted: 0,
  });
  // The lease's keys went to shard 1, which now holds keys of it.
  deepEqual(source.sm.leaseHolders(1), [1]);
  equal(source.sm.lease(1)?.keys.length, 0);
  equal(source.code({ type: "deleteRange", range: { prefix: "key-" } }), null);
});

Deno.test("a fenced shard does not expire a lease with moving keys until clean-up", () => {
  const source = new Shard();
  const [, move] = splitKeys(20);
  source.run({ type: "leaseGrant", ttlSeconds: 60 });
  source.run(put(move[0]!, "v", 1));
  source.run({ type: "ownership", ownership: FENCED });
  const expired = source.run({ type: "leaseExpire", ids: [1] });
  deepEqual(expired, { type: "leaseExpire", revision: source.index, expired: [], deleted: 0 });
  equal(source.sm.get(move[0]!)?.lease, 1);
});

Deno.test("ownership never goes back: a lagging driver's step is refused", () => {
  const source = new Shard();
  const set = (ownership: Ownership) => source.code({ type: "ownership", ownership });
  equal(set(FENCED), null);
  equal(set(FENCED), null, "the same step again is fine");
  equal(set(HANDED_OFF), null);
  equal(set(FENCED), "bad_request", "fenced again after the hand-off");
  equal(source.run({ type: "dropMoved", limit: 5 }).type, "deleteRange");
  equal(source.sm.ownership()?.isSettled, true);
  equal(set(HANDED_OFF), "bad_request", "unsettled again after the clean-up");
  equal(set({ ...HANDED_OFF, writeCount: 3, isSettled: true }), null, "the next move's fence");
  const target = new Shard();
  const filling: Ownership = { ...FENCED, shard: 1, readCount: 2, isActive: false, copyPass: 1 };
  const setTarget = (ownership: Ownership) => target.code({ type: "ownership", ownership });
  equal(setTarget(filling), null);
  equal(setTarget({ ...filling, copyPass: 2 }), null);
  equal(setTarget(filling), "bad_request", "the copy pass again after the delta's");
  equal(target.code({ type: "import", pass: 1, kvs: [], deletes: ["k"] }), "bad_request");
  equal(target.code({ type: "import", pass: 2, kvs: [], deletes: ["k"] }), null);
  equal(setTarget({ ...filling, copyPass: 2, isActive: true }), null);
  equal(setTarget({ ...filling, copyPass: 2 }), "bad_request", "inactive again");
});

Deno.test("intents on moving keys are counted exactly, lease locks aside", () => {
  const shard = new Shard();
  const [stay, move] = splitKeys(40);
  shard.run({ type: "leaseGrant", ttlSeconds: 60 });
  const ops = [stay[0]!, move[0]!, move[1]!].map((key) => put(key) as never);
  const prepared = shard.run({
    type: "txnPrepare",
    txnId: "t1",
    shard: 0,
    home: 0,
    participants: [0],
    deadlineMs: 5_000,
    compare: [],
    reads: [],
    success: ops,
    failure: [],
    leases: [{ action: "revoke", id: 1, holders: [] }],
  });
  equal(prepared.type, "txnPrepared");
  ok(shard.sm.intentCount() >= 4, "three keys and the lease's lock");
  equal(shard.sm.intentsNotOwned(0, 2), 2);
  equal(shard.sm.intentsNotOwned(0, 1), 0);
});
