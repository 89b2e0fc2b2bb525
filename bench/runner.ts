/**
 * Runs a benchmark: `clients` concurrent loops, each sending one request at a time over one of
 * `conns` keep-alive HTTP/1.1 connections (clients that share a connection pipeline their
 * requests on it), the connections spread round-robin over the endpoints, for a duration or a
 * total count. Latency is timed around the whole request (send to last byte of the answer).
 */
import { apiErrorOf, type TxnResponse } from "../api/mod.ts";
import { type HttpAnswer, HttpConnection, HttpConnectionError } from "./http_connection.ts";
import { LatencyRecorder, type LatencySummary } from "./latency.ts";
import {
  type BenchRequest,
  BenchSetupError,
  needsKeyShards,
  populateRequest,
  txnShape,
  WorkloadClient,
  type WorkloadOptions,
} from "./workload.ts";

/** The most keys written before a read workload starts. */
export const POPULATE_KEYS_MAX = 100_000;
/** Milliseconds between progress reports. */
export const PROGRESS_INTERVAL_MS = 1_000;
/** Tries per key when writing the key space before a read workload (or locating its keys). */
export const POPULATE_ATTEMPTS_MAX = 5;
/** Concurrent requests while writing or locating the key space. */
const SETUP_CONCURRENCY_MAX = 64;

/** How to run. */
export interface RunOptions {
  readonly endpoints: readonly string[];
  readonly token: string | null;
  readonly clients: number;
  readonly conns: number;
  /** Stop after this long; or after `total` operations when it is set. */
  readonly durationMs: number;
  readonly total: number | null;
  readonly workload: WorkloadOptions;
  /** Write the key space before a read workload (default true); false when already written. */
  readonly populate?: boolean;
  /**
   * The shard of each key of the key space, for multi-key transactions (see locateKeys);
   * located before the run when absent.
   */
  readonly keyShards?: readonly number[];
  /** Run the workload this long first, untimed, to open connections and warm up (default 0). */
  readonly warmupMs?: number;
  readonly nowMs: () => number;
  readonly onProgress?: (progress: Progress) => void;
  /** Called when the timed run starts (after populating and warming up). */
  readonly onStart?: () => void;
}

/** A live view of a run. */
export interface Progress {
  readonly elapsedMs: number;
  readonly operations: number;
  readonly operationsPerSecond: number;
  readonly errors: number;
}

/** The result of a run. */
export interface BenchReport {
  readonly workload: string;
  readonly clients: number;
  readonly conns: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly keyspace: number;
  /** Keys in each transaction and the shards they fall on (1 and 1 for single-key workloads). */
  readonly keysPerTxn: number;
  readonly shardsPerTxn: number;
  readonly elapsedMs: number;
  readonly operations: number;
  readonly operationsPerSecond: number;
  readonly latency: LatencySummary;
  /** Failed compares and optimistic conflicts: outcomes of cas and txn, not errors. */
  readonly conflicts: number;
  /**
   * The conflicts answered 409 `conflict`: transactions that wrote nothing because of another
   * one (an optimistic read that no longer held, a key locked by a cross-shard transaction).
   * A failed compare is not one: its transaction committed its failure branch.
   */
  readonly aborts: number;
  readonly errors: Readonly<Record<string, number>>;
}

/** The outcome of a cas whose compare failed (not an error code of the API). */
const COMPARE_FAILED = "compare failed";

/** Runs one benchmark and returns its report. */
export async function runBench(options: RunOptions): Promise<BenchReport> {
  const authorization = options.token === null ? null : `Bearer ${options.token}`;
  const connections = Array.from(
    { length: options.conns },
    (_, index) =>
      new HttpConnection(options.endpoints[index % options.endpoints.length]!, authorization),
  );
  try {
    const isRead = options.workload.workload !== "put";
    if (isRead && options.populate !== false) await populate(options, connections);
    const keyShards = needsKeyShards(options.workload)
      ? options.keyShards ?? await locateKeys(options, connections)
      : null;
    // One workload client per bench client for warm-up and measurement alike: what cas and txn
    // clients learn of their keys' modRevisions while warming up keeps their compares succeeding.
    const workloads = Array.from(
      { length: options.clients },
      (_, index) => new WorkloadClient(options.workload, index, options.clients, keyShards),
    );
    const warmupMs = options.warmupMs ?? 0;
    if (warmupMs > 0) {
      const { onProgress: _, ...quiet } = options;
      await measure({ ...quiet, durationMs: warmupMs, total: null }, connections, workloads);
    }
    options.onStart?.();
    return await measure(options, connections, workloads);
  } finally {
    for (const connection of connections) connection.close();
  }
}

async function measure(
  options: RunOptions,
  connections: HttpConnection[],
  workloads: readonly WorkloadClient[],
): Promise<BenchReport> {
  const latency = new LatencyRecorder();
  const errors: Record<string, number> = {};
  const state = { issued: 0, done: 0, conflicts: 0, aborts: 0, errors: 0 };
  const started = options.nowMs();
  const deadline = started + options.durationMs;
  const isOver = () =>
    options.total !== null ? state.issued >= options.total : options.nowMs() >= deadline;
  let lastDone = 0;
  let lastAt = started;
  const progress = setInterval(() => {
    const now = options.nowMs();
    options.onProgress?.({
      elapsedMs: now - started,
      operations: state.done,
      operationsPerSecond: (state.done - lastDone) * 1000 / Math.max(1, now - lastAt),
      errors: state.errors,
    });
    lastDone = state.done;
    lastAt = now;
  }, PROGRESS_INTERVAL_MS);
  try {
    await Promise.all(Array.from({ length: options.clients }, async (_, index) => {
      const workload = workloads[index]!;
      const connection = connections[index % connections.length]!;
      while (!isOver()) {
        state.issued++;
        const request = workload.next();
        const before = options.nowMs();
        const outcome = await send(connection, request);
        latency.record(options.nowMs() - before);
        state.done++;
        if (outcome === "conflict") state.aborts++;
        if (outcome === "conflict" || outcome === COMPARE_FAILED) state.conflicts++;
        else if (outcome !== "ok") {
          state.errors++;
          errors[outcome] = (errors[outcome] ?? 0) + 1;
        }
      }
    }));
  } finally {
    clearInterval(progress);
  }
  const elapsedMs = options.nowMs() - started;
  const shape = needsKeyShards(options.workload)
    ? txnShape(options.workload)
    : { keysPerTxn: 1, shardsPerTxn: 1 };
  return {
    workload: options.workload.workload,
    ...shape,
    clients: options.clients,
    conns: options.conns,
    keySize: options.workload.keySize,
    valueSize: options.workload.valueSize,
    keyspace: options.workload.keyspace,
    elapsedMs: Math.round(elapsedMs),
    operations: state.done,
    operationsPerSecond: Math.round(state.done * 1000 / Math.max(1, elapsedMs)),
    latency: latency.summary(),
    conflicts: state.conflicts,
    aborts: state.aborts,
    errors,
  };
}

/**
 * Sends one request; returns "ok", COMPARE_FAILED (a cas that ran its failure branch), or the
 * error code (`conflict` for a 409): the API's code of an error
 * answer (read by the contract's apiErrorOf, `bad_response` for one that is not an error body
 * of the API), or `connection_failed`.
 */
async function send(connection: HttpConnection, request: BenchRequest): Promise<string> {
  let answer: HttpAnswer;
  try {
    answer = await connection.request(request.method, request.path, request.body);
  } catch (error) {
    if (error instanceof HttpConnectionError) return "connection_failed";
    throw error;
  }
  const body = parseBody(answer.body);
  request.onAnswer?.(answer.status, body);
  if (answer.status >= 200 && answer.status < 300) {
    const isFailedCompare = request.kind === "cas" &&
      (request.isFailedCompare?.(body) ??
        (body as Partial<TxnResponse> | null)?.succeeded === false);
    return isFailedCompare ? COMPARE_FAILED : "ok";
  }
  if (request.errorOf !== undefined) return request.errorOf(answer.status, body);
  return apiErrorOf({ httpStatus: answer.status, body }).code;
}

/**
 * The JSON of an answer; null for an empty or malformed one (an error answer then reads as
 * `bad_response`).
 */
function parseBody(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) return null;
    throw error;
  }
}

/** Writes the key space once so that reads find keys (not timed); retries transient errors. */
async function populate(options: RunOptions, connections: HttpConnection[]): Promise<void> {
  const count = Math.min(options.workload.keyspace, POPULATE_KEYS_MAX);
  let next = 0;
  const writers = Math.min(options.clients, SETUP_CONCURRENCY_MAX);
  await Promise.all(Array.from({ length: writers }, async (_, index) => {
    const connection = connections[index % connections.length]!;
    for (let key = next++; key < count; key = next++) {
      const request = populateRequest(options.workload, key);
      let outcome = "";
      for (let attempt = 0; attempt < POPULATE_ATTEMPTS_MAX && outcome !== "ok"; attempt++) {
        outcome = await send(connection, request);
      }
      if (outcome !== "ok") throw new Error(`Cannot populate key ${key}: ${outcome}`);
    }
  }));
}

/**
 * Asks the cluster for its shard count (GET /v1/cluster/status) and for the shard of every key
 * of the key space (a serializable GET of each names its shard, found or not): the key-to-shard
 * hash is the server's business, not the API's. Throws BenchSetupError when the cluster has
 * fewer shards than each transaction should touch.
 */
export async function locateKeys(
  options: RunOptions,
  connections: readonly HttpConnection[],
): Promise<number[]> {
  const { shardsPerTxn } = txnShape(options.workload);
  if (options.workload.api === "etcd") {
    // etcd is one Raft group: every key is on its one "shard".
    if (shardsPerTxn > 1) throw new BenchSetupError("etcd has one shard, not " + shardsPerTxn);
    return new Array<number>(options.workload.keyspace).fill(0);
  }
  const statusAnswer = await connections[0]!.request("GET", "/v1/cluster/status", null);
  const status = parseBody(statusAnswer.body) as
    | { shardMap?: { numShards?: unknown } }
    | null;
  const shardCount = status?.shardMap?.numShards;
  if (statusAnswer.status !== 200 || typeof shardCount !== "number") {
    const code = apiErrorOf({ httpStatus: statusAnswer.status, body: status }).code;
    throw new Error(`Cannot read the cluster's shard count: GET /v1/cluster/status gave ${code}`);
  }
  if (shardsPerTxn > shardCount) {
    throw new BenchSetupError(
      `${shardsPerTxn} shards per transaction, but the cluster has ${shardCount} shard(s)`,
    );
  }
  const count = options.workload.keyspace;
  if (count > POPULATE_KEYS_MAX) {
    throw new BenchSetupError(
      `Multi-key transactions locate every key first: a key space of at most ` +
        `${POPULATE_KEYS_MAX} keys, not ${count}`,
    );
  }
  const shards = new Array<number>(count);
  let next = 0;
  const readers = Math.min(connections.length, SETUP_CONCURRENCY_MAX);
  await Promise.all(Array.from({ length: readers }, async (_, index) => {
    const connection = connections[index]!;
    for (let key = next++; key < count; key = next++) {
      const name = WorkloadClient.key(key, options.workload.keySize);
      const path = `/v1/kv/${encodeURIComponent(name)}?consistency=serializable`;
      let shard: unknown = undefined;
      for (let attempt = 0; attempt < POPULATE_ATTEMPTS_MAX && shard === undefined; attempt++) {
        shard = await shardOfAnswer(connection, path);
      }
      if (typeof shard !== "number") throw new Error(`Cannot find the shard of key ${name}`);
      shards[key] = shard;
    }
  }));
  return shards;
}

/** The `shard` a GET answer names (a 404 key_not_found names it too); undefined if none. */
async function shardOfAnswer(connection: HttpConnection, path: string): Promise<unknown> {
  let answer: HttpAnswer;
  try {
    answer = await connection.request("GET", path, null);
  } catch (error) {
    if (error instanceof HttpConnectionError) return undefined;
    throw error;
  }
  const body = parseBody(answer.body) as
    | { shard?: unknown; error?: { shard?: unknown } }
    | null;
  const shard = answer.status === 200 ? body?.shard : body?.error?.shard;
  return typeof shard === "number" ? shard : undefined;
}
