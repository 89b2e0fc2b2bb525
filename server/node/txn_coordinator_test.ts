/**
 * Unit tests of TxnCoordinator against a scripted transport (a mock: each test answers every
 * command itself and records what was sent), checking the order and content of the protocol's
 * steps. The seeded simulation (tests/txn_sim_test.ts) runs it against real state machines.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  type ApplyResult,
  AspenError,
  type Command,
  shardForKey,
  type TxnRecord,
} from "../../shard/mod.ts";
import { INTENT_WAIT_MS, TXN_DEADLINE_MS, TxnCoordinator } from "./txn_coordinator.ts";

const SHARDS = 2;

/** The first keys `<prefix><n>` of shard 0 and of shard 1. */
function keysByShard(prefix: string): [string, string] {
  const found: (string | undefined)[] = [undefined, undefined];
  for (let n = 0; found.includes(undefined); n++) {
    const key = `${prefix}${n}`;
    found[shardForKey(key, SHARDS)] ??= key;
  }
  return [found[0]!, found[1]!];
}

const [A, B] = keysByShard("k");

interface Sent {
  readonly shard: number;
  readonly command: Command;
}

function harness(answer: (shard: number, command: Command) => ApplyResult, records?: {
  read: (home: number, txnId: string) => TxnRecord | null;
}) {
  const sent: Sent[] = [];
  let nowMs = 0;
  const coordinator = new TxnCoordinator({
    nodeId: 7,
    shardCount: SHARDS,
    transport: {
      run: (shard, command) => {
        sent.push({ shard, command });
        try {
          return Promise.resolve(answer(shard, command));
        } catch (error) {
          return Promise.reject(error);
        }
      },
      readRecord: (home, txnId) => Promise.resolve(records?.read(home, txnId) ?? null),
    },
    nowMs: () => nowMs,
    wallMs: () => 1_000_000 + nowMs,
    sleep: (ms) => {
      nowMs += ms;
      return Promise.resolve();
    },
  });
  return { coordinator, sent, types: () => sent.map((s) => `${s.command.type}@${s.shard}`) };
}

/**
 * Answers like healthy shards: prepares succeed (compares per `compareOk`), decides take
 * effect, and a commit resolve returns one result per op of the branch (a put's version is its
 * value, so a test can see which op a result belongs to).
 */
function healthy(compareOk: (shard: number) => boolean = () => true) {
  const prepares = new Map<string, Extract<Command, { type: "txnPrepare" }>>();
  return (shard: number, command: Command): ApplyResult => {
    const revision = 10 + shard;
    switch (command.type) {
      case "txnPrepare":
        prepares.set(`${command.txnId}@${shard}`, command);
        return {
          type: "txnPrepared",
          revision,
          ok: true,
          compareSucceeded: compareOk(shard),
          conflict: null,
        };
      case "txnDecide": {
        const status = command.outcome === "commit" ? "committed" : "aborted";
        return { type: "txnDecided", revision, status, branch: command.branch };
      }
      case "txnResolve": {
        const prepare = prepares.get(`${command.txnId}@${shard}`);
        const ops = command.branch === null || prepare === undefined ? [] : prepare[command.branch];
        const results = command.outcome === "abort"
          ? []
          : ops.map((op) =>
            op.type === "put"
              ? { type: "put" as const, version: Number(op.value), prevKv: null }
              : { type: "get" as const, kv: null }
          );
        return { type: "txnResolved", revision: 20 + shard, outcome: command.outcome, results };
      }
      default:
        throw new Error(`unexpected ${command.type}`);
    }
  };
}

function put(key: string, value: string) {
  return { type: "put" as const, key, value, lease: 0, prevKv: false };
}

const FAR_MS = 60_000;

Deno.test("TxnCoordinator.txn() prepares each shard's part, decides on home, merges", async () => {
  const { coordinator, sent, types } = harness(healthy());
  const result = await coordinator.txn({
    compare: [{ key: B, target: "version", op: "=", value: 1 }],
    success: [put(B, "1"), put(A, "2"), put(B, "3")],
    failure: [],
  }, FAR_MS);
  const home = shardForKey([A, B].sort()[0]!, SHARDS);
  strictEqual(result.home, home);
  strictEqual(result.succeeded, true);
  deepStrictEqual(
    result.results.map((r) => [r.shard, r.result.type === "put" && r.result.version]),
    [
      [1, 1],
      [0, 2],
      [1, 3],
    ],
  );
  deepStrictEqual([...result.revisions].sort(), [[0, 20], [1, 21]]);
  deepStrictEqual(types(), [
    "txnPrepare@0",
    "txnPrepare@1",
    `txnDecide@${home}`,
    "txnResolve@0",
    "txnResolve@1",
  ]);
  const prepareB = sent.find((s) => s.command.type === "txnPrepare" && s.shard === 1)!.command;
  ok(prepareB.type === "txnPrepare");
  deepStrictEqual(prepareB.success.map((op) => op.type === "put" && op.value), ["1", "3"]);
  strictEqual(prepareB.compare.length, 1);
  strictEqual(prepareB.deadlineMs, 1_000_000 + TXN_DEADLINE_MS);
  ok(result.txnId.startsWith("7.1000000."));
});

Deno.test("TxnCoordinator.txn() runs failure when one shard's compare fails", async () => {
  const { coordinator, sent } = harness(healthy((shard) => shard !== 1));
  const result = await coordinator.txn({
    compare: [{ key: A, target: "version", op: "=", value: 1 }, {
      key: B,
      target: "version",
      op: "=",
      value: 1,
    }],
    success: [put(A, "1")],
    failure: [put(B, "5")],
  }, FAR_MS);
  strictEqual(result.succeeded, false);
  deepStrictEqual(result.results.map((r) => r.shard), [1]);
  const decide = sent.find((s) => s.command.type === "txnDecide")!.command;
  ok(decide.type === "txnDecide" && decide.branch === "failure" && decide.outcome === "commit");
});

Deno.test("TxnCoordinator.txn() answers conflict when a pusher aborted it first", async () => {
  const base = healthy();
  const { coordinator, sent: commands, types } = harness((shard, command) =>
    command.type === "txnDecide"
      ? { type: "txnDecided", revision: 1, status: "aborted", branch: null }
      : base(shard, command)
  );
  await rejects(
    coordinator.txn({ compare: [], success: [put(A, "1"), put(B, "2")], failure: [] }, FAR_MS),
    (error: unknown) => error instanceof AspenError && error.code === "conflict",
  );
  const sent = types();
  ok(commands.every(({ command }) => command.type !== "txnResolve" || command.outcome === "abort"));
  deepStrictEqual(sent.filter((type) => type.startsWith("txnResolve")).sort(), [
    "txnResolve@0",
    "txnResolve@1",
  ]);
});

Deno.test("TxnCoordinator.txn() meeting a lock aborts, pushes, retries (new id)", async () => {
  const base = healthy();
  let locks = 1;
  const holder = { txnId: "9.1.1", home: 1 };
  const { coordinator, sent } = harness((shard, command) => {
    if (command.type === "txnPrepare" && shard === 1 && locks-- > 0) {
      return { type: "txnPrepared", revision: 3, ok: false, reason: "locked", key: B, holder };
    }
    return base(shard, command);
  }, {
    read: () => ({
      txnId: holder.txnId,
      status: "committed",
      home: 1,
      participants: [1],
      branch: "success",
      deadlineMs: 0,
      createdRevision: 1,
      decidedRevision: 2,
      reason: "",
    }),
  });
  const result = await coordinator.txn({
    compare: [],
    success: [put(A, "1"), put(B, "2")],
    failure: [],
  }, FAR_MS);
  strictEqual(result.succeeded, true);
  const ids = new Set(
    sent.filter((s) => s.command.type === "txnPrepare").map((s) =>
      "txnId" in s.command && s.command.txnId
    ),
  );
  strictEqual(ids.size, 2);
  const holderResolve = sent.find((s) =>
    s.command.type === "txnResolve" && s.command.txnId === holder.txnId
  );
  ok(holderResolve !== undefined && holderResolve.shard === 1);
  ok(holderResolve.command.type === "txnResolve" && holderResolve.command.outcome === "commit");
  const firstAbort = sent.find((s) =>
    s.command.type === "txnDecide" && s.command.outcome === "abort"
  );
  ok(firstAbort !== undefined, "the locked attempt is aborted");
});

Deno.test("TxnCoordinator.optimistic() turns a read conflict into a conflict", async () => {
  const base = healthy();
  const conflict = {
    key: B,
    field: "modRevision" as const,
    expected: null,
    actual: 2,
    expectedModRevision: 4,
    actualModRevision: 6,
    readRevision: null,
  };
  const { coordinator, types } = harness((shard, command) =>
    command.type === "txnPrepare" && shard === 1
      ? { type: "txnPrepared", revision: 3, ok: true, compareSucceeded: true, conflict }
      : base(shard, command)
  );
  await rejects(
    coordinator.optimistic({
      reads: [{ key: B, modRevision: 4, version: null, revision: null }],
      writes: [{ op: "set", key: A, value: "1" }],
    }, FAR_MS),
    (error: unknown) =>
      error instanceof AspenError && error.code === "conflict" && error.details.key === B &&
      error.details.actualModRevision === 6,
  );
  const sent = types();
  ok(sent.includes(`txnDecide@${shardForKey([A, B].sort()[0]!, SHARDS)}`), "the record is aborted");
  deepStrictEqual(sent.filter((type) => type.startsWith("txnResolve")).sort(), [
    "txnResolve@0",
    "txnResolve@1",
  ]);
});

Deno.test("TxnCoordinator retries a step that may not have run", async (t) => {
  // What the cluster router throws when a leader did not answer or was not found in time.
  for (const code of ["timeout", "shard_unavailable", "not_leader", "proposal_dropped"] as const) {
    await t.step(code, async () => {
      const base = healthy();
      let lost = 1;
      const { coordinator, types } = harness((shard, command) => {
        if (command.type === "txnResolve" && shard === 0 && lost-- > 0) {
          throw new AspenError(code, "lost");
        }
        return base(shard, command);
      });
      const result = await coordinator.txn({
        compare: [],
        success: [put(A, "1"), put(B, "2")],
        failure: [],
      }, FAR_MS);
      strictEqual(result.succeeded, true);
      strictEqual(types().filter((type) => type === "txnResolve@0").length, 2);
    });
  }
});

Deno.test("TxnCoordinator.push() waits, then aborts a holder past its deadline", async () => {
  const holder = { txnId: "9.1.1", home: 1 };
  const base = healthy();
  const { coordinator, types } = harness(base, {
    read: () => ({
      txnId: holder.txnId,
      status: "pending",
      home: 1,
      participants: [0, 1],
      branch: null,
      deadlineMs: 1_000_000 + 10 * INTENT_WAIT_MS,
      createdRevision: 1,
      decidedRevision: null,
      reason: "",
    }),
  });
  await coordinator.push(0, A, holder, FAR_MS);
  deepStrictEqual(types(), ["txnDecide@1", "txnResolve@0"]);
});

Deno.test("TxnCoordinator.push() answers conflict when its own deadline comes first", async () => {
  const holder = { txnId: "9.1.1", home: 1 };
  const { coordinator, types } = harness(healthy(), {
    read: () => ({
      txnId: holder.txnId,
      status: "pending",
      home: 1,
      participants: [0, 1],
      branch: null,
      deadlineMs: 1_000_000 + TXN_DEADLINE_MS,
      createdRevision: 1,
      decidedRevision: null,
      reason: "",
    }),
  });
  await rejects(
    coordinator.push(0, A, holder, 2 * INTENT_WAIT_MS),
    (error: unknown) =>
      error instanceof AspenError && error.code === "conflict" && error.details.key === A,
  );
  deepStrictEqual(types(), []);
});
