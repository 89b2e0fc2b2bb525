/**
 * The client side of a chaos run: concurrent clients run put, get, compare-and-swap (a
 * `POST /v1/txn` with one compare) and delete on a small set of keys, each through a random
 * node, and record every call in a history for the linearizability checker.
 *
 * Outcomes: a 2xx is a definite result; a 4xx means the operation was not applied (it is left
 * out of the history, and a get's `key_not_found` is the definite result "absent"); a 5xx, a
 * timeout or any connection error (even "refused", see below) is an unknown outcome (the entry
 * gets `returnMs: null`). A get with an unknown outcome constrains nothing and is left out.
 *
 * Keys rotate: each key takes a bounded number of operations (and of writes whose outcome is
 * unknown) and is then replaced by a fresh one, so every key's sub-history stays small enough
 * for the checker's search.
 */
import type { SeededPrng } from "../../raft/mod.ts";
import type { HistoryEntry, KvOperation, RegisterState } from "../linearizability.ts";

/** The deadline of one client request: above the node's own 5 s request deadline. */
export const CLIENT_REQUEST_TIMEOUT_MS = 6_000;
/** Values per key remembered as candidates for a compare-and-swap's expected value. */
const RECENT_VALUES_MAX = 4;
/**
 * Writes with an unknown outcome a key takes before it is retired. Each stays concurrent with
 * everything after it, so the checker's search doubles with each: a power loss of every node
 * leaves dozens at once, and without this bound one key's history could outgrow the search.
 */
export const UNKNOWN_WRITES_PER_KEY_MAX = 8;

/** What one operation's answer means for the history. */
export type OutcomeKind = "ok" | "failed" | "unknown";

/** How the workload runs. */
export interface WorkloadOptions {
  readonly clients: number;
  /** Draws every choice: keys, operations, values, nodes, pauses. */
  readonly prng: SeededPrng;
  /** Prefix of every key, so that runs never share keys. */
  readonly keyPrefix: string;
  /** Keys in use at once. */
  readonly activeKeys: number;
  /** Operations started on a key before it is retired. */
  readonly operationsPerKey: number;
  /** The longest pause of a client between two operations. */
  readonly thinkMsMax: number;
  /** The nodes a client may send to now (running ones). */
  readonly nodes: () => readonly number[];
  readonly url: (node: number) => string;
  readonly token: string;
  /** Monotonic milliseconds for call and return times. */
  readonly nowMs: () => number;
  /**
   * How gets read: "linearizable" (the default, what the checks expect) or "serializable"
   * (the local replica, possibly stale: only for proving that the checks catch stale reads).
   */
  readonly readConsistency?: "linearizable" | "serializable";
}

/** Counters of a workload. */
export interface WorkloadCounts {
  total: number;
  ok: number;
  failed: number;
  unknown: number;
  readonly byType: Record<string, number>;
  /** Error codes seen, by `status code`. */
  readonly errors: Record<string, number>;
}

/**
 * Classifies an HTTP answer: 2xx ok, 4xx failed (not applied), anything else unknown.
 *
 * @param status the HTTP status, or null when no answer came (timeout, reset connection).
 */
export function classifyAnswer(status: number | null): OutcomeKind {
  if (status === null) return "unknown";
  if (status >= 200 && status < 300) return "ok";
  if (status >= 400 && status < 500) return "failed";
  return "unknown";
}

/** Error codes that a well-formed workload request must never get. */
const SUSPICIOUS_CODES = new Set(["internal", "bad_request", "bad_response", "storage_corrupt"]);

/** Concurrent clients and the history they record. */
export class Workload {
  readonly history: HistoryEntry[] = [];
  readonly counts: WorkloadCounts = {
    total: 0,
    ok: 0,
    failed: 0,
    unknown: 0,
    byType: {},
    errors: {},
  };
  /** Answers that point at a bug (a 500, a malformed body, a 400 for a valid request). */
  readonly anomalies: string[] = [];
  readonly #options: WorkloadOptions;
  readonly #keys: KeySpace;
  #isStopping = false;
  #loops: Promise<void>[] = [];

  constructor(options: WorkloadOptions) {
    this.#options = options;
    this.#keys = new KeySpace(options);
  }

  /** Every key used so far. */
  get keys(): readonly string[] {
    return this.#keys.used;
  }

  /** Starts the clients. */
  start(): void {
    for (let client = 1; client <= this.#options.clients; client++) {
      this.#loops.push(this.#runClient(client));
    }
  }

  /** Stops the clients and waits for their last operations to end. */
  async stop(): Promise<void> {
    this.#isStopping = true;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  /**
   * Reads `key` through `node` until an answer comes, and records the read in the history
   * (the final reads of a run).
   */
  async readUntilAnswered(key: string, nodes: readonly number[], attemptsMax: number) {
    for (let attempt = 0; attempt < attemptsMax; attempt++) {
      const node = nodes[attempt % nodes.length]!;
      const outcome = await this.#run(0, node, key, { type: "get", result: "unknown" });
      if (outcome === "ok") return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`Cannot read key "${key}" after ${attemptsMax} attempts`);
  }

  async #runClient(client: number): Promise<void> {
    const prng = this.#options.prng;
    let sequence = 0;
    while (!this.#isStopping) {
      const nodes = this.#options.nodes();
      if (nodes.length > 0) {
        const key = this.#keys.pick(prng);
        const node = nodes[prng.nextInt(nodes.length)]!;
        const operation = this.#keys.chooseOperation(prng, key, `v${client}.${++sequence}`);
        await this.#run(client, node, key, operation);
      }
      const pauseMs = prng.nextInt(this.#options.thinkMsMax + 1);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  /** Runs one operation and records it; returns its outcome. */
  async #run(
    client: number,
    node: number,
    key: string,
    operation: KvOperation,
  ): Promise<OutcomeKind> {
    const callMs = this.#options.nowMs();
    let answer: { status: number; json: Record<string, unknown> | null };
    try {
      answer = await send(this.#options, node, key, operation);
    } catch (error) {
      if (!(error instanceof TypeError || error instanceof DOMException)) throw error;
      // Even "connection refused" proves nothing: when a pooled connection closes without an
      // answer, Deno's fetch sends the request again on a fresh connection (a PUT too) and
      // reports that attempt's error. The first attempt may have been applied by a node killed
      // a moment later; a chaos run caught exactly that.
      this.#count(operation, "unknown", "no_answer");
      this.#record({ key, client, operation, callMs, returnMs: null });
      return "unknown";
    }
    const returnMs = this.#options.nowMs();
    const kind = classifyAnswer(answer.status);
    const code = errorCode(answer.json);
    if (code !== null && SUSPICIOUS_CODES.has(code)) {
      this.anomalies.push(
        `node ${node} answered ${answer.status} ${code} to ` +
          `${JSON.stringify(operation)} on "${key}": ${JSON.stringify(answer.json)}`,
      );
    }
    const result = kind === "ok" || code === "key_not_found"
      ? definiteOperation(operation, answer, key, this.anomalies)
      : null;
    this.#count(operation, result === null ? kind : "ok", code);
    if (result !== null) {
      this.#keys.observe(key, result);
      this.#record({ key, client, operation: result, callMs, returnMs });
      return "ok";
    }
    if (kind === "unknown") this.#record({ key, client, operation, callMs, returnMs: null });
    return kind;
  }

  #record(entry: HistoryEntry): void {
    // A read whose answer never came constrains nothing: leave it out.
    if (entry.returnMs === null && entry.operation.type === "get") return;
    this.history.push(entry);
    if (entry.returnMs === null) this.#keys.noteUnknownWrite(entry.key);
  }

  #count(operation: KvOperation, kind: OutcomeKind, code: string | null): void {
    const counts = this.counts;
    counts.total++;
    counts[kind]++;
    counts.byType[operation.type] = (counts.byType[operation.type] ?? 0) + 1;
    if (code !== null) counts.errors[code] = (counts.errors[code] ?? 0) + 1;
  }
}

/** The HTTP request of one operation. */
async function send(
  options: WorkloadOptions,
  node: number,
  key: string,
  operation: KvOperation,
): Promise<{ status: number; json: Record<string, unknown> | null }> {
  const path = `/v1/kv/${encodeURIComponent(key)}`;
  const request = requestOf(operation, key, path);
  if (operation.type === "get" && options.readConsistency === "serializable") {
    request.path += "?consistency=serializable";
  }
  const response = await fetch(`${options.url(node)}${request.path}`, {
    method: request.method,
    headers: {
      authorization: `Bearer ${options.token}`,
      ...(request.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: request.body === undefined ? null : JSON.stringify(request.body),
    signal: AbortSignal.timeout(CLIENT_REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
  }
  return { status: response.status, json };
}

function requestOf(
  operation: KvOperation,
  key: string,
  path: string,
): { method: string; path: string; body: unknown } {
  switch (operation.type) {
    case "put":
      return { method: "PUT", path, body: { value: operation.value } };
    case "get":
      return { method: "GET", path, body: undefined };
    case "delete":
      return { method: "DELETE", path, body: undefined };
    case "cas": {
      const compare = operation.expected === null
        ? { key, target: "version", op: "=", value: 0 }
        : { key, target: "value", op: "=", value: operation.expected };
      const success = [{ put: { key, value: operation.value } }];
      return { method: "POST", path: "/v1/txn", body: { compare: [compare], success } };
    }
  }
}

/** The operation with its definite result filled in from a 2xx (or a get's 404). */
function definiteOperation(
  operation: KvOperation,
  answer: { status: number; json: Record<string, unknown> | null },
  key: string,
  anomalies: string[],
): KvOperation | null {
  const json = answer.json ?? {};
  switch (operation.type) {
    case "put":
      return operation;
    case "get": {
      if (answer.status === 404) return { type: "get", result: null };
      const kv = json.kv as { key?: unknown; value?: unknown } | undefined;
      if (kv?.key === key && typeof kv.value === "string") return { type: "get", result: kv.value };
      break;
    }
    case "cas":
      if (typeof json.succeeded === "boolean") return { ...operation, succeeded: json.succeeded };
      break;
    case "delete":
      if (json.deleted === 0 || json.deleted === 1) {
        return { type: "delete", deleted: json.deleted === 1 };
      }
      break;
  }
  anomalies.push(`malformed answer to ${operation.type} "${key}": ${JSON.stringify(json)}`);
  return null;
}

function errorCode(json: Record<string, unknown> | null): string | null {
  const error = json?.error as { code?: unknown } | undefined;
  return typeof error?.code === "string" ? error.code : null;
}

/** The keys in use, their rotation, and the values recently seen on each. */
class KeySpace {
  readonly used: string[] = [];
  readonly #options: WorkloadOptions;
  readonly #active: { key: string; started: number; unknownWrites: number }[] = [];
  readonly #recent = new Map<string, string[]>();

  constructor(options: WorkloadOptions) {
    this.#options = options;
    for (let i = 0; i < options.activeKeys; i++) this.#active.push(this.#fresh());
  }

  /** A key for the next operation; retires keys that had their share. */
  pick(prng: SeededPrng): string {
    const slot = prng.nextInt(this.#active.length);
    const chosen = this.#active[slot]!;
    chosen.started++;
    if (chosen.started >= this.#options.operationsPerKey) this.#active[slot] = this.#fresh();
    return chosen.key;
  }

  /** Counts a write to `key` whose outcome is unknown; retires the key past the bound. */
  noteUnknownWrite(key: string): void {
    const slot = this.#active.findIndex((active) => active.key === key);
    if (slot < 0) return;
    const active = this.#active[slot]!;
    active.unknownWrites++;
    if (active.unknownWrites >= UNKNOWN_WRITES_PER_KEY_MAX) this.#active[slot] = this.#fresh();
  }

  /** A random operation on `key`: 35% get, 25% put, 25% cas, 15% delete. */
  chooseOperation(prng: SeededPrng, key: string, value: string): KvOperation {
    const roll = prng.nextInt(100);
    if (roll < 35) return { type: "get", result: "unknown" };
    if (roll < 60) {
      this.#remember(key, value);
      return { type: "put", value };
    }
    if (roll < 85) {
      const recent = this.#recent.get(key) ?? [];
      const isAbsentExpected = recent.length === 0 || prng.nextInt(100) < 15;
      const expected = isAbsentExpected ? null : recent[prng.nextInt(recent.length)]!;
      this.#remember(key, value);
      return { type: "cas", expected, value, succeeded: "unknown" };
    }
    return { type: "delete", deleted: "unknown" };
  }

  /** Remembers a value read back, a good guess for the next compare-and-swap. */
  observe(key: string, operation: KvOperation): void {
    if (operation.type === "get" && operation.result !== "unknown") {
      const state: RegisterState = operation.result;
      if (state !== null) this.#remember(key, state);
    }
  }

  #remember(key: string, value: string): void {
    const list = this.#recent.get(key) ?? [];
    if (list.includes(value)) return;
    list.push(value);
    if (list.length > RECENT_VALUES_MAX) list.shift();
    this.#recent.set(key, list);
  }

  #fresh(): { key: string; started: number; unknownWrites: number } {
    const key = `${this.#options.keyPrefix}k${this.used.length}`;
    this.used.push(key);
    return { key, started: 0, unknownWrites: 0 };
  }
}
