/**
 * Reads that a shard serves check its ownership where they run (shard moves): a key the shard
 * handed off is answered `wrong_shard`, so the service reads it again where the new map says,
 * and never "absent" from the source. The lock-free read of a cross-shard read-only txn
 * (`txnReadKeys`) once skipped the check, and a bank reader found an account missing mid-move
 * (tests/chaos_reshard_test.ts). A range read planned at the new count runs on a handed-off
 * shard, and returns only the keys it still owns.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  type AspenError,
  type Command,
  encodeCommand,
  MOVE_STAGES_PER_EPOCH,
  type Ownership,
  shardForKey,
  StateMachine,
} from "../../shard/mod.ts";
import { dispatchShardRequest, type ShardDispatchContext } from "./shard_dispatch.ts";
import { decodeShardRequest, encodeShardRequest } from "./shard_request.ts";

/** Shard 0 of 1, its reads handed off for a move to 2 shards. */
const HANDED_OFF: Ownership = {
  shard: 0,
  readCount: 2,
  writeCount: 2,
  isActive: true,
  isSettled: false,
  copyPass: 0,
  // Written by a move that began under the map of epoch 1 (the flip writes epoch 2).
  stage: 1 * MOVE_STAGES_PER_EPOCH + 3,
};

function context(machine: StateMachine): ShardDispatchContext {
  // Only what the read paths use: the state machine and a replica that reads at once.
  return {
    shard: 0,
    stateMachine: machine,
    replica: { read: <T>(reader: () => T) => Promise.resolve(reader()) },
  } as unknown as ShardDispatchContext;
}

Deno.test("reads of keys a shard handed off answer wrong_shard, txnReadKeys included", async () => {
  const machine = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
    const staying = keys.find((key) => shardForKey(key, 2) === 0)!;
    const moving = keys.find((key) => shardForKey(key, 2) === 1)!;
    const commands: Command[] = [
      { type: "put", key: staying, value: "s", lease: 0, prevKv: false },
      { type: "put", key: moving, value: "m", lease: 0, prevKv: false },
      { type: "ownership", ownership: HANDED_OFF },
    ];
    machine.apply(commands.map((command, i) => ({ index: i + 1, data: encodeCommand(command) })));
    const ctx = context(machine);
    const isWrongShard = (error: AspenError) => error.code === "wrong_shard";
    await rejects(
      dispatchShardRequest(ctx, { kind: "get", key: moving, serializable: false }),
      isWrongShard,
    );
    await rejects(
      dispatchShardRequest(ctx, {
        kind: "txnReadKeys",
        keys: [staying, moving],
        changedAfter: null,
      }),
      isWrongShard,
    );
    const read = await dispatchShardRequest(ctx, {
      kind: "txnReadKeys",
      keys: [staying],
      changedAfter: null,
    }) as { kvs: ({ value: string } | null)[] };
    deepEqual(read.kvs.map((kv) => kv?.value), ["s"]);
    equal(machine.ownership()?.readCount, 2);
  } finally {
    machine.close();
  }
});

Deno.test("a handed-off shard serves ranges of the new count with the keys it owns", async () => {
  const machine = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    const keys = Array.from({ length: 40 }, (_, i) => `key-${String(i).padStart(2, "0")}`);
    const commands: Command[] = [
      ...keys.map((key): Command => ({ type: "put", key, value: "v", lease: 0, prevKv: false })),
      { type: "ownership", ownership: HANDED_OFF },
    ];
    machine.apply(commands.map((command, i) => ({ index: i + 1, data: encodeCommand(command) })));
    const ctx = context(machine);
    const range = (numShards: number, limit: number, countOnly = false, epoch = numShards) =>
      dispatchShardRequest(ctx, {
        kind: "range",
        range: {
          range: { prefix: "key-" },
          limit,
          after: null,
          keysOnly: true,
          countOnly,
          reverse: false,
        },
        serializable: false,
        numShards,
        epoch,
      }) as Promise<{ kvs: { key: string }[]; count: number; more: boolean }>;
    // Planned under the old map (a node that has not seen the flip): refused, routed again; so
    // is a plan of the new count under the move's own epoch (a tenant move keeps the count).
    await rejects(range(1, 100), (error: AspenError) => error.code === "wrong_shard");
    await rejects(range(2, 100, false, 1), (error: AspenError) => error.code === "wrong_shard");
    const staying = keys.filter((key) => shardForKey(key, 2) === 0);
    ok(staying.length > 5 && staying.length < 35, `a share stays: ${staying.length}`);
    const page = await range(2, 100);
    deepEqual(page.kvs.map((kv) => kv.key), staying, "only the keys it still owns, in order");
    equal((await range(2, 100, true)).count, staying.length);
    // The limit counts owned keys only, and the page goes on from its last one.
    const first = await range(2, 3);
    deepEqual(first.kvs.map((kv) => kv.key), staying.slice(0, 3));
    equal(first.more, true);
  } finally {
    machine.close();
  }
});

Deno.test("a move's small questions skip the sizes, which hash every key", async () => {
  const machine = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    const put: Command = { type: "put", key: "a", value: "v", lease: 0, prevKv: false };
    machine.apply([{ index: 1, data: encodeCommand(put) }]);
    const ctx = context(machine);
    const request = { kind: "moveSize", count: 2, sizes: false } as const;
    // Forwarded to another node, the flag survives the peer encoding.
    deepEqual(decodeShardRequest(encodeShardRequest(request)), request);
    const small = await dispatchShardRequest(ctx, request) as Record<string, unknown>;
    deepEqual(small, { bySize: {}, intents: 0, foreignLeases: [], appliedIndex: 1 });
    const full = await dispatchShardRequest(ctx, { kind: "moveSize", count: 2 }) as {
      bySize: Record<string, { keys: number }>;
    };
    equal(Object.values(full.bySize).reduce((sum, size) => sum + size.keys, 0), 1);
  } finally {
    machine.close();
  }
});

Deno.test("a held proposal crosses the wire; a record read releases held ones first", async () => {
  const command: Command = { type: "txnResolve", txnId: "1.2.3", outcome: "abort", branch: null };
  const held = decodeShardRequest(encodeShardRequest({ kind: "propose", command, isHeld: true }));
  deepEqual(held, { kind: "propose", command, isHeld: true });
  // A node before held proposals sends no flag: proposed at once.
  deepEqual(decodeShardRequest(encodeShardRequest({ kind: "propose", command })), {
    kind: "propose",
    command,
  });
  const bad = new TextEncoder().encode(JSON.stringify({ kind: "propose", command, isHeld: 1 }));
  ok(throwsCode(() => decodeShardRequest(bad), "bad_request"));

  const machine = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    const calls: string[] = [];
    const ctx = {
      shard: 0,
      stateMachine: machine,
      replica: {
        leader: () => null,
        propose: (_data: Uint8Array, options?: { isHeld?: boolean }) => {
          calls.push(`propose held=${options?.isHeld === true}`);
          return Promise.resolve({ type: "txnResolved" });
        },
        releaseHeld: () => (calls.push("releaseHeld"), Promise.resolve()),
        read: <T>(reader: () => T) => (calls.push("read"), Promise.resolve(reader())),
      },
    } as unknown as ShardDispatchContext;
    await dispatchShardRequest(ctx, held);
    await dispatchShardRequest(ctx, { kind: "propose", command });
    const record = await dispatchShardRequest(ctx, { kind: "txnRecord", txnId: "1.2.3" });
    deepEqual(record, { record: null });
    deepEqual(calls, ["propose held=true", "propose held=false", "releaseHeld", "read"]);
  } finally {
    machine.close();
  }
});

function throwsCode(run: () => unknown, code: string): boolean {
  try {
    run();
  } catch (error) {
    return (error as AspenError).code === code;
  }
  return false;
}
