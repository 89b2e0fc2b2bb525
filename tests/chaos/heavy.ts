/**
 * The heavy writer of a chaos run: many concurrent puts of small values, each to a distinct key,
 * through every reachable node in turn, so that a shard's log grows by tens of thousands of
 * entries while a node is down or leadership moves. It is separate from the linearizability
 * workload (whose histories must stay small) and keeps its own account: every key's fate
 * (acknowledged, failed with a 4xx, or unknown), one byte per key.
 *
 * At the end of a run {@linkcode HeavyWriter.verify} reads every key of its prefix back with
 * linearizable range reads: each acknowledged key must hold its value, a failed key must be
 * absent, an unknown one may be either, and no other key may exist.
 */
import { shardForKey } from "../../shard/mod.ts";

/** The deadline of one heavy put: above the node's own 5 s request deadline. */
export const HEAVY_REQUEST_TIMEOUT_MS = 6_000;
/** Keys per range read of the final check (the API's largest page). */
const VERIFY_PAGE_KEYS = 10_000;
/** Attempts of each page of the final check. */
const VERIFY_ATTEMPTS_MAX = 20;
/** The pause of a writer after an error, so a dead node is not hammered. */
const ERROR_PAUSE_MS = 20;
/** Keys skipped at most while looking for one of the targeted shard. */
const KEY_SEARCH_MAX = 1_000;

/** Fate of a key: never written (skipped), unknown, acknowledged, failed (not applied). */
export const UNWRITTEN = 0;
export const UNKNOWN = 1;
export const ACKNOWLEDGED = 2;
export const FAILED = 3;
/** Problems listed one by one at most; the count of lost writes comes on top. */
const PROBLEMS_LISTED_MAX = 20;

/** How the heavy writer runs. */
export interface HeavyWriterOptions {
  /** Puts in flight at once. */
  readonly inFlight: number;
  /** Prefix of every key, so runs never share keys. */
  readonly keyPrefix: string;
  readonly shards: number;
  /** The nodes a put may go to now. */
  readonly nodes: () => readonly number[];
  readonly url: (node: number) => string;
  readonly token: string;
}

/** The heavy writer's figures. */
export interface HeavyCounts {
  acknowledged: number;
  failed: number;
  unknown: number;
  /** Keys read back by the final check. */
  checked: number;
}

/** Concurrent small puts to distinct keys, in bursts started and stopped by the nemesis. */
export class HeavyWriter {
  readonly counts: HeavyCounts = { acknowledged: 0, failed: 0, unknown: 0, checked: 0 };
  /** Answers that point at a bug (a 500, a malformed body). */
  readonly anomalies: string[] = [];
  readonly #options: HeavyWriterOptions;
  #fates = new Uint8Array(1_024);
  #nextKey = 0;
  #nextNode = 0;
  #loops: Promise<void>[] = [];
  #isStopping = false;
  #shard: number | null = null;

  constructor(options: HeavyWriterOptions) {
    this.#options = options;
  }

  /** Whether a burst is running. */
  get isRunning(): boolean {
    return this.#loops.length > 0;
  }

  /** Starts a burst of writes to keys of `shard` (null: any shard). */
  start(shard: number | null): void {
    if (this.isRunning) throw new Error("The heavy writer is already running");
    this.#shard = shard;
    this.#isStopping = false;
    for (let i = 0; i < this.#options.inFlight; i++) this.#loops.push(this.#runLoop());
  }

  /** Stops the burst and waits for its puts in flight. */
  async stop(): Promise<void> {
    this.#isStopping = true;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  /**
   * Reads every key of the prefix through `node` and compares with what was acknowledged.
   *
   * @returns anomalies: acknowledged writes lost or changed, failed writes present, unknown keys.
   */
  async verify(nodes: readonly number[]): Promise<string[]> {
    const found = new Map<number, string>();
    let after: string | null = null;
    for (let page = 0;; page++) {
      const answer = await this.#readPage(nodes[page % nodes.length]!, after);
      for (const kv of answer.kvs) {
        const sequence = this.#sequenceOf(kv.key);
        if (sequence === null) return [`heavy check: a foreign key "${kv.key}" under the prefix`];
        found.set(sequence, kv.value);
      }
      if (!answer.more) break;
      after = answer.next;
    }
    this.counts.checked = found.size;
    return checkHeavyKeys(
      this.#fates.subarray(0, this.#nextKey),
      found,
      (sequence) => this.#keyOf(sequence),
    );
  }

  async #runLoop(): Promise<void> {
    while (!this.#isStopping) {
      const nodes = this.#options.nodes();
      if (nodes.length === 0) {
        await sleep(ERROR_PAUSE_MS);
        continue;
      }
      const node = nodes[this.#nextNode++ % nodes.length]!;
      const sequence = this.#claimKey();
      const fate = await this.#put(node, sequence);
      this.#fates[sequence] = fate;
      if (fate === ACKNOWLEDGED) this.counts.acknowledged++;
      else if (fate === FAILED) this.counts.failed++;
      else this.counts.unknown++;
      if (fate !== ACKNOWLEDGED) await sleep(ERROR_PAUSE_MS);
    }
  }

  /** The next key's sequence number (of the targeted shard), marked unknown until answered. */
  #claimKey(): number {
    for (let skipped = 0; skipped < KEY_SEARCH_MAX; skipped++) {
      const sequence = this.#nextKey++;
      if (sequence >= this.#fates.length) {
        const grown = new Uint8Array(this.#fates.length * 2);
        grown.set(this.#fates);
        this.#fates = grown;
      }
      const isWanted = this.#shard === null ||
        shardForKey(this.#keyOf(sequence), this.#options.shards) === this.#shard;
      if (isWanted) {
        this.#fates[sequence] = UNKNOWN;
        return sequence;
      }
    }
    throw new Error(`No key of shard ${this.#shard} in ${KEY_SEARCH_MAX} candidates`);
  }

  async #put(node: number, sequence: number): Promise<number> {
    const key = this.#keyOf(sequence);
    let response: Response;
    try {
      response = await fetch(`${this.#options.url(node)}/v1/kv/${encodeURIComponent(key)}`, {
        method: "PUT",
        headers: {
          authorization: `Bearer ${this.#options.token}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ value: valueOf(sequence) }),
        signal: AbortSignal.timeout(HEAVY_REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      if (!(error instanceof TypeError || error instanceof DOMException)) throw error;
      return UNKNOWN;
    }
    const text = await response.text().catch(() => "");
    if (response.status === 500) {
      this.anomalies.push(`heavy put "${key}" via node ${node}: 500 ${text.slice(0, 300)}`);
    }
    if (response.status >= 200 && response.status < 300) return ACKNOWLEDGED;
    if (response.status >= 400 && response.status < 500) return FAILED;
    return UNKNOWN;
  }

  async #readPage(node: number, after: string | null): Promise<RangePage> {
    const query = new URLSearchParams({ prefix: this.#options.keyPrefix });
    query.set("limit", String(VERIFY_PAGE_KEYS));
    if (after !== null) query.set("after", after);
    let last = "";
    for (let attempt = 1; attempt <= VERIFY_ATTEMPTS_MAX; attempt++) {
      try {
        const response = await fetch(`${this.#options.url(node)}/v1/kv?${query}`, {
          headers: { authorization: `Bearer ${this.#options.token}` },
          signal: AbortSignal.timeout(HEAVY_REQUEST_TIMEOUT_MS * 2),
        });
        const text = await response.text();
        if (response.status === 200) return JSON.parse(text) as RangePage;
        last = `${response.status} ${text.slice(0, 300)}`;
      } catch (error) {
        if (!(error instanceof TypeError || error instanceof DOMException)) throw error;
        last = error.message;
      }
      await sleep(250);
    }
    throw new Error(`Cannot read the heavy writer's keys through node ${node}: ${last}`);
  }

  #keyOf(sequence: number): string {
    return `${this.#options.keyPrefix}${sequence}`;
  }

  #sequenceOf(key: string): number | null {
    const text = key.slice(this.#options.keyPrefix.length);
    const sequence = Number(text);
    const isOurs = key.startsWith(this.#options.keyPrefix) && /^[0-9]+$/.test(text) &&
      Number.isSafeInteger(sequence);
    return isOurs ? sequence : null;
  }
}

/**
 * Compares the keys read back with every key's fate: an acknowledged key must hold its value,
 * a failed or never-written key must be absent, an unknown one may be either, and no key past
 * the last one written may exist.
 *
 * @param fates one fate per sequence number written so far
 * @param found the values read back, by sequence number
 * @returns the problems (at most PROBLEMS_LISTED_MAX listed, plus a count of lost writes)
 */
export function checkHeavyKeys(
  fates: Uint8Array,
  found: ReadonlyMap<number, string>,
  keyOf: (sequence: number) => string,
): string[] {
  const problems: string[] = [];
  const note = (problem: string) => {
    if (problems.length < PROBLEMS_LISTED_MAX) problems.push(`heavy check: ${problem}`);
  };
  let lost = 0;
  for (let sequence = 0; sequence < fates.length; sequence++) {
    const fate = fates[sequence];
    const value = found.get(sequence);
    if (value !== undefined && value !== valueOf(sequence)) {
      note(`key ${keyOf(sequence)} holds "${value}", not "${valueOf(sequence)}"`);
    }
    if (fate === ACKNOWLEDGED && value === undefined) {
      lost++;
      note(`acknowledged key ${keyOf(sequence)} is missing`);
    }
    if ((fate === FAILED || fate === UNWRITTEN) && value !== undefined) {
      note(`key ${keyOf(sequence)} exists although its put failed or never ran`);
    }
  }
  for (const sequence of found.keys()) {
    if (sequence >= fates.length) note(`key ${keyOf(sequence)} was never written`);
  }
  if (lost > 0) problems.push(`heavy check: ${lost} acknowledged writes lost in all`);
  return problems;
}

/** The value written to a key: small, and derived from the key so a check needs no table. */
export function valueOf(sequence: number): string {
  return `v${sequence}`;
}

/** One page of a range read. */
interface RangePage {
  readonly kvs: readonly { readonly key: string; readonly value: string }[];
  readonly more: boolean;
  readonly next: string | null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
