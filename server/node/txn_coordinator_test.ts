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
  type KeysRead,
  type KeyValue,
  shardForKey,
  type TxnOp,
  type TxnOpResult,
  type TxnParticipantVote,
  type TxnRecord,
} from "../../shard/mod.ts";
import {
  INTENT_WAIT_MS,
  TXN_ATTEMPT_RESERVE_MS,
  TXN_DEADLINE_MS,
  TXN_LOCK_ATTEMPTS_MAX,
  TXN_PUSH_WAIT_MS,
  TXN_RETRY_PAUSE_MS,
  TXN_RETRY_PAUSE_MS_MAX,
  TXN_STEP_ATTEMPTS_MAX,
  TxnCoordinator,
} from "./txn_coordinator.ts";

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
  /** Sent to be held by the leader (the resolves after a reply). */
  readonly isHeld?: boolean;
}

function harness(
  answer: (shard: number, command: Command) => ApplyResult | Promise<ApplyResult>,
  records?: {
    read: (home: number, txnId: string) => TxnRecord | null;
    readKeys?: (shard: number, keys: readonly string[], changedAfter: number | null) => KeysRead;
    readVote?: (shard: number, txnId: string) => TxnParticipantVote | null;
  },
) {
  const sent: Sent[] = [];
  const sleeps: number[] = [];
  /** How many commands had been sent at each sleep. */
  const sleptAfter: number[] = [];
  let nowMs = 0;
  const resolveErrors: string[] = [];
  const coordinator = new TxnCoordinator({
    nodeId: 7,
    shardCount: SHARDS,
    transport: {
      run: (shard, command, _deadlineMs, options) => {
        sent.push({ shard, command, ...(options?.isHeld === true ? { isHeld: true } : {}) });
        try {
          return Promise.resolve(answer(shard, command));
        } catch (error) {
          return Promise.reject(error);
        }
      },
      readRecord: (home, txnId) => Promise.resolve(records?.read(home, txnId) ?? null),
      readKeys: (shard, keys, changedAfter) => {
        sent.push({ shard, command: { type: "meta", name: `read ${changedAfter}`, value: "" } });
        const read = records?.readKeys;
        if (read === undefined) throw new Error("unexpected readKeys");
        return Promise.resolve(read(shard, keys, changedAfter));
      },
      readVote: (shard, txnId) => Promise.resolve(records?.readVote?.(shard, txnId) ?? null),
    },
    nowMs: () => nowMs,
    wallMs: () => 1_000_000 + nowMs,
    sleep: (ms) => {
      sleeps.push(ms);
      sleptAfter.push(sent.length);
      nowMs += ms;
      return Promise.resolve();
    },
    onResolveLaterError: (txnId, error) => resolveErrors.push(`${txnId}: ${error}`),
  });
  return {
    coordinator,
    resolveErrors,
    sent,
    sleeps,
    /** The last sleep before each prepare that follows a sleep: the pauses between attempts. */
    pauses: () =>
      sleeps.filter((_, i) =>
        sleptAfter[i + 1] !== sleptAfter[i] && sent[sleptAfter[i]!]?.command.type === "txnPrepare"
      ),
    nowMs: () => nowMs,
    types: () => sent.map((s) => `${s.command.type}@${s.shard}`),
    /** As types(), marking the commands sent to be held. */
    heldTypes: () => sent.map((s) => `${s.command.type}@${s.shard}${s.isHeld ? " held" : ""}`),
  };
}

/**
 * Answers like healthy shards: prepares succeed (compares per `compareOk`), decides take
 * effect, a fence answers a prepare's verdict (or aborted where none was sent), and a commit
 * resolve returns one result per op of the branch (a put's version is its value, so a test can
 * see which op a result belongs to).
 */
function healthy(compareOk: (shard: number) => boolean = () => true) {
  const prepares = new Map<string, Extract<Command, { type: "txnPrepare" }>>();
  return (shard: number, command: Command): ApplyResult => {
    const revision = 10 + shard;
    switch (command.type) {
      case "txnFence":
        if (!prepares.has(`${command.txnId}@${shard}`)) {
          return {
            type: "txnPrepared",
            revision,
            ok: false,
            reason: "aborted",
            key: null,
            holder: null,
          };
        }
        return prepared(prepares.get(`${command.txnId}@${shard}`)!, revision, compareOk(shard));
      case "txnPrepare":
        prepares.set(`${command.txnId}@${shard}`, command);
        return prepared(command, revision, compareOk(shard));
      case "txnDecide": {
        const status = command.outcome === "commit" ? "committed" : "aborted";
        return { type: "txnDecided", revision, status, branch: command.branch };
      }
      case "txnResolve": {
        const prepare = prepares.get(`${command.txnId}@${shard}`);
        const ops = command.branch === null || prepare === undefined ? [] : prepare[command.branch];
        const results = command.outcome === "abort" ? [] : opResults(ops);
        return { type: "txnResolved", revision: 20 + shard, outcome: command.outcome, results };
      }
      default:
        throw new Error(`unexpected ${command.type}`);
    }
  };
}

/** One result per op, as a healthy shard's resolve (and its prepare's preview) gives them. */
function opResults(ops: readonly TxnOp[]): TxnOpResult[] {
  return ops.map((op) =>
    op.type === "put"
      ? { type: "put" as const, version: Number(op.value), prevKv: null }
      : { type: "get" as const, kv: null }
  );
}

/** A successful prepare's answer: the entry's revision reserved, both branches previewed. */
function prepared(
  command: Extract<Command, { type: "txnPrepare" }>,
  revision: number,
  compareSucceeded: boolean,
): ApplyResult {
  return {
    type: "txnPrepared",
    revision,
    ok: true,
    compareSucceeded,
    conflict: null,
    reservedRevision: revision,
    results: { success: opResults(command.success), failure: opResults(command.failure) },
  };
}

function put(key: string, value: string) {
  return { type: "put" as const, key, value, lease: 0, prevKv: false };
}

const FAR_MS = 60_000;

Deno.test("TxnCoordinator.txn() prepares each part, resolves (no decide), merges", async () => {
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
  // The revisions the prepares reserved, not the resolves' entries.
  deepStrictEqual([...result.revisions].sort(), [[0, 10], [1, 11]]);
  await coordinator.settled();
  // Parallel commits: the prepares are the commit point, the home's resolve decides the record.
  deepStrictEqual(types(), ["txnPrepare@0", "txnPrepare@1", "txnResolve@0", "txnResolve@1"]);
  const prepareB = sent.find((s) => s.command.type === "txnPrepare" && s.shard === 1)!.command;
  ok(prepareB.type === "txnPrepare");
  deepStrictEqual(prepareB.success.map((op) => op.type === "put" && op.value), ["1", "3"]);
  strictEqual(prepareB.compare.length, 1);
  strictEqual(prepareB.deadlineMs, 1_000_000 + TXN_DEADLINE_MS);
  ok(result.txnId?.startsWith("7.1000000."));
});

Deno.test("TxnCoordinator.txn() replies once every participant prepared", async () => {
  const answer = healthy();
  let releaseResolves = () => {};
  const resolvesHeld = new Promise<void>((resolve) => releaseResolves = resolve);
  const held = harness(async (shard, command) => {
    if (command.type === "txnResolve") await resolvesHeld;
    return answer(shard, command);
  });
  const result = await held.coordinator.txn({
    compare: [],
    success: [put(A, "4"), { type: "get", key: B }],
    failure: [],
  }, FAR_MS);
  // The resolves have not answered: the reply came from the prepares alone.
  deepStrictEqual(held.types(), ["txnPrepare@0", "txnPrepare@1", "txnResolve@0", "txnResolve@1"]);
  deepStrictEqual(result.results.map((r) => r.result.type), ["put", "get"]);
  deepStrictEqual([...result.revisions].sort(), [[0, 10], [1, 11]]);
  releaseResolves();
  await held.coordinator.settled();
  deepStrictEqual(held.resolveErrors, []);
});

Deno.test("TxnCoordinator hurries its own held resolves: a push, a next txn", async () => {
  const answer = healthy();
  let releaseResolves = () => {};
  const resolvesHeld = new Promise<void>((resolve) => releaseResolves = resolve);
  let recordReads = 0;
  const { coordinator, types, heldTypes } = harness(async (shard, command) => {
    if (command.type === "txnResolve") await resolvesHeld;
    return answer(shard, command);
  }, { read: () => (recordReads++, null) });
  const success = [put(A, "1"), put(B, "1")];
  const first = await coordinator.txn({ compare: [], success, failure: [] }, FAR_MS);
  const holder = { txnId: first.txnId!, home: first.home };
  const pushed = coordinator.push(first.home, A, holder, FAR_MS);
  const next = coordinator.txn({ compare: [], success: [put(A, "2")], failure: [] }, FAR_MS);
  await Promise.resolve();
  // The resolves after the reply go to be held; the push and the next txn (on A's shard only)
  // send one resolve of A's shard that is not held, which makes its leader propose both.
  deepStrictEqual(heldTypes(), [
    "txnPrepare@0",
    "txnPrepare@1",
    "txnResolve@0 held",
    "txnResolve@1 held",
    "txnResolve@0",
  ]);
  releaseResolves();
  await pushed;
  await next;
  strictEqual(recordReads, 0, "the push read no record: it awaited the resolve");
  strictEqual(types().filter((type) => type.startsWith("txnPrepare")).length, 3);
  await coordinator.settled();
});

Deno.test("TxnCoordinator.txn() with a lease step replies after its resolves", async () => {
  const answer = healthy();
  let releaseResolves = () => {};
  const resolvesHeld = new Promise<void>((resolve) => releaseResolves = resolve);
  const { coordinator } = harness(async (shard, command) => {
    if (command.type === "txnResolve") await resolvesHeld;
    return answer(shard, command);
  });
  let isAnswered = false;
  const revoke = { action: "revoke" as const, id: 5, holders: [1] };
  const running = coordinator.txn({
    compare: [],
    success: [put(A, "1"), put(B, "1")],
    failure: [],
    leases: [{ shard: 0, step: revoke }],
  }, FAR_MS).then((result) => (isAnswered = true, result));
  for (let turn = 0; turn < 10; turn++) await Promise.resolve();
  strictEqual(isAnswered, false, "no reply before the resolves");
  releaseResolves();
  strictEqual((await running).succeeded, true);
  await coordinator.settled();
});

Deno.test("TxnCoordinator.txn() without a preview waits for the resolves' results", async () => {
  const answer = healthy();
  let releaseResolves = () => {};
  const resolvesHeld = new Promise<void>((resolve) => releaseResolves = resolve);
  const { coordinator } = harness(async (shard, command) => {
    if (command.type === "txnResolve") await resolvesHeld;
    const result = answer(shard, command);
    // Shard 1's results were too large to preview (TXN_PREVIEW_BYTES_MAX).
    return result.type === "txnPrepared" && result.ok && shard === 1
      ? { ...result, results: null }
      : result;
  });
  let isAnswered = false;
  const running = coordinator.txn({
    compare: [],
    success: [put(A, "4"), put(B, "5")],
    failure: [],
  }, FAR_MS).then((result) => (isAnswered = true, result));
  for (let turn = 0; turn < 10; turn++) await Promise.resolve();
  strictEqual(isAnswered, false, "no reply before the resolves");
  releaseResolves();
  const result = await running;
  deepStrictEqual(result.results.map((r) => r.result.type === "put" && r.result.version), [4, 5]);
  // The revisions are still the reserved ones (the prepares'), not the resolves'.
  deepStrictEqual([...result.revisions].sort(), [[0, 10], [1, 11]]);
  await coordinator.settled();
});

Deno.test("TxnCoordinator.txn() hands a failed later resolve to its supervisor", async () => {
  const answer = healthy();
  const { coordinator, resolveErrors } = harness((shard, command) => {
    if (command.type === "txnResolve") throw new AspenError("bad_request", "Planted failure");
    return answer(shard, command);
  });
  const result = await coordinator.txn({
    compare: [],
    success: [put(A, "1"), put(B, "2")],
    failure: [],
  }, FAR_MS);
  strictEqual(result.succeeded, true);
  await coordinator.settled();
  strictEqual(resolveErrors.length, 1);
  ok(resolveErrors[0]?.includes("is commit but not every participant"), resolveErrors[0]);
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
  const resolves = sent.filter((s) => s.command.type === "txnResolve").map((s) => s.command);
  strictEqual(resolves.length, 2);
  for (const resolve of resolves) {
    ok(resolve.type === "txnResolve" && resolve.branch === "failure");
    ok(resolve.outcome === "commit");
  }
});

/** The distinct txnIds of the prepares sent, in order: one per attempt. */
function attemptIds(sent: readonly Sent[]): string[] {
  const ids = sent.flatMap((s) => s.command.type === "txnPrepare" ? [s.command.txnId] : []);
  return [...new Set(ids)];
}

Deno.test("TxnCoordinator.txn() retries while pushers abort it, then conflicts", async () => {
  const base = healthy();
  // A pusher fenced shard 1 (the attempt passed its deadline): its prepare is refused.
  const { coordinator, sent: commands, types } = harness((shard, command) =>
    command.type === "txnPrepare" && shard === 1
      ? { type: "txnPrepared", revision: 1, ok: false, reason: "aborted", key: null, holder: null }
      : base(shard, command)
  );
  await rejects(
    coordinator.txn({ compare: [], success: [put(A, "1"), put(B, "2")], failure: [] }, FAR_MS),
    (error: unknown) =>
      error instanceof AspenError && error.code === "conflict" &&
      /aborted by a concurrent reader or writer/.test(error.message),
  );
  strictEqual(attemptIds(commands).length, TXN_LOCK_ATTEMPTS_MAX);
  ok(commands.every(({ command }) => command.type !== "txnResolve" || command.outcome === "abort"));
  const resolves = types().filter((type) => type.startsWith("txnResolve"));
  strictEqual(resolves.length, 2 * TXN_LOCK_ATTEMPTS_MAX, "every attempt is resolved abort");
  ok(!types().some((type) => type.startsWith("txnDecide") || type.startsWith("txnFence")));
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
  // The locked participant is fenced (a copy of its prepare may still be in flight), then
  // every participant resolves abort; no decide.
  const [first] = attemptIds(sent);
  const firstSteps = sent.filter((s) => "txnId" in s.command && s.command.txnId === first);
  deepStrictEqual(firstSteps.map((s) => `${s.command.type}@${s.shard}`), [
    "txnPrepare@0",
    "txnPrepare@1",
    "txnFence@1",
    "txnResolve@0",
    "txnResolve@1",
  ]);
  ok(firstSteps.every((s) => s.command.type !== "txnResolve" || s.command.outcome === "abort"));
});

/** A holder's record, pending within its deadline (a push waits and gives up). */
function pendingRecord(holder: { txnId: string; home: number }): TxnRecord {
  return {
    txnId: holder.txnId,
    status: "pending",
    home: holder.home,
    participants: [0, 1],
    branch: null,
    deadlineMs: 1_000_000 + 100 * TXN_DEADLINE_MS,
    createdRevision: 1,
    decidedRevision: null,
    reason: "",
  };
}

/** Answers `locked` to shard 1's prepares while `isLocked()` says so, healthy otherwise. */
function lockedWhile(isLocked: () => boolean, holder: { txnId: string; home: number }) {
  const base = healthy();
  return (shard: number, command: Command): ApplyResult => {
    if (command.type === "txnPrepare" && shard === 1 && isLocked()) {
      return { type: "txnPrepared", revision: 3, ok: false, reason: "locked", key: B, holder };
    }
    return base(shard, command);
  };
}

Deno.test("TxnCoordinator.txn() keeps trying past locks with growing pauses", async () => {
  const holder = { txnId: "9.1.1", home: 1 };
  const lockedAttempts = 6;
  let prepares = 0;
  const { coordinator, sent, sleeps, pauses: pausesOf } = harness(
    lockedWhile(() => ++prepares <= lockedAttempts, holder),
    { read: () => pendingRecord(holder) },
  );
  const result = await coordinator.txn({
    compare: [],
    success: [put(A, "1"), put(B, "2")],
    failure: [],
  }, FAR_MS);
  strictEqual(result.succeeded, true);
  const ids = attemptIds(sent);
  strictEqual(ids.length, lockedAttempts + 1, "one attempt per lock, then the commit");
  strictEqual(result.txnId, ids[ids.length - 1]);
  // Between attempts: the push's polls, then the pause.
  const pauses = pausesOf();
  strictEqual(pauses.length, lockedAttempts, `pauses ${sleeps}`);
  for (const [index, pauseMs] of pauses.entries()) {
    const ceilingMs = Math.min(TXN_RETRY_PAUSE_MS_MAX, TXN_RETRY_PAUSE_MS * 2 ** index);
    ok(pauseMs >= ceilingMs / 2 && pauseMs <= ceilingMs, `pause ${index}: ${pauseMs} ms`);
  }
  ok(pauses[lockedAttempts - 1]! > pauses[0]!, `the pauses grow: ${pauses}`);
  // The pauses come from the coordinator's seeded generator: a second run draws the same.
  prepares = 0;
  const again = harness(lockedWhile(() => ++prepares <= lockedAttempts, holder), {
    read: () => pendingRecord(holder),
  });
  await again.coordinator.txn(
    { compare: [], success: [put(A, "1"), put(B, "2")], failure: [] },
    FAR_MS,
  );
  deepStrictEqual(again.sleeps, sleeps);
});

Deno.test("TxnCoordinator.txn() retries past a push that timed out (a busy home)", async (t) => {
  const holder = { txnId: "9.1.1", home: 1 };
  const request = { compare: [], success: [put(A, "1"), put(B, "2")], failure: [] };
  // The holder's home does not answer within the push's own bound (TXN_PUSH_WAIT_MS): each
  // record read times out, as a router's forwarded read does on a loaded cluster.
  const busy = () => {
    throw new AspenError("timeout", "no response within 36 ms", { shard: holder.home });
  };
  await t.step("the lock clears: the txn commits, no 504", async () => {
    let prepares = 0;
    const { coordinator, sent } = harness(lockedWhile(() => ++prepares <= 3, holder), {
      read: busy,
    });
    const result = await coordinator.txn(request, FAR_MS);
    strictEqual(result.succeeded, true);
    strictEqual(attemptIds(sent).length, 4, "three locked attempts, then the commit");
  });
  await t.step("the lock stays: a 409 conflict at the limit, not a timeout", async () => {
    const { coordinator, sent } = harness(lockedWhile(() => true, holder), { read: busy });
    await rejects(
      coordinator.txn(request, 100 * FAR_MS),
      (error: unknown) => error instanceof AspenError && error.code === "conflict",
    );
    strictEqual(attemptIds(sent).length, TXN_LOCK_ATTEMPTS_MAX);
  });
  await t.step("an error that is not a give-up still ends the txn", async () => {
    const { coordinator } = harness(lockedWhile(() => true, holder), {
      read: () => {
        throw new AspenError("bad_request", "a bug");
      },
    });
    await rejects(
      coordinator.txn(request, FAR_MS),
      (error: unknown) => error instanceof AspenError && error.code === "bad_request",
    );
  });
});

Deno.test("TxnCoordinator.txn() stops retrying a lock at the deadline or the limit", async (t) => {
  const holder = { txnId: "9.1.1", home: 1 };
  const request = { compare: [], success: [put(A, "1"), put(B, "2")], failure: [] };
  await t.step("the request's deadline ends the attempts", async () => {
    const deadlineMs = TXN_ATTEMPT_RESERVE_MS + 3 * TXN_PUSH_WAIT_MS;
    const { coordinator, sent, nowMs } = harness(lockedWhile(() => true, holder), {
      read: () => pendingRecord(holder),
    });
    await rejects(
      coordinator.txn(request, deadlineMs),
      (error: unknown) =>
        error instanceof AspenError && error.code === "conflict" && error.details.key === B &&
        error.details.holder === holder.txnId,
    );
    const attempts = attemptIds(sent).length;
    ok(attempts >= 2 && attempts < TXN_LOCK_ATTEMPTS_MAX, `${attempts} attempts`);
    ok(
      nowMs() <= deadlineMs - TXN_ATTEMPT_RESERVE_MS,
      `stopped at ${nowMs()} ms, leaving the reserve before the deadline`,
    );
  });
  await t.step("TXN_LOCK_ATTEMPTS_MAX ends them on a far deadline", async () => {
    const { coordinator, sent } = harness(lockedWhile(() => true, holder), {
      read: () => pendingRecord(holder),
    });
    await rejects(
      coordinator.txn(request, 100 * FAR_MS),
      (error: unknown) =>
        error instanceof AspenError && error.code === "conflict" &&
        error.message.includes(`TXN_LOCK_ATTEMPTS_MAX = ${TXN_LOCK_ATTEMPTS_MAX}`),
    );
    strictEqual(attemptIds(sent).length, TXN_LOCK_ATTEMPTS_MAX);
  });
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
  const { coordinator, types, sent: commands, sleeps } = harness((shard, command) =>
    command.type === "txnPrepare" && shard === 1
      ? { ...prepared(command, 3, true), conflict } as ApplyResult
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
  strictEqual(attemptIds(commands).length, 1, "a read conflict is answered at once");
  deepStrictEqual(sleeps, []);
  // The conflict alone proves the abort: no fence, no decide (the home's resolve aborts the
  // record).
  deepStrictEqual(types(), ["txnPrepare@0", "txnPrepare@1", "txnResolve@0", "txnResolve@1"]);
  ok(commands.every(({ command }) => command.type !== "txnResolve" || command.outcome === "abort"));
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
  const { coordinator, types, sent } = harness(base, {
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
  // No participant prepared (the fences store refusals): abort.
  deepStrictEqual(types(), ["txnFence@0", "txnFence@1", "txnDecide@1", "txnResolve@0"]);
  ok(sent.every(({ command }) => command.type !== "txnDecide" || command.outcome === "abort"));
});

Deno.test("TxnCoordinator.push() commits a staging holder whose parts all prepared", async () => {
  const holder = { txnId: "9.1.1", home: 1 };
  const base = healthy((shard) => shard === 0);
  for (const shard of [0, 1]) base(shard, { ...PREPARE, txnId: holder.txnId, shard });
  const { coordinator, types, sent } = harness(base, {
    read: () => ({ ...pendingRecord(holder), deadlineMs: 1_000_000 + 10 * INTENT_WAIT_MS }),
  });
  await coordinator.push(0, A, holder, FAR_MS);
  deepStrictEqual(types(), ["txnFence@0", "txnFence@1", "txnDecide@1", "txnResolve@0"]);
  const decide = sent.find((s) => s.command.type === "txnDecide")!.command;
  // Shard 1's compare failed: the failure branch commits.
  ok(decide.type === "txnDecide" && decide.outcome === "commit" && decide.branch === "failure");
});

Deno.test("TxnCoordinator.push() of an absent record fences the home, then aborts", async () => {
  const holder = { txnId: "9.1.1", home: 1 };
  const { coordinator, types } = harness(healthy(), { read: () => null });
  await coordinator.push(0, A, holder, FAR_MS);
  deepStrictEqual(types(), ["txnFence@1", "txnDecide@1", "txnResolve@0"]);
});

Deno.test("TxnCoordinator.txn() fences a prepare whose answer was lost", async (t) => {
  await t.step("it had applied: the transaction commits", async () => {
    const base = healthy();
    let lost = TXN_STEP_ATTEMPTS_MAX;
    const { coordinator, types } = harness((shard, command) => {
      const answer = base(shard, command);
      if (command.type === "txnPrepare" && shard === 1 && lost-- > 0) {
        throw new AspenError("timeout", "lost");
      }
      return answer;
    });
    const result = await coordinator.txn(
      { compare: [], success: [put(A, "1"), put(B, "2")], failure: [] },
      FAR_MS,
    );
    strictEqual(result.succeeded, true);
    ok(types().includes("txnFence@1"));
  });
  await t.step("it had not: abort, and the error is the prepare's", async () => {
    const base = healthy();
    const { coordinator, sent } = harness((shard, command) => {
      if (command.type === "txnPrepare" && shard === 1) throw new AspenError("timeout", "lost");
      return base(shard, command);
    });
    await rejects(
      coordinator.txn({ compare: [], success: [put(A, "1"), put(B, "2")], failure: [] }, FAR_MS),
      (error: unknown) => error instanceof AspenError && error.code === "timeout",
    );
    const resolves = sent.filter((s) => s.command.type === "txnResolve").map((s) => s.command);
    strictEqual(resolves.length, 2);
    ok(resolves.every((command) => command.type === "txnResolve" && command.outcome === "abort"));
  });
});

const PREPARE: Extract<Command, { type: "txnPrepare" }> = {
  type: "txnPrepare",
  txnId: "",
  shard: 0,
  home: 1,
  participants: [0, 1],
  deadlineMs: 0,
  compare: [],
  reads: [],
  success: [],
  failure: [],
  leases: [],
};

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

function kv(key: string, value: string, modRevision: number): KeyValue {
  return { key, value, version: 1, createRevision: 1, modRevision, lease: 0 };
}

Deno.test("TxnCoordinator.txn() reads a read-only txn twice, without locks", async (t) => {
  const request = {
    compare: [{ key: A, target: "value" as const, op: "=" as const, value: "a" }],
    success: [{ type: "get" as const, key: B }, { type: "get" as const, key: A }],
    failure: [],
  };
  await t.step("unchanged: the answer, in two rounds and no command", async () => {
    const { coordinator, types } = harness(healthy(), {
      read: () => null,
      readKeys: (shard, keys) => ({
        revision: 40 + shard,
        kvs: keys.map((key) => kv(key, key === A ? "a" : "b", 3)),
        intents: keys.map(() => null),
        changed: false,
      }),
    });
    const result = await coordinator.txn(request, FAR_MS);
    strictEqual(result.txnId, null);
    strictEqual(result.succeeded, true);
    deepStrictEqual(result.results.map((r) => r.result.type === "get" && r.result.kv?.value), [
      "b",
      "a",
    ]);
    deepStrictEqual([...result.revisions].sort(), [[0, 40], [1, 41]]);
    deepStrictEqual(types().sort(), ["meta@0", "meta@0", "meta@1", "meta@1"]);
  });
  await t.step(
    "a change between the reads, or an intent it cannot place, reads again",
    async () => {
      let rounds = 0;
      const holder = { txnId: "9.1.1", home: 0 };
      const { coordinator, sent } = harness(healthy(), {
        read: () => ({ ...pendingRecord(holder), status: "committed", branch: "success" }),
        // No vote row: the holder cannot be placed before or after the reads' instant.
        readVote: () => null,
        readKeys: (shard, keys, changedAfter) => {
          if (shard === 0) rounds++;
          return {
            revision: 40 + rounds,
            kvs: keys.map((key) => kv(key, key === A ? "a" : "b", 3)),
            // Rounds 1-2: an intent on shard 1's key; round 4: a change on shard 0's.
            intents: keys.map(() => shard === 1 && rounds <= 2 ? holder : null),
            changed: shard === 0 && changedAfter !== null && rounds === 4,
          };
        },
      });
      const result = await coordinator.txn(request, FAR_MS);
      strictEqual(result.succeeded, true);
      // Rounds 1-2 met the intent (pushed: its holder is resolved), 3-4 a change, 5-6 pass.
      strictEqual(rounds, 6);
      strictEqual(coordinator.readsThroughIntents, 0);
      ok(sent.some((s) => s.command.type === "txnResolve" && s.command.txnId === holder.txnId));
      ok(sent.every((s) => s.command.type !== "txnPrepare"), "no lock is taken");
    },
  );
  await t.step("an intent of a txn committed before the reads: read through it", async () => {
    let rounds = 0;
    const holder = { txnId: "9.1.2", home: 1 };
    const { coordinator, sent } = harness(healthy(), {
      read: () => pendingRecord(holder),
      // Both participants prepared (at 30 and 31) before the first reads (at 41): committed.
      readVote: (shard, txnId) => ({
        txnId,
        home: 1,
        state: "prepared",
        resolvedRevision: null,
        vote: "commit",
        compareSucceeded: true,
        reservedRevision: 30 + shard,
      }),
      readKeys: (shard, keys) => {
        if (shard === 0) rounds++;
        return {
          revision: 40 + rounds,
          kvs: keys.map((key) => kv(key, key === A ? "a" : "b", 3)),
          intents: keys.map((key) => key === B ? holder : null),
          changed: false,
          previews: keys.map((key) =>
            key === B ? { success: kv(B, "b2", 31), failure: kv(B, "b", 3) } : null
          ),
        };
      },
    });
    const result = await coordinator.txn(request, FAR_MS);
    deepStrictEqual(result.results.map((r) => r.result.type === "get" && r.result.kv?.value), [
      "b2",
      "a",
    ]);
    strictEqual(rounds, 2, "one attempt");
    strictEqual(coordinator.readsThroughIntents, 1);
    ok(sent.every((s) => s.command.type === "meta"), "nothing resolved, locked or waited for");
  });
});
