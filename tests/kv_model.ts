/**
 * A plain in-memory reference model of the shard state machine, for model-based tests.
 *
 * It implements the documented semantics directly with Maps and sorted arrays (no SQLite, no
 * shared code with the state machine besides command decoding, the error type and the named
 * limits), so that a disagreement points at a bug in one of the two. Each entry runs on a copy
 * of the state that replaces the state only when the entry succeeds, which is the model of
 * "an error never leaves a partial write behind".
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import {
  type ApplyEntry,
  type ApplyResult,
  AspenError,
  type Command,
  type Compare,
  decodeCommand,
  DELETE_RANGE_KEYS_MAX,
  type KeyRange,
  type KeyValue,
  KV_RESPONSE_OVERHEAD_BYTES,
  LEASE_KEYS_MAX,
  type LeaseGrant,
  type LeaseInfo,
  LEASES_MAX,
  RANGE_LIMIT_MAX,
  RANGE_RESPONSE_BYTES_MAX,
  type RangeOptions,
  type RangeRequest,
  type RangeResult,
  TXN_RESPONSE_BYTES_MAX,
  type TxnOp,
  type TxnOpResult,
  type WatchEvent,
} from "../shard/mod.ts";

interface ModelState {
  kvs: Map<string, KeyValue>;
  leases: Map<number, number>; // id -> ttlSeconds
  meta: Map<string, string>;
  optimisticTxns: number;
  conflicts: number;
}

/** Compares strings by their UTF-8 bytes. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function bytesOf(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

function kvBytes(kv: KeyValue): number {
  return KV_RESPONSE_OVERHEAD_BYTES + bytesOf(kv.key) + bytesOf(kv.value);
}

function inRange(range: KeyRange, key: string): boolean {
  if ("prefix" in range) return key.startsWith(range.prefix);
  return byteOrder(range.start, key) <= 0 && byteOrder(key, range.end) < 0;
}

/** The reference model. */
export class KvModel {
  state: ModelState = {
    kvs: new Map(),
    leases: new Map(),
    meta: new Map(),
    optimisticTxns: 0,
    conflicts: 0,
  };
  lastApplied = 0;
  /** Every event ever produced, in order. */
  readonly events: WatchEvent[] = [];

  apply(entries: readonly ApplyEntry[]): ApplyResult[] {
    return entries.map((entry) => {
      if (entry.index <= this.lastApplied) return { type: "skipped", revision: entry.index };
      if (entry.index !== this.lastApplied + 1) throw new Error("model: gap in entries");
      this.lastApplied = entry.index;
      return this.#applyEntry(entry);
    });
  }

  get(key: string): KeyValue | null {
    return this.state.kvs.get(key) ?? null;
  }

  range(options: RangeOptions): RangeResult {
    const request: RangeRequest = {
      range: options.range,
      limit: options.limit ?? RANGE_LIMIT_MAX,
      after: options.after ?? null,
      keysOnly: options.keysOnly ?? false,
      countOnly: options.countOnly ?? false,
      reverse: options.reverse ?? false,
    };
    return rangeOf(this.state, request, options.bytesMax ?? RANGE_RESPONSE_BYTES_MAX);
  }

  lease(id: number): LeaseInfo | null {
    const ttlSeconds = this.state.leases.get(id);
    if (ttlSeconds === undefined) return null;
    return { id, ttlSeconds, keys: leaseKeys(this.state, id) };
  }

  leases(): LeaseGrant[] {
    return [...this.state.leases].sort((a, b) => a[0] - b[0]).map(([id, ttlSeconds]) => ({
      id,
      ttlSeconds,
    }));
  }

  getMeta(name: string): string | null {
    return this.state.meta.get(name) ?? null;
  }

  /** The same canonical dump as the state machine's stateHash(). */
  stateHash(): string {
    const hash = createHash("sha256");
    hash.update("aspen-state-v1\n");
    hash.update(`last_applied ${this.lastApplied}\n`);
    hash.update(`optimistic_txns ${this.state.optimisticTxns}\n`);
    hash.update(`conflicts ${this.state.conflicts}\n`);
    for (const kv of sortedKvs(this.state)) {
      const fields = [kv.key, kv.value, kv.version, kv.createRevision, kv.modRevision, kv.lease];
      hash.update(`kv ${JSON.stringify(fields)}\n`);
    }
    for (const { id, ttlSeconds } of this.leases()) {
      const fields = [id, ttlSeconds, leaseKeys(this.state, id).length];
      hash.update(`lease ${JSON.stringify(fields)}\n`);
    }
    const names = [...this.state.meta.keys()].sort(byteOrder);
    for (const name of names) {
      hash.update(`meta ${JSON.stringify([name, this.state.meta.get(name)])}\n`);
    }
    return hash.digest("hex");
  }

  #applyEntry(entry: ApplyEntry): ApplyResult {
    const revision = entry.index;
    let command: Command;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      if (error instanceof AspenError) return errorOf(revision, error);
      throw error;
    }
    const draft: ModelState = {
      kvs: new Map(this.state.kvs),
      leases: new Map(this.state.leases),
      meta: new Map(this.state.meta),
      optimisticTxns: this.state.optimisticTxns,
      conflicts: this.state.conflicts,
    };
    const events: WatchEvent[] = [];
    try {
      const result = new Execution(draft, revision, events).run(command);
      this.state = draft;
      this.events.push(...events);
      return result;
    } catch (error) {
      if (error instanceof AspenError) return errorOf(revision, error);
      throw error;
    }
  }
}

function errorOf(revision: number, error: AspenError): ApplyResult {
  return {
    type: "error",
    revision,
    code: error.code,
    message: error.message,
    details: error.details,
  };
}

function sortedKvs(state: ModelState): KeyValue[] {
  return [...state.kvs.values()].sort((a, b) => byteOrder(a.key, b.key));
}

function leaseKeys(state: ModelState, id: number): string[] {
  return sortedKvs(state).filter((kv) => kv.lease === id).map((kv) => kv.key);
}

function rangeOf(state: ModelState, request: RangeRequest, bytesMax: number): RangeResult {
  let kvs = sortedKvs(state).filter((kv) => inRange(request.range, kv.key));
  if (request.reverse) kvs.reverse();
  const after = request.after;
  if (after !== null) {
    kvs = kvs.filter((kv) =>
      request.reverse ? byteOrder(kv.key, after) < 0 : byteOrder(kv.key, after) > 0
    );
  }
  if (request.countOnly) return { kvs: [], count: kvs.length, more: false, next: null };
  if (request.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: "" }));
  const page: KeyValue[] = [];
  let bytes = 0;
  for (const kv of kvs) {
    if (page.length === request.limit) break;
    if (page.length > 0 && bytes + kvBytes(kv) > bytesMax) break;
    page.push(kv);
    bytes += kvBytes(kv);
  }
  const more = page.length < kvs.length;
  const last = page[page.length - 1];
  return { kvs: page, count: page.length, more, next: more && last ? last.key : null };
}

/** Runs one command on a draft state. */
class Execution {
  constructor(
    readonly state: ModelState,
    readonly revision: number,
    readonly events: WatchEvent[],
  ) {}

  run(command: Command): ApplyResult {
    const revision = this.revision;
    switch (command.type) {
      case "put": {
        const prev = this.put(command.key, command.value, command.lease);
        return {
          type: "put",
          revision,
          version: this.version(command.key),
          prevKv: command.prevKv ? prev : null,
        };
      }
      case "delete": {
        const prev = this.remove(command.key);
        return {
          type: "delete",
          revision,
          deleted: prev ? 1 : 0,
          prevKv: command.prevKv ? prev : null,
        };
      }
      case "deleteRange": {
        const keys = sortedKvs(this.state).filter((kv) => inRange(command.range, kv.key));
        if (keys.length > DELETE_RANGE_KEYS_MAX) {
          throw new AspenError("limit_exceeded", "too many", {
            limit: DELETE_RANGE_KEYS_MAX,
            name: "DELETE_RANGE_KEYS_MAX",
          });
        }
        for (const kv of keys) this.remove(kv.key);
        return { type: "deleteRange", revision, deleted: keys.length };
      }
      case "multiPut": {
        const versions = command.puts.map((put) => {
          this.put(put.key, put.value, put.lease);
          return this.version(put.key);
        });
        return { type: "multiPut", revision, versions };
      }
      case "txn":
        return this.txn(command);
      case "optimisticTxn":
        return this.optimistic(command);
      case "leaseGrant":
      case "leaseRevoke":
      case "leaseExpire":
        return this.leaseCommand(command);
      case "meta":
        this.state.meta.set(command.name, command.value);
        return { type: "meta", revision, name: command.name };
      case "noop":
        return { type: "noop", revision };
      case "txnPrepare":
      case "txnDecide":
      case "txnResolve":
      case "txnFence":
      case "ownership":
      case "import":
      case "dropMoved":
      case "leaseHolderAdd":
        // The model covers single-shard state; cross-shard phases and shard moves are tested
        // in shard/.
        throw new AspenError("not_implemented", `The model does not run ${command.type}`);
    }
  }

  optimistic(command: Extract<Command, { type: "optimisticTxn" }>): ApplyResult {
    const revision = this.revision;
    this.state.optimisticTxns++;
    for (const read of command.reads) {
      const kv = this.state.kvs.get(read.key);
      const actual = kv?.version ?? 0;
      const actualModRevision = kv?.modRevision ?? 0;
      // Every field a read names is a condition: the same modRevision, the same version, and
      // no change after the read's revision.
      let field: "modRevision" | "version" | "revision" | null = null;
      if (read.revision !== null && actualModRevision > read.revision) field = "revision";
      if (read.version !== null && actual !== read.version) field = "version";
      if (read.modRevision !== null && actualModRevision !== read.modRevision) {
        field = "modRevision";
      }
      if (field !== null) {
        this.state.conflicts++;
        return {
          type: "conflict",
          revision,
          key: read.key,
          field,
          expected: read.version,
          actual,
          expectedModRevision: read.modRevision,
          actualModRevision,
          readRevision: read.revision,
        };
      }
    }
    for (const write of command.writes) {
      if (write.op === "set") this.put(write.key, write.value, 0);
      else this.remove(write.key);
    }
    return { type: "optimisticTxn", revision, committed: true };
  }

  leaseCommand(
    command: Extract<Command, { type: "leaseGrant" | "leaseRevoke" | "leaseExpire" }>,
  ): ApplyResult {
    const revision = this.revision;
    switch (command.type) {
      case "leaseGrant": {
        if (this.state.leases.size >= LEASES_MAX) {
          throw new AspenError("limit_exceeded", "too many", {
            limit: LEASES_MAX,
            name: "LEASES_MAX",
          });
        }
        this.state.leases.set(revision, command.ttlSeconds);
        return {
          type: "leaseGrant",
          revision,
          lease: { id: revision, ttlSeconds: command.ttlSeconds },
        };
      }
      case "leaseRevoke": {
        if (!this.state.leases.has(command.id)) {
          throw new AspenError("lease_not_found", "gone", { action: "revoke", lease: command.id });
        }
        return {
          type: "leaseRevoke",
          revision,
          id: command.id,
          deleted: this.dropLease(command.id),
        };
      }
      case "leaseExpire": {
        const expired: number[] = [];
        let deleted = 0;
        for (const id of command.ids) {
          if (!this.state.leases.has(id)) continue;
          deleted += this.dropLease(id);
          expired.push(id);
        }
        return { type: "leaseExpire", revision, expired, deleted };
      }
    }
  }

  version(key: string): number {
    return this.state.kvs.get(key)?.version ?? 0;
  }

  put(key: string, value: string, lease: number): KeyValue | null {
    const prev = this.state.kvs.get(key) ?? null;
    if (lease !== 0 && prev?.lease !== lease) {
      if (!this.state.leases.has(lease)) {
        throw new AspenError("lease_not_found", "no lease", { action: "attach", lease, key });
      }
      const keyCount = leaseKeys(this.state, lease).length;
      if (keyCount >= LEASE_KEYS_MAX) {
        throw new AspenError("limit_exceeded", "full", {
          action: "attach",
          lease,
          key,
          keyCount,
          limit: LEASE_KEYS_MAX,
          name: "LEASE_KEYS_MAX",
        });
      }
    }
    const kv: KeyValue = {
      key,
      value,
      version: prev ? prev.version + 1 : 1,
      createRevision: prev ? prev.createRevision : this.revision,
      modRevision: this.revision,
      lease,
    };
    this.state.kvs.set(key, kv);
    this.events.push({ type: "put", kv, prevKv: prev, revision: this.revision });
    return prev;
  }

  remove(key: string): KeyValue | null {
    const prev = this.state.kvs.get(key) ?? null;
    if (prev === null) return null;
    this.state.kvs.delete(key);
    const kv = {
      key,
      value: "",
      version: 0,
      createRevision: 0,
      modRevision: this.revision,
      lease: 0,
    };
    this.events.push({ type: "delete", kv, prevKv: prev, revision: this.revision });
    return prev;
  }

  dropLease(id: number): number {
    const keys = leaseKeys(this.state, id);
    for (const key of keys) this.remove(key);
    this.state.leases.delete(id);
    return keys.length;
  }

  txn(command: Extract<Command, { type: "txn" }>): ApplyResult {
    const succeeded = command.compare.every((compare) => this.holds(compare));
    const results: TxnOpResult[] = [];
    let bytes = 0;
    for (const op of succeeded ? command.success : command.failure) {
      const result = this.txnOp(op);
      const kvs = result.type === "range"
        ? result.kvs
        : result.type === "get"
        ? [result.kv]
        : [result.prevKv];
      for (const kv of kvs) if (kv) bytes += kvBytes(kv);
      if (bytes > TXN_RESPONSE_BYTES_MAX) {
        throw new AspenError("request_too_large", "big", { limit: TXN_RESPONSE_BYTES_MAX });
      }
      results.push(result);
    }
    return { type: "txn", revision: this.revision, succeeded, results };
  }

  txnOp(op: TxnOp): TxnOpResult {
    switch (op.type) {
      case "put": {
        const prev = this.put(op.key, op.value, op.lease);
        return { type: "put", version: this.version(op.key), prevKv: op.prevKv ? prev : null };
      }
      case "delete": {
        const prev = this.remove(op.key);
        return { type: "delete", deleted: prev ? 1 : 0, prevKv: op.prevKv ? prev : null };
      }
      case "get":
        return { type: "get", kv: this.state.kvs.get(op.key) ?? null };
      case "range":
        return { type: "range", ...rangeOf(this.state, op.request, RANGE_RESPONSE_BYTES_MAX) };
    }
  }

  holds(compare: Compare): boolean {
    const kv = this.state.kvs.get(compare.key);
    let order: number;
    if (compare.target === "value") {
      if (kv === undefined) return false;
      order = byteOrder(kv.value, compare.value);
    } else {
      const actual = kv === undefined ? 0 : kv[compare.target];
      order = actual === compare.value ? 0 : actual < compare.value ? -1 : 1;
    }
    if (compare.op === "=") return order === 0;
    if (compare.op === "!=") return order !== 0;
    if (compare.op === "<") return order < 0;
    return order > 0;
  }
}
