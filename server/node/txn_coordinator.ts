/**
 * The coordinator of cross-shard transactions (issue 13): two-phase commit with intents and a
 * transaction record on the home shard (Percolator / CockroachDB style), with parallel commits.
 *
 * ```text
 *   prepare every participant (locks keys, reserves the entry's revision and previews both
 *   branches' results; the home's writes the staging record listing them)
 *        │ every prepare applied, no OCC conflict: the transaction IS committed
 *        ▼
 *   reply with each shard's previewed results and reserved revision, then (after the reply)
 *   resolve commit on every participant (runs the branch's ops at the reserved revision,
 *   drops the intents; the home's also marks the record committed)
 *
 *   a participant locked or unanswered ──> fence it (txnFence: its prepare can never apply)
 *   any refusal (fenced, aborted, OCC conflict) ──> resolve abort everywhere, then:
 *        locked: push the holder, pause, try again; aborted: pause, try again; conflict: 409
 * ```
 *
 * One consensus round before the reply (the prepares), where plain two-phase commit waits for
 * three (prepare, decide, resolve): the commit point is not an entry but the set of prepares,
 * and the record catches up in the home's resolve. The reply can come before the resolves
 * because the prepare fixes everything it names: each participant's writes carry the revision
 * of its prepare entry (the resolve writes them at that revision later, over keys locked in
 * between, so nothing else wrote them), and its op results are those of a dry run at the
 * prepare (the resolve asserts it gets the same). Until a participant resolves, its intents
 * make every reader and writer of those keys push, and a push resolves the intent only once
 * the record is decided (the home's resolve commits it, or a recovery does), so a read after
 * the reply sees the writes; and its watchers deliver no
 * event past the reserved revision (see shard/watch_hub.ts), so events stay in revision
 * order. The resolves then run in the background (TXN_RESOLVE_LATER_MS; a failure is handed
 * to `onResolveLaterError`, and pushers or the sweeper finish the job). Until the home's
 * resolve the record says pending, so `GET /v1/txn/{id}` reads the participants' votes
 * (cross_shard_txns.ts: the outcome {@linkcode TxnCoordinator.push}'s recovery would decide,
 * read rather than fenced) and says committed from the reply on.
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
 * ({@linkcode TxnCoordinator.push}): it reads the record, resolves the intent with a decided
 * record's outcome, and recovers a record that is absent or staging past its deadline: it
 * fences every participant (each answers its prepare's verdict, or is made to refuse the
 * prepare forever), decides the outcome those imply (commit when every one prepared without a
 * conflict, else abort) and resolves. A participant that resolved commit answers its verdict
 * too, so it is never aborted. A read-only transaction (gets and compares only) takes no
 * locks and no log entry at all (see {@linkcode TxnCoordinator.txn}). The coordinator does no
 * I/O of its own: the transport, clocks and sleep are injected, so the seeded simulation
 * (txn_sim_test.ts) drives it.
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
  evaluateCompare,
  type KeysRead,
  type KeyValue,
  placeKey,
  type ReadRecord,
  type TenantShards,
  TXN_ID_CHARS_MAX,
  type TxnBranch,
  type TxnHolder,
  type TxnOp,
  type TxnOpResult,
  type TxnOutcome,
  type TxnParticipantVote,
  type TxnRecord,
  type WriteOp,
} from "../../shard/mod.ts";
import { assert, SeededPrng } from "../../raft/mod.ts";
import { mergeResults, planTxn, type ShardPart, type TxnPlan, type TxnSpec } from "./txn_plan.ts";
import {
  type IntentMet,
  intentsMet,
  readThrough,
  type SeenAtT,
  seenAtT,
  type TwoReads,
} from "./txn_read_through.ts";

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
/**
 * How long the resolves that follow a one-round commit's reply may take (their own deadline,
 * from the reply). Past it the intents stay until a reader, writer or the sweeper pushes them.
 */
export const TXN_RESOLVE_LATER_MS = 2_000;
/** Resolves after replies in flight at once; past it a commit waits for its resolves. */
export const TXN_RESOLVES_LATER_MAX = 1_024;

assert(INTENT_POLL_MS < INTENT_WAIT_MS, "txn limits: a pusher polls within its wait");
assert(INTENT_WAIT_MS < TXN_DEADLINE_MS, "txn limits: the wait is shorter than a txn deadline");
assert(TXN_RETRY_PAUSE_MS <= TXN_RETRY_PAUSE_MS_MAX, "txn limits: pauses grow to their cap");

/**
 * Rounds of a lock-free read-only transaction that met a change or an intent before it answers
 * 409 conflict; the request's deadline may end them sooner.
 */
export const READ_ONLY_ATTEMPTS_MAX = 10;

/** Proposes the steps of a cross-shard transaction on the shards' leaders. */
export interface TxnTransport {
  /**
   * Proposes `command` on `shard`'s leader (retrying not_leader / unavailable); its result.
   * `isHeld`: the leader may hold it for a while, to share a round with the next proposal
   * there (ShardReplica.propose); a leader that cannot hold proposes it at once.
   */
  run(
    shard: number,
    command: Command,
    deadlineMs: number,
    options?: { readonly isHeld?: boolean },
  ): Promise<ApplyResult>;
  /** A linearizable read of txnId's record on its home shard (null when absent). */
  readRecord(home: number, txnId: string, deadlineMs: number): Promise<TxnRecord | null>;
  /**
   * A linearizable read of `keys` on `shard` with their intents, and whether one changed after
   * revision `changedAfter` (see StateMachine.readKeys).
   */
  readKeys(
    shard: number,
    keys: readonly string[],
    changedAfter: number | null,
    deadlineMs: number,
  ): Promise<KeysRead>;
  /**
   * A linearizable read of `shard`'s row of the transaction with its prepare's vote (null when
   * it has none); writes nothing.
   */
  readVote(shard: number, txnId: string, deadlineMs: number): Promise<TxnParticipantVote | null>;
}

/** The protocol bugs a coordinator can plant, for the simulation's tests of itself. */
export type PlantedTxnBug = "abortStaging" | "readThroughUnknown";

/** What a coordinator is built from. */
export interface TxnCoordinatorOptions {
  /** This node's id: the first part of every txnId it makes. */
  readonly nodeId: number;
  /** How many shards the keyspace has. */
  readonly shardCount: number;
  /** The tenants placed now (a getter, like the count; absent or undefined: none). */
  readonly tenants?: TenantShards | undefined;
  readonly transport: TxnTransport;
  /** A monotonic clock (request deadlines). */
  readonly nowMs: () => number;
  /** The wall clock (txnIds and record deadlines, which other nodes compare with theirs). */
  readonly wallMs: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /**
   * Told when the resolves that follow a one-round commit's reply failed (the supervisor of
   * those background steps): the transaction is committed all the same, and the intents it
   * left are resolved by whoever meets them.
   */
  readonly onResolveLaterError: (txnId: string, error: unknown) => void;
  /**
   * A protocol bug planted on purpose, for the simulation's test of itself only:
   * `abortStaging` lets a pusher abort a staging record past its deadline without asking its
   * participants (as plain two-phase commit may), though they may all have prepared;
   * `readThroughUnknown` lets a read-only transaction count the write of an intent's holder it
   * cannot place before or after its reads (as if it had committed before them).
   */
  readonly plantedBug?: PlantedTxnBug;
}

/** The answer to a cross-shard etcd-style transaction. */
export interface CrossShardTxnResult {
  /** Null for a read-only transaction: it has no record. */
  readonly txnId: string | null;
  readonly succeeded: boolean;
  readonly home: number;
  /** The result of each operation of the branch that ran, in request order. */
  readonly results: readonly { shard: number; result: TxnOpResult }[];
  /**
   * Each participant's revision of the transaction's writes: the one its prepare reserved (a
   * read-only transaction: the revision it read at).
   */
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
  #readsThroughIntents = 0;
  /** The resolves running after their transaction's reply, by txnId, with the keys it locks. */
  readonly #resolvingLater = new Map<string, ResolvingLater>();

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
    if (isReadOnly(request)) return await this.#readOnly(plan, request, deadlineMs);
    const done = await this.#commit(plan, deadlineMs, "run txn");
    return {
      txnId: done.txnId,
      succeeded: done.branch === "success",
      home: plan.home,
      results: mergeResults(plan, done.branch, done.byShard),
      revisions: done.revisions,
    };
  }

  /** Read-only transactions answered through intents their reads met (not waiting). */
  get readsThroughIntents(): number {
    return this.#readsThroughIntents;
  }

  /** Settles once every resolve that runs after its transaction's reply has ended. */
  async settled(): Promise<void> {
    while (this.#resolvingLater.size > 0) {
      await Promise.all([...this.#resolvingLater.values()].map((later) => later.done));
    }
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
    // A transaction this coordinator committed and is resolving: its resolve on that shard
    // ends the intent sooner than the record's polls would see it decided (one that failed
    // leaves it, and the caller, meeting it again, pushes it the usual way).
    const own = this.#resolvingLater.get(holder.txnId);
    if (own !== undefined) return await this.#hurry(holder.txnId, own, shard, deadlineMs);
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
        const decided = await this.#recover(holder, record, deadlineMs);
        if (decided !== null) {
          await this.#resolveOne(shard, holder.txnId, decided, deadlineMs);
          return;
        }
      }
      const pauseMs = hasWaited ? INTENT_WAIT_MS : INTENT_POLL_MS;
      if (this.#options.nowMs() + pauseMs >= deadlineMs) throw lockedError(key, holder, poll);
      await this.#options.sleep(pauseMs);
    }
  }

  /**
   * Decides an abandoned transaction (its record absent, or staging past its deadline) by what
   * its participants did; null when the home's prepare turned out to have applied meanwhile
   * (its record is there now: read it again).
   *
   * Without a record the participants are unknown, but the home's prepare writes the record, so
   * fencing the home alone decides: refused forever means abort. With a staging record every
   * participant is fenced: each answers its prepare's verdict, or refuses the prepare forever;
   * the outcome those imply cannot change any more, and every pusher computes the same one.
   */
  async #recover(
    holder: TxnHolder,
    record: TxnRecord | null,
    deadlineMs: number,
  ): Promise<Decision | null> {
    const { txnId, home } = holder;
    const abort = { txnId, outcome: "abort" as const, branch: null, reason: "pushed" };
    if (this.#options.plantedBug === "abortStaging") {
      return await this.#decide(home, abort, deadlineMs);
    }
    if (record === null) {
      const fenced = await this.#fence(home, txnId, deadlineMs);
      return fenced.ok ? null : await this.#decide(home, abort, deadlineMs);
    }
    const answers = new Map<number, Prepared>();
    await Promise.all(record.participants.map(async (shard) => {
      answers.set(shard, await this.#fence(shard, txnId, deadlineMs));
    }));
    const outcome = outcomeOf(record.participants, answers);
    assert(outcome !== null, "recover: every participant answered its fence");
    if (outcome.kind === "abort") return await this.#decide(home, abort, deadlineMs);
    const commit = { txnId, outcome: "commit" as const, branch: outcome.branch, reason: "" };
    return await this.#decide(home, commit, deadlineMs);
  }

  async #fence(shard: number, txnId: string, deadlineMs: number): Promise<Prepared> {
    return expectResult(
      await this.#step(shard, { type: "txnFence", txnId }, deadlineMs),
      "txnPrepared",
    );
  }

  /**
   * A read-only transaction (compares and gets only) without locks or log entries: every
   * participant is read linearizably in parallel, then again once every first read answered,
   * which puts one instant T between the two reads of every shard. When no key changed between
   * them, the answer is each key's state at T (txn_read_through.ts): an intent's holder that
   * committed before T counts with its write, one that did not with the state read; a holder
   * that cannot be placed is waited for (pushed) and the transaction reads again.
   *
   * Why that is one consistent snapshot: each key held the state answered throughout its
   * shard's interval between the reads, once every transaction counts from its commit point
   * (parallel commits: its last prepare) rather than from its resolves, which write at the
   * revision their prepare reserved. A transaction committed before T counts on every key it
   * wrote; one committed after T on none (its resolves come after its commit point, and a
   * resolve after a first read of a key that read had not seen held is a change). So the
   * answer is the state at T, which holds every transaction committed before T (strictly
   * serializable at T).
   */
  async #readOnly(
    plan: TxnPlan,
    request: { readonly compare: readonly Compare[]; readonly success: readonly TxnOp[] } & {
      readonly failure: readonly TxnOp[];
    },
    deadlineMs: number,
  ): Promise<CrossShardTxnResult> {
    const keysOf = readKeysByShard(plan);
    for (let attempt = 1;; attempt++) {
      const first = await this.#readRound(keysOf, null, deadlineMs);
      const second = await this.#readRound(keysOf, first, deadlineMs);
      const isChanged = [...second.values()].some((read) => read.changed);
      let held: IntentMet | null = null;
      if (!isChanged) {
        const reads = { first, second };
        const met = intentsMet(keysOf, reads);
        const seen = await this.#seenAtT(met, reads, deadlineMs);
        const through = readThrough(keysOf, reads, seen);
        if (through.kind === "snapshot") {
          if (met.size > 0) this.#readsThroughIntents++;
          return snapshotResult(plan, request, through.kvs, second);
        }
        held = through.held;
      }
      if (attempt >= READ_ONLY_ATTEMPTS_MAX) {
        throw new AspenError(
          "conflict",
          `Cannot run read-only txn: its keys kept changing or being locked over ${attempt} ` +
            `attempts (READ_ONLY_ATTEMPTS_MAX = ${READ_ONLY_ATTEMPTS_MAX}); retry`,
        );
      }
      if (held !== null) await this.#waitFor(held, deadlineMs);
      else await this.#options.sleep(this.#retryPauseMs(attempt));
    }
  }

  /**
   * Whether each transaction met had committed at T (see txn_read_through.ts): its record
   * names its participants, whose votes are read after the second reads. A read that fails
   * leaves it unknown (the caller waits for it, as for any other).
   */
  async #seenAtT(
    met: ReadonlyMap<string, IntentMet>,
    reads: TwoReads,
    deadlineMs: number,
  ): Promise<Map<string, SeenAtT>> {
    const seen = new Map<string, SeenAtT>();
    await Promise.all([...met].map(async ([txnId, { holder }]) => {
      try {
        const record = await this.#options.transport.readRecord(holder.home, txnId, deadlineMs);
        if (record?.status === "aborted") return void seen.set(txnId, { kind: "notCommitted" });
        if (record === null) return void seen.set(txnId, { kind: "unknown" });
        const votes = await Promise.all(
          record.participants.map((shard) =>
            this.#options.transport.readVote(shard, txnId, deadlineMs)
          ),
        );
        const placed = seenAtT(record.participants, votes, reads);
        const isPlanted = this.#options.plantedBug === "readThroughUnknown";
        const bug = { kind: "committed" as const, branch: "success" as const };
        seen.set(txnId, isPlanted && placed.kind === "unknown" ? bug : placed);
      } catch (error) {
        if (!(error instanceof AspenError)) throw error;
        seen.set(txnId, { kind: "unknown" });
      }
    }));
    return seen;
  }

  async #readRound(
    keysOf: ReadonlyMap<number, readonly string[]>,
    previous: ReadonlyMap<number, KeysRead> | null,
    deadlineMs: number,
  ): Promise<Map<number, KeysRead>> {
    const reads = new Map<number, KeysRead>();
    await Promise.all([...keysOf].map(async ([shard, keys]) => {
      const changedAfter = previous?.get(shard)?.revision ?? null;
      for (let attempt = 1;; attempt++) {
        try {
          const read = await this.#options.transport.readKeys(
            shard,
            keys,
            changedAfter,
            deadlineMs,
          );
          reads.set(shard, read);
          return;
        } catch (error) {
          if (!this.#isRetryable(error, attempt, deadlineMs)) throw error;
        }
      }
    }));
    return reads;
  }

  /** Pushes the holder of an intent a read met, for up to TXN_PUSH_WAIT_MS. */
  async #waitFor(held: IntentMet, deadlineMs: number): Promise<void> {
    const pushDeadlineMs = Math.min(deadlineMs, this.#options.nowMs() + TXN_PUSH_WAIT_MS);
    try {
      await this.push(held.shard, held.key, held.holder, pushDeadlineMs);
    } catch (error) {
      // Still pending: read again, up to READ_ONLY_ATTEMPTS_MAX rounds.
      if (!(error instanceof AspenError && error.code === "conflict")) throw error;
    }
  }

  #plan(spec: TxnSpec): TxnPlan {
    return planTxn(spec, (key) => placeKey(key, this.#options.shardCount, this.#options.tenants));
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
          // The holder is still pending, or its shards did not answer within the push's own
          // short bound (a busy cluster): pause and try again, as after any other lock. This
          // attempt changed nothing, so it must not answer `timeout` (an unknown outcome).
          if (!isPushGiveUp(pushError)) throw pushError;
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

  /**
   * One try under a fresh txnId: prepare (fencing first when needed), then reply and resolve
   * after the reply; when a participant previewed no results (too large, or a row prepared
   * before one-round commits) or the txn has lease steps, resolve first and then reply.
   */
  async #attempt(plan: TxnPlan, deadlineMs: number, action: string): Promise<Attempt> {
    // Keys still locked by this coordinator's own committed transactions (a client's next
    // transaction on the keys of its last one) are awaited rather than met as locks.
    const keys = planKeys(plan);
    for (const [laterId, later] of [...this.#resolvingLater]) {
      for (const [shard, lockedKeys] of later.keysByShard) {
        if (lockedKeys.some((key) => keys.has(key))) {
          await this.#hurry(laterId, later, shard, deadlineMs);
        }
      }
    }
    const txnId = this.#newTxnId();
    const recordDeadlineMs = this.#options.wallMs() + TXN_DEADLINE_MS;
    const answers = await this.#prepareAll(plan, { txnId, recordDeadlineMs }, deadlineMs);
    const lock = firstLock(plan, answers);
    const known = new Map<number, Prepared>();
    const settled = await this.#settle(plan, txnId, { answers, known }, deadlineMs);
    if (settled.kind === "abort") {
      const abort = { outcome: "abort" as const, branch: null };
      await Promise.allSettled(
        plan.participants.map((shard) => this.#resolveOne(shard, txnId, abort, deadlineMs)),
      );
      if (lock !== null) return lock;
      const failure = firstFailure(plan, answers);
      if (failure !== null) throw failure;
      const error = refusalError(settled.refusal, txnId, action);
      if (settled.refusal.kind === "aborted") return { kind: "aborted", error };
      throw error;
    }
    const commit = { outcome: "commit" as const, branch: settled.branch };
    const early = preparedResult(plan, settled.branch, known);
    // Lease steps keep the reply after the resolves: a lease's keep-alive, grant check and
    // timer take no intent into account, so a revocation must have happened when it answers.
    const hasLeaseSteps = [...plan.parts.values()].some((part) => part.leases.length > 0);
    const isLater = !hasLeaseSteps && this.#resolvingLater.size < TXN_RESOLVES_LATER_MAX;
    if (early !== null && isLater) {
      this.#resolveLater(plan, txnId, commit);
      return { kind: "done", txnId, result: { txnId, branch: settled.branch, ...early } };
    }
    const result = await this.#resolveAll(plan, txnId, commit, deadlineMs);
    // A participant prepared before one-round commits wrote at its resolve's revision.
    const revisions = new Map<number, number>();
    for (const [shard, resolved] of result.revisions) {
      const answer = known.get(shard);
      const reserved = answer?.ok === true ? answer.reservedRevision : null;
      revisions.set(shard, reserved ?? resolved);
    }
    return {
      kind: "done",
      txnId,
      result: { txnId, branch: settled.branch, byShard: result.byShard, revisions },
    };
  }

  /**
   * Resolves a committed transaction after its reply, under its own deadline
   * (TXN_RESOLVE_LATER_MS); a failure goes to `onResolveLaterError`. The resolves are held:
   * each leader proposes its resolve with the next proposal it gets (the client's next
   * transaction there, typically), or alone after PROPOSAL_HOLD_MS; a reader that needs one
   * sooner hurries it (see {@linkcode TxnCoordinator.push}).
   */
  #resolveLater(plan: TxnPlan, txnId: string, decision: Decision): void {
    assert(!this.#resolvingLater.has(txnId), "resolveLater: one background resolve per txn");
    const deadlineMs = this.#options.nowMs() + TXN_RESOLVE_LATER_MS;
    const byShard = new Map<number, Promise<void>>();
    const hurried = new Map<number, Promise<void>>();
    for (const shard of plan.participants) {
      const held = this.#resolveOne(shard, txnId, decision, deadlineMs, { isHeld: true });
      // Applied: nothing left to hurry there.
      byShard.set(shard, held.then(() => void hurried.set(shard, Promise.resolve())));
    }
    const done = Promise.all(byShard.values()).then(
      () => {},
      (error: unknown) =>
        this.#options.onResolveLaterError(txnId, unresolvedError(txnId, decision.outcome, error)),
    ).finally(() => this.#resolvingLater.delete(txnId));
    const keysByShard = new Map<number, string[]>();
    for (const [shard, part] of plan.parts) keysByShard.set(shard, [...partKeys(part)]);
    this.#resolvingLater.set(txnId, {
      done,
      decision,
      byShard,
      hurried,
      keysByShard,
    });
  }

  /**
   * Gets `later`'s resolve on `shard` done now: a resolve that is not held, proposed beside the
   * held one, makes its leader propose both (the second changes nothing). Never throws: a
   * failure leaves the intent, and whoever meets it again pushes it the usual way.
   */
  async #hurry(
    txnId: string,
    later: ResolvingLater,
    shard: number,
    deadlineMs: number,
  ): Promise<void> {
    const held = later.byShard.get(shard);
    if (held === undefined) return;
    let hurried = later.hurried.get(shard);
    if (hurried === undefined) {
      const resolved = this.#resolveOne(shard, txnId, later.decision, deadlineMs);
      hurried = Promise.allSettled([resolved, held]).then(() => {});
      later.hurried.set(shard, hurried);
    }
    await hurried;
  }

  /** Every participant's prepare, in parallel; a participant that did not answer is a failure. */
  async #prepareAll(
    plan: TxnPlan,
    txn: { readonly txnId: string; readonly recordDeadlineMs: number },
    deadlineMs: number,
  ): Promise<Map<number, PromiseSettledResult<Prepared>>> {
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
    return new Map(settled.map((answer, position) => [plan.participants[position]!, answer]));
  }

  /**
   * The outcome the prepares imply. A participant that met a lock or did not answer may still
   * prepare later (a copy of its prepare in flight), so unless another answer already forbids
   * the commit it is fenced first: then its answer is final either way.
   *
   * @throws {AspenError} `timeout` with the txnId when a fence got no answer and the outcome
   * is still open (a pusher decides it later).
   */
  async #settle(
    plan: TxnPlan,
    txnId: string,
    prepares: {
      readonly answers: ReadonlyMap<number, PromiseSettledResult<Prepared>>;
      /** Filled with each participant's final answer (its prepare's, or its fence's). */
      readonly known: Map<number, Prepared>;
    },
    deadlineMs: number,
  ): Promise<Outcome> {
    const { answers, known } = prepares;
    for (const [shard, answer] of answers) {
      if (answer.status === "fulfilled" && !isLocked(answer.value)) known.set(shard, answer.value);
    }
    const outcome = outcomeOf(plan.participants, known);
    if (outcome !== null) return outcome;
    const open = plan.participants.filter((shard) => !known.has(shard));
    const fences = await Promise.allSettled(
      open.map((shard) => this.#fence(shard, txnId, deadlineMs)),
    );
    for (const [position, fence] of fences.entries()) {
      if (fence.status === "fulfilled") known.set(open[position]!, fence.value);
    }
    const fenced = outcomeOf(plan.participants, known);
    if (fenced !== null) return fenced;
    const failure = fences.find((fence) => fence.status === "rejected");
    throw new AspenError(
      "timeout",
      `Cannot confirm txn "${txnId}": a participant did not answer, so its outcome is not ` +
        `known yet; GET /v1/txn/${txnId} tells it once decided`,
      { txnId },
      { cause: failure?.status === "rejected" ? failure.reason : undefined },
    );
  }

  async #decide(
    home: number,
    decision: { txnId: string; outcome: TxnOutcome; branch: TxnBranch | null; reason: string },
    deadlineMs: number,
  ): Promise<Decision> {
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
      throw unresolvedError(txnId, decision.outcome, error);
    }
    return { byShard, revisions };
  }

  async #resolveOne(
    shard: number,
    txnId: string,
    decision: { outcome: TxnOutcome; branch: TxnBranch | null },
    deadlineMs: number,
    options?: { readonly isHeld: boolean },
  ): Promise<Extract<ApplyResult, { type: "txnResolved" }>> {
    const command: Command = { type: "txnResolve", txnId, ...decision };
    return expectResult(await this.#step(shard, command, deadlineMs, options), "txnResolved");
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
  async #step(
    shard: number,
    command: Command,
    deadlineMs: number,
    options?: { readonly isHeld: boolean },
  ): Promise<ApplyResult> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#options.transport.run(shard, command, deadlineMs, options);
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

/** The resolves running after their transaction's reply. */
interface ResolvingLater {
  /** Settles when every participant resolved, or the resolve failed (and was reported). */
  readonly done: Promise<void>;
  readonly decision: Decision;
  /** Each participant's held resolve: resolves once it applied, rejects when it failed. */
  readonly byShard: ReadonlyMap<number, Promise<void>>;
  /**
   * The participants whose resolve was hurried or applied: settles once it applied or failed
   * (at once for one that applied).
   */
  readonly hurried: Map<number, Promise<void>>;
  /** The keys the transaction names on each participant (locked until it resolves). */
  readonly keysByShard: ReadonlyMap<number, readonly string[]>;
}

/** Every key a plan names: compares, reads and ops of every participant. */
function planKeys(plan: TxnPlan): Set<string> {
  const keys = new Set<string>();
  for (const part of plan.parts.values()) {
    for (const key of partKeys(part)) keys.add(key);
  }
  return keys;
}

/** Every key one participant's part names. */
function partKeys(part: ShardPart): Set<string> {
  const keys = new Set<string>();
  for (const item of [...part.compare, ...part.reads]) keys.add(item.key);
  for (const op of [...part.success, ...part.failure]) {
    if (op.type !== "range") keys.add(op.key);
  }
  return keys;
}

/** Whether a transaction only reads: compares and gets, no lease step. */
function isReadOnly(
  request: { readonly success: readonly TxnOp[]; readonly failure: readonly TxnOp[] } & {
    readonly leases?: readonly unknown[];
  },
): boolean {
  if ((request.leases?.length ?? 0) > 0) return false;
  return [...request.success, ...request.failure].every((op) => op.type === "get");
}

/** Every key a read-only transaction reads on each participant, once each. */
function readKeysByShard(plan: TxnPlan): Map<number, string[]> {
  const keysOf = new Map<number, string[]>();
  for (const [shard, part] of plan.parts) {
    const keys = new Set<string>(part.compare.map((compare) => compare.key));
    for (const op of [...part.success, ...part.failure]) {
      if (op.type !== "range") keys.add(op.key);
    }
    keysOf.set(shard, [...keys]);
  }
  return keysOf;
}

/** The answer of a read-only transaction from its snapshot. */
function snapshotResult(
  plan: TxnPlan,
  request: { readonly compare: readonly Compare[]; readonly success: readonly TxnOp[] } & {
    readonly failure: readonly TxnOp[];
  },
  snapshot: ReadonlyMap<string, KeyValue | null>,
  reads: ReadonlyMap<number, KeysRead>,
): CrossShardTxnResult {
  const revisions = new Map<number, number>();
  for (const [shard, read] of reads) revisions.set(shard, read.revision);
  const succeeded = request.compare.every((compare) =>
    evaluateCompare(compare, snapshot.get(compare.key) ?? null)
  );
  const ops = succeeded ? request.success : request.failure;
  const shards = succeeded ? plan.successShards : plan.failureShards;
  const results = ops.map((op, position): { shard: number; result: TxnOpResult } => {
    assert(op.type === "get", "snapshotResult: a read-only txn has gets only");
    return { shard: shards[position]!, result: { type: "get", kv: snapshot.get(op.key) ?? null } };
  });
  return { txnId: null, succeeded, home: plan.home, results, revisions };
}

/** Codes of a step that may not have run; its commands are idempotent, so it is sent again. */
/** Whether a push a coordinator made between attempts merely gave up (see #commit). */
function isPushGiveUp(error: unknown): boolean {
  if (!(error instanceof AspenError)) return false;
  return error.code === "conflict" || RETRYABLE_CODES.includes(error.code);
}

const RETRYABLE_CODES: readonly ErrorCode[] = [
  "timeout",
  "shard_unavailable",
  "not_leader",
  "proposal_dropped",
];

/** An outcome and its branch, as a decide or a resolve names it. */
interface Decision {
  readonly outcome: TxnOutcome;
  readonly branch: TxnBranch | null;
}

type Refusal =
  | { readonly kind: "conflict"; readonly conflict: Conflict }
  | { readonly kind: "aborted" };

/** What the prepares (or fences) of every participant imply; null while one is open. */
type Outcome =
  | { readonly kind: "commit"; readonly branch: TxnBranch }
  | { readonly kind: "abort"; readonly refusal: Refusal };

function isLocked(result: Prepared): boolean {
  return !result.ok && result.reason === "locked";
}

/**
 * The outcome `answers` imply: abort as soon as one participant refused (aborted or fenced)
 * or found an OCC conflict, whatever the others do; commit when every participant prepared;
 * null otherwise. Deterministic, so the coordinator and every pusher agree on it.
 */
function outcomeOf(
  participants: readonly number[],
  answers: ReadonlyMap<number, Prepared>,
): Outcome | null {
  let aborted = false;
  for (const shard of participants) {
    const answer = answers.get(shard);
    if (answer?.ok === true && answer.conflict !== null) {
      return { kind: "abort", refusal: { kind: "conflict", conflict: answer.conflict } };
    }
    if (answer?.ok === false && answer.reason === "aborted") aborted = true;
  }
  if (aborted) return { kind: "abort", refusal: { kind: "aborted" } };
  let isSuccess = true;
  for (const shard of participants) {
    const answer = answers.get(shard);
    if (answer === undefined || !answer.ok) return null;
    isSuccess &&= answer.compareSucceeded;
  }
  return { kind: "commit", branch: isSuccess ? "success" : "failure" };
}

/**
 * The answer of a committed transaction from its prepares alone: each participant's results of
 * `branch` and the revision it reserved. Null when one was prepared before one-round commits
 * (it gives neither) or its results were too large to preview (TXN_PREVIEW_BYTES_MAX): then
 * the resolves give them.
 */
function preparedResult(
  plan: TxnPlan,
  branch: TxnBranch,
  known: ReadonlyMap<number, Prepared>,
): Pick<Committed, "byShard" | "revisions"> | null {
  const byShard = new Map<number, readonly TxnOpResult[]>();
  const revisions = new Map<number, number>();
  for (const shard of plan.participants) {
    const answer = known.get(shard);
    assert(answer !== undefined && answer.ok, "preparedResult: every participant prepared");
    if (answer.reservedRevision === null || answer.results === null) return null;
    byShard.set(shard, branch === "success" ? answer.results.success : answer.results.failure);
    revisions.set(shard, answer.reservedRevision);
  }
  return { byShard, revisions };
}

/** The first lock a prepare met, as an attempt to try again. */
function firstLock(
  plan: TxnPlan,
  answers: ReadonlyMap<number, PromiseSettledResult<Prepared>>,
): Extract<Attempt, { kind: "locked" }> | null {
  for (const shard of plan.participants) {
    const answer = answers.get(shard);
    if (answer?.status !== "fulfilled" || answer.value.ok || answer.value.reason !== "locked") {
      continue;
    }
    const { key, holder } = answer.value;
    assert(key !== null && holder !== null, "firstLock: a lock names its key");
    return { kind: "locked", shard, key, holder };
  }
  return null;
}

/** Why the first participant that did not answer its prepare failed, or null. */
function firstFailure(
  plan: TxnPlan,
  answers: ReadonlyMap<number, PromiseSettledResult<Prepared>>,
): unknown {
  for (const shard of plan.participants) {
    const answer = answers.get(shard);
    if (answer?.status === "rejected") return answer.reason;
  }
  return null;
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

/** A decided transaction that some participant did not resolve before the deadline. */
function unresolvedError(txnId: string, outcome: TxnOutcome, cause: unknown): AspenError {
  return new AspenError(
    "timeout",
    `Cannot confirm txn "${txnId}": its outcome is ${outcome} but not every participant ` +
      `applied it before the deadline; GET /v1/txn/${txnId} tells when they have`,
    { txnId },
    { cause },
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
