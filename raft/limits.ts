/**
 * Every limit of the Raft core, named (STYLE §6). Past a limit the core rejects, sheds or
 * splits; it never grows silently. Relationships between limits are asserted at module load.
 */
import { assert } from "./assert.ts";

/** Largest payload of one log entry, in bytes; larger proposals get `entry_too_large`. */
export const ENTRY_BYTES_MAX = 3 * 1024 * 1024;
/** Largest total payload of one append message, in bytes (one entry may reach it alone). */
export const APPEND_BYTES_MAX = 3 * 1024 * 1024;
/** Most entries in one append message. */
export const APPEND_ENTRIES_MAX = 1024;
/** Most append messages in flight to one follower in the replicate state (pipelining). */
export const INFLIGHT_APPENDS_MAX = 64;
/** Most payload bytes in flight to one follower. */
export const INFLIGHT_BYTES_MAX = 16 * 1024 * 1024;
/** Most payload bytes a leader holds appended but not yet committed; proposals past it fail. */
export const UNCOMMITTED_BYTES_MAX = 32 * 1024 * 1024;
/** Most payload bytes of committed entries handed out in one Ready (at least one entry). */
export const COMMITTED_BYTES_PER_READY_MAX = 8 * 1024 * 1024;
/**
 * Most committed entries handed out in one Ready. A follower catching up after a long outage
 * learns of tens of thousands of committed entries at once; small ones fit the byte cap by the
 * hundred thousand, but the caller applies each Ready's entries in one batch and its state
 * machine bounds a batch by count (shard/limits.ts asserts that this limit fits it).
 */
export const COMMITTED_ENTRIES_PER_READY_MAX = 4_096;
/** Bytes of snapshot data in one snapshot chunk message. */
export const SNAPSHOT_CHUNK_BYTES_MAX = 512 * 1024;
/** Largest snapshot a follower accepts to reassemble, in bytes. */
export const SNAPSHOT_BYTES_MAX = 1024 * 1024 * 1024;
/** Largest encoded message, in bytes; the decoder rejects anything longer. */
export const MESSAGE_BYTES_MAX = 4 * 1024 * 1024 - 1024;
/** Most voters plus learners in one group. */
export const REPLICAS_MAX = 16;
/** Most ReadIndex requests waiting at a leader; more get `too_many_reads`. */
export const READS_PENDING_MAX = 8192;
/** Most read rounds whose send tick a leader remembers for leases. */
export const READ_ROUNDS_TRACKED_MAX = 64;
/** Bounds on the election timeout and heartbeat interval, in ticks. */
export const ELECTION_TICKS_MAX = 10_000;
/** The smallest ratio of election ticks to heartbeat ticks a config may have. */
export const ELECTION_TO_HEARTBEAT_RATIO_MIN = 2;
/** Bytes read from storage per page when the core scans its log at startup. */
export const LOG_SCAN_BYTES_MAX = 4 * 1024 * 1024;
/** Largest opaque request id accepted by readIndex(); keeps ids exact in the codec. */
export const REQUEST_ID_MAX = Number.MAX_SAFE_INTEGER;

assert(ENTRY_BYTES_MAX <= APPEND_BYTES_MAX, "one entry must fit in one append");
assert(APPEND_BYTES_MAX + 64 * 1024 <= MESSAGE_BYTES_MAX, "an append must fit in a message");
assert(SNAPSHOT_CHUNK_BYTES_MAX + 64 * 1024 <= MESSAGE_BYTES_MAX, "a chunk must fit a message");
assert(ENTRY_BYTES_MAX <= UNCOMMITTED_BYTES_MAX, "one entry must fit the uncommitted budget");
assert(ENTRY_BYTES_MAX <= COMMITTED_BYTES_PER_READY_MAX, "one entry must fit in a Ready");
assert(COMMITTED_ENTRIES_PER_READY_MAX >= 1, "a Ready must be able to carry one entry");
assert(INFLIGHT_APPENDS_MAX >= 1, "pipelining needs at least one inflight append");
assert(APPEND_BYTES_MAX <= INFLIGHT_BYTES_MAX, "one full append must fit in flight");
assert(REPLICAS_MAX >= 1 && REPLICAS_MAX <= 255, "replica count must fit one byte");
