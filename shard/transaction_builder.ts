/**
 * A client-side optimistic transaction, in the style of FoundationDB.
 *
 * `get()` reads through a {@linkcode TransactionStore} and records the modRevision and version it
 * saw (0 when the key was absent); `set()` and `delete()` buffer writes; `commit()` sends the
 * read set and the write set together. The shard commits only if no read key changed since it
 * was read (its modRevision, which never repeats for a key, is the one recorded), otherwise
 * nothing is written and the outcome names the conflicting key. Reads of a
 * key the transaction wrote return the buffered write, and a key read twice returns the first
 * answer, so one transaction sees one consistent picture.
 */

import { assert } from "../raft/mod.ts";
import { type Conflict, describeConflict } from "./apply_result.ts";
import type { ReadRecord, WriteOp } from "./command.ts";
import { AspenError } from "./errors.ts";
import { type KeyValue, validateKey, validateValue } from "./key_value.ts";
import { OPTIMISTIC_READS_MAX, OPTIMISTIC_WRITES_MAX } from "./limits.ts";

/** What a transaction needs from the store: versioned reads and an optimistic commit. */
export interface TransactionStore {
  /** The current state of `key`; `version` is 0 when it is absent. */
  get(key: string): Promise<{ kv: KeyValue | null; version: number }>;
  /** Commits `writes` if every read still holds; never throws for a conflict. */
  commit(reads: readonly ReadRecord[], writes: readonly WriteOp[]): Promise<CommitOutcome>;
}

/** How a commit ended. */
export type CommitOutcome =
  | { readonly committed: true; readonly revision: number }
  | { readonly committed: false; readonly conflict: Conflict };

/** The most attempts {@linkcode runTransaction} may be asked to make. */
export const TRANSACTION_ATTEMPTS_MAX = 100;

/** What a read saw: the value (null when absent) and the key's counters (0 when absent). */
interface SeenRead {
  readonly value: string | null;
  readonly version: number;
  readonly modRevision: number;
}

/** One optimistic transaction; use it once. */
export class TransactionBuilder {
  readonly #store: TransactionStore;
  readonly #reads = new Map<string, SeenRead>();
  readonly #writes = new Map<string, WriteOp>();
  #isCommitted = false;

  /** A new, empty transaction over `store`. */
  constructor(store: TransactionStore) {
    this.#store = store;
  }

  /** The read set so far: each key with the modRevision and version first seen. */
  get reads(): ReadRecord[] {
    return [...this.#reads].map(([key, read]) => ({
      key,
      modRevision: read.modRevision,
      version: read.version,
      revision: null,
    }));
  }

  /** The buffered writes, one per key (the last one wins). */
  get writes(): WriteOp[] {
    return [...this.#writes.values()];
  }

  /**
   * The value of `key` as this transaction sees it, or null when absent.
   *
   * @throws {AspenError} for a bad key, or `request_too_large` past OPTIMISTIC_READS_MAX.
   */
  async get(key: string): Promise<string | null> {
    this.#assertOpen();
    validateKey(key, "read in transaction");
    const write = this.#writes.get(key);
    if (write !== undefined) return write.op === "set" ? write.value : null;
    const seen = this.#reads.get(key);
    if (seen !== undefined) return seen.value;
    if (this.#reads.size >= OPTIMISTIC_READS_MAX) throw tooMany("reads", OPTIMISTIC_READS_MAX);
    const { kv, version } = await this.#store.get(key);
    assert(Number.isSafeInteger(version) && version >= 0, "get: versions are counts");
    assert((kv === null) === (version === 0), "get: only an absent key has version 0");
    if (kv !== null) assert(kv.version === version, "get: the version is the kv's");
    const raced = this.#reads.get(key);
    if (raced !== undefined) return raced.value;
    this.#reads.set(key, { value: kv?.value ?? null, version, modRevision: kv?.modRevision ?? 0 });
    return kv?.value ?? null;
  }

  /** Buffers a write of `key`. */
  set(key: string, value: string): void {
    this.#assertOpen();
    validateKey(key, "write in transaction");
    validateValue(value, "write in transaction");
    this.#buffer({ op: "set", key, value });
  }

  /** Buffers a delete of `key`. */
  delete(key: string): void {
    this.#assertOpen();
    validateKey(key, "delete in transaction");
    this.#buffer({ op: "delete", key });
  }

  /** Sends the read set and the write set; the transaction cannot be used afterwards. */
  async commit(): Promise<CommitOutcome> {
    this.#assertOpen();
    this.#isCommitted = true;
    return await this.#store.commit(this.reads, this.writes);
  }

  #buffer(write: WriteOp): void {
    if (!this.#writes.has(write.key) && this.#writes.size >= OPTIMISTIC_WRITES_MAX) {
      throw tooMany("writes", OPTIMISTIC_WRITES_MAX);
    }
    this.#writes.set(write.key, write);
  }

  #assertOpen(): void {
    assert(!this.#isCommitted, "TransactionBuilder: a transaction is committed once");
  }
}

/**
 * Runs `body` in a fresh transaction and commits it, retrying on conflict.
 *
 * @returns the body's value and the revision of the commit.
 * @throws {AspenError} `conflict` when every one of `attemptsMax` attempts conflicted.
 */
export async function runTransaction<T>(
  store: TransactionStore,
  attemptsMax: number,
  body: (transaction: TransactionBuilder) => Promise<T>,
): Promise<{ value: T; revision: number }> {
  assert(Number.isSafeInteger(attemptsMax) && attemptsMax >= 1, "runTransaction: attempts");
  assert(attemptsMax <= TRANSACTION_ATTEMPTS_MAX, "runTransaction: attempts are bounded");
  let conflict: Conflict | null = null;
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    const transaction = new TransactionBuilder(store);
    const value = await body(transaction);
    const outcome = await transaction.commit();
    if (outcome.committed) return { value, revision: outcome.revision };
    conflict = outcome.conflict;
  }
  assert(conflict !== null, "runTransaction: every failed attempt names a conflict");
  throw new AspenError(
    "conflict",
    `Cannot commit transaction after ${attemptsMax} attempts: ${describeConflict(conflict)}`,
    { ...conflict },
  );
}

function tooMany(what: string, limit: number): AspenError {
  return new AspenError(
    "request_too_large",
    `Cannot add to transaction: it already holds ${limit} ${what}, the limit`,
    { limit },
  );
}
