/**
 * Reads that a shard serves check its ownership where they run (shard moves): a key the shard
 * handed off is answered `wrong_shard`, so the service reads it again where the new map says,
 * and never "absent" from the source. The lock-free read of a cross-shard read-only txn
 * (`txnReadKeys`) once skipped the check, and a bank reader found an account missing mid-move
 * (tests/chaos_reshard_test.ts).
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import {
  type AspenError,
  type Command,
  encodeCommand,
  type Ownership,
  shardForKey,
  StateMachine,
} from "../../shard/mod.ts";
import { dispatchShardRequest, type ShardDispatchContext } from "./shard_dispatch.ts";

/** Shard 0 of 1, its reads handed off for a move to 2 shards. */
const HANDED_OFF: Ownership = {
  shard: 0,
  readCount: 2,
  writeCount: 2,
  isActive: true,
  isSettled: false,
  copyPass: 0,
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
