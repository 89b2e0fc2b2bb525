/**
 * Benchmark workloads against the HTTP API, modelled on etcd's benchmark tool: each workload
 * makes one operation at a time per client; keys come from a fixed key space (random or
 * sequential), values are fixed-size.
 *
 * - `put`: PUT a key.
 * - `get`: GET a key (linearizable, or serializable with `--consistency serializable`).
 * - `mixed`: a GET with probability `readRatio`, else a PUT.
 * - `cas`: a one-compare txn on the key's modRevision, then put (etcd-style compare-and-swap).
 * - `txn`: the same write as an optimistic transaction (read set = the key's modRevision); its
 *   cost against `cas` is the optimistic transaction overhead.
 *
 * `cas` and `txn` check the modRevision, not the version: a version comes back to 1 when a key
 * is deleted and re-created, a modRevision never repeats (README, HTTP API).
 * - `scan`: a range read of `scanLimit` keys from a random start.
 * - `read-txn`: a txn of gets only (no compare, nothing written): a read-only transaction.
 *
 * `cas`, `txn` and `read-txn` name `keysPerTxn` keys spread over `shardsPerTxn` different
 * shards (1 and 1 by default): with `shardsPerTxn` > 1 each one is a cross-shard transaction,
 * and `keysPerTxn` > 1 on one shard is its single-shard baseline with the same payload. The
 * client learns each key's shard from the server (`keyShards`, see runner.ts locateKeys): the
 * key-to-shard hash is not part of the API contract.
 *
 * With `isClientKeys`, each client draws from its own slice of the key space, so no two
 * clients touch one key: `cas` and `txn` then measure successful writes, not conflicts (with a
 * shared key space most compares fail, since a client only learns a key's modRevision from its
 * own answers).
 */
import type { ConflictErrorBody, OptimisticTxnResponse, TxnResponse } from "../api/mod.ts";
import {
  base64,
  type EtcdCall,
  etcdCas,
  etcdCasOutcome,
  etcdErrorOf,
  etcdGet,
  etcdPut,
  etcdReadTxn,
  etcdScan,
} from "./etcd_requests.ts";

/** The workloads `aspen bench` knows. */
export const WORKLOADS = ["put", "get", "mixed", "cas", "txn", "scan", "read-txn"] as const;
/** One of {@linkcode WORKLOADS}. */
export type WorkloadName = typeof WORKLOADS[number];

/** The API a run speaks: Aspen's, or etcd 3.4's JSON gateway (etcd_requests.ts). */
export type BenchApi = "aspen" | "etcd";

/** The shape of a run. */
export interface WorkloadOptions {
  readonly workload: WorkloadName;
  /** The API of the endpoints (default Aspen's). */
  readonly api?: BenchApi;
  readonly keySize: number;
  readonly valueSize: number;
  readonly keyspace: number;
  readonly isSequential: boolean;
  /** Each client uses its own slice of the key space (no contention between clients). */
  readonly isClientKeys: boolean;
  readonly readRatio: number;
  readonly serializable: boolean;
  readonly scanLimit: number;
  /** Keys in each cas, txn or read-txn (default shardsPerTxn; never fewer). */
  readonly keysPerTxn?: number;
  /** Different shards those keys fall on (default 1; at most keysPerTxn). */
  readonly shardsPerTxn?: number;
}

/** The most keys in one benchmark transaction (the API allows 128 operations). */
export const BENCH_TXN_KEYS_MAX = 64;

/** The cluster or the key space cannot run a workload as asked (too few shards or keys). */
export class BenchSetupError extends Error {
  override readonly name = "BenchSetupError";
}

/** Whether a workload needs each key's shard before it starts. */
export function needsKeyShards(options: WorkloadOptions): boolean {
  const isTxn = options.workload === "cas" || options.workload === "txn" ||
    options.workload === "read-txn";
  return isTxn && ((options.keysPerTxn ?? 1) > 1 || (options.shardsPerTxn ?? 1) > 1);
}

/** One HTTP call a client makes; the runner sends it and times it. */
export interface BenchRequest {
  readonly method: "GET" | "PUT" | "POST";
  readonly path: string;
  readonly body: string | null;
  /** What the operation is counted as in the report. */
  readonly kind: "put" | "get" | "cas" | "txn" | "scan";
  /** Learns from the answer (CAS and txn track each key's modRevision). */
  readonly onAnswer?: (status: number, body: unknown) => void;
  /** Whether a 2xx answer of a cas ran its failure branch (absent: Aspen's `succeeded`). */
  readonly isFailedCompare?: (body: unknown) => boolean;
  /** The error code of a non-2xx answer (absent: Aspen's, by the API contract). */
  readonly errorOf?: (status: number, body: unknown) => string;
}

/** The key prefix every benchmark key starts with. */
export const BENCH_PREFIX = "bench/";

/** Builds the requests of one client. */
export class WorkloadClient {
  readonly #options: WorkloadOptions;
  readonly #value: string;
  /** The value in base64, for etcd's gateway; null when speaking Aspen's API. */
  readonly #valueBase64: string | null;
  /** The modRevision this client last learned for each key index; absent means 0. */
  readonly #modRevisions = new Map<number, number>();
  #state: number;
  #sequence: number;
  /** The keys this client draws from: [first, first + count). */
  readonly #slice: { readonly first: number; readonly count: number };
  /** Each key index's shard, when the workload needs it (else null). */
  readonly #keyShards: readonly number[] | null;
  /** The keys of this client's slice by shard, for shards with enough keys for one txn. */
  readonly #shardKeys: readonly (readonly number[])[];

  /**
   * `keyShards[i]` is the shard of key `i`; required when {@linkcode needsKeyShards}. Throws
   * when this client's keys do not fall on enough shards for one transaction.
   */
  constructor(
    options: WorkloadOptions,
    clientIndex: number,
    clientCount: number,
    keyShards: readonly number[] | null = null,
  ) {
    this.#options = options;
    this.#value = "v".repeat(options.valueSize);
    this.#valueBase64 = options.api === "etcd" ? base64(this.#value) : null;
    if (options.api === "etcd" && options.workload === "txn") {
      throw new BenchSetupError("etcd has no optimistic transaction: the txn workload is Aspen's");
    }
    this.#state = (0x9e3779b9 ^ (clientIndex * 0x85ebca6b)) >>> 0 || 1;
    this.#sequence = Math.floor(options.keyspace * clientIndex / clientCount);
    const first = options.isClientKeys ? this.#sequence : 0;
    const end = options.isClientKeys
      ? Math.floor(options.keyspace * (clientIndex + 1) / clientCount)
      : options.keyspace;
    // More clients than keys: some clients share their one key.
    this.#slice = { first: Math.min(first, options.keyspace - 1), count: Math.max(1, end - first) };
    this.#keyShards = keyShards;
    this.#shardKeys = needsKeyShards(options) ? this.#groupByShard(clientIndex) : [];
  }

  /** The keys of the slice by shard, keeping shards that can give one txn its share. */
  #groupByShard(clientIndex: number): number[][] {
    const { keysPerTxn, shardsPerTxn } = txnShape(this.#options);
    const keyShards = this.#keyShards;
    if (keyShards === null) throw new Error("This workload needs each key's shard (keyShards)");
    const byShard = new Map<number, number[]>();
    const { first, count } = this.#slice;
    for (let index = first; index < first + count; index++) {
      const shard = keyShards[index];
      if (shard === undefined) throw new Error(`No shard is known for key ${index}`);
      const keys = byShard.get(shard) ?? [];
      keys.push(index);
      byShard.set(shard, keys);
    }
    const perShard = Math.ceil(keysPerTxn / shardsPerTxn);
    const usable = [...byShard.entries()].sort(([a], [b]) => a - b)
      .map(([, keys]) => keys).filter((keys) => keys.length >= perShard);
    if (usable.length < shardsPerTxn) {
      throw new BenchSetupError(
        `Client ${clientIndex}'s ${count} keys give ${usable.length} shard(s) with ${perShard} ` +
          `key(s) each; ${keysPerTxn} keys on ${shardsPerTxn} shards need ${shardsPerTxn} ` +
          "(raise --keyspace, or lower --clients with --client-keys)",
      );
    }
    return usable;
  }

  /** The key numbered `index`, padded to the key size. */
  static key(index: number, keySize: number): string {
    const digits = String(index);
    const body = BENCH_PREFIX + digits;
    return body.length >= keySize
      ? body
      : BENCH_PREFIX + digits.padStart(keySize - BENCH_PREFIX.length, "0");
  }

  /** The next operation. */
  next(): BenchRequest {
    const options = this.#options;
    if (this.#shardKeys.length > 0) return this.#multiKey();
    switch (options.workload) {
      case "put":
        return this.#put();
      case "get":
        return this.#get();
      case "mixed":
        return this.#random() / 4294967296 < options.readRatio ? this.#get() : this.#put();
      case "cas":
        return this.#cas();
      case "txn":
        return this.#optimistic();
      case "scan":
        return this.#scan();
      case "read-txn":
        return this.#readTxn([this.#pick()]);
    }
  }

  /** A cas, txn or read-txn over several keys (on one or several shards). */
  #multiKey(): BenchRequest {
    const indexes = this.#pickTxnKeys();
    switch (this.#options.workload) {
      case "cas":
        return this.#multiCas(indexes);
      case "txn":
        return this.#multiOptimistic(indexes);
      default:
        return this.#readTxn(indexes);
    }
  }

  /** `keysPerTxn` distinct keys on `shardsPerTxn` distinct shards, dealt round-robin. */
  #pickTxnKeys(): number[] {
    const { keysPerTxn, shardsPerTxn } = txnShape(this.#options);
    const shards = [...this.#shardKeys];
    // A partial Fisher-Yates shuffle chooses the shards.
    for (let i = 0; i < shardsPerTxn; i++) {
      const j = i + this.#random() % (shards.length - i);
      [shards[i], shards[j]] = [shards[j]!, shards[i]!];
    }
    const picked: number[] = [];
    for (let k = 0; k < keysPerTxn; k++) {
      const keys = shards[k % shardsPerTxn]!;
      let index = keys[this.#random() % keys.length]!;
      // Each shard has enough keys (checked at construction): step past the taken ones.
      for (let step = 1; picked.includes(index); step++) {
        index = keys[(keys.indexOf(index) + 1) % keys.length]!;
        if (step > keys.length) throw new Error("Too few keys on a shard for one txn");
      }
      picked.push(index);
    }
    return picked;
  }

  #multiCas(indexes: readonly number[]): BenchRequest {
    if (this.#valueBase64 !== null) return this.#etcdCas(indexes);
    const keys = indexes.map((index) => this.#keyName(index));
    return {
      method: "POST",
      path: "/v1/txn",
      body: JSON.stringify({
        compare: keys.map((key, i) => ({
          key,
          target: "modRevision",
          op: "=",
          value: this.#modRevisions.get(indexes[i]!) ?? 0,
        })),
        success: keys.map((key) => ({ put: { key, value: this.#value } })),
        failure: keys.map((key) => ({ get: { key } })),
      }),
      kind: "cas",
      onAnswer: (status, body) => {
        if (status === 200) {
          const answer = body as Partial<TxnResponse> | null;
          if (answer?.succeeded === true) this.#learnWritten(indexes, answer);
          else {
            indexes.forEach((index, i) => {
              const result = answer?.results?.[i];
              if (result?.type === "get") this.#learn(index, result.kv?.modRevision ?? 0);
            });
          }
        }
        if (status === 409) this.#learnConflict(indexes, body);
      },
    };
  }

  #multiOptimistic(indexes: readonly number[]): BenchRequest {
    const keys = indexes.map((index) => this.#keyName(index));
    return {
      method: "POST",
      path: "/v1/txn/optimistic",
      body: JSON.stringify({
        reads: keys.map((key, i) => ({
          key,
          modRevision: this.#modRevisions.get(indexes[i]!) ?? 0,
        })),
        writes: keys.map((key) => ({ op: "set", key, value: this.#value })),
      }),
      kind: "txn",
      onAnswer: (status, body) => {
        if (status === 200) {
          this.#learnWritten(indexes, body as Partial<OptimisticTxnResponse> | null);
        }
        if (status === 409) this.#learnConflict(indexes, body);
      },
    };
  }

  /** A txn of gets only: no compare, so it always takes the success branch and writes nothing. */
  #readTxn(indexes: readonly number[]): BenchRequest {
    if (this.#valueBase64 !== null) {
      return this.#etcd(etcdReadTxn(indexes.map((index) => this.#keyName(index))), "txn");
    }
    return {
      method: "POST",
      path: "/v1/txn",
      body: JSON.stringify({
        compare: [],
        success: indexes.map((index) => ({ get: { key: this.#keyName(index) } })),
        failure: [],
      }),
      kind: "txn",
    };
  }

  /**
   * A committed write set every key at its shard's revision: `revisions` by shard in a
   * cross-shard answer, the one `revision` otherwise.
   */
  #learnWritten(
    indexes: readonly number[],
    answer: Partial<TxnResponse | OptimisticTxnResponse> | null,
  ): void {
    for (const index of indexes) {
      const shard = this.#keyShards?.[index];
      const revision = shard === undefined ? undefined : answer?.revisions?.[String(shard)];
      this.#learn(index, revision ?? answer?.revision);
    }
  }

  /**
   * A 409 names one key; a failed read check also says what that key has now (a key locked by
   * another transaction teaches nothing: the same compare may hold once the lock is gone).
   */
  #learnConflict(indexes: readonly number[], body: unknown): void {
    const error = (body as Partial<ConflictErrorBody> | null)?.error;
    const index = indexes.find((candidate) => this.#keyName(candidate) === error?.key);
    if (index !== undefined) this.#learn(index, error?.actualModRevision);
  }

  #put(): BenchRequest {
    const key = this.#keyName(this.#pick());
    if (this.#valueBase64 !== null) return this.#etcd(etcdPut(key, this.#valueBase64), "put");
    return {
      method: "PUT",
      path: `/v1/kv/${encodeURIComponent(key)}`,
      body: this.#valueBody(),
      kind: "put",
    };
  }

  #get(): BenchRequest {
    const key = this.#keyName(this.#pick());
    if (this.#valueBase64 !== null) {
      return this.#etcd(etcdGet(key, this.#options.serializable), "get");
    }
    const query = this.#options.serializable ? "?consistency=serializable" : "";
    return {
      method: "GET",
      path: `/v1/kv/${encodeURIComponent(key)}${query}`,
      body: null,
      kind: "get",
    };
  }

  #cas(): BenchRequest {
    const index = this.#pick();
    if (this.#valueBase64 !== null) return this.#etcdCas([index]);
    const key = this.#keyName(index);
    const modRevision = this.#modRevisions.get(index) ?? 0;
    return {
      method: "POST",
      path: "/v1/txn",
      body: JSON.stringify({
        compare: [{ key, target: "modRevision", op: "=", value: modRevision }],
        success: [{ put: { key, value: this.#value } }],
        failure: [{ get: { key } }],
      }),
      kind: "cas",
      onAnswer: (status, body) => {
        if (status !== 200) return;
        const answer = body as Partial<TxnResponse> | null;
        const first = answer?.results?.[0];
        if (answer?.succeeded === true) this.#learn(index, answer.revision);
        else if (first?.type === "get") this.#learn(index, first.kv?.modRevision ?? 0);
      },
    };
  }

  #optimistic(): BenchRequest {
    const index = this.#pick();
    const key = this.#keyName(index);
    const modRevision = this.#modRevisions.get(index) ?? 0;
    return {
      method: "POST",
      path: "/v1/txn/optimistic",
      body: JSON.stringify({
        reads: [{ key, modRevision }],
        writes: [{ op: "set", key, value: this.#value }],
      }),
      kind: "txn",
      onAnswer: (status, body) => {
        // A commit wrote the key at the answer's revision; a conflict says what the key has.
        if (status === 200) {
          this.#learn(index, (body as Partial<OptimisticTxnResponse> | null)?.revision);
        }
        const error = (body as Partial<ConflictErrorBody> | null)?.error;
        if (status === 409) this.#learn(index, error?.actualModRevision);
      },
    };
  }

  /** Records a key's modRevision from an answer; an answer without one teaches nothing. */
  #learn(index: number, modRevision: number | undefined): void {
    if (typeof modRevision === "number") this.#modRevisions.set(index, modRevision);
  }

  #scan(): BenchRequest {
    const start = this.#keyName(this.#pick());
    const limit = this.#options.scanLimit;
    if (this.#valueBase64 !== null) {
      return this.#etcd(etcdScan(start, BENCH_PREFIX + "~", limit), "scan");
    }
    return {
      method: "GET",
      path: `/v1/kv?start=${encodeURIComponent(start)}&end=${
        encodeURIComponent(BENCH_PREFIX + "~")
      }&limit=${limit}`,
      body: null,
      kind: "scan",
    };
  }

  #valueBody(): string {
    return `{"value":"${this.#value}"}`;
  }

  /** An operation in etcd's dialect, whose errors read as etcd's. */
  #etcd(call: EtcdCall, kind: BenchRequest["kind"]): BenchRequest {
    return { ...call, kind, errorOf: etcdErrorOf };
  }

  /** A cas of `indexes` in etcd's dialect; learns each key's mod_revision from the answer. */
  #etcdCas(indexes: readonly number[]): BenchRequest {
    const keys = indexes.map((index) => ({
      key: this.#keyName(index),
      modRevision: this.#modRevisions.get(index) ?? 0,
    }));
    return {
      ...this.#etcd(etcdCas(keys, this.#valueBase64!), "cas"),
      onAnswer: (status, body) => {
        if (status !== 200) return;
        const { modRevisions } = etcdCasOutcome(body, indexes.length);
        indexes.forEach((index, i) => this.#learn(index, modRevisions[i] ?? undefined));
      },
      isFailedCompare: (body) => !etcdCasOutcome(body, 0).succeeded,
    };
  }

  #keyName(index: number): string {
    return WorkloadClient.key(index, this.#options.keySize);
  }

  #pick(): number {
    const { first, count } = this.#slice;
    if (this.#options.isSequential) {
      const index = this.#sequence;
      this.#sequence = this.#options.isClientKeys
        ? first + (this.#sequence - first + 1) % count
        : (this.#sequence + 1) % this.#options.keyspace;
      return index;
    }
    return first + this.#random() % count;
  }

  #random(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state;
  }
}

/** The put that writes key `index` before a read workload, in the run's API. */
export function populateRequest(options: WorkloadOptions, index: number): BenchRequest {
  const key = WorkloadClient.key(index, options.keySize);
  const value = "v".repeat(options.valueSize);
  if (options.api === "etcd") {
    return { ...etcdPut(key, base64(value)), kind: "put", errorOf: etcdErrorOf };
  }
  return {
    method: "PUT",
    path: `/v1/kv/${encodeURIComponent(key)}`,
    body: JSON.stringify({ value }),
    kind: "put",
  };
}

/** The keys and shards of one transaction, defaults applied. */
export function txnShape(options: WorkloadOptions): { keysPerTxn: number; shardsPerTxn: number } {
  const shardsPerTxn = options.shardsPerTxn ?? 1;
  return { keysPerTxn: Math.max(options.keysPerTxn ?? shardsPerTxn, shardsPerTxn), shardsPerTxn };
}
