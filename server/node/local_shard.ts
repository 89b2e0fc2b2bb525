/**
 * One shard replica hosted by this node: its SQLite log, its SQLite state machine, its lessor
 * and its driver, plus the code that executes a {@linkcode ShardRequest} against them.
 *
 * Files live in `<data_dir>/shard-<id>/`: `raft-log.db` and `state-machine.db`.
 */
import {
  type ConfState,
  type Message,
  type RaftConfig,
  type ReplicaId,
  replicaId,
} from "../../raft/mod.ts";
import {
  type ApplyResult,
  applyResultError,
  AspenError,
  type Command,
  encodeCommand,
  type ErrorDetails,
  leaseError,
  Lessor,
  notLeaderError,
  type ReplicaStatus,
  ShardReplica,
  SqliteLogStorage,
  StateMachine,
  type WatchEvent,
} from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import { MetaSwaps } from "./meta_swaps.ts";
import { type ReplicaView, replicaViews, snapshotRefusals } from "./replica_view.ts";
import type { ShardRange, ShardRequest } from "./shard_request.ts";

/** The most events one remote watch poll returns. */
export const WATCH_POLL_EVENTS_MAX = 1_000;
/** The longest a remote watch poll waits for events. */
export const WATCH_POLL_WAIT_MS_MAX = 2_000;

/** One poll of a remote watch: events (or a final error) and where to continue. */
export interface WatchPoll {
  readonly items: readonly (
    | WatchEvent
    | { type: "error"; code: string; message: string; details: ErrorDetails }
  )[];
  readonly nextRevision: number;
}

/** How often a leader looks for expired leases (and for snapshots it refuses to send). */
export const LEASE_CHECK_INTERVAL_MS = 500;
/** The window over which proposals per second are measured. */
export const RATE_WINDOW_MS = 1_000;
/** The most reads waiting for this replica to apply an index (follower reads). */
export const APPLIED_WAITERS_MAX = 16_384;

/** A replica's view of the shard for `/v1/cluster/status`. */
export interface ShardStatusView {
  readonly id: number;
  readonly leader: number | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly replicas: readonly ReplicaView[];
  readonly stats: {
    readonly proposalsPerSecond: number;
    readonly optimisticTxns: number;
    readonly conflicts: number;
    /** p99 of recent apply batches on this replica, ms; null before any. */
    readonly applyLatencyP99Ms: number | null;
    readonly turnMsMax: number;
  };
}

/** What opening a local shard needs. */
export interface LocalShardOptions {
  readonly shard: number;
  readonly nodeId: number;
  readonly dir: string;
  /** The initial membership, used only when the shard's storage is new. */
  readonly voters: readonly number[];
  readonly raft: Omit<RaftConfig, "id" | "applied">;
  readonly tickMs: number;
  /** Applied entries between snapshots; absent: the replica's default. */
  readonly snapshotIntervalEntries?: number;
  readonly send: (messages: readonly Message[]) => void;
  readonly nowMs: () => number;
  /** Whether the peer link to `node` is up (for replica status). */
  readonly isPeerUp: (node: number) => boolean;
  /**
   * The error for a client write this node must refuse while it leads the shard (its disk is
   * below the reserve), or null to propose it. Absent: every write is proposed.
   */
  readonly refuseWrite?: (command: Command) => AspenError | null;
  readonly logger: Logger;
}

/** A shard replica hosted here. */
export class LocalShard {
  readonly shard: number;
  readonly replica: ShardReplica<ApplyResult>;
  readonly stateMachine: StateMachine;
  readonly #lessor = new Lessor();
  readonly #options: LocalShardOptions;
  readonly #leaseTimer: ReturnType<typeof setInterval>;
  /** The snapshot index whose refusal was logged, per replica, while it is refused. */
  readonly #refusalsLogged = new Map<number, number>();
  /** Waiters for an applied index, released in index order as entries apply. */
  #appliedWaiters: { index: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  #rateSample = { atMs: 0, proposals: 0, perSecond: 0 };
  readonly #metaSwaps = new MetaSwaps({
    read: (read) => this.replica.read(read),
    getMeta: (name) => this.stateMachine.getMeta(name),
    propose: (command) => this.proposeChecked({ kind: "propose", command }),
  });

  private constructor(
    options: LocalShardOptions,
    stateMachine: StateMachine,
    storage: SqliteLogStorage,
  ) {
    this.shard = options.shard;
    this.#options = options;
    this.stateMachine = stateMachine;
    this.#lessor.load(stateMachine.leases(), Math.floor(options.nowMs()));
    this.replica = new ShardReplica<ApplyResult>({
      shard: options.shard,
      raft: { ...options.raft, id: replicaId(options.nodeId) },
      storage,
      stateMachine: this.#observedStateMachine(),
      send: options.send,
      nowMs: options.nowMs,
      tickMs: options.tickMs,
      ...(options.snapshotIntervalEntries === undefined
        ? {}
        : { snapshotIntervalEntries: options.snapshotIntervalEntries }),
      onLeaderChange: (status) => this.#onLeaderChange(status),
    });
    this.#leaseTimer = setInterval(() => {
      this.#expireLeases();
      this.#noticeSnapshotRefusals();
    }, LEASE_CHECK_INTERVAL_MS);
  }

  /**
   * Opens (or creates) the shard's files and starts its replica.
   *
   * @throws {AspenError} `storage_corrupt` when a file is damaged.
   */
  static async open(options: LocalShardOptions): Promise<LocalShard> {
    await Deno.mkdir(options.dir, { recursive: true });
    const paths: ShardPaths = {
      log: `${options.dir}/raft-log.db`,
      stateMachine: `${options.dir}/state-machine.db`,
    };
    // Decide before opening: opening creates a missing file, and a refused start must leave
    // the folder as it found it.
    const isLogNew = await isMissingOrEmpty(paths.log);
    const isStateMachineNew = await isMissingOrEmpty(paths.stateMachine);
    if (isLogNew && !isStateMachineNew) {
      throw logLostError(options.shard, paths, "missing or empty");
    }
    const confState: ConfState = { voters: options.voters.map(replicaId), learners: [] };
    // Log fsyncs run off the event loop (see SqliteLogStorage.flush): a FULL commit blocked
    // every shard of the node for the whole fsync, once per shard and Ready.
    const storage = SqliteLogStorage.open({
      path: paths.log,
      bootstrap: confState,
      isFlushDeferred: true,
    });
    let stateMachine: StateMachine | null = null;
    try {
      if (isStateMachineNew) checkNothingCommitted(storage, paths, options);
      stateMachine = StateMachine.open({ path: paths.stateMachine, synchronous: "normal" });
      checkLogCoversApplied(storage, stateMachine, paths, options.shard);
    } catch (error) {
      stateMachine?.close();
      storage.close();
      throw error;
    }
    const shard = new LocalShard(options, stateMachine, storage);
    shard.replica.start();
    return shard;
  }

  /**
   * Executes a request against this replica (as the leader, unless it is serializable).
   *
   * @throws {AspenError} `not_leader` with a hint when this replica cannot serve it.
   */
  async execute(request: ShardRequest): Promise<unknown> {
    const machine = this.stateMachine;
    switch (request.kind) {
      case "propose":
        this.#checkWritable(request.command);
        return await this.replica.propose(encodeCommand(request.command));
      case "get":
        return await this.#read(request.serializable, () => ({
          kv: machine.get(request.key),
          revision: machine.appliedIndex(),
        }));
      case "range":
        return await this.#read(request.serializable, () => this.#range(request.range));
      case "leaseKeepAlive":
        return this.#keepAlive(request.id);
      case "leaseInfo":
        return await this.#read(false, () => this.#leaseInfo(request.id));
      case "status": {
        // Only the leader knows every replica's progress: others send the caller there.
        const status = this.replica.status();
        if (status.role !== "leader") throw notLeaderError(this.shard, status.leader);
        return this.statusView();
      }
      case "watchPoll":
        return await this.#watchPoll(request);
      case "transferLeader":
        this.#checkNotStalled("transfer the leadership of");
        return {
          shard: this.shard,
          leader: await this.replica.transferLeadership(replicaId(request.to) as ReplicaId),
        };
      case "readIndex":
        // Applied once the ReadIndex round confirmed leadership: at least the read index.
        return await this.replica.read(() => this.stateMachine.appliedIndex());
      case "metaRead":
        return await this.replica.read(() => ({ value: machine.getMeta(request.name) }));
      case "metaSwap":
        return await this.#metaSwaps.swap(request);
    }
  }

  /**
   * Resolves once this replica has applied `index` (at once when it has).
   *
   * @throws {AspenError} `too_many_requests` past APPLIED_WAITERS_MAX, `shard_unavailable`
   * when the shard closes first.
   */
  waitApplied(index: number): Promise<void> {
    if (this.stateMachine.appliedIndex() >= index) return Promise.resolve();
    if (this.#appliedWaiters.length >= APPLIED_WAITERS_MAX) {
      return Promise.reject(
        new AspenError(
          "too_many_requests",
          `Cannot wait for shard ${this.shard} to apply index ${index}: ` +
            `${this.#appliedWaiters.length} reads wait and the limit is ${APPLIED_WAITERS_MAX}`,
          { shard: this.shard },
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#appliedWaiters.push({ index, resolve, reject });
    return promise;
  }

  /** Proposes and turns an error result into a thrown `AspenError`. */
  async proposeChecked(request: Extract<ShardRequest, { kind: "propose" }>): Promise<ApplyResult> {
    const result = await this.execute(request) as ApplyResult;
    const error = applyResultError(result);
    if (error !== null) throw error;
    return result;
  }

  /** This replica's view of the shard; a leader knows every replica's progress. */
  statusView(): ShardStatusView {
    const status = this.replica.status();
    const stats = this.stateMachine.stats();
    const replicas = replicaViews(status, this.#options.isPeerUp);
    return {
      id: this.shard,
      leader: status.leader,
      term: status.term,
      commitIndex: status.commit,
      appliedIndex: this.stateMachine.appliedIndex(),
      lastIndex: status.lastIndex,
      replicas,
      stats: {
        proposalsPerSecond: this.#proposalRate(status),
        optimisticTxns: stats.optimisticTxns,
        conflicts: stats.conflicts,
        applyLatencyP99Ms: status.stats.applyMsRecent.length === 0
          ? null
          : percentile(status.stats.applyMsRecent, 0.99),
        turnMsMax: status.stats.turnMsMax,
      },
    };
  }

  /**
   * Moves leadership to the most caught-up other voter, if this replica leads; used on a
   * graceful shutdown so that the shard does not wait an election timeout.
   */
  handOverLeadership(): void {
    const status = this.replica.status();
    if (status.role !== "leader" || status.stall !== null) return;
    const candidates = status.progress
      .filter((progress) => progress.id !== status.id && !progress.isLearner)
      .sort((a, b) => b.match - a.match);
    const target = candidates[0];
    if (target === undefined) return;
    // Not awaited: the node closes after a grace period whether or not the replica's loop
    // got to it (a replica waiting for a stalled disk never would).
    this.replica.transferLeadership(target.id).catch((error: unknown) => {
      this.#options.logger.warn("Cannot hand over leadership", {
        shard: this.shard,
        reason: error instanceof Error ? error.message : String(error),
      });
    });
  }

  /** Stops the driver and closes both databases. */
  close(): void {
    clearInterval(this.#leaseTimer);
    const error = new AspenError("shard_unavailable", `Cannot read shard ${this.shard}: closed`, {
      shard: this.shard,
    });
    for (const waiter of this.#appliedWaiters.splice(0)) waiter.reject(error);
    this.replica.close();
  }

  /**
   * Serves one poll of a watch for a node that hosts no replica of this shard: the events
   * from `fromRevision` that arrive within `waitMs` (at most WATCH_POLL_EVENTS_MAX), and the
   * revision to ask for next. A final error (compacted, cancelled) ends the list.
   */
  async #watchPoll(request: Extract<ShardRequest, { kind: "watchPoll" }>): Promise<WatchPoll> {
    const from = request.fromRevision ?? this.stateMachine.appliedIndex() + 1;
    const watcher = this.stateMachine.watch(request.filter, { fromRevision: from });
    const items: WatchPoll["items"][number][] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), Math.min(request.waitMs, WATCH_POLL_WAIT_MS_MAX));
    });
    try {
      while (items.length < WATCH_POLL_EVENTS_MAX) {
        const item = await Promise.race([watcher.next(), timeout]);
        if (item === null) break;
        if (item.type === "error") {
          items.push({
            type: "error",
            code: item.error.code,
            message: item.error.message,
            details: item.error.details,
          });
          break;
        }
        items.push(item);
      }
      return { items, nextRevision: watcher.resumeRevision() };
    } finally {
      clearTimeout(timer);
      watcher.cancel();
    }
  }

  /**
   * Refuses a client write the node turned away (a disk below its reserve). Only a leader
   * does: elsewhere the replica answers `not_leader`, so the write goes to the leader, whose
   * disk is the one that matters.
   *
   * @throws {AspenError} `no_space` or `storage_error`.
   */
  #checkWritable(command: Command): void {
    if (this.replica.leader() !== this.#options.nodeId) return;
    const refusal = this.#options.refuseWrite?.(command) ?? null;
    if (refusal !== null) throw refusal;
  }

  /**
   * Refuses an admin call while the replica holds a Ready that failed on storage: the Raft
   * core takes no call until that Ready is advanced.
   *
   * @throws {AspenError} `no_space` or `storage_error`.
   */
  #checkNotStalled(action: string): void {
    const stall = this.replica.storageStall();
    if (stall === null) return;
    throw new AspenError(
      stall.kind,
      `Cannot ${action} shard ${this.shard} now: its storage is stalled (${stall.reason}); ` +
        "try again once the alarm clears",
      { shard: this.shard },
    );
  }

  /** The lessor counts whole milliseconds. */
  #lessorNow(): number {
    return Math.floor(this.#options.nowMs());
  }

  #read<T>(serializable: boolean, read: () => T): Promise<T> | T {
    return serializable ? read() : this.replica.read(read);
  }

  #range(range: ShardRange): unknown {
    const result = this.stateMachine.range({
      range: range.range,
      limit: range.limit,
      after: range.after,
      keysOnly: range.keysOnly,
      countOnly: range.countOnly,
      reverse: range.reverse,
    });
    return { ...result, revision: this.stateMachine.appliedIndex() };
  }

  #keepAlive(id: number): unknown {
    const result = this.#lessor.keepAlive(id, this.#lessorNow());
    if (result.type === "not_leader") {
      const status = this.replica.status();
      throw new AspenError("not_leader", `Cannot keep lease ${id} alive here: not the leader`, {
        shard: this.shard,
        leader: status.leader,
      });
    }
    if (result.type === "not_found") {
      throw leaseError({ code: "lease_not_found", action: "keepAlive", lease: id });
    }
    return { id, ttl: result.lease.ttlSeconds, remainingMs: result.remainingMs };
  }

  #leaseInfo(id: number): unknown {
    const lease = this.stateMachine.lease(id);
    if (lease === null) {
      throw leaseError({ code: "lease_not_found", action: "read", lease: id });
    }
    const remainingMs = this.#lessor.remainingMs(id, this.#lessorNow()) ?? 0;
    return { id, ttl: lease.ttlSeconds, remainingMs, keys: lease.keys };
  }

  /** The state machine as the driver sees it, feeding apply results to the lessor. */
  #observedStateMachine() {
    const machine = this.stateMachine;
    const lessor = this.#lessor;
    const nowMs = () => this.#lessorNow();
    return {
      appliedIndex: () => machine.appliedIndex(),
      apply: (entries: readonly { index: number; data: Uint8Array }[]) => {
        const results = machine.apply(entries.map(asCommandEntry));
        for (const result of results) lessor.observe(result, nowMs());
        this.#releaseApplied();
        return results;
      },
      snapshot: () => machine.snapshot(),
      restore: (data: Uint8Array) => {
        machine.restore(data);
        lessor.load(machine.leases(), nowMs());
        // The replica's constructor may restore (finishing an interrupted snapshot install)
        // before `this.replica` is set; a replica being built is no leader yet.
        const replica = this.replica as ShardReplica<ApplyResult> | undefined;
        if (replica?.status().role === "leader") lessor.onBecomeLeader(nowMs());
        this.#options.logger.info("Installed a snapshot", {
          shard: this.#options.shard,
          index: machine.appliedIndex(),
        });
        this.#releaseApplied();
      },
      close: () => machine.close(),
    };
  }

  /** Resolves the waiters whose index is applied (their reads run after this turn). */
  #releaseApplied(): void {
    if (this.#appliedWaiters.length === 0) return;
    const applied = this.stateMachine.appliedIndex();
    const waiting = [];
    for (const waiter of this.#appliedWaiters) {
      if (waiter.index <= applied) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#appliedWaiters = waiting;
  }

  #onLeaderChange(status: ReplicaStatus): void {
    const now = this.#lessorNow();
    if (status.role === "leader") {
      this.#lessor.onBecomeLeader(now);
      this.#options.logger.info("Became leader", { shard: this.shard, term: status.term });
    } else {
      this.#lessor.onBecomeFollower();
      this.#options.logger.debug("Leadership changed", {
        shard: this.shard,
        role: status.role,
        term: status.term,
        leader: status.leader,
      });
    }
  }

  /**
   * Logs an error once per refused snapshot: a replica that needs a snapshot over the limit
   * stays behind until a smaller one exists (the status and /metrics show it meanwhile).
   */
  #noticeSnapshotRefusals(): void {
    const refusals = snapshotRefusals(this.replica.status());
    const logged = this.#refusalsLogged;
    for (const node of [...logged.keys()]) {
      if (!refusals.some((refusal) => refusal.node === node)) logged.delete(node);
    }
    for (const refusal of refusals) {
      if (logged.get(refusal.node) === refusal.index) continue;
      logged.set(refusal.node, refusal.index);
      this.#options.logger.error("Cannot send a snapshot: it is larger than the snapshot limit", {
        shard: this.shard,
        replica: refusal.node,
        index: refusal.index,
        bytes: refusal.bytes,
        limit: refusal.limit,
      });
    }
  }

  #expireLeases(): void {
    const ids = this.#lessor.expired(this.#lessorNow());
    if (ids.length === 0) return;
    this.replica.propose(encodeCommand({ type: "leaseExpire", ids })).catch((error: unknown) => {
      this.#options.logger.warn("Cannot expire leases yet", {
        shard: this.shard,
        reason: error instanceof Error ? error.message : String(error),
      });
    });
  }

  #proposalRate(status: ReplicaStatus): number {
    const now = this.#lessorNow();
    const sample = this.#rateSample;
    const elapsed = now - sample.atMs;
    if (elapsed >= RATE_WINDOW_MS) {
      const perSecond = (status.stats.proposals - sample.proposals) * 1000 / elapsed;
      this.#rateSample = { atMs: now, proposals: status.stats.proposals, perSecond };
    }
    return Math.round(this.#rateSample.perSecond * 10) / 10;
  }
}

/** The two files of a replica. */
interface ShardPaths {
  readonly log: string;
  readonly stateMachine: string;
}

/**
 * Checks that a new (missing or empty) state machine goes with a log that committed nothing
 * but its bootstrap membership (one entry per voter): both files are created together, before
 * anything commits. SQLite opens an empty file as a new, healthy database, so without this
 * check a truncated state machine would be rebuilt silently or, past compaction, served empty.
 *
 * @throws {AspenError} `storage_corrupt` naming the state machine file.
 */
function checkNothingCommitted(
  storage: SqliteLogStorage,
  paths: ShardPaths,
  options: LocalShardOptions,
): void {
  const commit = storage.initialState().hardState.commit;
  if (commit <= options.voters.length) return;
  throw new AspenError(
    "storage_corrupt",
    `Cannot open shard ${options.shard}: the state machine "${paths.stateMachine}" is ` +
      `missing or empty but the Raft log has committed entries up to ${commit}; the file ` +
      "was lost or truncated",
    { path: paths.stateMachine, shard: options.shard },
  );
}

/**
 * Checks that the log still holds every entry the state machine applied.
 * Invariant: an entry is in the log before it is applied, and applied entries are committed,
 * so never truncated: applied index <= last index.
 *
 * @throws {AspenError} `storage_corrupt` naming the log file.
 */
function checkLogCoversApplied(
  storage: SqliteLogStorage,
  stateMachine: StateMachine,
  paths: ShardPaths,
  shard: number,
): void {
  const applied = stateMachine.appliedIndex();
  const last = storage.lastIndex();
  if (applied <= last) return;
  throw logLostError(shard, paths, `ends at index ${last} but ${applied} entries were applied`);
}

function logLostError(shard: number, paths: ShardPaths, detail: string): AspenError {
  return new AspenError(
    "storage_corrupt",
    `Cannot open shard ${shard}: the Raft log "${paths.log}" ${detail} while the state ` +
      `machine "${paths.stateMachine}" holds data; the log file was lost, truncated or replaced`,
    { path: paths.log, shard },
  );
}

/** True when `path` does not exist or holds no bytes (SQLite would start a new database). */
async function isMissingOrEmpty(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).size === 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}

const NOOP = encodeCommand({ type: "noop" });

/** Empty entries (a leader's no-op, a membership change) apply as the `noop` command. */
function asCommandEntry(entry: { index: number; data: Uint8Array }) {
  return entry.data.byteLength === 0 ? { index: entry.index, data: NOOP } : entry;
}

/** The p-th percentile of `samples` (0 when empty). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, index)]! * 100) / 100;
}
