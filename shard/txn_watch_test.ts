/**
 * Watch order around one-round cross-shard commits: a txnPrepare reserves its own revision R
 * and the commit-resolve writes the changes at R later, after entries of newer revisions
 * applied. Watchers (live, and ones that resume from a revision) must still get every event in
 * revision order, so they get nothing past R - 1 until the transaction resolves. Each test
 * drains watchers of real state machines between entries and checks the exact order; without
 * the hold, the newer event would arrive before the transaction's.
 */
import { deepEqual, equal } from "node:assert/strict";
import { join } from "node:path";
import type { Command, TxnPrepareCommand } from "./command.ts";
import { encodeCommand } from "./command_codec.ts";
import { StateMachine } from "./state_machine.ts";
import type { Watcher } from "./watch_hub.ts";

/** A state machine with a log index counter. */
class Shard {
  sm: StateMachine;
  index = 0;
  readonly #path: string;

  constructor(path = ":memory:") {
    this.#path = path;
    this.sm = StateMachine.open({ path, synchronous: "normal" });
  }

  run(command: Command): void {
    this.index++;
    const [result] = this.sm.apply([{ index: this.index, data: encodeCommand(command) }]);
    equal(result?.type === "error" ? result.message : "applied", "applied");
  }

  reopen(): void {
    this.sm.close();
    this.sm = StateMachine.open({ path: this.#path, synchronous: "normal" });
  }
}

function put(key: string, value: string): Command {
  return { type: "put", key, value, lease: 0, prevKv: false };
}

function prepare(txnId: string, key: string, value: string): TxnPrepareCommand {
  return {
    type: "txnPrepare",
    txnId,
    shard: 0,
    home: 0,
    participants: [0, 1],
    deadlineMs: 5_000,
    compare: [],
    reads: [],
    success: [{ type: "put", key, value, lease: 0, prevKv: false }],
    failure: [],
    leases: [],
  };
}

function resolve(txnId: string, outcome: "commit" | "abort"): Command {
  return { type: "txnResolve", txnId, outcome, branch: outcome === "commit" ? "success" : null };
}

/** The events buffered for `watcher` now, as "key=value@revision" (deletes: "key@revision"). */
async function drain(watcher: Watcher): Promise<string[]> {
  const seen: string[] = [];
  while (watcher.bufferedEvents > 0) {
    const item = await watcher.next();
    if (item === null || item.type === "error") throw new Error(`watch ended: ${item}`);
    const value = item.type === "put" ? `=${item.kv.value}` : "";
    seen.push(`${item.kv.key}${value}@${item.revision}`);
  }
  return seen;
}

Deno.test("a live watcher gets a cross-shard commit's events before newer ones", async () => {
  const shard = new Shard();
  shard.run(put("a", "1"));
  const watcher = shard.sm.watch({ prefix: "" }, { fromRevision: 1 });
  deepEqual(await drain(watcher), ["a=1@1"]);
  shard.run(prepare("t", "a", "2")); // revision 2, reserved
  shard.run(put("z", "9")); // revision 3: held back, "a" will change at revision 2
  deepEqual(await drain(watcher), []);
  shard.run(resolve("t", "commit")); // revision 4 writes "a" at revision 2
  deepEqual(await drain(watcher), ["a=2@2", "z=9@3"]);
  equal(shard.sm.get("a")?.modRevision, 2);
  shard.run(put("z", "10"));
  deepEqual(await drain(watcher), ["z=10@5"]);
  watcher.cancel();
  shard.sm.close();
});

Deno.test("a watcher that resumes while a commit is unresolved waits for it", async () => {
  const shard = new Shard();
  shard.run(put("a", "1"));
  shard.run(prepare("t", "a", "2")); // revision 2
  shard.run(put("z", "9")); // revision 3
  const fromTwo = shard.sm.watch({ prefix: "" }, { fromRevision: 2 });
  const fromThree = shard.sm.watch({ prefix: "" }, { fromRevision: 3 });
  deepEqual(await drain(fromTwo), []);
  deepEqual(await drain(fromThree), []);
  shard.run(resolve("t", "commit"));
  deepEqual(await drain(fromTwo), ["a=2@2", "z=9@3"]);
  deepEqual(await drain(fromThree), ["z=9@3"]);
  fromTwo.cancel();
  fromThree.cancel();
  shard.sm.close();
});

Deno.test("an aborted cross-shard txn releases the held events and writes none", async () => {
  const shard = new Shard();
  const watcher = shard.sm.watch({ prefix: "" }, { fromRevision: 1 });
  shard.run(prepare("t", "a", "2")); // revision 1
  shard.run(put("z", "9"));
  deepEqual(await drain(watcher), []);
  shard.run(resolve("t", "abort"));
  deepEqual(await drain(watcher), ["z=9@2"]);
  equal(shard.sm.get("a"), null);
  watcher.cancel();
  shard.sm.close();
});

Deno.test("the hold survives a reopen, and the oldest unresolved commit sets it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-txn-watch-" });
  try {
    const shard = new Shard(join(dir, "sm.db"));
    shard.run(prepare("t1", "a", "1")); // revision 1
    shard.run(prepare("t2", "b", "1")); // revision 2
    shard.run(put("z", "9")); // revision 3
    shard.reopen();
    const watcher = shard.sm.watch({ prefix: "" }, { fromRevision: 1 });
    deepEqual(await drain(watcher), []);
    shard.run(resolve("t2", "commit"));
    deepEqual(await drain(watcher), [], "t1 still holds revision 1");
    shard.run(resolve("t1", "commit"));
    deepEqual(await drain(watcher), ["a=1@1", "b=1@2", "z=9@3"]);
    watcher.cancel();
    shard.sm.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a commit at a revision compacted meanwhile leaves compaction working", async () => {
  const shard = new Shard();
  shard.sm.close();
  shard.sm = StateMachine.open({ path: ":memory:", synchronous: "normal", historyEventsMax: 4 });
  const watcher = shard.sm.watch({ prefix: "" }, { fromRevision: 1 });
  shard.run(prepare("t", "a", "1")); // revision 1
  for (let i = 0; i < 6; i++) shard.run(put("z", String(i))); // compaction passes revision 1
  shard.run(resolve("t", "commit")); // writes "a" at revision 1, below the compaction
  for (let i = 0; i < 6; i++) shard.run(put("y", String(i)));
  equal(shard.sm.get("a")?.modRevision, 1);
  const item = await watcher.next();
  equal(item?.type === "error" && item.error.code, "compacted");
  const late = shard.sm.watch({ prefix: "" });
  shard.run(put("x", "1"));
  deepEqual(await drain(late), [`x=1@${shard.index}`]);
  late.cancel();
  shard.sm.close();
});

Deno.test("a watch from now, begun while a commit is unresolved, gets its events", async () => {
  const shard = new Shard();
  shard.run(prepare("t", "a", "1")); // revision 1: the commit point may still be ahead
  shard.run(put("z", "9")); // revision 2
  const watcher = shard.sm.watch({ prefix: "" });
  deepEqual(await drain(watcher), []);
  shard.run(resolve("t", "commit"));
  deepEqual(await drain(watcher), ["a=1@1", "z=9@2"]);
  watcher.cancel();
  shard.sm.close();
});
