/**
 * The bank workload of a chaos run (issue 13): accounts spread over every shard, transfer
 * clients moving money between accounts on different shards, and a reader that reads every
 * account in one read-only transaction and checks the total, all while the nemesis runs.
 *
 * Each transfer goes through a random running node, so the nemesis' kills and pauses hit
 * coordinators mid-transaction. Even clients transfer with an etcd-style `POST /v1/txn` (read
 * both balances, compare both modRevisions, each named with the shard it was read on, put both
 * balances); odd clients with
 * `POST /v1/txn/optimistic` (the same reads as the read set). A transfer is atomic, so the total
 * is conserved whatever its outcome: one whose answer never came (a killed coordinator, a
 * timeout) counts as unknown and is fine. The anomalies are a read-only transaction that saw
 * a total other than the opening one (a torn read), an account missing from such a read, and
 * a final total (every account read back after healing) that changed.
 */
import type { SeededPrng } from "../../raft/mod.ts";
import { shardForKey } from "../../shard/mod.ts";
import { classifyAnswer } from "./workload.ts";

/** The deadline of one client request: above the node's own 5 s request deadline. */
export const BANK_REQUEST_TIMEOUT_MS = 6_000;
/** Accounts opened on each shard. */
export const BANK_ACCOUNTS_PER_SHARD = 3;
/** Every account's opening balance. */
export const BANK_BALANCE_START = 1_000;
/** The largest amount of one transfer. */
const TRANSFER_AMOUNT_MAX = 20;
/** Attempts of opening the accounts and of each final read before the run fails. */
const BANK_ATTEMPTS_MAX = 50;
/** The pause of a client after an answer that was not a result. */
const RETRY_PAUSE_MS = 50;

/** How the bank workload runs. */
export interface BankOptions {
  /** Transfer clients (even: etcd-style txn, odd: optimistic txn); one reader runs besides. */
  readonly clients: number;
  readonly shards: number;
  /** Draws accounts, amounts, nodes and pauses. */
  readonly prng: SeededPrng;
  /** Prefix of every account key, so that runs never share keys. */
  readonly keyPrefix: string;
  /** The longest pause of a client between two transfers. */
  readonly thinkMsMax: number;
  /** The nodes a client may send to now (running ones). */
  readonly nodes: () => readonly number[];
  readonly url: (node: number) => string;
  readonly token: string;
  /** Monotonic milliseconds. */
  readonly nowMs: () => number;
}

/** One read-only transaction's view of every account (null: the account was absent). */
export interface BankRead {
  readonly node: number;
  readonly callMs: number;
  readonly returnMs: number;
  readonly balances: Readonly<Record<string, number | null>>;
}

/** The figures of a bank workload. */
export interface BankCounts {
  readonly accounts: number;
  /** Transfers acknowledged as committed. */
  committed: number;
  /** Transfers definitely not applied: a failed compare or a 409 conflict. */
  conflicted: number;
  /** Transfers without a definite answer (no answer, 5xx, timeout): applied or not. */
  unknown: number;
  /** Transfers that got no answer at all (their node was killed, paused or cut off). */
  noAnswer: number;
  /** Transfers in flight on a node when the nemesis killed or stopped it (its coordinator). */
  coordinatorsStopped: number;
  /** Read-only transactions whose total was checked. */
  totalsChecked: number;
  /** Read-only transactions answered 409 conflict. */
  readConflicts: number;
  /** Read-only transactions without an answer or with a 5xx. */
  readsUnknown: number;
  /** The smallest and largest total a reader saw (null before the first). */
  totalMin: number | null;
  totalMax: number | null;
  /** The total read back after healing (null until then). */
  finalTotal: number | null;
  /** Error codes seen, by code. */
  readonly errors: Record<string, number>;
}

/** Error codes that a well-formed bank request must never get. */
const SUSPICIOUS_CODES = new Set(["internal", "bad_request", "bad_response", "storage_corrupt"]);

/**
 * The anomalies of the reads: every read must see each account and the opening total.
 *
 * @param reads the read-only transactions' views, in any order.
 * @param accounts every account key.
 * @param total the sum of the opening balances.
 */
export function checkBankReads(
  reads: readonly BankRead[],
  accounts: readonly string[],
  total: number,
): string[] {
  const anomalies: string[] = [];
  for (const read of reads) {
    const missing = accounts.filter((key) => read.balances[key] === null);
    const sum = accounts.reduce((acc, key) => acc + (read.balances[key] ?? 0), 0);
    const where = `a read-only txn through node ${read.node} ` +
      `(${read.callMs.toFixed(0)}-${read.returnMs.toFixed(0)} ms)`;
    if (missing.length > 0) {
      anomalies.push(`bank: ${where} found no account ${missing.join(", ")}`);
    } else if (sum !== total) {
      anomalies.push(`bank: ${where} saw a torn state: total ${sum}, not ${total}`);
    }
  }
  return anomalies;
}

/** The anomalies of the final balances: every account is there and the total is unchanged. */
export function checkBankFinal(
  balances: ReadonlyMap<string, number | null>,
  accounts: readonly string[],
  total: number,
): string[] {
  const missing = accounts.filter((key) => (balances.get(key) ?? null) === null);
  if (missing.length > 0) return [`bank: final read found no account ${missing.join(", ")}`];
  const sum = accounts.reduce((acc, key) => acc + balances.get(key)!, 0);
  return sum === total ? [] : [`bank: final total ${sum}, not ${total}: money was made or lost`];
}

/** Transfer clients, a reader, and what they saw. */
export class BankWorkload {
  readonly counts: BankCounts;
  /** Every read-only transaction answered with balances. */
  readonly reads: BankRead[] = [];
  /** Answers that point at a bug (a 500, a malformed body, a 400 for a valid request). */
  readonly anomalies: string[] = [];
  readonly accounts: readonly string[];
  readonly total: number;
  readonly #options: BankOptions;
  /** Transfer transactions awaiting their answer, by the node that coordinates them. */
  readonly #inFlight = new Map<number, number>();
  #isStopping = false;
  #loops: Promise<void>[] = [];

  constructor(options: BankOptions) {
    this.#options = options;
    this.accounts = bankAccounts(options.keyPrefix, options.shards);
    this.total = this.accounts.length * BANK_BALANCE_START;
    this.counts = {
      accounts: this.accounts.length,
      committed: 0,
      conflicted: 0,
      unknown: 0,
      noAnswer: 0,
      coordinatorsStopped: 0,
      totalsChecked: 0,
      readConflicts: 0,
      readsUnknown: 0,
      totalMin: null,
      totalMax: null,
      finalTotal: null,
      errors: {},
    };
  }

  /** Opens every account with one cross-shard transaction (before the nemesis starts). */
  async open(): Promise<void> {
    const body = {
      compare: [],
      success: this.accounts.map((key) => ({
        put: { key, value: String(BANK_BALANCE_START) },
      })),
      failure: [],
    };
    for (let attempt = 0; attempt < BANK_ATTEMPTS_MAX; attempt++) {
      const nodes = this.#options.nodes();
      const node = nodes[attempt % Math.max(1, nodes.length)] ?? 1;
      const answer = await this.#send(node, "/v1/txn", body).catch(noAnswer);
      if (answer?.status === 200 && answer.json?.succeeded === true) return;
      await sleep(200);
    }
    throw new Error(`Cannot open the bank's accounts after ${BANK_ATTEMPTS_MAX} attempts`);
  }

  /** Counts the transfers coordinated by `node`, which the nemesis is about to stop. */
  noteStop(node: number): void {
    this.counts.coordinatorsStopped += this.#inFlight.get(node) ?? 0;
  }

  /** Starts the transfer clients and the reader. */
  start(): void {
    for (let client = 0; client < this.#options.clients; client++) {
      this.#loops.push(this.#transferLoop(client));
    }
    this.#loops.push(this.#readerLoop());
  }

  /** Stops the clients and waits for their last requests to end. */
  async stop(): Promise<void> {
    this.#isStopping = true;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  /**
   * Reads every account back with plain linearizable GETs (which push any intent left behind)
   * through `nodes` in turn, and returns the anomalies of the reads and of the final total.
   */
  async verify(nodes: readonly number[]): Promise<string[]> {
    await this.#readTotalOnce(nodes);
    const balances = new Map<string, number | null>();
    for (const key of this.accounts) balances.set(key, await this.#readBack(key, nodes));
    const anomalies = checkBankFinal(balances, this.accounts, this.total);
    if (anomalies.length === 0) this.counts.finalTotal = this.total;
    else {
      const values = [...balances.values()];
      this.counts.finalTotal = values.reduce<number>((acc, value) => acc + (value ?? 0), 0);
    }
    return [...checkBankReads(this.reads, this.accounts, this.total), ...anomalies];
  }

  async #readBack(key: string, nodes: readonly number[]): Promise<number | null> {
    for (let attempt = 0; attempt < BANK_ATTEMPTS_MAX; attempt++) {
      const node = nodes[attempt % nodes.length]!;
      const path = `/v1/kv/${encodeURIComponent(key)}`;
      const answer = await this.#send(node, path, undefined).catch(noAnswer);
      if (answer?.status === 404) return null;
      const kv = answer?.json?.kv as { value?: unknown } | undefined;
      if (answer?.status === 200 && typeof kv?.value === "string") return Number(kv.value);
      await sleep(200);
    }
    throw new Error(`Cannot read account "${key}" after ${BANK_ATTEMPTS_MAX} attempts`);
  }

  async #transferLoop(client: number): Promise<void> {
    const { prng } = this.#options;
    while (!this.#isStopping) {
      const nodes = this.#options.nodes();
      if (nodes.length > 0) {
        const node = nodes[prng.nextInt(nodes.length)]!;
        const [from, to] = this.#pickPair();
        const amount = 1 + prng.nextInt(TRANSFER_AMOUNT_MAX);
        const isDone = await this.#transfer(node, { from, to, amount }, client % 2 === 0);
        if (!isDone) await sleep(RETRY_PAUSE_MS);
      }
      await sleep(prng.nextInt(this.#options.thinkMsMax + 1));
    }
  }

  /** Two accounts on different shards. */
  #pickPair(): [string, string] {
    const { prng, shards } = this.#options;
    for (;;) {
      const from = this.accounts[prng.nextInt(this.accounts.length)]!;
      const to = this.accounts[prng.nextInt(this.accounts.length)]!;
      if (shards === 1 && from !== to) return [from, to];
      if (shardForKey(from, shards) !== shardForKey(to, shards)) return [from, to];
    }
  }

  /** Runs one transfer and counts it; true when it got a definite answer. */
  async #transfer(
    node: number,
    transfer: { from: string; to: string; amount: number },
    isEtcdStyle: boolean,
  ): Promise<boolean> {
    const { from, to, amount } = transfer;
    const [a, b] = await Promise.all([this.#getKv(node, from), this.#getKv(node, to)]);
    if (a === null || b === null) return false;
    const body = isEtcdStyle
      ? {
        compare: [
          { key: from, target: "modRevision", op: "=", value: a.modRevision, shard: a.shard },
          { key: to, target: "modRevision", op: "=", value: b.modRevision, shard: b.shard },
        ],
        success: [
          { put: { key: from, value: String(a.balance - amount) } },
          { put: { key: to, value: String(b.balance + amount) } },
        ],
        failure: [],
      }
      : {
        // Each read names its shard: revisions are per shard, and a shard-add may move a key.
        reads: [
          { key: from, modRevision: a.modRevision, shard: a.shard },
          { key: to, modRevision: b.modRevision, shard: b.shard },
        ],
        writes: [
          { op: "set", key: from, value: String(a.balance - amount) },
          { op: "set", key: to, value: String(b.balance + amount) },
        ],
      };
    const path = isEtcdStyle ? "/v1/txn" : "/v1/txn/optimistic";
    this.#inFlight.set(node, (this.#inFlight.get(node) ?? 0) + 1);
    const answer = await this.#send(node, path, body).catch(noAnswer)
      .finally(() => this.#inFlight.set(node, this.#inFlight.get(node)! - 1));
    const counts = this.counts;
    if (answer === null) {
      counts.unknown++;
      counts.noAnswer++;
      this.#countError("no_answer");
      return false;
    }
    const code = this.#noteError(node, path, answer);
    const kind = classifyAnswer(answer.status);
    if (kind === "unknown") counts.unknown++;
    else if (kind === "failed") counts.conflicted++;
    else if (isEtcdStyle && answer.json?.succeeded === false) counts.conflicted++;
    else if (isEtcdStyle ? answer.json?.succeeded === true : answer.json?.committed === true) {
      counts.committed++;
    } else {
      this.anomalies.push(`bank: malformed answer to ${path}: ${JSON.stringify(answer.json)}`);
      counts.unknown++;
    }
    return kind === "ok" || code === "conflict";
  }

  /** A linearizable GET of one account: its balance, modRevision and shard, or null. */
  async #getKv(
    node: number,
    key: string,
  ): Promise<{ balance: number; modRevision: number; shard: number } | null> {
    const path = `/v1/kv/${encodeURIComponent(key)}`;
    const answer = await this.#send(node, path, undefined).catch(noAnswer);
    if (answer === null) return null;
    this.#noteError(node, path, answer);
    const kv = answer.json?.kv as { value?: unknown; modRevision?: unknown } | undefined;
    if (answer.status !== 200) return null;
    const shard = answer.json?.shard;
    const isWellFormed = typeof kv?.value === "string" && typeof kv.modRevision === "number";
    if (!isWellFormed || typeof shard !== "number") {
      this.anomalies.push(`bank: malformed answer to GET ${key}: ${JSON.stringify(answer.json)}`);
      return null;
    }
    return { balance: Number(kv!.value), modRevision: kv!.modRevision as number, shard };
  }

  /**
   * One read-only transaction of every account on the healed cluster, tried until it answers
   * (a short round under heavy faults may have checked few totals while it ran).
   */
  async #readTotalOnce(nodes: readonly number[]): Promise<void> {
    const body = {
      compare: [],
      success: this.accounts.map((key) => ({ get: { key } })),
      failure: [],
    };
    for (let attempt = 0; attempt < BANK_ATTEMPTS_MAX; attempt++) {
      const node = nodes[attempt % nodes.length]!;
      const callMs = this.#options.nowMs();
      const answer = await this.#send(node, "/v1/txn", body).catch(noAnswer);
      const balances = answer?.status === 200 ? this.#balancesOf(answer.json) : null;
      if (balances !== null) {
        this.#noteRead({ node, callMs, returnMs: this.#options.nowMs(), balances });
        return;
      }
      await sleep(200);
    }
  }

  /** Reads every account in one read-only transaction through a random node, over and over. */
  async #readerLoop(): Promise<void> {
    const { prng, nowMs } = this.#options;
    const body = {
      compare: [],
      success: this.accounts.map((key) => ({ get: { key } })),
      failure: [],
    };
    while (!this.#isStopping) {
      const nodes = this.#options.nodes();
      if (nodes.length === 0) {
        await sleep(RETRY_PAUSE_MS);
        continue;
      }
      const node = nodes[prng.nextInt(nodes.length)]!;
      const callMs = nowMs();
      const answer = await this.#send(node, "/v1/txn", body).catch(noAnswer);
      const returnMs = nowMs();
      if (answer === null) this.#countError("no_answer");
      else this.#noteError(node, "/v1/txn (read-only)", answer);
      if (answer?.status === 200) {
        const balances = this.#balancesOf(answer.json);
        if (balances !== null) this.#noteRead({ node, callMs, returnMs, balances });
      } else if (answer?.status === 409) {
        this.counts.readConflicts++;
      } else if (answer === null || classifyAnswer(answer.status) === "unknown") {
        this.counts.readsUnknown++;
      }
      if (answer?.status !== 200) await sleep(RETRY_PAUSE_MS);
    }
  }

  #balancesOf(json: Record<string, unknown> | null): Record<string, number | null> | null {
    const results = json?.results;
    const isWellFormed = Array.isArray(results) && results.length === this.accounts.length;
    const balances: Record<string, number | null> = {};
    if (isWellFormed) {
      for (const [position, key] of this.accounts.entries()) {
        const item = results[position] as { type?: unknown; kv?: unknown };
        const kv = item?.kv as { key?: unknown; value?: unknown } | null | undefined;
        if (item?.type !== "get" || kv === undefined) return this.#malformed(json);
        if (kv !== null && (kv.key !== key || typeof kv.value !== "string")) {
          return this.#malformed(json);
        }
        balances[key] = kv === null ? null : Number(kv.value);
      }
      return balances;
    }
    return this.#malformed(json);
  }

  #malformed(json: Record<string, unknown> | null): null {
    this.anomalies.push(`bank: malformed read-only txn answer: ${JSON.stringify(json)}`);
    return null;
  }

  #noteRead(read: BankRead): void {
    this.reads.push(read);
    const counts = this.counts;
    counts.totalsChecked++;
    const sum = this.accounts.reduce((acc, key) => acc + (read.balances[key] ?? 0), 0);
    counts.totalMin = Math.min(counts.totalMin ?? sum, sum);
    counts.totalMax = Math.max(counts.totalMax ?? sum, sum);
  }

  /** Counts an answer's error code and reports the ones that point at a bug; the code. */
  #noteError(
    node: number,
    path: string,
    answer: { status: number; json: Record<string, unknown> | null },
  ): string | null {
    const error = answer.json?.error as { code?: unknown } | undefined;
    const code = typeof error?.code === "string" ? error.code : null;
    if (code === null) return null;
    this.#countError(code);
    if (SUSPICIOUS_CODES.has(code)) {
      this.anomalies.push(
        `bank: node ${node} answered ${answer.status} ${code} to ${path}: ` +
          JSON.stringify(answer.json),
      );
    }
    return code;
  }

  #countError(code: string): void {
    this.counts.errors[code] = (this.counts.errors[code] ?? 0) + 1;
  }

  async #send(
    node: number,
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> | null }> {
    const response = await fetch(`${this.#options.url(node)}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${this.#options.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(BANK_REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    try {
      return { status: response.status, json: JSON.parse(text) as Record<string, unknown> };
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      return { status: response.status, json: null };
    }
  }
}

/** BANK_ACCOUNTS_PER_SHARD account keys on each of `shards` shards, sorted. */
export function bankAccounts(prefix: string, shards: number): string[] {
  const perShard = new Map<number, string[]>();
  for (let shard = 0; shard < shards; shard++) perShard.set(shard, []);
  for (
    let i = 0;
    [...perShard.values()].some((keys) => keys.length < BANK_ACCOUNTS_PER_SHARD);
    i++
  ) {
    const key = `${prefix}account-${i}`;
    const keys = perShard.get(shardForKey(key, shards))!;
    if (keys.length < BANK_ACCOUNTS_PER_SHARD) keys.push(key);
  }
  return [...perShard.values()].flat().sort();
}

/**
 * A request that got no answer (refused, reset, timed out): null. Even "refused" proves
 * nothing about a write (see workload.ts: fetch may have sent it once already).
 */
function noAnswer(error: unknown): null {
  if (error instanceof TypeError || error instanceof DOMException) return null;
  throw error;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
