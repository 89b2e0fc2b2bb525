/**
 * StateMachine.metaVersion(): the change marker the node watches on shard 0 (server/node/
 * meta_watch.ts) moves when an applied entry writes a meta record and when a snapshot replaces
 * the state, and stays put for entries that write only keys. Applied on a file database.
 */
import { equal, notEqual, ok } from "node:assert/strict";
import { encodeCommand } from "./command_codec.ts";
import { StateMachine } from "./state_machine.ts";

function entry(index: number, command: Parameters<typeof encodeCommand>[0]) {
  return { index, data: encodeCommand(command) };
}

Deno.test("StateMachine.metaVersion() moves with meta writes and restores only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-meta-version-" });
  const machine = StateMachine.open({ path: `${dir}/state-machine.db`, synchronous: "normal" });
  try {
    const start = machine.metaVersion();
    machine.apply([entry(1, { type: "put", key: "k", value: "v", lease: 0, prevKv: false })]);
    equal(machine.metaVersion(), start, "a put writes no meta record");
    machine.apply([entry(2, { type: "meta", name: "authTokens", value: "[]" })]);
    const afterMeta = machine.metaVersion();
    ok(afterMeta > start, "a meta write moves it");
    equal(machine.getMeta("authTokens"), "[]");
    const snapshot = machine.snapshot();
    machine.apply([entry(3, { type: "put", key: "k2", value: "v", lease: 0, prevKv: false })]);
    equal(machine.metaVersion(), afterMeta);
    machine.restore(snapshot);
    ok(machine.metaVersion() > afterMeta, "a restored snapshot may hold other meta records");
    notEqual(machine.metaVersion(), afterMeta);
  } finally {
    machine.close();
    await Deno.remove(dir, { recursive: true });
  }
});
