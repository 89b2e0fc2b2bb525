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
 *
 * With `isClientKeys`, each client draws from its own slice of the key space, so no two
 * clients touch one key: `cas` and `txn` then measure successful writes, not conflicts (with a
 * shared key space most compares fail, since a client only learns a key's modRevision from its
 * own answers).
 */
import type { ConflictErrorBody, OptimisticTxnResponse, TxnResponse } from "../api/mod.ts";

/** The workloads `aspen bench` knows. */
export const WORKLOADS = ["put", "get", "mixed", "cas", "txn", "scan"] as const;
/** One of {@linkcode WORKLOADS}. */
export type WorkloadName = typeof WORKLOADS[number];

/** The shape of a run. */
export interface WorkloadOptions {
  readonly workload: WorkloadName;
  readonly keySize: number;
  readonly valueSize: number;
  readonly keyspace: number;
  readonly isSequential: boolean;
  /** Each client uses its own slice of the key space (no contention between clients). */
  readonly isClientKeys: boolean;
  readonly readRatio: number;
  readonly serializable: boolean;
  readonly scanLimit: number;
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
}

/** The key prefix every benchmark key starts with. */
export const BENCH_PREFIX = "bench/";

/** Builds the requests of one client. */
export class WorkloadClient {
  readonly #options: WorkloadOptions;
  readonly #value: string;
  /** The modRevision this client last learned for each key index; absent means 0. */
  readonly #modRevisions = new Map<number, number>();
  #state: number;
  #sequence: number;
  /** The keys this client draws from: [first, first + count). */
  readonly #slice: { readonly first: number; readonly count: number };

  constructor(options: WorkloadOptions, clientIndex: number, clientCount: number) {
    this.#options = options;
    this.#value = "v".repeat(options.valueSize);
    this.#state = (0x9e3779b9 ^ (clientIndex * 0x85ebca6b)) >>> 0 || 1;
    this.#sequence = Math.floor(options.keyspace * clientIndex / clientCount);
    const first = options.isClientKeys ? this.#sequence : 0;
    const end = options.isClientKeys
      ? Math.floor(options.keyspace * (clientIndex + 1) / clientCount)
      : options.keyspace;
    // More clients than keys: some clients share their one key.
    this.#slice = { first: Math.min(first, options.keyspace - 1), count: Math.max(1, end - first) };
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
    }
  }

  #put(): BenchRequest {
    const key = this.#keyName(this.#pick());
    return {
      method: "PUT",
      path: `/v1/kv/${encodeURIComponent(key)}`,
      body: this.#valueBody(),
      kind: "put",
    };
  }

  #get(): BenchRequest {
    const key = this.#keyName(this.#pick());
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
