/**
 * The operations of the client API (API.md), one method each, over the cluster router: keys
 * are routed to their shard by jump hash, multi-shard reads fan out in parallel and merge in
 * key order with the limit applied globally, and results take the API's JSON shape.
 *
 * Transactions (conditional batches and optimistic transactions) are atomic within a shard;
 * one whose keys live on several shards is refused with a message naming two of them, until
 * cross-shard transactions land. Leases live on a shard too: a lease id carries its shard in
 * its low bits (`id = grantIndex * 1024 + shard`), and a key can use a lease of its own shard.
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
  type TxnResponse,
} from "../../api/mod.ts";
import { assert } from "../../raft/mod.ts";
import {
  allShardIds,
  type ApplyResult,
  applyResultError,
  AspenError,
  type Command,
  type Compare,
  compareUtf8,
  DELETE_RANGE_KEYS_MAX,
  type KeyRange,
  type KeyValue,
  kvResponseBytes,
  leaseError,
  type LeaseFault,
  RANGE_RESPONSE_BYTES_MAX,
  type RangeResult,
  shardForKey,
  type TxnOp,
  validateCommand,
} from "../../shard/mod.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import { apiKv, apiLeaseError, apiLeaseId, apiTxnOpResult } from "./lease_ids.ts";
import type { ShardRange, ShardRequest } from "./shard_request.ts";

/** The most pieces one shard's part of a range delete is split into. */
export const DELETE_RANGE_ROUNDS_MAX = 1_000;

/** What the service needs. */
export interface KvServiceOptions {
  readonly router: ClusterRouter;
  readonly shardCount: number;
  readonly nowMs: () => number;
  /** Every request's deadline. */
  readonly requestTimeoutMs: number;
}

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
  readonly #options: KvServiceOptions;

  constructor(options: KvServiceOptions) {
    this.#options = options;
  }

  /** This node's id. */
  get nodeId(): number {
    return this.#options.router.nodeId;
  }

  /** The shard that owns `key`. */
  shardOf(key: string): number {
    return shardForKey(key, this.#options.shardCount);
  }

  /** The number of shards. */
  get shardCount(): number {
    return this.#options.shardCount;
  }

  /** @throws {AspenError} `key_not_found` (with shard and revision) when absent. */
  async get(key: string, serializable: boolean): Promise<GetKvResponse> {
    const shard = this.shardOf(key);
    const result = await this.#run<{ kv: KeyValue | null; revision: number }>(shard, {
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

  async put(key: string, value: string, lease: number, prevKv: boolean): Promise<PutKvResponse> {
    const shard = this.shardOf(key);
    const command: Command = {
      type: "put",
      key,
      value,
      lease: this.#localLease({ lease, shard, key, action: "attach" }),
      prevKv,
    };
    const result = await this.#propose(shard, command) as Extract<ApplyResult, { type: "put" }>;
    return {
      shard,
      revision: result.revision,
      version: result.version,
      ...(prevKv && result.prevKv !== null ? { prevKv: apiKv(result.prevKv, shard) } : {}),
    };
  }

  async delete(key: string, prevKv: boolean): Promise<DeleteKvResponse> {
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
  async range(query: RangeQuery): Promise<RangeResponse> {
    const shardRange: ShardRange = {
      range: query.range,
      limit: query.limit,
      after: query.after,
      keysOnly: query.keysOnly,
      countOnly: query.countOnly,
      reverse: query.reverse,
    };
    const pages = await Promise.all(
      allShardIds(this.#options.shardCount).map((shard) =>
        this.#run<RangeResult & { revision: number }>(shard, {
          kind: "range",
          range: shardRange,
          serializable: query.serializable,
        }).then((page) => ({ shard, page }))
      ),
    );
    if (query.countOnly) {
      const count = pages.reduce((sum, { page }) => sum + page.count, 0);
      return { kvs: [], count, more: false };
    }
    return mergePages(pages, query, apiKv);
  }

  /**
   * Deletes a range on every shard. Each shard's part is one atomic entry when it holds at
   * most DELETE_RANGE_KEYS_MAX keys; a larger part is deleted in pieces of that many keys.
   */
  async deleteRange(range: KeyRange): Promise<DeleteRangeResponse> {
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

  /** An etcd-style conditional batch on the one shard that owns all of its keys. */
  async txn(
    compare: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
  ): Promise<TxnResponse> {
    const keys = [
      ...compare.map((item) => item.key),
      ...[...success, ...failure].flatMap(opKeys),
    ];
    const shard = this.#singleShard(keys, "run txn", [...success, ...failure]);
    const localOps = (ops: readonly TxnOp[]) =>
      ops.map((op) =>
        op.type === "put"
          ? {
            ...op,
            lease: this.#localLease({ lease: op.lease, shard, key: op.key, action: "attach" }),
          }
          : op
      );
    const command: Command = {
      type: "txn",
      compare: compare.map((item) =>
        item.target === "lease"
          ? {
            ...item,
            value: this.#localLease({ lease: item.value, shard, key: item.key, action: "compare" }),
          }
          : item
      ),
      success: localOps(success),
      failure: localOps(failure),
    };
    const result = await this.#propose(shard, command) as Extract<ApplyResult, { type: "txn" }>;
    return {
      succeeded: result.succeeded,
      results: result.results.map((item) => apiTxnOpResult(item, shard)),
      shard,
      revision: result.revision,
    };
  }

  /** A FoundationDB-style optimistic transaction on one shard. */
  async optimistic(
    command: Extract<Command, { type: "optimisticTxn" }>,
  ): Promise<OptimisticTxnResponse> {
    const keys = [...command.reads.map((read) => read.key), ...command.writes.map((w) => w.key)];
    const shard = this.#singleShard(keys, "commit optimistic txn", []);
    const result = await this.#propose(shard, command);
    return { committed: true, shard, revision: result.revision };
  }

  /** Grants a lease; `shard` (the shard that holds it) is for the caller, not the answer. */
  async leaseGrant(
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
    const result = await this.#run<{ ttl: number; remainingMs: number; keys: string[] }>(shard, {
      kind: "leaseInfo",
      id: local,
    });
    return {
      id,
      ttl: result.ttl,
      remaining: Math.ceil(result.remainingMs / 1000),
      keys: result.keys,
    };
  }

  async leaseRevoke(id: number): Promise<LeaseRevokeResponse> {
    const { shard, local } = this.#splitLease({
      code: "lease_not_found",
      action: "revoke",
      lease: id,
    });
    await this.#propose(shard, { type: "leaseRevoke", id: local });
    return { revoked: true };
  }

  /** Runs a request on `shard` with this service's deadline. */
  run<T>(shard: number, request: ShardRequest, timeoutMs = this.#options.requestTimeoutMs) {
    return this.#options.router.execute<T>(shard, request, this.#options.nowMs() + timeoutMs);
  }

  /** Runs a request on `shard`; an error that names a lease names it by its API id. */
  async #run<T>(shard: number, request: ShardRequest): Promise<T> {
    try {
      return await this.run<T>(shard, request);
    } catch (error) {
      if (error instanceof AspenError) throw apiLeaseError(error, shard);
      throw error;
    }
  }

  /** Proposes a command and turns an error result into a thrown error. */
  async #propose(shard: number, command: Command): Promise<ApplyResult> {
    validateCommand(command);
    const result = await this.#run<ApplyResult>(shard, { kind: "propose", command });
    const error = applyResultError(result);
    if (error !== null) throw apiLeaseError(error, shard);
    return result;
  }

  #singleShard(keys: readonly string[], action: string, ops: readonly TxnOp[]): number {
    const hasRange = ops.some((op) => op.type === "range");
    if (hasRange && this.#options.shardCount > 1) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: range operations span every shard and transactions are ` +
          `single-shard; read ranges with GET /v1/kv`,
      );
    }
    let shard: number | null = null;
    let firstKey = "";
    for (const key of keys) {
      const owner = this.shardOf(key);
      if (shard === null) {
        shard = owner;
        firstKey = key;
      } else if (owner !== shard) {
        throw new AspenError(
          "bad_request",
          `Cannot ${action}: keys "${firstKey}" (shard ${shard}) and "${key}" (shard ${owner}) ` +
            `live on different shards, and transactions span one shard`,
          { shard, otherShard: owner },
        );
      }
    }
    return shard ?? 0;
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

  /** The shard-local id of the API lease a key of `shard` is attached to or compared with. */
  #localLease(use: LeaseUse): number {
    const { lease, shard, key, action } = use;
    if (lease === 0) return 0;
    const split = this.#splitLease({ code: "lease_not_found", action, lease, key });
    if (split.shard !== shard) {
      const doing = action === "attach" ? "attach key" : "compare key";
      throw new AspenError(
        "bad_request",
        `Cannot ${doing} "${key}" (shard ${shard}) to lease ${lease}: the lease lives on ` +
          `shard ${split.shard}; grant it with {"key": "${key}"} to place it on the key's shard`,
        { shard, leaseShard: split.shard },
      );
    }
    return split.local;
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
