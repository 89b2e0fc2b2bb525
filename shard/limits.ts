/**
 * Named limits of the shard state machine, its commands, reads and watch machinery.
 *
 * Every bound that user input or history can push against lives here (STYLE §6). Limits that
 * change what an applied entry does (for example how many keys one delete-range may remove) are
 * constants, never configuration: every replica must reach the same result from the same entry.
 * Relationships between them are asserted when the module loads.
 */

import { assert, COMMITTED_ENTRIES_PER_READY_MAX } from "../raft/mod.ts";

const KIB = 1024;
const MIB = 1024 * KIB;

/** The largest key, in UTF-8 bytes. */
export const KEY_BYTES_MAX = 4 * KIB;
/** The largest value, in UTF-8 bytes. */
export const VALUE_BYTES_MAX = 1 * MIB;
/** The largest encoded command (one Raft entry's data), in bytes. */
export const REQUEST_BYTES_MAX = 2 * MIB;
/** The most compares, and separately the most operations per branch, of a conditional batch. */
export const TXN_OPS_MAX = 128;
/** The most reads in the read set of an optimistic transaction. */
export const OPTIMISTIC_READS_MAX = 1024;
/** The most writes in the write set of an optimistic transaction. */
export const OPTIMISTIC_WRITES_MAX = 1024;
/** The most keys of one multi-put. */
export const MULTI_PUT_KEYS_MAX = 1024;
/** The most bytes the read results of one conditional batch may hold; past it the batch fails. */
export const TXN_RESPONSE_BYTES_MAX = 4 * MIB;
/**
 * The most bytes of op results (both branches together) a cross-shard prepare previews and
 * returns; past it the prepare returns none, and the coordinator replies after the resolves,
 * whose answers carry the results (a prepare's answer must fit one peer frame).
 */
export const TXN_PREVIEW_BYTES_MAX = 512 * 1024;

/** The most keys one range read returns. */
export const RANGE_LIMIT_MAX = 10_000;
/** The most bytes one range read returns (counted as {@linkcode kvResponseBytes} does). */
export const RANGE_RESPONSE_BYTES_MAX = 2 * MIB;
/** Fixed per-kv cost added to key and value bytes when response sizes are counted. */
export const KV_RESPONSE_OVERHEAD_BYTES = 64;
/** The most keys one delete-range may remove; a larger range fails and removes nothing. */
export const DELETE_RANGE_KEYS_MAX = 10_000;

/** The shortest lease time to live, in seconds. */
export const LEASE_TTL_SECONDS_MIN = 1;
/** The longest lease time to live, in seconds (one year). */
export const LEASE_TTL_SECONDS_MAX = 365 * 24 * 3600;
/** The most leases a shard holds at once. */
export const LEASES_MAX = 10_000;
/** The most keys attached to one lease. */
export const LEASE_KEYS_MAX = 10_000;
/** The most lease ids in one lease-expire command. */
export const LEASE_EXPIRE_IDS_MAX = 64;
/** How long the leader waits before proposing the expiry of the same lease again, in ms. */
export const LEASE_EXPIRE_RETRY_MS = 2_000;

/** The longest name of a meta record, in UTF-8 bytes. */
export const META_NAME_BYTES_MAX = 256;
/** The largest value of a meta record, in UTF-8 bytes. */
export const META_VALUE_BYTES_MAX = 1 * MIB;

/**
 * WAL pages a state machine database collects before SQLite copies them back into the file
 * (`PRAGMA wal_autocheckpoint`; SQLite's default is 1,000). Random keys dirty a different page
 * per put, and a page rewritten many times between checkpoints is copied back once: measured
 * with 10,000 keys of 256 bytes in batches of 200, commits cost 17 us per put at 1,000 pages
 * and 9 us at 10,000, for a longest commit of 48 ms instead of 35 ms and a WAL of up to 40 MB.
 */
export const STATE_MACHINE_WAL_CHECKPOINT_PAGES = 10_000;

/**
 * The most entries one call to `StateMachine.apply()` accepts. A replica applies each Ready's
 * committed entries in one call, so the Raft core's count per Ready must fit (asserted below).
 */
export const APPLY_BATCH_ENTRIES_MAX = 10_000;
/**
 * Keys whose row checksums a received snapshot's check verifies between two yields to the
 * event loop (about 2 us a key: 8 ms). The check of every row of a large state ran in one
 * piece before (2 us x 1,000,000 keys is 2 s, longer than the election timeout).
 */
export const SNAPSHOT_CHECK_STEP_KEYS = 4_096;

/** Retention of the watch history: the most events it keeps before compacting. */
export const WATCH_HISTORY_EVENTS_MAX = 50_000;
/** Retention of the watch history: the most bytes of events it keeps before compacting. */
export const WATCH_HISTORY_BYTES_MAX = 64 * MIB;
/** Fixed per-event cost added to key and value bytes when history sizes are counted. */
export const WATCH_EVENT_OVERHEAD_BYTES = 96;
/** The most events buffered for one watcher; a live watcher past it is cancelled. */
export const WATCH_BUFFER_EVENTS_MAX = 1024;
/** The most bytes buffered for one watcher; a live watcher past it is cancelled. */
export const WATCH_BUFFER_BYTES_MAX = 8 * MIB;
/** The most watchers of one shard. */
export const WATCHERS_MAX = 1024;

/** The longest cross-shard transaction id (`<nodeId>.<wallMs>.<seq>`), in ASCII characters. */
export const TXN_ID_CHARS_MAX = 64;
/** The most shards one cross-shard transaction may touch (its participants). */
export const TXN_SHARDS_MAX = 16;
/**
 * Resolved cross-shard transactions a shard remembers at least (home records and participant
 * rows, each counted apart); the oldest resolved ones past it are dropped at apply, in order,
 * TXN_RECORDS_DROP_BATCH or more at a time.
 */
export const TXN_RECORDS_RETAIN = 10_000;
/**
 * How many resolved rows past TXN_RECORDS_RETAIN a table may gather before its oldest are
 * dropped, all in one statement: dropping one row per resolve dirtied the oldest pages of two
 * B-trees in every entry (a third of a resolve's apply time, `deno bench
 * shard/txn_apply_bench.ts`). A shard so remembers up to TXN_RECORDS_RETAIN + this many.
 */
export const TXN_RECORDS_DROP_BATCH = 64;
/**
 * The most shards whose keys one lease may hold, its home shard included: revoking or expiring
 * it is one cross-shard transaction over all of them, so it is TXN_SHARDS_MAX.
 */
export const LEASE_SHARDS_MAX = TXN_SHARDS_MAX;
/**
 * Where a shard's ids of other shards' leases begin. A key attached to a lease of another shard
 * stores `FOREIGN_LEASE_BASE + the lease's API id`; own leases are named by their grant index,
 * which stays far below (API ids are below it too: see shard/foreign_lease.ts).
 */
export const FOREIGN_LEASE_BASE = 2 ** 52;
/**
 * How much of its prepared participant rows a shard keeps in memory, counted in characters of
 * their stored JSON (about their size in memory), so that the resolve that follows a prepare
 * reads and parses nothing; a row that does not fit is read from SQLite at its resolve.
 */
export const TXN_PREPARED_CACHE_BYTES_MAX = 1024 * 1024;
/** The longest reason of a cross-shard transaction decision, in UTF-8 bytes. */
export const TXN_REASON_BYTES_MAX = 256;
/** The most transaction records one listing of a shard's records returns. */
export const TXN_LIST_LIMIT_MAX = 100;

/** The largest kv as counted in a response: the biggest key and value plus the overhead. */
export const KV_RESPONSE_BYTES_MAX: number = KEY_BYTES_MAX + VALUE_BYTES_MAX +
  KV_RESPONSE_OVERHEAD_BYTES;
/** The largest watch event: a key, a value, a previous value and the overhead. */
export const WATCH_EVENT_BYTES_MAX: number = KEY_BYTES_MAX + 2 * VALUE_BYTES_MAX +
  WATCH_EVENT_OVERHEAD_BYTES;

assert(KEY_BYTES_MAX + VALUE_BYTES_MAX < REQUEST_BYTES_MAX, "a single put must fit a request");
assert(KV_RESPONSE_BYTES_MAX <= RANGE_RESPONSE_BYTES_MAX, "a single kv must fit a range page");
assert(RANGE_RESPONSE_BYTES_MAX <= TXN_RESPONSE_BYTES_MAX, "a range page must fit a txn");
assert(TXN_PREVIEW_BYTES_MAX <= TXN_RESPONSE_BYTES_MAX, "a previewed result fits a txn's");
assert(WATCH_EVENT_BYTES_MAX <= WATCH_BUFFER_BYTES_MAX, "a single event must fit a buffer");
assert(WATCH_EVENT_BYTES_MAX <= WATCH_HISTORY_BYTES_MAX, "a single event must fit history");
assert(WATCH_BUFFER_EVENTS_MAX < WATCH_HISTORY_EVENTS_MAX, "buffers are smaller than history");
assert(LEASE_TTL_SECONDS_MIN <= LEASE_TTL_SECONDS_MAX, "lease ttl bounds are ordered");
assert(TXN_OPS_MAX <= OPTIMISTIC_WRITES_MAX, "a prepare's branch holds any txn's or writes");
assert(TXN_SHARDS_MAX >= 2, "a cross-shard transaction may touch two shards");
assert(LEASE_SHARDS_MAX <= TXN_SHARDS_MAX, "a lease's revocation fits one transaction");
assert(Number.isSafeInteger(2 * FOREIGN_LEASE_BASE - 1), "foreign lease ids are safe integers");
assert(LEASE_EXPIRE_IDS_MAX <= LEASES_MAX, "an expire command names at most all leases");
assert(
  COMMITTED_ENTRIES_PER_READY_MAX <= APPLY_BATCH_ENTRIES_MAX,
  "the committed entries of one Ready must fit one apply batch",
);
