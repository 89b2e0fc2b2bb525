/**
 * A seeded generator of state machine entries for model-based and crash-replay tests.
 *
 * One seed gives one sequence: the generator draws every choice from its own PRNG, so a
 * failing seed replays exactly. The key space is small (a dozen keys, some with characters
 * whose UTF-16 and UTF-8 orders differ) so that compares, conflicts, overwrites and lease
 * attachments collide often. Every command type appears, plus undecodable and empty entries.
 */

import {
  type ApplyEntry,
  type Command,
  type Compare,
  type CompareOp,
  encodeCommand,
  type KeyRange,
  type KeyValue,
  type PutItem,
  type RangeRequest,
  type ReadRecord,
  type TxnOp,
  type WriteOp,
} from "../shard/mod.ts";

/** A small, fast, seedable PRNG (mulberry32). */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return this.next() % n;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }
}

/** Keys of the workload; U+E000 and U+1F600 sort differently in UTF-16 and UTF-8. */
export const WORKLOAD_KEYS: readonly string[] = [
  "a",
  "a/1",
  "a/2",
  "a/3",
  "ab",
  "b",
  "b/1",
  "c",
  "\u00e9",
  "\uE000",
  "\u{1F600}",
  "z",
];
const PREFIXES = ["", "a", "a/", "b", "z", "\u00e9", "\u{1F600}", "q"];
const VALUES = ["", "x", "1", "2", "10", "\u00e9t\u00e9", "\u{1F600}", "\uE000"];
const META_NAMES = ["shardMap", "epoch", "\u00e9"];
const OPS: readonly CompareOp[] = ["=", "!=", "<", ">"];

/** Hooks that let a generator draw realistic numbers from the current state. */
export interface WorkloadOptions {
  /** The current state of a key (null when absent); random small numbers when omitted. */
  readonly kvOf?: (key: string) => KeyValue | null;
}

/** Generates entries with consecutive indexes starting at 1. */
export class Workload {
  readonly prng: Prng;
  readonly #options: WorkloadOptions;
  readonly #grants: number[] = [];
  #index = 0;

  constructor(seed: number, options: WorkloadOptions = {}) {
    this.prng = new Prng(seed);
    this.#options = options;
  }

  /** The index of the last generated entry. */
  get lastIndex(): number {
    return this.#index;
  }

  /** The next `count` entries. */
  entries(count: number): ApplyEntry[] {
    const entries: ApplyEntry[] = [];
    for (let i = 0; i < count; i++) entries.push(this.entry());
    return entries;
  }

  /** The next entry. */
  entry(): ApplyEntry {
    const index = ++this.#index;
    if (this.prng.chance(0.03)) return { index, data: this.#garbage() };
    const command = this.command();
    if (command.type === "leaseGrant") this.#grants.push(index);
    return { index, data: encodeCommand(command) };
  }

  /** A random command of any type. */
  command(): Command {
    const p = this.prng;
    const roll = p.int(100);
    if (roll < 22) return { type: "put", ...this.putItem(), prevKv: p.chance(0.5) };
    if (roll < 32) return { type: "delete", key: this.key(), prevKv: p.chance(0.5) };
    if (roll < 36) return { type: "deleteRange", range: this.range() };
    if (roll < 42) return { type: "multiPut", puts: this.list(4, () => this.putItem()) };
    if (roll < 60) return this.txn();
    if (roll < 76) return this.optimistic();
    if (roll < 83) return { type: "leaseGrant", ttlSeconds: 1 + p.int(100) };
    if (roll < 88) return { type: "leaseRevoke", id: this.leaseId() };
    if (roll < 92) return { type: "leaseExpire", ids: this.list(3, () => this.leaseId()) };
    if (roll < 96) return { type: "meta", name: p.pick(META_NAMES), value: this.value() };
    return { type: "noop" };
  }

  key(): string {
    return this.prng.pick(WORKLOAD_KEYS);
  }

  value(): string {
    if (this.prng.chance(0.2)) return "v".repeat(this.prng.int(120));
    return this.prng.pick(VALUES);
  }

  putItem(): PutItem {
    const lease = this.prng.chance(0.2) ? this.leaseId() : 0;
    return { key: this.key(), value: this.value(), lease };
  }

  /** A granted lease id most of the time (possibly revoked since), else a random one. */
  leaseId(): number {
    if (this.#grants.length > 0 && this.prng.chance(0.85)) {
      return this
        .#grants[this.#grants.length - 1 - this.prng.int(Math.min(4, this.#grants.length))] ??
        1;
    }
    return 1 + this.prng.int(Math.max(1, this.#index));
  }

  range(): KeyRange {
    if (this.prng.chance(0.6)) return { prefix: this.prng.pick(PREFIXES) };
    return { start: this.key(), end: this.key() };
  }

  rangeRequest(): RangeRequest {
    const p = this.prng;
    return {
      range: this.range(),
      limit: 1 + p.int(6),
      after: p.chance(0.3) ? this.key() : null,
      keysOnly: p.chance(0.2),
      countOnly: p.chance(0.15),
      reverse: p.chance(0.3),
    };
  }

  compare(): Compare {
    const p = this.prng;
    const key = this.key();
    const op = p.pick(OPS);
    const target = p.pick(["value", "version", "createRevision", "modRevision", "lease"] as const);
    if (target === "value") return { key, target, op, value: this.value() };
    if (target === "version") return { key, target, op, value: this.version(key) };
    if (target === "lease") return { key, target, op, value: p.chance(0.5) ? 0 : this.leaseId() };
    return { key, target, op, value: p.int(this.#index + 2) };
  }

  txnOp(): TxnOp {
    const p = this.prng;
    const roll = p.int(4);
    if (roll === 0) return { type: "put", ...this.putItem(), prevKv: p.chance(0.5) };
    if (roll === 1) return { type: "delete", key: this.key(), prevKv: p.chance(0.5) };
    if (roll === 2) return { type: "get", key: this.key() };
    return { type: "range", request: this.rangeRequest() };
  }

  txn(): Command {
    return {
      type: "txn",
      compare: this.list(3, () => this.compare()),
      success: this.list(4, () => this.txnOp()),
      failure: this.list(4, () => this.txnOp()),
    };
  }

  optimistic(): Command {
    const reads = this.list(3, () => this.read());
    const writes = this.list(3, (): WriteOp => {
      if (this.prng.chance(0.7)) return { op: "set", key: this.key(), value: this.value() };
      return { op: "delete", key: this.key() };
    });
    return { type: "optimisticTxn", reads, writes };
  }

  /**
   * A read of an optimistic transaction in one of its forms: a modRevision, a version, a
   * version at a revision, or all three, each the key's current one most of the time.
   */
  read(): ReadRecord {
    const key = this.key();
    const form = this.prng.pick(["modRevision", "version", "versionAt", "all"] as const);
    const hasVersion = form !== "modRevision";
    const hasModRevision = form === "modRevision" || form === "all";
    const hasRevision = form === "versionAt" || form === "all";
    return {
      key,
      modRevision: hasModRevision ? this.modRevision(key) : null,
      version: hasVersion ? this.version(key) : null,
      revision: hasRevision ? this.revision(key) : null,
    };
  }

  /** The key's current version most of the time, otherwise a near miss. */
  version(key: string): number {
    const current = this.#currentOf(key)?.version ?? this.prng.int(4);
    return this.#nearly(current);
  }

  /** The key's current modRevision most of the time, otherwise a near miss. */
  modRevision(key: string): number {
    const current = this.#currentOf(key)?.modRevision ?? this.prng.int(this.#index + 1);
    return this.#nearly(current);
  }

  /** A revision at or after the key's last change most of the time, otherwise before it. */
  revision(key: string): number {
    const changed = this.#currentOf(key)?.modRevision ?? this.prng.int(this.#index + 1);
    if (this.prng.chance(0.8)) return changed + this.prng.int(this.#index - changed + 1);
    return this.prng.int(changed + 1);
  }

  #currentOf(key: string): { version: number; modRevision: number } | null {
    if (this.#options.kvOf === undefined) return null;
    return this.#options.kvOf(key) ?? { version: 0, modRevision: 0 };
  }

  #nearly(current: number): number {
    if (this.prng.chance(0.75)) return current;
    return Math.max(0, current + this.prng.pick([-1, 1, 2]));
  }

  list<T>(countMax: number, make: () => T): T[] {
    const items: T[] = [];
    const count = this.prng.int(countMax + 1);
    for (let i = 0; i < count; i++) items.push(make());
    return items;
  }

  #garbage(): Uint8Array {
    const p = this.prng;
    if (p.chance(0.25)) return new Uint8Array();
    if (p.chance(0.5)) {
      const bytes = encodeCommand(this.command());
      return bytes.subarray(0, p.int(bytes.length));
    }
    const bytes = new Uint8Array(1 + p.int(24));
    for (let i = 0; i < bytes.length; i++) bytes[i] = p.int(256);
    if (p.chance(0.5)) bytes[0] = 1;
    return bytes;
  }
}
