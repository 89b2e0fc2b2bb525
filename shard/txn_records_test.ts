/**
 * StateMachine.txnRecords(): the listing of a home shard's cross-shard transaction records by
 * status that the console's Transactions view reads. Records are made by real txnPrepare and
 * txnDecide entries applied to an in-memory state machine; the test checks the filter, the
 * order (pending oldest deadline first, decided newest decision first), the limit, and that a
 * limit out of range is a `bad_request` naming it.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import type { Command } from "./command.ts";
import { encodeCommand } from "./command_codec.ts";
import { AspenError } from "./errors.ts";
import { TXN_LIST_LIMIT_MAX } from "./limits.ts";
import { StateMachine } from "./state_machine.ts";

function applyAll(machine: StateMachine, commands: readonly Command[]): void {
  let index = machine.appliedIndex();
  machine.apply(commands.map((command) => ({ index: ++index, data: encodeCommand(command) })));
}

function prepare(txnId: string, deadlineMs: number): Command {
  return {
    type: "txnPrepare",
    txnId,
    shard: 0,
    home: 0,
    participants: [0, 1],
    deadlineMs,
    compare: [],
    reads: [],
    success: [{ type: "put", key: `k/${txnId}`, value: "v", lease: 0, prevKv: false }],
    failure: [],
    leases: [],
  };
}

function decide(txnId: string, outcome: "commit" | "abort"): Command {
  const branch = outcome === "commit" ? "success" : null;
  return { type: "txnDecide", txnId, outcome, branch, reason: outcome === "abort" ? "pushed" : "" };
}

function ids(records: readonly { txnId: string }[]): string[] {
  return records.map((record) => record.txnId);
}

Deno.test("StateMachine.txnRecords() lists records by status, oldest pending first", () => {
  const machine = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    applyAll(machine, [
      prepare("t.late", 9_000),
      prepare("t.early", 1_000),
      prepare("t.mid", 5_000),
      prepare("t.c1", 2_000),
      prepare("t.c2", 3_000),
      prepare("t.a1", 4_000),
    ]);
    deepEqual(ids(machine.txnRecords("pending", 10)), [
      "t.early",
      "t.c1",
      "t.c2",
      "t.a1",
      "t.mid",
      "t.late",
    ]);
    applyAll(machine, [decide("t.c1", "commit"), decide("t.a1", "abort")]);
    applyAll(machine, [decide("t.c2", "commit")]);
    deepEqual(ids(machine.txnRecords("pending", 10)), ["t.early", "t.mid", "t.late"]);
    deepEqual(ids(machine.txnRecords("pending", 2)), ["t.early", "t.mid"]);
    deepEqual(ids(machine.txnRecords("committed", 10)), ["t.c2", "t.c1"], "newest decision first");
    const aborted = machine.txnRecords("aborted", 10);
    deepEqual(ids(aborted), ["t.a1"]);
    equal(aborted[0]!.reason, "pushed");
    equal(aborted[0]!.deadlineMs, 4_000);
    deepEqual(aborted[0]!.participants, [0, 1]);
  } finally {
    machine.close();
  }
});

Deno.test("StateMachine.txnRecords() refuses a limit out of range, naming it", () => {
  const machine = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    for (const limit of [0, TXN_LIST_LIMIT_MAX + 1, 1.5]) {
      throws(() => machine.txnRecords("pending", limit), (error: unknown) => {
        equal(error instanceof AspenError && error.code, "bad_request");
        equal(String((error as Error).message).includes("limit"), true);
        return true;
      });
    }
    deepEqual(machine.txnRecords("pending", TXN_LIST_LIMIT_MAX), []);
  } finally {
    machine.close();
  }
});
