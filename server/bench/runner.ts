/**
 * Runs a benchmark: `clients` concurrent loops, each sending one request at a time over one of
 * `conns` HTTP connection pools, spread over the endpoints, for a duration or a total count.
 * Latency is timed around the whole request (send to last byte of the answer).
 */
import { LatencyRecorder, type LatencySummary } from "./latency.ts";
import { type BenchRequest, WorkloadClient, type WorkloadOptions } from "./workload.ts";

/** The most keys written before a read workload starts. */
export const POPULATE_KEYS_MAX = 100_000;
/** Milliseconds between progress reports. */
export const PROGRESS_INTERVAL_MS = 1_000;

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
  readonly nowMs: () => number;
  readonly onProgress?: (progress: Progress) => void;
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
  readonly elapsedMs: number;
  readonly operations: number;
  readonly operationsPerSecond: number;
  readonly latency: LatencySummary;
  /** Failed compares and optimistic conflicts: outcomes of cas and txn, not errors. */
  readonly conflicts: number;
  readonly errors: Readonly<Record<string, number>>;
}

/** Runs one benchmark and returns its report. */
export async function runBench(options: RunOptions): Promise<BenchReport> {
  const pools = Array.from({ length: options.conns }, () => Deno.createHttpClient({}));
  try {
    if (options.workload.workload !== "put") await populate(options, pools);
    return await measure(options, pools);
  } finally {
    for (const pool of pools) pool.close();
  }
}

async function measure(options: RunOptions, pools: Deno.HttpClient[]): Promise<BenchReport> {
  const latency = new LatencyRecorder();
  const errors: Record<string, number> = {};
  const state = { issued: 0, done: 0, conflicts: 0, errors: 0 };
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
      const workload = new WorkloadClient(options.workload, index, options.clients);
      const endpoint = options.endpoints[index % options.endpoints.length]!;
      const pool = pools[index % pools.length]!;
      while (!isOver()) {
        state.issued++;
        const request = workload.next();
        const before = options.nowMs();
        const outcome = await send(endpoint, options.token, pool, request);
        latency.record(options.nowMs() - before);
        state.done++;
        if (outcome === "conflict") state.conflicts++;
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
  return {
    workload: options.workload.workload,
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
    errors,
  };
}

/** Sends one request; returns "ok", "conflict", or the error code. */
async function send(
  endpoint: string,
  token: string | null,
  pool: Deno.HttpClient,
  request: BenchRequest,
): Promise<string> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (request.body !== null) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(endpoint + request.path, {
      method: request.method,
      headers,
      body: request.body,
      client: pool,
    });
  } catch (error) {
    return error instanceof TypeError ? "connection_failed" : "client_error";
  }
  const text = await response.text();
  const body = text === "" ? null : JSON.parse(text);
  request.onAnswer?.(response.status, body);
  if (response.ok) {
    const isFailedCompare = request.kind === "cas" && body?.succeeded === false;
    return isFailedCompare ? "conflict" : "ok";
  }
  const code = body?.error?.code ?? `http_${response.status}`;
  return code === "conflict" ? "conflict" : code;
}

/** Writes the key space once so that reads find keys (not timed). */
async function populate(options: RunOptions, pools: Deno.HttpClient[]): Promise<void> {
  const count = Math.min(options.workload.keyspace, POPULATE_KEYS_MAX);
  const value = JSON.stringify({ value: "v".repeat(options.workload.valueSize) });
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(options.clients, 64) }, async (_, index) => {
    const endpoint = options.endpoints[index % options.endpoints.length]!;
    for (let key = next++; key < count; key = next++) {
      const name = WorkloadClient.key(key, options.workload.keySize);
      const outcome = await send(endpoint, options.token, pools[index % pools.length]!, {
        method: "PUT",
        path: `/v1/kv/${encodeURIComponent(name)}`,
        body: value,
        kind: "put",
      });
      if (outcome !== "ok") throw new Error(`Cannot populate key ${name}: ${outcome}`);
    }
  }));
}
