/**
 * The shard state machine: keys with versions and revisions, leases, meta records and a watch
 * history, in one SQLite file (`<shard dir>/state-machine.db`).
 *
 * Raft hands it committed entries in index order; {@linkcode StateMachine.apply} applies a
 * batch in one SQLite transaction together with `last_applied`, so a crash leaves either the
 * whole batch or none of it, and replaying from `appliedIndex() + 1` reaches the same state.
 * Nothing in apply reads a clock or a random source: every replica computes the same state and
 * the same results from the same log. Reads are served locally and synchronously.
 */

import type { DatabaseSync } from "node:sqlite";
import { basename, dirname, join } from "node:path";
import { setImmediate } from "node:timers";
import { assert } from "../raft/mod.ts";
import {
  type ApplyResult,
  errorResult,
  type LeaseGrant,
  type RangeResult,
  type TxnHolder,
  type TxnParticipantRow,
  type TxnParticipantVote,
  type TxnRecord,
  type TxnStatus,
} from "./apply_result.ts";
import { type Command, type RangeRequest, validateCount, validateRangeRequest } from "./command.ts";
import { decodeCommand } from "./command_codec.ts";
import { AspenError } from "./errors.ts";
import {
  describeStorageFailure,
  FatalStorageError,
  storageFailureKind,
} from "./storage_failure.ts";
import {
  type KeyRange,
  keyRangeBounds,
  type KeyValue,
  validateKey,
  validateKeyRange,
} from "./key_value.ts";
import {
  APPLY_BATCH_ENTRIES_MAX,
  RANGE_LIMIT_MAX,
  RANGE_RESPONSE_BYTES_MAX,
  TXN_LIST_LIMIT_MAX,
  WATCH_HISTORY_BYTES_MAX,
  WATCH_HISTORY_EVENTS_MAX,
} from "./limits.ts";
import type { HistoryPage, HistoryQuery, WatchFilter } from "./watch_event.ts";
import {
  type SubscribeOptions,
  WATCH_HUB_DEFAULTS,
  type Watcher,
  WatchHub,
  type WatchHubOptions,
} from "./watch_hub.ts";
import { execute, needsSavepoint, type OccCounters } from "./_executor.ts";
import { History, type HistoryCounters, type HistoryLimits } from "./_history.ts";
import { type EntryContext, KvStore, type MovingQuery, type MovingRow } from "./_kv_store.ts";
import { type OwnedFilter, readRange } from "./_range.ts";
import { readOwnership } from "./_move_apply.ts";
import type { Ownership } from "./ownership.ts";
import type { TenantShards } from "./tenants.ts";
import { migrateSchema, openDatabase, readSys, type Synchronous, type SysName } from "./_schema.ts";
import { type IntentEntry, TxnStore } from "./_txn_store.ts";
import { voteOf } from "./_txn_apply.ts";
import { provisionalKv } from "./_txn_ops.ts";
import type { PendingSnapshot } from "./replica_options.ts";
import {
  checkSnapshot,
  checkSnapshotInSteps,
  openMemoryCopy,
  snapshotBytes,
  snapshotBytesInWorker,
  stateHash,
  stateHashSteps,
} from "./_snapshot.ts";

/** The file name of a shard's state machine inside its directory. */
export const STATE_MACHINE_FILE_NAME = "state-machine.db";

/** One committed Raft entry: its log index (the revision it writes) and its data. */
export interface ApplyEntry {
  /** The Raft log index; the revision of every change the entry makes. */
  readonly index: number;
  /** The encoded command; empty data is a noop. */
  readonly data: Uint8Array;
}

/**
 * Sees each entry inside the apply transaction, after it was applied and before the batch
 * commits: a tracing and fault-injection seam (the crash-replay test stops the process here).
 */
export interface ApplyObserver {
  /** Called with the index of each applied entry, before the batch commits. */
  afterEntry(index: number): void;
}

/** How to open a state machine. */
export interface StateMachineOptions {
  /** The database file (`<shard dir>/state-machine.db`), or `":memory:"`. */
  readonly path: string;
  /** `normal` suffices: entries lost by a power failure are replayed from the Raft log. */
  readonly synchronous: Synchronous;
  /** History retention in events; at most WATCH_HISTORY_EVENTS_MAX. */
  readonly historyEventsMax?: number;
  /** History retention in bytes; at most WATCH_HISTORY_BYTES_MAX. */
  readonly historyBytesMax?: number;
  /** Bounds of the watch hub; the named limits by default. */
  readonly watch?: WatchHubOptions;
  /** Sees every applied entry inside the transaction. */
  readonly observer?: ApplyObserver;
}

/** A range read; omitted fields take their defaults (whole limit, forward, with values). */
export interface RangeOptions {
  /** The keys to read. */
  readonly range: KeyRange;
  /** 1..RANGE_LIMIT_MAX; default RANGE_LIMIT_MAX. */
  readonly limit?: number;
  /** Continue after this key (before it when `reverse`): the previous page's `next`. */
  readonly after?: string | null;
  /** Return kvs with empty values. */
  readonly keysOnly?: boolean;
  /** Return only the number of keys in the range after the cursor. */
  readonly countOnly?: boolean;
  /** Walk the range in descending key order. */
  readonly reverse?: boolean;
  /** 1..RANGE_RESPONSE_BYTES_MAX; default RANGE_RESPONSE_BYTES_MAX. */
  readonly bytesMax?: number;
  /**
   * Only the keys placed on `shard` among `count` with `tenants`: what a shard holding keys it
   * does not own for reads still owns (see ownership.ts, `rangeOwner`). Default: every key.
   */
  readonly owner?: OwnedFilter | null;
}

/** A lease with the keys attached to it. */
export interface LeaseInfo extends LeaseGrant {
  /** The attached keys, in key order (at most LEASE_KEYS_MAX). */
  readonly keys: readonly string[];
}

/** Counters of one shard, for the console and metrics. */
export interface ShardStats {
  /** The index of the last applied entry: the shard's revision. */
  readonly appliedIndex: number;
  /** Optimistic transactions applied, committed or not. */
  readonly optimisticTxns: number;
  /** Optimistic transactions that failed with a conflict. */
  readonly conflicts: number;
  /** Watch events retained. */
  readonly historyEvents: number;
  /** Bytes of watch events retained. */
  readonly historyBytes: number;
  /** The newest revision whose events were dropped; 0 if none. */
  readonly compactedRevision: number;
  /** Open watchers. */
  readonly watchers: number;
}

/** What {@linkcode StateMachine.readKeys} found. */
export interface KeysRead {
  /** The applied index the read saw. */
  readonly revision: number;
  /** Each key's state, in order (null: absent). */
  readonly kvs: readonly (KeyValue | null)[];
  /** The transaction holding each key, in order (null: none). */
  readonly intents: readonly (TxnHolder | null)[];
  /** Whether a key changed after the revision asked about. */
  readonly changed: boolean;
  /**
   * For each key an intent holds, in order, what the holder's commit would make of it (null:
   * no intent). Absent from nodes that predate it.
   */
  readonly previews?: readonly (IntentPreview | null)[];
}

/**
 * What a prepared transaction holding an intent on a key would make of it: the key's state
 * should it commit each branch (at the revision its prepare reserved, which its vote names).
 * A branch's state is absent when it cannot be told without running the branch (see
 * provisionalKv), and both are absent for a row prepared before one-round commits (it writes
 * at its resolve's revision, unknown yet) or whose commit changes leases.
 */
export interface IntentPreview {
  readonly success?: KeyValue | null;
  readonly failure?: KeyValue | null;
}

/** The counter rows of `sys` that a batch may change, besides `last_applied`. */
const SYS_COUNTER_NAMES = [
  "compacted_revision",
  "optimistic_txns",
  "conflicts",
] as const satisfies readonly SysName[];
type SysCounters = Record<(typeof SYS_COUNTER_NAMES)[number], number>;

/** A shard's state machine on SQLite. */
export class StateMachine {
  readonly #options: StateMachineOptions;
  readonly #hub: WatchHub;
  #db: DatabaseSync;
  #store: KvStore;
  #txns: TxnStore;
  #history: History;
  #lastApplied = 0;
  #occ: OccCounters = { optimisticTxns: 0, conflicts: 0 };
  #counters: HistoryCounters = { events: 0, bytes: 0, compactedRevision: 0 };
  #isOpen = true;
  /** The bytes stageRestore() is checking and writing, until their file is synced. */
  #staging: { readonly bytes: Uint8Array } | null = null;
  /** A restore's bytes checked and synced to their file, for restore() of the same bytes. */
  #staged: StagedRestore | null = null;
  #ownership: Ownership | null = null;
  /** Meta writes of the stores this state machine replaced (see metaVersion). */
  #metaWritesBefore = 0;
  /** The counter rows of `sys` as the file holds them (read at load, written at commit). */
  #sysStored: SysCounters = { compacted_revision: 0, optimistic_txns: 0, conflicts: 0 };

  private constructor(options: StateMachineOptions, db: DatabaseSync) {
    this.#options = options;
    this.#db = db;
    this.#store = new KvStore(db);
    this.#txns = new TxnStore(db);
    this.#history = this.#newHistory();
    this.#load();
    this.#hub = new WatchHub({
      appliedIndex: () => this.#lastApplied,
      deliverableRevision: () => this.deliverableRevision(),
      compactedRevision: () => this.#counters.compactedRevision,
      readEvents: (query: HistoryQuery): HistoryPage => this.#history.read(query),
    }, options.watch ?? WATCH_HUB_DEFAULTS);
  }

  /**
   * Opens or creates the state machine at `options.path`.
   *
   * @throws {AspenError} `storage_corrupt` when the file exists but is not a healthy state
   * machine database.
   */
  static open(options: StateMachineOptions): StateMachine {
    const eventsMax = options.historyEventsMax ?? WATCH_HISTORY_EVENTS_MAX;
    const bytesMax = options.historyBytesMax ?? WATCH_HISTORY_BYTES_MAX;
    validateCount(eventsMax, { min: 1, action: "open state machine", field: "historyEventsMax" });
    validateCount(bytesMax, { min: 1, action: "open state machine", field: "historyBytesMax" });
    assert(eventsMax <= WATCH_HISTORY_EVENTS_MAX, "StateMachine.open: history events bound");
    assert(bytesMax <= WATCH_HISTORY_BYTES_MAX, "StateMachine.open: history bytes bound");
    const { path, synchronous } = options;
    if (path !== ":memory:") removeStaleRestoreFiles(path);
    return new StateMachine(options, openDatabase({ path, synchronous, isVerified: false }));
  }

  /**
   * Applies committed entries in one transaction and returns one result per entry.
   *
   * Entries at or below the applied index are skipped (result `skipped`); the others must
   * follow it without a gap. Expected failures are `error` results that changed nothing.
   * Any other exception rolls the whole batch back and propagates (a bug or a storage failure).
   *
   * @throws {AspenError} `no_space` or `storage_error` when the write failed: nothing of the
   * batch was applied, and the same batch may be applied again later.
   */
  apply(entries: readonly ApplyEntry[]): ApplyResult[] {
    assert(this.#isOpen, "StateMachine.apply: the state machine is open");
    assert(entries.length <= APPLY_BATCH_ENTRIES_MAX, "StateMachine.apply: batch is bounded");
    const results: ApplyResult[] = [];
    let applied = this.#lastApplied;
    try {
      for (const entry of entries) {
        assert(Number.isSafeInteger(entry.index) && entry.index >= 1, "apply: index is valid");
        if (entry.index <= this.#lastApplied) {
          assert(applied === this.#lastApplied, "apply: skipped entries come first");
          results.push({ type: "skipped", revision: entry.index });
          continue;
        }
        assert(entry.index === applied + 1, "apply: entries follow the applied index");
        if (applied === this.#lastApplied) this.#db.exec("BEGIN");
        results.push(this.#applyEntry(entry));
        applied = entry.index;
        this.#options.observer?.afterEntry(entry.index);
      }
      if (applied > this.#lastApplied) this.#commit(applied);
    } catch (error) {
      this.#rollBack(error);
      throw this.#failure(error, `apply entries up to ${entries.at(-1)?.index}`) ?? error;
    }
    assert(this.#lastApplied === applied, "apply: the applied index is the last entry's");
    assert(results.length === entries.length, "apply: one result per entry");
    if (entries.length > 0) this.#hub.notify();
    return results;
  }

  /**
   * A number that changes whenever a meta record may have changed here (an applied write, a
   * snapshot restored), and otherwise stays put. Local to this process and never smaller than
   * before; replicas do not agree on it. The node watches it on shard 0 to re-read the shard
   * map and the runtime tokens only after they changed.
   */
  metaVersion(): number {
    return this.#metaWritesBefore + this.#store.metaWrites;
  }

  /** The index of the last applied entry (0 before any). */
  appliedIndex(): number {
    return this.#lastApplied;
  }

  /**
   * The newest revision whose watch events are all written (see
   * HistorySource.deliverableRevision): where a watch "from now" starts after.
   */
  deliverableRevision(): number {
    const reserved = this.#txns.oldestReservedRevision();
    if (reserved === null) return this.#lastApplied;
    assert(reserved <= this.#lastApplied, "deliverableRevision: a reserved revision is applied");
    return reserved - 1;
  }

  /**
   * The current state of `key`, or null when absent.
   *
   * @throws {AspenError} `bad_request` or `key_too_large` for a bad key.
   */
  get(key: string): KeyValue | null {
    this.#assertOpen();
    validateKey(key, "get");
    return this.#store.get(key);
  }

  /**
   * One page of a range read, bounded by `limit` kvs and `bytesMax` bytes.
   *
   * @throws {AspenError} `bad_request` or `key_too_large` for bad options.
   */
  range(options: RangeOptions): RangeResult {
    this.#assertOpen();
    const request: RangeRequest = {
      range: options.range,
      limit: options.limit ?? RANGE_LIMIT_MAX,
      after: options.after ?? null,
      keysOnly: options.keysOnly ?? false,
      countOnly: options.countOnly ?? false,
      reverse: options.reverse ?? false,
    };
    validateRangeRequest(request);
    const bytesMax = options.bytesMax ?? RANGE_RESPONSE_BYTES_MAX;
    validateCount(bytesMax, { min: 1, action: "read range", field: "bytesMax" });
    if (bytesMax > RANGE_RESPONSE_BYTES_MAX) {
      throw new AspenError(
        "bad_request",
        `Cannot read range: bytesMax is ${bytesMax} but the limit is ${RANGE_RESPONSE_BYTES_MAX}`,
        { limit: RANGE_RESPONSE_BYTES_MAX },
      );
    }
    return readRange(this.#store, request, bytesMax, options.owner ?? undefined);
  }

  /** Lease `id` with its keys, or null when it does not exist. */
  lease(id: number): LeaseInfo | null {
    this.#assertOpen();
    validateCount(id, { min: 1, action: "read lease", field: "id" });
    const lease = this.#store.lease(id);
    if (lease === null) return null;
    const keys = this.#store.leaseKeys(id);
    assert(keys.length === lease.keyCount, "StateMachine.lease: the key count is exact");
    return { id: lease.id, ttlSeconds: lease.ttlSeconds, keys };
  }

  /** Every lease, by id (at most LEASES_MAX). */
  leases(): LeaseGrant[] {
    this.#assertOpen();
    return this.#store.leases();
  }

  /**
   * The other shards holding keys of lease `id` of this shard, ascending: a revocation or
   * expiry of a lease with any is a cross-shard transaction over them.
   */
  leaseHolders(id: number): number[] {
    this.#assertOpen();
    validateCount(id, { min: 1, action: "read lease holders", field: "id" });
    return this.#store.leaseHolders(id);
  }

  /** Which keys this shard owns (shard/ownership.ts); null when it never took part in a move. */
  ownership(): Ownership | null {
    this.#assertOpen();
    return this.#ownership;
  }

  /**
   * A page of the keys a move copies from `source` (among `fromCount` shards) to `target`
   * (among `count`): those after `after` (up to `until` included when given), in key order,
   * at most `limit`. The new shard holds keys of every source: its pages name one.
   */
  movingKeys(query: MovingQuery, limit: number): MovingRow[] {
    this.#assertOpen();
    validateCount(limit, { min: 1, action: "read moving keys", field: "limit" });
    assert(limit <= RANGE_LIMIT_MAX, "movingKeys: the limit is bounded");
    return this.#store.movingPage(query, limit);
  }

  /** The stand-ins of other shards' leases holding keys here (foreign_lease.ts), by id. */
  foreignLeases(): number[] {
    this.#assertOpen();
    return this.#store.foreignLeases();
  }

  /** Keys and bytes (keys plus values) this shard holds, per shard among `count` shards. */
  sizeByShard(count: number, tenants?: TenantShards): Map<number, { keys: number; bytes: number }> {
    this.#assertOpen();
    return this.#store.sizeByShard(count, tenants);
  }

  /** Keys and bytes (key plus value) under tenant `name`'s prefix `<name>/`. */
  tenantSize(name: string): { keys: number; bytes: number } {
    this.#assertOpen();
    assert(!name.includes("/"), "tenantSize: a tenant name holds no '/'");
    return this.#store.tenantSize(name);
  }

  /**
   * How many intents lie on keys whose shard among `count` shards (with `tenants` placed) is
   * not `shard`.
   */
  intentsNotOwned(shard: number, count: number, tenants?: TenantShards): number {
    this.#assertOpen();
    return this.#txns.intentsElsewhere(shard, count, tenants);
  }

  /** The meta record `name` (a system record kept apart from user keys), or null. */
  getMeta(name: string): string | null {
    this.#assertOpen();
    return this.#store.getMeta(name);
  }

  /**
   * A read of `keys` for a lock-free cross-shard read-only transaction: their state and intents
   * at the applied index, and whether any of them changed after `changedAfter` (an earlier
   * read's revision; true as well when the history no longer reaches back that far, so that
   * a key deleted and created again in between cannot pass for unchanged).
   *
   * @throws {AspenError} `bad_request` or `key_too_large` for a bad key.
   */
  readKeys(keys: readonly string[], changedAfter: number | null): KeysRead {
    this.#assertOpen();
    for (const key of keys) validateKey(key, "read keys");
    const changed = changedAfter !== null &&
      (changedAfter < this.#counters.compactedRevision ||
        this.#history.hasEventAfter(keys, changedAfter));
    const kvs = keys.map((key) => this.#store.get(key));
    const intents = keys.map((key) => this.#txns.intentOf(key));
    const previews = intents.map((holder, position) =>
      holder === null ? null : this.#previewOf(holder.txnId, keys[position]!, kvs[position]!)
    );
    return { revision: this.#lastApplied, kvs, intents, changed, previews };
  }

  /** What the commit of `txnId`, holding an intent on `key` (now `current`), makes of it. */
  #previewOf(txnId: string, key: string, current: KeyValue | null): IntentPreview {
    const row = this.#txns.participant(txnId);
    const revision = row?.prepared.revision ?? null;
    if (row === null || revision === null || (row.prepared.leases?.length ?? 0) > 0) {
      return {};
    }
    const success = provisionalKv(current, row.success, key, revision);
    const failure = provisionalKv(current, row.failure, key, revision);
    return {
      ...(success === undefined ? {} : { success }),
      ...(failure === undefined ? {} : { failure }),
    };
  }

  /**
   * The cross-shard transaction holding an intent on `key`, or null: a reader that meets one
   * must push the holder before it answers.
   *
   * @throws {AspenError} `bad_request` or `key_too_large` for a bad key.
   */
  intentOf(key: string): TxnHolder | null {
    this.#assertOpen();
    validateKey(key, "read intent");
    return this.#txns.intentOf(key);
  }

  /**
   * The intents within `range`, in key order, at most `limit` (1..RANGE_LIMIT_MAX).
   *
   * @throws {AspenError} `bad_request` or `key_too_large` for a bad range or limit.
   */
  intentsIn(range: KeyRange, limit: number): IntentEntry[] {
    this.#assertOpen();
    validateKeyRange(range, "read intents");
    validateCount(limit, { min: 1, action: "read intents", field: "limit" });
    if (limit > RANGE_LIMIT_MAX) {
      throw new AspenError(
        "bad_request",
        `Cannot read intents: limit is ${limit} but the maximum is ${RANGE_LIMIT_MAX}`,
        { limit: RANGE_LIMIT_MAX },
      );
    }
    return this.#txns.intentsIn(keyRangeBounds(range), limit);
  }

  /** How many keys cross-shard transactions hold locked on this shard. */
  intentCount(): number {
    this.#assertOpen();
    return this.#txns.intentCount;
  }

  /** The record of cross-shard transaction `txnId` when this is its home shard, or null. */
  txnRecord(txnId: string): TxnRecord | null {
    this.#assertOpen();
    return this.#txns.record(txnId);
  }

  /**
   * The records this home shard holds with `status`, at most `limit` (1..TXN_LIST_LIMIT_MAX):
   * pending ones oldest first (by deadline, then id), decided ones newest first (by the
   * revision that decided them). The console lists the oldest pending transactions with it.
   *
   * @throws {AspenError} `bad_request` for a limit out of range.
   */
  txnRecords(status: TxnStatus, limit: number): TxnRecord[] {
    this.#assertOpen();
    validateCount(limit, { min: 1, action: "list txn records", field: "limit" });
    if (limit > TXN_LIST_LIMIT_MAX) {
      throw new AspenError(
        "bad_request",
        `Cannot list txn records: limit is ${limit} but the maximum is ${TXN_LIST_LIMIT_MAX}`,
        { limit: TXN_LIST_LIMIT_MAX },
      );
    }
    const records = this.#txns.records(status, limit);
    assert(records.every((record) => record.status === status), "txnRecords: status matches");
    return records;
  }

  /** This shard's row of cross-shard transaction `txnId`, or null. */
  txnParticipant(txnId: string): TxnParticipantRow | null {
    this.#assertOpen();
    const row = this.#txns.participant(txnId);
    if (row === null) return null;
    const { txnId: id, home, state, resolvedRevision } = row;
    return { txnId: id, home, state, resolvedRevision };
  }

  /**
   * This shard's row of cross-shard transaction `txnId` with its prepare's vote, or null when
   * its prepare has not applied here (or the row was dropped past TXN_RECORDS_RETAIN). A read:
   * unlike a fence, it never refuses a prepare still to come.
   */
  txnParticipantVote(txnId: string): TxnParticipantVote | null {
    this.#assertOpen();
    const row = this.#txns.participant(txnId);
    if (row === null) return null;
    const vote = voteOf(row);
    assert(vote.txnId === txnId, "txnParticipantVote: the row of the txn asked for");
    return vote;
  }

  /** Counters of this shard. */
  stats(): ShardStats {
    this.#assertOpen();
    return {
      appliedIndex: this.#lastApplied,
      optimisticTxns: this.#occ.optimisticTxns,
      conflicts: this.#occ.conflicts,
      historyEvents: this.#counters.events,
      historyBytes: this.#counters.bytes,
      compactedRevision: this.#counters.compactedRevision,
      watchers: this.#hub.size,
    };
  }

  /**
   * Watches a key or a prefix: replays history from `options.fromRevision`, then streams.
   *
   * @throws {AspenError} `compacted`, `limit_exceeded` or `bad_request`; see
   * {@linkcode WatchHub.subscribe}.
   */
  watch(filter: WatchFilter, options: SubscribeOptions = {}): Watcher {
    this.#assertOpen();
    return this.#hub.subscribe(filter, options);
  }

  /** The canonical bytes of the whole state (deterministic for equal state), for Raft. */
  snapshot(): Uint8Array {
    this.#assertOpen();
    assert(!this.#db.isTransaction, "StateMachine.snapshot: no batch is in flight");
    return snapshotBytes(this.#db);
  }

  /**
   * {@linkcode snapshot} made off the event loop: the state of this instant is captured now
   * (the file checkpointed, or an in-memory database's pages copied), and a worker reads it
   * and makes the canonical bytes.
   */
  snapshotInBackground(): PendingSnapshot {
    this.#assertOpen();
    assert(!this.#db.isTransaction, "StateMachine.snapshotInBackground: no batch is in flight");
    return snapshotBytesInWorker(this.#db, this.#options.path);
  }

  /**
   * Replaces the whole state with a snapshot. The file is swapped atomically (write, fsync,
   * rename), so a crash leaves either the old or the new state. When the new file cannot be
   * written, the old state stays in place and open, and the restore may be tried again. Bytes
   * that {@linkcode stageRestore} prepared are neither checked nor written again.
   *
   * @throws {AspenError} `bad_request` when the bytes are not a valid state machine snapshot;
   * `no_space` or `storage_error` when the new file cannot be written.
   */
  restore(bytes: Uint8Array): void {
    this.#assertOpen();
    const staged = this.#staged;
    if (staged !== null && staged.bytes === bytes) {
      this.#staged = null;
      // Checked and written by stageRestore(): only the files are swapped here.
      this.#replaceDatabase(staged.file);
      this.#hub.notify();
      return;
    }
    // Anything staged, or still being written, is stale from now on.
    this.#dropStaged();
    checkSnapshot(bytes);
    if (this.#options.path === ":memory:") {
      const memory = openMemoryCopy(bytes);
      migrateSchema(memory);
      const copy = memory.serialize();
      memory.close();
      this.#db.deserialize(copy);
      this.#reload();
    } else {
      this.#replaceDatabase(bytes);
    }
    this.#hub.notify();
  }

  /**
   * Prepares {@linkcode restore} of `bytes` with the event loop held as little as it can: the
   * bytes are checked (the same checks as restore's, in steps that let the loop run between
   * them), then written beside the database and synced on Deno's thread pool. A restore of the
   * same bytes (the same array) that follows then only swaps the files and reopens. For a state
   * of 30 MiB the write and its sync held the loop 60-130 ms of the restore's 135-170 ms, and
   * the checks 50-65 ms in one piece, on a quiet machine (bench/NOTES.md). Nothing
   * else may change the state machine in between (the replica holds the Ready that carries the
   * snapshot); a restore of other bytes, or another stageRestore, forgets what was staged.
   * An in-memory state machine has nothing to write: this only checks the bytes.
   *
   * @throws {AspenError} `bad_request` when the bytes are not a healthy state machine database;
   *   `no_space` or `storage_error` when the file could not be written (nothing was staged).
   */
  async stageRestore(bytes: Uint8Array): Promise<void> {
    this.#assertOpen();
    this.#dropStaged();
    const staging = { bytes };
    this.#staging = staging;
    const isCurrent = () => this.#staging === staging && this.#isOpen;
    let file: string | null = null;
    try {
      await checkSnapshotInSteps(bytes);
      const path = this.#options.path;
      if (path === ":memory:" || !isCurrent()) return;
      file = `${restoreFileName(path)}-${crypto.randomUUID()}`;
      await writeSynced(file, bytes);
      if (!isCurrent()) {
        // A restore, a newer staging or a close came meanwhile.
        await removeIfPresentAsync(file);
        return;
      }
      this.#staged = { bytes, file };
    } catch (error) {
      if (file !== null) await removeIfPresentAsync(file).catch(() => {});
      throw this.#failure(error, "write the snapshot") ?? error;
    } finally {
      if (this.#staging === staging) this.#staging = null;
    }
  }

  /** Forgets a staged restore and removes its file. */
  #dropStaged(): void {
    const staged = this.#staged;
    this.#staged = null;
    this.#staging = null;
    if (staged === null) return;
    try {
      removeIfPresent(staged.file);
    } catch {
      // Best effort: stale restore files are removed when the state machine next opens.
    }
  }

  /** The sha-256 (hex) of the replicated state; equal on replicas at the same index. */
  stateHash(): string {
    this.#assertOpen();
    return stateHash(this.#db);
  }

  /**
   * The state hash with the applied index it belongs to, without holding the event loop for
   * long: hashing reads every key (about a second for a few hundred thousand), and a node that
   * stops that long misses the heartbeats of every shard it leads. The database is copied into
   * memory in one short synchronous step (the connection holds an exclusive lock, so no second
   * connection can read it), and the copy is hashed in steps that let the event loop run.
   */
  async stateHashInSteps(): Promise<{ appliedIndex: number; stateHash: string }> {
    this.#assertOpen();
    const appliedIndex = this.#lastApplied;
    const copy = openMemoryCopy(this.#db.serialize());
    try {
      const steps = stateHashSteps(copy);
      for (;;) {
        const step = steps.next();
        if (step.done === true) return { appliedIndex, stateHash: step.value };
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      copy.close();
    }
  }

  /** Ends every watcher and closes the database. */
  close(): void {
    if (!this.#isOpen) return;
    this.#isOpen = false;
    this.#dropStaged();
    this.#hub.close();
    this.#db.close();
  }

  /**
   * Swaps the database file for `source` (its bytes, or the synced file stageRestore() wrote
   * them to) and reopens it: the old one if the swap failed.
   */
  #replaceDatabase(source: Uint8Array | string): void {
    const { path, synchronous } = this.#options;
    // A failed restore before may have left the database closed (its reopen failed too).
    if (this.#db.isOpen) this.#db.close();
    const from = typeof source === "string" ? source : restoreFileName(path);
    try {
      if (typeof source !== "string") writeSyncedSync(from, source);
      replaceFile(path, from);
    } catch (error) {
      removeIfPresent(from);
      throw this.#failure(error, "write the snapshot") ?? error;
    } finally {
      // The new file's bytes passed checkSnapshot() (quick_check and every row) a moment ago,
      // and the old file was open and in use until then: neither is checked again.
      this.#db = openDatabase({ path, synchronous, isVerified: true });
      this.#reload();
    }
  }

  /** Rebuilds everything bound to the database handle, and the counters, from the file. */
  #reload(): void {
    // Every meta record may differ in the new file.
    this.#metaWritesBefore += this.#store.metaWrites + 1;
    this.#store = new KvStore(this.#db);
    this.#txns = new TxnStore(this.#db);
    this.#history = this.#newHistory();
    this.#load();
  }

  /**
   * Undoes a failed apply: SQLite may have rolled the transaction back itself (it does after a
   * full disk or an I/O error at COMMIT). Then reloads the counters kept in memory.
   */
  #rollBack(cause: unknown): void {
    try {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      this.#load();
    } catch (error) {
      throw new FatalStorageError(
        `Cannot reload the state machine "${this.#options.path}" after a failed apply ` +
          `(${describeStorageFailure(cause)}): ${describeStorageFailure(error)}; what it ` +
          "holds is unknown, so this node stops",
        { cause: error },
      );
    }
  }

  /** The retryable error for a failed write, or null when `cause` is not a storage failure. */
  #failure(cause: unknown, action: string): AspenError | null {
    const kind = storageFailureKind(cause);
    if (kind === null) return null;
    const what = kind === "no_space" ? "the disk is full" : "an I/O error";
    return new AspenError(
      kind,
      `Cannot ${action} in the state machine "${this.#options.path}": ${what} ` +
        `(${describeStorageFailure(cause)})`,
      { path: this.#options.path },
      { cause },
    );
  }

  #applyEntry(entry: ApplyEntry): ApplyResult {
    const context: EntryContext = {
      revision: entry.index,
      seq: 0,
      eventBytes: 0,
      historyLimits: this.#historyLimits(),
      isHistoryDropped: false,
    };
    let command: Command;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      if (error instanceof AspenError) return errorResult(entry.index, error);
      throw error;
    }
    const occ = { ...this.#occ };
    const isSavepoint = needsSavepoint(command);
    if (isSavepoint) this.#db.exec("SAVEPOINT entry");
    let result: ApplyResult;
    try {
      result = execute(this.#store, this.#txns, context, command, {
        counters: this.#occ,
        ownership: this.#ownership,
      });
      if (isSavepoint) this.#db.exec("RELEASE entry");
    } catch (error) {
      // Damaged storage is never an entry's result: the batch fails and the node stops.
      if (!(error instanceof AspenError) || error.code === "storage_corrupt") throw error;
      if (isSavepoint) this.#db.exec("ROLLBACK TO entry; RELEASE entry");
      else assert(context.seq === 0, "apply: a command without a savepoint fails before writing");
      this.#occ = occ;
      // The rollback may have undone intents the entry wrote.
      if (isSavepoint) this.#txns.reload();
      return errorResult(entry.index, error);
    }
    assert(result.revision === entry.index, "apply: the result names its entry");
    if (command.type === "ownership" || command.type === "dropMoved") {
      this.#ownership = readOwnership(this.#store);
    }
    if (context.isHistoryDropped) {
      this.#history.dropThrough(this.#counters, entry.index);
    } else {
      this.#counters.events += context.seq;
      this.#counters.bytes += context.eventBytes;
      this.#history.compact(this.#counters);
    }
    return result;
  }

  /**
   * Writes the sys rows of the batch and commits. A counter row is written only when its value
   * changed (most batches change none of them): each UPDATE costs about as much as a kv read.
   */
  #commit(applied: number): void {
    const update = this.#store.statement("UPDATE sys SET value = ? WHERE name = ?");
    update.run(applied, "last_applied");
    const counters: SysCounters = {
      compacted_revision: this.#counters.compactedRevision,
      optimistic_txns: this.#occ.optimisticTxns,
      conflicts: this.#occ.conflicts,
    };
    for (const name of SYS_COUNTER_NAMES) {
      if (counters[name] !== this.#sysStored[name]) update.run(counters[name], name);
    }
    this.#db.exec("COMMIT");
    this.#lastApplied = applied;
    this.#sysStored = counters;
  }

  #load(): void {
    this.#lastApplied = readSys(this.#db, "last_applied");
    this.#ownership = readOwnership(this.#store);
    this.#txns.reload();
    this.#sysStored = {
      compacted_revision: readSys(this.#db, "compacted_revision"),
      optimistic_txns: readSys(this.#db, "optimistic_txns"),
      conflicts: readSys(this.#db, "conflicts"),
    };
    this.#occ = {
      optimisticTxns: this.#sysStored.optimistic_txns,
      conflicts: this.#sysStored.conflicts,
    };
    this.#counters = this.#history.measure(this.#sysStored.compacted_revision);
    assert(this.#occ.conflicts <= this.#occ.optimisticTxns, "load: conflicts are txns");
    assert(this.#counters.compactedRevision <= this.#lastApplied, "load: compaction is applied");
  }

  #newHistory(): History {
    return new History(this.#store, this.#historyLimits());
  }

  #historyLimits(): HistoryLimits {
    return {
      eventsMax: this.#options.historyEventsMax ?? WATCH_HISTORY_EVENTS_MAX,
      bytesMax: this.#options.historyBytesMax ?? WATCH_HISTORY_BYTES_MAX,
    };
  }

  #assertOpen(): void {
    assert(this.#isOpen, "StateMachine: the state machine is open");
  }
}

/** Bytes stageRestore() checked and the file beside the database it writes them to. */
interface StagedRestore {
  readonly bytes: Uint8Array;
  readonly file: string;
}

/** The file a restore's bytes are written to beside the database, then renamed over it. */
function restoreFileName(path: string): string {
  return `${path}.restore`;
}

/**
 * Renames the synced file `from` over `path`. On failure the caller removes `from` (it holds
 * space, and nothing refers to it): a failed sync of it is harmless, since the next attempt
 * writes a new one.
 */
function replaceFile(path: string, from: string): void {
  // The old database was closed cleanly, so its WAL was checkpointed and no frame of it may
  // be replayed onto the new file.
  for (const suffix of ["-wal", "-shm"]) removeIfPresent(`${path}${suffix}`);
  Deno.renameSync(from, path);
  const directory = Deno.openSync(dirname(path), { read: true });
  try {
    directory.syncSync();
  } finally {
    directory.close();
  }
}

function writeSyncedSync(path: string, bytes: Uint8Array): void {
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    file.syncSync();
  } finally {
    file.close();
  }
}

/**
 * Removes what a restore interrupted by a crash left beside the database: files of bytes that
 * were written but never renamed over it (a state's size each).
 */
function removeStaleRestoreFiles(path: string): void {
  const prefix = basename(restoreFileName(path));
  try {
    for (const entry of Deno.readDirSync(dirname(path))) {
      if (entry.isFile && entry.name.startsWith(prefix)) {
        removeIfPresent(join(dirname(path), entry.name));
      }
    }
  } catch {
    // Best effort: the open that follows reports a directory it cannot use.
  }
}

/** {@linkcode writeSyncedSync} on Deno's thread pool. */
async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
}

async function removeIfPresentAsync(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
