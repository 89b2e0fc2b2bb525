/**
 * The coordinator of cross-shard transactions (issue 13): two-phase commit with intents and a
 * transaction record on the home shard (Percolator / CockroachDB style).
 *
 * ```text
 *   prepare every participant ──any locked──> abort, push the holder, pause, try again
 *        │ (locks keys, record "pending" on home)  ──OCC conflict──> abort: 409 conflict
 *        │                                         ──aborted (pushed)──> abort, pause, try again
 *        ▼
 *   decide on home (the commit point) ──"aborted" (a pusher won)──> resolve abort, try again
 *        ▼
 *   resolve every participant (runs the branch's ops, drops the intents) ──> reply
 * ```
 *
 * An attempt that met a lock or was aborted by a pusher changed nothing, so it is tried again
 * under a new txnId, up to TXN_LOCK_ATTEMPTS_MAX attempts within the request's deadline (less
 * TXN_ATTEMPT_RESERVE_MS, so the last attempt has time to finish), with a
 * pause that doubles from TXN_RETRY_PAUSE_MS (capped at TXN_RETRY_PAUSE_MS_MAX) and is jittered
 * by the coordinator's own seeded generator (so contenders spread out, and the simulation stays
 * deterministic). Only then does the caller see a 409 from locks alone; a failed compare or an
 * OCC read conflict is a real outcome and answered at once.
 *
 * Every step is idempotent by txnId on the shard, so a step whose answer was lost is retried.
 * A coordinator that dies at any step leaves intents behind; whoever meets one pushes
 * ({@linkcode TxnCoordinator.push}): it reads the record and resolves the intent with the
 * record's outcome, or aborts a record that is absent or pending past its deadline. The
 * coordinator does no I/O of its own: the transport, clocks and sleep are injected, so the
 * seeded simulation (txn_sim_test.ts) drives it.
 */
import {
  type ApplyResult,
  applyResultError,
  AspenError,
  type Command,
  type Compare,
  type Conflict,
  describeConflict,
  type ErrorCode,
  type ReadRecord,
  shardForKey,
  TXN_ID_CHARS_MAX,
  type TxnBranch,
  type TxnHolder,
  type TxnOp,
  type TxnOpResult,
  type TxnOutcome,
  type TxnRecord,
  type WriteOp,
} from "../../shard/mod.ts";
import { assert, SeededPrng } from "../../raft/mod.ts";
import { mergeResults, planTxn, type TxnPlan, type TxnSpec } from "./txn_plan.ts";

/** How long after its start a pusher may abort a transaction (coordinator wall clock). */
export const TXN_DEADLINE_MS = 5_000;
/** How long a reader or writer that met an intent waits before it may abort its holder. */
export const INTENT_WAIT_MS = 50;
/** How often a pusher re-reads a pending record while it waits. */
export const INTENT_POLL_MS = 10;
/** How long a coordinator whose prepare met a lock pushes before it gives up (no deadlock). */
export const TXN_PUSH_WAIT_MS = 2 * INTENT_WAIT_MS;
/** Tries of one idempotent step whose answer was lost (timeout, unavailable, not leader). */
export const TXN_STEP_ATTEMPTS_MAX = 4;
/**
 * Attempts of one transaction that met locks or was aborted by a pusher (each under a new
 * txnId) before it answers 409 conflict; the request's deadline may end them sooner.
 */
export const TXN_LOCK_ATTEMPTS_MAX = 10;
/** The pause after the first attempt that met a lock; it doubles after each further one. */
export const TXN_RETRY_PAUSE_MS = 4;
/** The longest pause between two attempts. */
export const TXN_RETRY_PAUSE_MS_MAX = 250;
/**
 * The part of the request's deadline a new attempt must have left after its pause: an attempt
 * cut short by the deadline answers 504 with an unknown outcome, worse than a clean 409.
 */
export const TXN_ATTEMPT_RESERVE_MS = 1_000;

assert(INTENT_POLL_MS < INTENT_WAIT_MS, "txn limits: a pusher polls within its wait");
assert(INTENT_WAIT_MS < TXN_DEADLINE_MS, "txn limits: the wait is shorter than a txn deadline");
assert(TXN_RETRY_PAUSE_MS <= TXN_RETRY_PAUSE_MS_MAX, "txn limits: pauses grow to their cap");

/** Proposes the steps of a cross-shard transaction on the shards' leaders. */
export interface TxnTransport {
  /** Proposes `command` on `shard`'s leader (retrying not_leader / unavailable); its result. */
  run(shard: number, command: Command, deadlineMs: number): Promise<ApplyResult>;
  /** A linearizable read of txnId's record on its home shard (null when absent). */
  readRecord(home: number, txnId: string, deadlineMs: number): Promise<TxnRecord | null>;
}

/** What a coordinator is built from. */
export interface TxnCoordinatorOptions {
  /** This node's id: the first part of every txnId it makes. */
  readonly nodeId: number;
  /** How many shards the keyspace has. */
  readonly shardCount: number;
  readonly transport: TxnTransport;
  /** A monotonic clock (request deadlines). */
  readonly nowMs: () => number;
  /** The wall clock (txnIds and record deadlines, which other nodes compare with theirs). */
  readonly wallMs: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /**
   * A protocol bug planted on purpose, for the simulation's test of itself only:
   * `resolveBeforeDecide` resolves the participants before the commit point.
   */
  readonly plantedBug?: "resolveBeforeDecide";
}

/** The answer to a cross-shard etcd-style transaction. */
export interface CrossShardTxnResult {
  readonly txnId: string;
  readonly succeeded: boolean;
  readonly home: number;
  /** The result of each operation of the branch that ran, in request order. */
  readonly results: readonly { shard: number; result: TxnOpResult }[];
  /** Each participant's resolve revision. */
  readonly revisions: ReadonlyMap<number, number>;
}

/** The answer to a cross-shard optimistic transaction. */
export interface CrossShardOptimisticResult {
  readonly txnId: string;
  readonly home: number;
  readonly revisions: ReadonlyMap<number, number>;
}

type Prepared = Extract<ApplyResult, { type: "txnPrepared" }>;

/** How one attempt ended: committed, or refused by locks alone (worth another attempt). */
type Attempt =
  | { readonly kind: "done"; readonly txnId: string; readonly result: Committed }
  | {
    readonly kind: "locked";
    readonly shard: number;
    readonly key: string;
    readonly holder: TxnHolder;
  }
  | { readonly kind: "aborted"; readonly error: AspenError };

interface Committed {
  readonly txnId: string;
  readonly branch: TxnBranch;
  readonly byShard: ReadonlyMap<number, readonly TxnOpResult[]>;
  readonly revisions: ReadonlyMap<number, number>;
}

/** Runs cross-shard transactions from one node, and pushes intents for its readers and writers. */
export class TxnCoordinator {
  readonly #options: TxnCoordinatorOptions;
  /** Jitters the pauses between attempts; seeded by the node id, so runs replay exactly. */
  readonly #jitter: SeededPrng;
  #sequence = 0;

  constructor(options: TxnCoordinatorOptions) {
    assert(Number.isSafeInteger(options.nodeId) && options.nodeId >= 0, "coordinator: node id");
    assert(Number.isSafeInteger(options.shardCount), "coordinator: shard count is an integer");
    assert(options.shardCount >= 1, "coordinator: at least one shard");
    this.#options = options;
    this.#jitter = new SeededPrng(options.nodeId + 1);
  }

  /**
   * An etcd-style transaction over several shards; results in request order.
   *
   * @throws {AspenError} `bad_request` (range op, too many shards), `conflict` (locked keys or a
   * concurrent abort; retryable), `timeout` (with `txnId` once the outcome may be decided).
   */
  async txn(
    request: {
      readonly compare: readonly Compare[];
      readonly success: readonly TxnOp[];
      readonly failure: readonly TxnOp[];
      /** Lease steps with their shards (see TxnSpec.leases). */
      readonly leases?: NonNullable<TxnSpec["leases"]>;
    },
    deadlineMs: number,
  ): Promise<CrossShardTxnResult> {
    const plan = this.#plan({ ...request, reads: [] });
    const done = await this.#commit(plan, deadlineMs, "run txn");
    return {
      txnId: done.txnId,
      succeeded: done.branch === "success",
      home: plan.home,
      results: mergeResults(plan, done.branch, done.byShard),
      revisions: done.revisions,
    };
  }

  /**
   * An optimistic transaction over several shards.
   *
   * @throws {AspenError} `conflict` (with the {@linkcode Conflict} details) when a read no
   * longer holds or a key stays locked; `timeout` as {@linkcode TxnCoordinator.txn}.
   */
  async optimistic(
    request: { readonly reads: readonly ReadRecord[]; readonly writes: readonly WriteOp[] },
    deadlineMs: number,
  ): Promise<CrossShardOptimisticResult> {
    const success = request.writes.map((write): TxnOp =>
      write.op === "set"
        ? { type: "put", key: write.key, value: write.value, lease: 0, prevKv: false }
        : { type: "delete", key: write.key, prevKv: false }
    );
    const plan = this.#plan({ compare: [], reads: request.reads, success, failure: [] });
    const done = await this.#commit(plan, deadlineMs, "commit optimistic txn");
    return { txnId: done.txnId, home: plan.home, revisions: done.revisions };
  }

  /**
   * Makes `holder`'s intent on `key` of `shard` go away: waits while its transaction is pending
   * and within its deadline, then resolves the intent with the record's outcome, aborting the
   * record first when it is absent or past its deadline. The caller retries its request after.
   *
   * @throws {AspenError} `conflict` naming the key and holder when `deadlineMs` (the caller's
   * own deadline, monotonic clock) comes first; `timeout` when the shards do not answer.
   */
  async push(shard: number, key: string, holder: TxnHolder, deadlineMs: number): Promise<void> {
    const startMs = this.#options.nowMs();
    for (let poll = 0;; poll++) {
      const record = await this.#readRecord(holder, deadlineMs);
      if (record !== null && record.status !== "pending") {
        const outcome: TxnOutcome = record.status === "committed" ? "commit" : "abort";
        await this.#resolveOne(shard, holder.txnId, { outcome, branch: record.branch }, deadlineMs);
        return;
      }
      const hasWaited = this.#options.nowMs() - startMs >= INTENT_WAIT_MS;
      const isAbandoned = record === null || this.#options.wallMs() >= record.deadlineMs;
      if (hasWaited && isAbandoned) {
        const decided = await this.#decide(holder.home, {
          txnId: holder.txnId,
          outcome: "abort",
          branch: null,
          reason: "pushed",
        }, deadlineMs);
        await this.#resolveOne(shard, holder.txnId, decided, deadlineMs);
        return;
      }
      const pauseMs = hasWaited ? INTENT_WAIT_MS : INTENT_POLL_MS;
      if (this.#options.nowMs() + pauseMs >= deadlineMs) throw lockedError(key, holder, poll);
      await this.#options.sleep(pauseMs);
    }
  }

  #plan(spec: TxnSpec): TxnPlan {
    return planTxn(spec, (key) => shardForKey(key, this.#options.shardCount));
  }

  /**
   * Runs the protocol. An attempt that met a lock (pushing its holder for up to
   * TXN_PUSH_WAIT_MS) or that a pusher aborted is tried again after a growing pause, up to
   * TXN_LOCK_ATTEMPTS_MAX attempts and while the deadline leaves TXN_ATTEMPT_RESERVE_MS for
   * another; then the last refusal is the answer (409 conflict).
   */
  async #commit(plan: TxnPlan, deadlineMs: number, action: string): Promise<Committed> {
    for (let attempt = 1;; attempt++) {
      const tried = await this.#attempt(plan, deadlineMs, action);
      if (tried.kind === "done") return tried.result;
      const error = tried.kind === "aborted"
        ? tried.error
        : lockedAttemptsError(action, tried, attempt);
      if (attempt >= TXN_LOCK_ATTEMPTS_MAX) throw error;
      if (tried.kind === "locked") {
        const pushDeadlineMs = Math.min(deadlineMs, this.#options.nowMs() + TXN_PUSH_WAIT_MS);
        try {
          await this.push(tried.shard, tried.key, tried.holder, pushDeadlineMs);
        } catch (pushError) {
          // The holder is still pending: pause and try again, as after any other lock.
          if (!(pushError instanceof AspenError && pushError.code === "conflict")) throw pushError;
        }
      }
      const pauseMs = this.#retryPauseMs(attempt);
      if (this.#options.nowMs() + pauseMs + TXN_ATTEMPT_RESERVE_MS > deadlineMs) throw error;
      await this.#options.sleep(pauseMs);
    }
  }

  /**
   * The pause after the `attempt`-th refused attempt: TXN_RETRY_PAUSE_MS doubled per attempt,
   * capped at TXN_RETRY_PAUSE_MS_MAX, drawn between half of that and all of it.
   */
  #retryPauseMs(attempt: number): number {
    const ceilingMs = Math.min(TXN_RETRY_PAUSE_MS_MAX, TXN_RETRY_PAUSE_MS * 2 ** (attempt - 1));
    const halfMs = Math.ceil(ceilingMs / 2);
    return halfMs + this.#jitter.nextInt(ceilingMs - halfMs + 1);
  }

  /** One try under a fresh txnId: prepare, decide, resolve. */
  async #attempt(plan: TxnPlan, deadlineMs: number, action: string): Promise<Attempt> {
    const txnId = this.#newTxnId();
    const recordDeadlineMs = this.#options.wallMs() + TXN_DEADLINE_MS;
    const prepared = await this.#prepareAll(plan, { txnId, recordDeadlineMs }, deadlineMs);
    const refusal = firstRefusal(plan, prepared);
    if (refusal !== null) {
      await this.#abortAll(plan, txnId, refusal.reason, deadlineMs);
      if (refusal.kind === "locked") return refusal;
      const error = refusalError(refusal, txnId, action);
      if (refusal.kind === "aborted") return { kind: "aborted", error };
      throw error;
    }
    const isSuccess = [...prepared.values()].every((result) =>
      result.ok && result.compareSucceeded
    );
    const branch: TxnBranch = isSuccess ? "success" : "failure";
    const commit = { outcome: "commit" as const, branch };
    if (this.#options.plantedBug === "resolveBeforeDecide") {
      await this.#resolveAll(plan, txnId, commit, deadlineMs);
    }
    const decided = await this.#decide(plan.home, { txnId, ...commit, reason: "" }, deadlineMs);
    if (decided.outcome === "abort") {
      await this.#abortAll(plan, txnId, "aborted", deadlineMs);
      return {
        kind: "aborted",
        error: refusalError({ kind: "aborted", reason: "aborted" }, txnId, action),
      };
    }
    const result = await this.#resolveAll(plan, txnId, commit, deadlineMs);
    return { kind: "done", txnId, result: { txnId, branch, ...result } };
  }

  async #prepareAll(
    plan: TxnPlan,
    txn: { readonly txnId: string; readonly recordDeadlineMs: number },
    deadlineMs: number,
  ): Promise<Map<number, Prepared>> {
    const settled = await Promise.allSettled(plan.participants.map(async (shard) => {
      const part = plan.parts.get(shard);
      assert(part !== undefined, "prepareAll: every participant has a part");
      const result = await this.#step(shard, {
        type: "txnPrepare",
        txnId: txn.txnId,
        shard,
        home: plan.home,
        participants: plan.participants,
        deadlineMs: txn.recordDeadlineMs,
        compare: part.compare,
        reads: part.reads,
        success: part.success,
        failure: part.failure,
        leases: part.leases,
      }, deadlineMs);
      return expectResult(result, "txnPrepared");
    }));
    const prepared = new Map<number, Prepared>();
    for (const [position, outcome] of settled.entries()) {
      if (outcome.status === "rejected") {
        // A participant never answered: the attempt cannot commit. Leave nothing locked.
        await this.#abortAll(plan, txn.txnId, "unavailable", deadlineMs);
        throw outcome.reason;
      }
      prepared.set(plan.participants[position]!, outcome.value);
    }
    return prepared;
  }

  /**
   * Aborts the record, then resolves abort everywhere; best effort, pushers finish the rest.
   *
   * Invariant: a participant resolves only after the record is decided, aborts included. A
   * record left pending with its intents gone would never be pushed, so it would stay pending
   * forever; intents left behind an undecided record are found and pushed. So when the decide
   * gets no answer, nothing is resolved (the simulation caught the parallel version).
   */
  async #abortAll(plan: TxnPlan, txnId: string, reason: string, deadlineMs: number) {
    const abort = { outcome: "abort" as const, branch: null };
    const [decided] = await Promise.allSettled([
      this.#decide(plan.home, { txnId, ...abort, reason }, deadlineMs),
    ]);
    if (decided.status === "rejected") return;
    assert(decided.value.outcome === "abort", "abortAll: only its coordinator commits a txn");
    await Promise.allSettled(
      plan.participants.map((shard) => this.#resolveOne(shard, txnId, abort, deadlineMs)),
    );
  }

  async #decide(
    home: number,
    decision: { txnId: string; outcome: TxnOutcome; branch: TxnBranch | null; reason: string },
    deadlineMs: number,
  ): Promise<{ outcome: TxnOutcome; branch: TxnBranch | null }> {
    const result = await this.#step(home, { type: "txnDecide", ...decision }, deadlineMs);
    const decided = expectResult(result, "txnDecided");
    if (decided.status === "committed") return { outcome: "commit", branch: decided.branch };
    return { outcome: "abort", branch: null };
  }

  async #resolveAll(
    plan: TxnPlan,
    txnId: string,
    decision: { outcome: TxnOutcome; branch: TxnBranch | null },
    deadlineMs: number,
  ) {
    const byShard = new Map<number, readonly TxnOpResult[]>();
    const revisions = new Map<number, number>();
    try {
      await Promise.all(plan.participants.map(async (shard) => {
        const resolved = await this.#resolveOne(shard, txnId, decision, deadlineMs);
        byShard.set(shard, resolved.results);
        revisions.set(shard, resolved.revision);
      }));
    } catch (error) {
      throw new AspenError(
        "timeout",
        `Cannot confirm txn "${txnId}": its outcome is ${decision.outcome} but not every ` +
          `participant applied it before the deadline; GET /v1/txn/${txnId} tells when they have`,
        { txnId },
        { cause: error },
      );
    }
    return { byShard, revisions };
  }

  async #resolveOne(
    shard: number,
    txnId: string,
    decision: { outcome: TxnOutcome; branch: TxnBranch | null },
    deadlineMs: number,
  ): Promise<Extract<ApplyResult, { type: "txnResolved" }>> {
    const command: Command = { type: "txnResolve", txnId, ...decision };
    return expectResult(await this.#step(shard, command, deadlineMs), "txnResolved");
  }

  async #readRecord(holder: TxnHolder, deadlineMs: number): Promise<TxnRecord | null> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#options.transport.readRecord(holder.home, holder.txnId, deadlineMs);
      } catch (error) {
        if (!this.#isRetryable(error, attempt, deadlineMs)) throw error;
      }
    }
  }

  /** Runs an idempotent step, again when its answer was lost. */
  async #step(shard: number, command: Command, deadlineMs: number): Promise<ApplyResult> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#options.transport.run(shard, command, deadlineMs);
      } catch (error) {
        if (!this.#isRetryable(error, attempt, deadlineMs)) throw error;
      }
    }
  }

  #isRetryable(error: unknown, attempt: number, deadlineMs: number): boolean {
    if (!(error instanceof AspenError)) return false;
    if (!RETRYABLE_CODES.includes(error.code)) return false;
    return attempt < TXN_STEP_ATTEMPTS_MAX && this.#options.nowMs() < deadlineMs;
  }

  #newTxnId(): string {
    this.#sequence++;
    const txnId = `${this.#options.nodeId}.${Math.floor(this.#options.wallMs())}.${this.#sequence}`;
    assert(txnId.length <= TXN_ID_CHARS_MAX, "coordinator: txnId within TXN_ID_CHARS_MAX");
    return txnId;
  }
}

/** Codes of a step that may not have run; its commands are idempotent, so it is sent again. */
const RETRYABLE_CODES: readonly ErrorCode[] = [
  "timeout",
  "shard_unavailable",
  "not_leader",
  "proposal_dropped",
];

type Refusal =
  | {
    readonly kind: "locked";
    readonly reason: "locked";
    shard: number;
    key: string;
    holder: TxnHolder;
  }
  | { readonly kind: "conflict"; readonly reason: "conflict"; readonly conflict: Conflict }
  | { readonly kind: "aborted"; readonly reason: "aborted" };

/** Why the prepares forbid a commit (a lock first, then an OCC conflict, then an abort). */
function firstRefusal(plan: TxnPlan, prepared: ReadonlyMap<number, Prepared>): Refusal | null {
  let refusal: Refusal | null = null;
  for (const shard of plan.participants) {
    const result = prepared.get(shard);
    assert(result !== undefined, "firstRefusal: every participant answered");
    if (!result.ok && result.reason === "locked") {
      assert(result.key !== null && result.holder !== null, "firstRefusal: a lock names its key");
      return { kind: "locked", reason: "locked", shard, key: result.key, holder: result.holder };
    }
    if (refusal !== null) continue;
    if (result.ok && result.conflict !== null) {
      refusal = { kind: "conflict", reason: "conflict", conflict: result.conflict };
    } else if (!result.ok) refusal = { kind: "aborted", reason: "aborted" };
  }
  return refusal;
}

function refusalError(refusal: Refusal, txnId: string, action: string): AspenError {
  if (refusal.kind === "conflict") {
    const message = `Cannot ${action}: ${describeConflict(refusal.conflict)}`;
    return new AspenError("conflict", message, { ...refusal.conflict, txnId });
  }
  return new AspenError(
    "conflict",
    `Cannot ${action}: txn "${txnId}" was aborted by a concurrent reader or writer`,
    { txnId },
  );
}

/** The answer of a transaction whose attempts kept meeting locks. */
function lockedAttemptsError(
  action: string,
  lock: { readonly key: string; readonly holder: TxnHolder },
  attempts: number,
): AspenError {
  const { key, holder } = lock;
  return new AspenError(
    "conflict",
    `Cannot ${action}: key "${key}" is locked by txn "${holder.txnId}" (home shard ` +
      `${holder.home}) after ${attempts} attempts (at most TXN_LOCK_ATTEMPTS_MAX = ` +
      `${TXN_LOCK_ATTEMPTS_MAX} within the request's deadline); retry`,
    { key, holder: holder.txnId, home: holder.home },
  );
}

function lockedError(key: string, holder: TxnHolder, checks: number): AspenError {
  return new AspenError(
    "conflict",
    `Cannot use key "${key}": it is locked by txn "${holder.txnId}" (home shard ${holder.home}), ` +
      `still pending after ${checks} checks before the deadline; retry`,
    { key, holder: holder.txnId, home: holder.home },
  );
}

/** Narrows a step's result to the expected type; an error result becomes the thrown error. */
function expectResult<T extends ApplyResult["type"]>(
  result: ApplyResult,
  type: T,
): Extract<ApplyResult, { type: T }> {
  if (result.type === "error") {
    const error = applyResultError(result);
    assert(error !== null, "expectResult: an error result is an error");
    throw error;
  }
  assert(result.type === type, `expectResult: expected ${type}, got ${result.type}`);
  return result as Extract<ApplyResult, { type: T }>;
}
