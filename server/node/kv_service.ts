/**
 * The operations of the client API (API.md), one method each, over the cluster router: keys
 * are routed to their shard by jump hash, multi-shard reads fan out in parallel and merge in
 * key order with the limit applied globally, and results take the API's JSON shape.
 *
 * Transactions (conditional batches and optimistic transactions) whose keys live on one shard
 * are one entry there; those whose keys span shards go to the TxnCoordinator (two-phase commit
 * with intents and a record on the home shard). A write that meets an intent (`locked`) and a
 * read that reports one push the holder through the coordinator and try again, on this node
 * (the one serving the client) wherever the read itself ran. Leases live on a shard: a lease id
 * carries its shard in its low bits (`id = grantIndex * 1024 + shard`), and a key can use a
 * lease of its own shard.
 */
import {
  type DeleteKvResponse,
  type DeleteRangeResponse,
  type GetKvResponse,
  leaseIdParts,
  type LeaseInfoResponse,
  type LeaseResponse,
  type LeaseRevokeResponse,
  type OptimisticTxnResponse,
  type PutKvResponse,
  type RangeResponse,
  type TxnListResponse,
  type TxnResponse,
  type TxnStatusResponse,
} from "../../api/mod.ts";
import { assert } from "../../raft/mod.ts";
import {
  allShardIds,
  apiIdOfForeignLease,
  type ApplyResult,
  applyResultError,
  AspenError,
  type Command,
  type Compare,
  compareUtf8,
  DELETE_RANGE_KEYS_MAX,
  FOREIGN_LEASE_BASE,
  foreignLeaseId,
  isForeignLease,
  type KeyRange,
  keysMovingError,
  type KeyValue,
  kvResponseBytes,
  leaseError,
  type LeaseFault,
  leaseFaultOf,
  placeKey,
  RANGE_RESPONSE_BYTES_MAX,
  type RangeResult,
  type TenantShards,
  TXN_SHARDS_MAX,
  type TxnLeaseStep,
  type TxnOp,
  type TxnStatus,
  validateCommand,
} from "../../shard/mod.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import { CrossShardStats, outcomeOfError } from "./cross_shard_stats.ts";
import { crossShardFields, readTxnStatus } from "./cross_shard_txns.ts";
import { listTxns } from "./txn_listing.ts";
import { apiKv, apiLeaseError, apiLeaseId, apiTxnOpResult } from "./lease_ids.ts";
import type { ReadIntent, ShardRange, ShardRequest } from "./shard_request.ts";
import type { CrossShardTxnResult, TxnCoordinator } from "./txn_coordinator.ts";
import { movedRead, movedReadConflict, type ShardedRead } from "./txn_plan.ts";
import { RouterTxnTransport } from "./txn_transport.ts";

/** The pause before a request refused with `wrong_shard` is routed again by a fresh map. */
export const REROUTE_PAUSE_MS = 25;

/** The most pieces one shard's part of a range delete is split into. */
export const DELETE_RANGE_ROUNDS_MAX = 1_000;
/**
 * The most times one request pushes a cross-shard transaction's intent out of its way and
 * tries again (its deadline usually ends it first).
 */
export const PUSH_ROUNDS_MAX = 100;

/** What the service needs. */
export interface KvServiceOptions {
  readonly router: ClusterRouter;
  /** The shard count keys are routed over now (a getter: a shard move changes it). */
  readonly shardCount: number;
  /** The tenants placed now (a getter, like the count; absent or undefined: none). */
  readonly tenants?: TenantShards | undefined;
  /** The epoch of the shard map in force (a getter, like the count; absent: not told). */
  readonly mapEpoch?: number | undefined;
  /**
   * Reads the shard map again, after a shard answered `wrong_shard` (shard_map.ts). Absent:
   * such an answer reaches the client.
   */
  readonly refreshShardMap?: () => Promise<void>;
  readonly nowMs: () => number;
  /** Every request's deadline. */
  readonly requestTimeoutMs: number;
  /** Runs transactions over keys of several shards, and pushes their intents out of the way. */
  readonly coordinator: Pick<TxnCoordinator, "txn" | "optimistic" | "push">;
}

/**
 * The most times a revocation (or expiry) tries again, within its deadline, because a key was
 * attached on a new shard between its read of the lease's shards and its lock, or because puts
 * attaching keys kept the lease locked (each time, one attach committed first).
 */
export const LEASE_REVOKE_ROUNDS_MAX = 32;

/** A shard's answer about a lease (shard_dispatch.ts). */
interface LeaseAnswer {
  readonly ttl: number;
  readonly remainingMs: number;
  readonly keys: string[];
  /** The other shards holding keys of it (absent from nodes of a version before them). */
  readonly holders?: number[];
}

/** A read answer that may report intents on the keys it read (see shard_dispatch.ts). */
type IntentReporting = { readonly intents?: readonly ReadIntent[] };

/** A lease id from a request, and the key it is attached to or compared with. */
interface LeaseUse {
  readonly lease: number;
  readonly shard: number;
  readonly key: string;
  readonly action: "attach" | "compare";
}

/** A range read as the API asks for it. */
export interface RangeQuery {
  readonly range: KeyRange;
  readonly limit: number;
  readonly after: string | null;
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  readonly reverse: boolean;
  readonly serializable: boolean;
}

/** The client API's operations. */
export class KvService {
  /** The cross-shard transactions this node coordinated, for `/metrics`. */
  readonly crossShard = new CrossShardStats();
  readonly #options: KvServiceOptions;
  readonly #transport: RouterTxnTransport;

  constructor(options: KvServiceOptions) {
    this.#options = options;
    this.#transport = new RouterTxnTransport(options.router);
  }

  /** This node's id. */
  get nodeId(): number {
    return this.#options.router.nodeId;
  }

  /** The shard that owns `key`. */
  shardOf(key: string): number {
    return placeKey(key, this.#options.shardCount, this.#options.tenants);
  }

  /** The number of shards. */
  get shardCount(): number {
    return this.#options.shardCount;
  }

  /** @throws {AspenError} `key_not_found` (with shard and revision) when absent. */
  get(key: string, serializable: boolean): Promise<GetKvResponse> {
    return this.#rerouted(() => this.#get(key, serializable));
  }

  async #get(key: string, serializable: boolean): Promise<GetKvResponse> {
    const shard = this.shardOf(key);
    const result = await this.#read<{ kv: KeyValue | null; revision: number }>(shard, {
      kind: "get",
      key,
      serializable,
    });
    if (result.kv === null) {
      throw new AspenError("key_not_found", `Cannot get key "${key}": it does not exist`, {
        shard,
        revision: result.revision,
      });
    }
    return { kv: apiKv(result.kv, shard), shard, revision: result.revision };
  }

  /**
   * Puts a key. A key attached to a lease of another shard is a cross-shard transaction: it
   * locks the lease on its home shard (which must hold it, and then records the key's shard
   * among the lease's holders) and puts the key on its own.
   */
  put(key: string, value: string, lease: number, prevKv: boolean): Promise<PutKvResponse> {
    return this.#rerouted(() => this.#put(key, value, lease, prevKv));
  }

  async #put(
    key: string,
    value: string,
    lease: number,
    prevKv: boolean,
  ): Promise<PutKvResponse> {
    const shard = this.shardOf(key);
    const local = this.#localLease({ lease, shard, key, action: "attach" });
    if (isForeignLease(local)) return await this.#putAcrossShards({ key, value, lease, prevKv });
    const command: Command = { type: "put", key, value, lease: local, prevKv };
    const result = await this.#propose(shard, command) as Extract<ApplyResult, { type: "put" }>;
    return {
      shard,
      revision: result.revision,
      version: result.version,
      ...(prevKv && result.prevKv !== null ? { prevKv: apiKv(result.prevKv, shard) } : {}),
    };
  }

  async #putAcrossShards(
    put: { key: string; value: string; lease: number; prevKv: boolean },
  ): Promise<PutKvResponse> {
    const shard = this.shardOf(put.key);
    const op: TxnOp = { type: "put", ...put, lease: foreignLeaseId(put.lease) };
    const leases = this.#attachSteps([op]);
    const result = await this.#crossShardRun({ compare: [], success: [op], failure: [], leases });
    const first = result.results[0]?.result;
    assert(first?.type === "put", "putAcrossShards: the put has a put result");
    const revision = result.revisions.get(shard);
    assert(revision !== undefined, "putAcrossShards: the key's shard resolved");
    return {
      shard,
      revision,
      version: first.version,
      ...(put.prevKv && first.prevKv !== null ? { prevKv: apiKv(first.prevKv, shard) } : {}),
    };
  }

  delete(key: string, prevKv: boolean): Promise<DeleteKvResponse> {
    return this.#rerouted(() => this.#delete(key, prevKv));
  }

  async #delete(key: string, prevKv: boolean): Promise<DeleteKvResponse> {
    const shard = this.shardOf(key);
    const result = await this.#propose(shard, { type: "delete", key, prevKv }) as Extract<
      ApplyResult,
      { type: "delete" }
    >;
    const deleted = result.deleted;
    assert(deleted === 0 || deleted === 1, "a key delete deletes at most one key");
    return {
      deleted,
      shard,
      revision: result.revision,
      ...(prevKv && result.prevKv !== null ? { prevKv: apiKv(result.prevKv, shard) } : {}),
    };
  }

  /** Reads a range over every shard, merged in key order with the limit applied globally. */
  range(query: RangeQuery): Promise<RangeResponse> {
    return this.#rerouted(() => this.#range(query));
  }

  async #range(query: RangeQuery): Promise<RangeResponse> {
    const shardRange: ShardRange = {
      range: query.range,
      limit: query.limit,
      after: query.after,
      keysOnly: query.keysOnly,
      countOnly: query.countOnly,
      reverse: query.reverse,
    };
    const shardCount = this.#options.shardCount;
    const epoch = this.#options.mapEpoch;
    const pages = await Promise.all(
      allShardIds(shardCount).map((shard) =>
        this.#read<RangeResult & { revision: number }>(shard, {
          kind: "range",
          range: shardRange,
          serializable: query.serializable,
          numShards: shardCount,
          ...(epoch === undefined ? {} : { epoch }),
        }).then((page) => ({ shard, page }))
      ),
    );
    if (query.countOnly) {
      const count = pages.reduce((sum, { page }) => sum + page.count, 0);
      return { kvs: [], count, more: false };
    }
    // Each kv names its shard: revisions are per shard, and a later optimistic read carries it.
    return mergePages(pages, query, (kv, shard) => ({ ...apiKv(kv, shard), shard }));
  }

  /**
   * Deletes a range on every shard. Each shard's part is one atomic entry when it holds at
   * most DELETE_RANGE_KEYS_MAX keys; a larger part is deleted in pieces of that many keys.
   */
  deleteRange(range: KeyRange): Promise<DeleteRangeResponse> {
    return this.#rerouted(() => this.#deleteRange(range));
  }

  async #deleteRange(range: KeyRange): Promise<DeleteRangeResponse> {
    validateCommand({ type: "deleteRange", range });
    const counts = await Promise.all(
      allShardIds(this.#options.shardCount).map((shard) => this.#deleteRangeOnShard(shard, range)),
    );
    return { deleted: counts.reduce((sum, count) => sum + count, 0) };
  }

  async #deleteRangeOnShard(shard: number, range: KeyRange): Promise<number> {
    let deleted = 0;
    for (let round = 0; round < DELETE_RANGE_ROUNDS_MAX; round++) {
      const whole = await this.#propose(shard, { type: "deleteRange", range }).catch(
        (error: unknown) => {
          if (error instanceof AspenError && error.code === "limit_exceeded") return null;
          throw error;
        },
      );
      if (whole !== null && whole.type === "deleteRange") return deleted + whole.deleted;
      const page = await this.#run<RangeResult>(shard, {
        kind: "range",
        range: {
          range,
          limit: DELETE_RANGE_KEYS_MAX,
          after: null,
          keysOnly: true,
          countOnly: false,
          reverse: false,
        },
        serializable: false,
      });
      const last = page.kvs[page.kvs.length - 1];
      if (last === undefined) return deleted;
      const start = "prefix" in range ? range.prefix : range.start;
      const piece = await this.#propose(shard, {
        type: "deleteRange",
        range: { start, end: `${last.key}\u0000` },
      });
      if (piece.type === "deleteRange") deleted += piece.deleted;
    }
    throw new AspenError(
      "limit_exceeded",
      `Cannot delete the range on shard ${shard}: more than ` +
        `${DELETE_RANGE_ROUNDS_MAX * DELETE_RANGE_KEYS_MAX} keys; delete it in parts`,
      { shard },
    );
  }

  /**
   * An etcd-style conditional batch: one entry on the shard that owns all of its keys, or a
   * cross-shard transaction (two-phase commit by the coordinator) when they span shards.
   */
  txn(
    compare: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
  ): Promise<TxnResponse> {
    return this.#rerouted(() => this.#txn(compare, success, failure));
  }

  async #txn(
    compare: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
  ): Promise<TxnResponse> {
    const keys = [
      ...compare.map((item) => item.key),
      ...[...success, ...failure].flatMap(opKeys),
    ];
    this.#checkNoRangeOp("run txn", { success, failure });
    await this.#checkReadShards(compare, "run txn");
    const shards = this.#shardsOf(keys, "run txn");
    const localOps = (ops: readonly TxnOp[]) =>
      ops.map((op) =>
        op.type === "put"
          ? {
            ...op,
            lease: this.#localLease({
              lease: op.lease,
              shard: this.shardOf(op.key),
              key: op.key,
              action: "attach",
            }),
          }
          : op
      );
    const command: Extract<Command, { type: "txn" }> = {
      type: "txn",
      compare: compare.map((item) =>
        item.target === "lease"
          ? {
            ...item,
            value: this.#localLease({
              lease: item.value,
              shard: this.shardOf(item.key),
              key: item.key,
              action: "compare",
            }),
          }
          : item
      ),
      success: localOps(success),
      failure: localOps(failure),
    };
    const puts = [...command.success, ...command.failure];
    const hasForeignLease = puts.some((op) => op.type === "put" && isForeignLease(op.lease));
    if (shards.length > 1 || hasForeignLease) return await this.#crossShardTxn(command);
    const shard = shards[0] ?? 0;
    const result = await this.#propose(shard, command) as Extract<ApplyResult, { type: "txn" }>;
    return {
      succeeded: result.succeeded,
      results: result.results.map((item) => apiTxnOpResult(item, shard)),
      shard,
      revision: result.revision,
    };
  }

  /**
   * A FoundationDB-style optimistic transaction: one entry on the shard that owns all of its
   * keys, or a cross-shard transaction when they span shards.
   *
   * @throws {AspenError} `conflict` with the first failed read's details.
   */
  optimistic(
    command: Extract<Command, { type: "optimisticTxn" }>,
  ): Promise<OptimisticTxnResponse> {
    return this.#rerouted(() =>
      this.#optimistic(command).catch((error: unknown) => this.#movedReads(command, error))
    );
  }

  /**
   * Turns a `wrong_shard` refusal of an optimistic transaction whose reads name revisions
   * into a `conflict`: revisions are per shard, so a read made on the shard a key left cannot
   * be checked on the one it moved to (its version can: such reads are routed again). The
   * conflict names the key as it is now, on its new shard.
   */
  async #movedReads(
    command: Extract<Command, { type: "optimisticTxn" }>,
    error: unknown,
  ): Promise<never> {
    const isWrongShard = error instanceof AspenError && error.code === "wrong_shard";
    // A read that names its shard is checked again, precisely, once rerouted.
    const read = command.reads.find((item) =>
      item.shard === undefined && (item.modRevision !== null || item.revision !== null)
    );
    if (!isWrongShard || read === undefined) throw error;
    await this.#options.refreshShardMap?.().catch(() => {});
    const now = await this.#get(read.key, false).then((got) => got.kv).catch(() => null);
    throw new AspenError(
      "conflict",
      `Cannot commit optimistic txn: key "${read.key}" moved to another shard since it was ` +
        "read (a shard move), and revisions are per shard; read it again",
      {
        key: read.key,
        field: read.modRevision !== null ? "modRevision" : "revision",
        expected: read.version,
        actual: now?.version ?? 0,
        expectedModRevision: read.modRevision,
        actualModRevision: now?.modRevision ?? 0,
        readRevision: read.revision,
      },
    );
  }

  async #optimistic(
    command: Extract<Command, { type: "optimisticTxn" }>,
  ): Promise<OptimisticTxnResponse> {
    const keys = [...command.reads.map((read) => read.key), ...command.writes.map((w) => w.key)];
    await this.#checkReadShards(command.reads, "commit optimistic txn");
    const shards = this.#shardsOf(keys, "commit optimistic txn");
    if (shards.length > 1) {
      validateCommand(command);
      const result = await this.#measured(() =>
        this.#options.coordinator.optimistic(command, this.#deadline())
      );
      return { committed: true, ...crossShardFields(result) };
    }
    const shard = shards[0] ?? 0;
    const result = await this.#propose(shard, command);
    return { committed: true, shard, revision: result.revision };
  }

  /**
   * A cross-shard transaction's record on its home shard, with one receipt per participant.
   *
   * @throws {AspenError} `txn_not_found` when no shard holds a record of `txnId`.
   */
  txnStatus(txnId: string): Promise<TxnStatusResponse> {
    return readTxnStatus({
      txnId,
      shardCount: this.#options.shardCount,
      transport: this.#transport,
      deadlineMs: this.#deadline(),
    });
  }

  /** The cross-shard transactions with `status` across all shards, at most `limit`. */
  txnList(query: { readonly status: TxnStatus; readonly limit: number }): Promise<TxnListResponse> {
    return listTxns({
      ...query,
      shardCount: this.#options.shardCount,
      router: this.#options.router,
      deadlineMs: this.#deadline(),
    });
  }

  async #crossShardTxn(command: Extract<Command, { type: "txn" }>): Promise<TxnResponse> {
    validateCommand(command);
    const leases = this.#attachSteps([...command.success, ...command.failure]);
    const result = await this.#crossShardRun({ ...command, leases });
    return {
      succeeded: result.succeeded,
      results: result.results.map((item) => apiTxnOpResult(item.result, item.shard)),
      ...crossShardFields(result),
    };
  }

  /**
   * Runs a cross-shard transaction by the coordinator, counted; a lease error names the lease
   * by its API id (a lease of this cluster's shards is checked on its home shard).
   */
  async #crossShardRun(
    request: Parameters<KvServiceOptions["coordinator"]["txn"]>[0],
  ): Promise<CrossShardTxnResult> {
    try {
      return await this.#measured(() => this.#options.coordinator.txn(request, this.#deadline()));
    } catch (error) {
      if (!(error instanceof AspenError)) throw error;
      // A lease of its own fails on a lease step's shard: name it by that shard.
      const fault = leaseFaultOf(error);
      if (fault === null) throw error;
      // A stand-in (another shard's lease) names its API id whatever the shard.
      const owner = isForeignLease(fault.lease)
        ? 0
        : request.leases?.find(({ step }) => step.id === fault.lease)?.shard;
      throw owner === undefined ? error : apiLeaseError(error, owner);
    }
  }

  /**
   * The attach steps of the puts of a cross-shard transaction that name leases: one per lease
   * and key shard, run on the lease's home shard. A lease of the key's own shard is locked too,
   * so that the commit cannot meet it revoked.
   */
  #attachSteps(ops: readonly TxnOp[]): { shard: number; step: TxnLeaseStep }[] {
    const steps = new Map<string, { shard: number; step: TxnLeaseStep }>();
    for (const op of ops) {
      if (op.type !== "put" || op.lease === 0) continue;
      const holder = this.shardOf(op.key);
      const apiId = isForeignLease(op.lease)
        ? apiIdOfForeignLease(op.lease)
        : apiLeaseId(op.lease, holder);
      const { shard, local } = this.#splitLease({
        code: "lease_not_found",
        action: "attach",
        lease: apiId,
        key: op.key,
      });
      const step: TxnLeaseStep = { action: "attach", id: local, holder, key: op.key };
      const name = `${shard}/${local}/${holder}`;
      if (!steps.has(name)) steps.set(name, { shard, step });
    }
    return [...steps.values()];
  }

  /** Runs a cross-shard transaction and counts how it ended. */
  async #measured<T>(run: () => Promise<T>): Promise<T> {
    const started = this.#options.nowMs();
    try {
      const result = await run();
      this.crossShard.record("committed", (this.#options.nowMs() - started) / 1000);
      return result;
    } catch (error) {
      this.crossShard.record(outcomeOfError(error), (this.#options.nowMs() - started) / 1000);
      throw error;
    }
  }

  /** Grants a lease; `shard` (the shard that holds it) is for the caller, not the answer. */
  leaseGrant(
    ttlSeconds: number,
    key: string | null,
  ): Promise<LeaseResponse & { readonly shard: number }> {
    return this.#rerouted(() => this.#leaseGrant(ttlSeconds, key));
  }

  async #leaseGrant(
    ttlSeconds: number,
    key: string | null,
  ): Promise<LeaseResponse & { readonly shard: number }> {
    const shard = key === null ? 0 : this.shardOf(key);
    const result = await this.#propose(shard, { type: "leaseGrant", ttlSeconds }) as Extract<
      ApplyResult,
      { type: "leaseGrant" }
    >;
    return { id: apiLeaseId(result.lease.id, shard), ttl: result.lease.ttlSeconds, shard };
  }

  async leaseKeepAlive(id: number): Promise<LeaseResponse> {
    const { shard, local } = this.#splitLease({
      code: "lease_not_found",
      action: "keepAlive",
      lease: id,
    });
    const result = await this.#run<{ ttl: number }>(shard, { kind: "leaseKeepAlive", id: local });
    return { id, ttl: result.ttl };
  }

  async leaseInfo(id: number): Promise<LeaseInfoResponse> {
    const { shard, local } = this.#splitLease({
      code: "lease_not_found",
      action: "read",
      lease: id,
    });
    const result = await this.#run<LeaseAnswer>(shard, { kind: "leaseInfo", id: local });
    // The keys on other shards, read one shard after the other (not one snapshot).
    const elsewhere = await Promise.all((result.holders ?? []).map(async (holder) => {
      try {
        const answer = await this.#run<LeaseAnswer>(holder, {
          kind: "leaseInfo",
          id: foreignLeaseId(id),
        });
        return answer.keys;
      } catch (error) {
        if (error instanceof AspenError && error.code === "lease_not_found") return [];
        throw error;
      }
    }));
    const keys = [...result.keys, ...elsewhere.flat()].sort(compareUtf8);
    return { id, ttl: result.ttl, remaining: Math.ceil(result.remainingMs / 1000), keys };
  }

  /**
   * Revokes a lease and deletes its keys. A lease whose keys are all on its home shard is one
   * entry there; one with keys on other shards too is one cross-shard transaction that locks
   * the lease and every key of it, then deletes them all at its commit.
   *
   * @throws {AspenError} `lease_not_found`; `conflict` when transactions kept it locked.
   */
  async leaseRevoke(id: number): Promise<LeaseRevokeResponse> {
    await this.#rerouted(() => this.#revokeLease(id, "revoke"));
    return { revoked: true };
  }

  /**
   * Expires lease `id` (its home shard's leader saw its time run out) when it holds keys on
   * other shards: the same transaction as a revocation. A lease already gone is no error.
   */
  async expireLease(id: number): Promise<void> {
    try {
      await this.#rerouted(() => this.#revokeLease(id, "expire"));
    } catch (error) {
      if (error instanceof AspenError && error.code === "lease_not_found") return;
      throw error;
    }
  }

  async #revokeLease(id: number, action: "revoke" | "expire"): Promise<void> {
    const { shard: home, local } = this.#splitLease({
      code: "lease_not_found",
      action: "revoke",
      lease: id,
    });
    const deadlineMs = this.#deadline();
    for (let round = 0; round < LEASE_REVOKE_ROUNDS_MAX; round++) {
      // Read linearizably on the home; its prepare checks the holders again under the lock.
      const { holders = [] } = await this.#run<LeaseAnswer>(home, { kind: "leaseInfo", id: local });
      try {
        if (holders.length === 0 && action === "revoke") {
          await this.#propose(home, { type: "leaseRevoke", id: local });
          return;
        }
        const standIn = foreignLeaseId(id);
        await this.#crossShardRun({
          compare: [],
          success: [],
          failure: [],
          leases: [
            { shard: home, step: { action: "revoke", id: local, holders } },
            ...holders.map((shard) => ({
              shard,
              step: { action: "revoke", id: standIn, holders: [] } as const,
            })),
          ],
        });
        return;
      } catch (error) {
        // The holders changed between the read and the lock (read them again), puts attaching
        // keys held the lease (the coordinator pushed them once), or a reader aborted the
        // attempt: a revocation has no condition, so it tries again.
        const isRetryable = error instanceof AspenError && error.code === "conflict";
        if (!isRetryable || this.#options.nowMs() >= deadlineMs) throw error;
      }
    }
    throw new AspenError(
      "conflict",
      `Cannot ${action} lease ${id}: keys kept being attached to it through ` +
        `${LEASE_REVOKE_ROUNDS_MAX} (LEASE_REVOKE_ROUNDS_MAX) tries; retry`,
      { lease: id },
    );
  }

  /**
   * Runs `action`, and again (planned anew) after the shard map was read again each time a
   * shard refused it with `wrong_shard` (a shard move), until the request's deadline. A
   * refused command changed nothing, so running it again is safe.
   *
   * @throws {AspenError} `keys_moving` (retryable, naming the moving shard) when the keys stay
   * refused until the deadline: the router's `wrong_shard` never reaches the client.
   */
  async #rerouted<T>(action: () => Promise<T>): Promise<T> {
    const deadlineMs = this.#deadline();
    for (;;) {
      try {
        return await action();
      } catch (error) {
        if (!(error instanceof AspenError && error.code === "wrong_shard")) throw error;
        const refresh = this.#options.refreshShardMap;
        if (refresh === undefined) throw keysMovingError(error);
        if (this.#options.nowMs() + REROUTE_PAUSE_MS >= deadlineMs) throw keysMovingError(error);
        await new Promise((resolve) => setTimeout(resolve, REROUTE_PAUSE_MS));
        await refresh().catch(() => {});
      }
    }
  }

  /** Runs a request on `shard` with this service's deadline. */
  run<T>(shard: number, request: ShardRequest, timeoutMs = this.#options.requestTimeoutMs) {
    return this.#options.router.execute<T>(shard, request, this.#options.nowMs() + timeoutMs);
  }

  /** A new request's deadline, on the `nowMs` clock. */
  #deadline(): number {
    return this.#options.nowMs() + this.#options.requestTimeoutMs;
  }

  /** Runs a request on `shard`; an error that names a lease names it by its API id. */
  async #run<T>(shard: number, request: ShardRequest, deadlineMs = this.#deadline()): Promise<T> {
    try {
      return await this.#options.router.execute<T>(shard, request, deadlineMs);
    } catch (error) {
      if (error instanceof AspenError) throw apiLeaseError(error, shard);
      throw error;
    }
  }

  /**
   * Runs a get or range read; when it reports intents of cross-shard transactions on keys it
   * read, pushes each holder (wait, then resolve or abort it) and reads again, so that no
   * answer shows a transaction half-applied.
   *
   * @throws {AspenError} `conflict` naming the key and the holder when the deadline passes.
   */
  async #read<T>(shard: number, request: ShardRequest): Promise<T> {
    const deadlineMs = this.#deadline();
    for (let round = 0; round < PUSH_ROUNDS_MAX; round++) {
      const answer = await this.#run<T & IntentReporting>(shard, request, deadlineMs);
      const intents = answer.intents ?? [];
      if (intents.length === 0) return answer;
      // One push per holder: resolving a transaction on a shard clears all of its intents.
      const byHolder = new Map(intents.map((intent) => [intent.holder.txnId, intent]));
      await Promise.all(
        [...byHolder.values()].map((intent) => this.#push(shard, intent, deadlineMs)),
      );
    }
    throw new AspenError(
      "conflict",
      `Cannot read shard ${shard}: cross-shard transactions kept locking its keys through ` +
        `${PUSH_ROUNDS_MAX} (PUSH_ROUNDS_MAX) pushes; retry`,
      { shard },
    );
  }

  /**
   * Proposes a command and turns an error result into a thrown error. A command that met an
   * intent (`locked`) pushes the holder and is proposed again: it changed nothing.
   *
   * @throws {AspenError} `conflict` naming the key and the holder when the deadline passes.
   */
  async #propose(shard: number, command: Command): Promise<ApplyResult> {
    validateCommand(command);
    const deadlineMs = this.#deadline();
    for (let round = 0; round < PUSH_ROUNDS_MAX; round++) {
      const result = await this.#run<ApplyResult>(shard, { kind: "propose", command }, deadlineMs);
      if (result.type === "locked") {
        await this.#push(shard, { key: result.key, holder: result.holder }, deadlineMs);
        continue;
      }
      const error = applyResultError(result);
      if (error !== null) throw apiLeaseError(error, shard);
      return result;
    }
    throw new AspenError(
      "conflict",
      `Cannot write to shard ${shard}: cross-shard transactions kept locking its keys through ` +
        `${PUSH_ROUNDS_MAX} (PUSH_ROUNDS_MAX) pushes; retry`,
      { shard },
    );
  }

  /**
   * Makes the intent go away (see TxnCoordinator.push).
   *
   * @throws {AspenError} `conflict` naming the key and the holder once the deadline passed.
   */
  async #push(shard: number, intent: ReadIntent, deadlineMs: number): Promise<void> {
    const { key, holder } = intent;
    if (this.#options.nowMs() >= deadlineMs) {
      throw new AspenError(
        "conflict",
        `Cannot use key "${key}" (shard ${shard}): cross-shard txn "${holder.txnId}" (home ` +
          `shard ${holder.home}) holds it past the request's deadline; retry`,
        { shard, key, holderTxnId: holder.txnId, home: holder.home },
      );
    }
    await this.#options.coordinator.push(shard, key, holder, deadlineMs);
  }

  /**
   * Refuses a transaction with a read or compare that names another shard than the one its key
   * is on now (a shard move since the read), after reading the shard map again once: a node
   * with an old map would otherwise refuse a read made on a new shard.
   *
   * @throws {AspenError} `conflict` naming the key, the read's shard and the key's shard.
   */
  async #checkReadShards(reads: readonly ShardedRead[], action: string): Promise<void> {
    const shardOf = (key: string) => this.shardOf(key);
    if (movedRead(reads, shardOf) === null) return;
    await this.#options.refreshShardMap?.().catch(() => {});
    const moved = movedRead(reads, shardOf);
    if (moved !== null) throw movedReadConflict(action, moved);
  }

  /**
   * Refuses range operations in a transaction when there are several shards: a range spans
   * every shard, and a transaction over several shards cannot hold one (yet).
   *
   * @throws {AspenError} `bad_request` naming the operation.
   */
  #checkNoRangeOp(
    action: string,
    branches: { readonly success: readonly TxnOp[]; readonly failure: readonly TxnOp[] },
  ): void {
    if (this.#options.shardCount === 1) return;
    for (const [name, ops] of Object.entries(branches)) {
      const index = ops.findIndex((op) => op.type === "range");
      if (index === -1) continue;
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: ${name}[${index}] is a range operation, and a range spans every ` +
          `shard: a transaction over several shards cannot hold one; read ranges with ` +
          "GET /v1/kv",
        { op: `${name}[${index}]` },
      );
    }
  }

  /**
   * The shards that own `keys`, ascending.
   *
   * @throws {AspenError} `bad_request` naming TXN_SHARDS_MAX when there are more.
   */
  #shardsOf(keys: readonly string[], action: string): number[] {
    const shards = [...new Set(keys.map((key) => this.shardOf(key)))].sort((a, b) => a - b);
    if (shards.length > TXN_SHARDS_MAX) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: its keys fall on ${shards.length} shards but a transaction may ` +
          `span at most ${TXN_SHARDS_MAX} (TXN_SHARDS_MAX)`,
        { shards: shards.length, limit: TXN_SHARDS_MAX },
      );
    }
    return shards;
  }

  /**
   * The shard and shard-local id of the lease the API calls `notFound.lease`.
   *
   * @throws {AspenError} `notFound` when the id names no lease any shard could hold.
   */
  #splitLease(notFound: Extract<LeaseFault, { code: "lease_not_found" }>) {
    const parts = leaseIdParts(notFound.lease);
    if (parts === null || parts.shard >= this.#options.shardCount) throw leaseError(notFound);
    return { shard: parts.shard, local: parts.grantIndex };
  }

  /**
   * The id under which `shard` stores the API lease a key of it is attached to or compared
   * with: the grant index of a lease of its own, FOREIGN_LEASE_BASE + the API id of another
   * shard's (see shard/foreign_lease.ts).
   */
  #localLease(use: LeaseUse): number {
    const { lease, shard, key, action } = use;
    if (lease === 0) return 0;
    const split = this.#splitLease({ code: "lease_not_found", action, lease, key });
    if (split.shard === shard) return split.local;
    if (lease >= FOREIGN_LEASE_BASE) {
      throw leaseError({ code: "lease_not_found", action, lease, key });
    }
    return foreignLeaseId(lease);
  }
}

function opKeys(op: TxnOp): string[] {
  return op.type === "range" ? [] : [op.key];
}

/**
 * Merges per-shard pages into one page: key order (descending when reversed), the limit and
 * byte bound applied globally, and never past a shard page that was cut short (its last key
 * is a horizon the merged page must not pass, or keys of that shard could be skipped).
 */
export function mergePages(
  pages: readonly { shard: number; page: RangeResult }[],
  query: Pick<RangeQuery, "limit" | "reverse">,
  toGlobal: (kv: KeyValue, shard: number) => KeyValue,
): RangeResponse {
  const direction = query.reverse ? -1 : 1;
  const compare = (a: string, b: string) => direction * compareUtf8(a, b);
  let horizon: string | null = null;
  for (const { page } of pages) {
    const last = page.kvs[page.kvs.length - 1];
    if (page.more && last !== undefined && (horizon === null || compare(last.key, horizon) < 0)) {
      horizon = last.key;
    }
  }
  const all = pages.flatMap(({ shard, page }) => page.kvs.map((kv) => toGlobal(kv, shard)));
  all.sort((a, b) => compare(a.key, b.key));
  const kvs: KeyValue[] = [];
  let bytes = 0;
  let isCut = pages.some(({ page }) => page.more);
  for (const kv of all) {
    if (horizon !== null && compare(kv.key, horizon) > 0) break;
    const size = kvResponseBytes(kv);
    if (kvs.length >= query.limit || (kvs.length > 0 && bytes + size > RANGE_RESPONSE_BYTES_MAX)) {
      isCut = true;
      break;
    }
    kvs.push(kv);
    bytes += size;
  }
  if (kvs.length < all.length && !isCut) isCut = true;
  const last = kvs[kvs.length - 1];
  return {
    kvs,
    count: kvs.length,
    more: isCut,
    ...(isCut && last !== undefined ? { next: last.key } : {}),
  };
}
