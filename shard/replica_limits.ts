/**
 * The limits and intervals of a shard replica's driver loop (STYLE §6: every queue has a named
 * maximum). Re-exported by replica.ts and shard/mod.ts.
 */

/** Most messages from peers waiting for a turn; more are dropped (Raft tolerates loss). */
export const INBOUND_MESSAGES_MAX = 16_384;
/** Most proposals waiting for a turn or for their entry to apply. */
export const PROPOSALS_PENDING_MAX = 16_384;
/** Most linearizable reads waiting. */
export const READ_WAITERS_MAX = 16_384;
/**
 * Most admin calls (leadership transfers, elections) waiting for a turn; more are refused with
 * `too_many_requests`. Operators make them by hand, a handful at a time: a long queue means a
 * replica whose loop is stuck, and piling more on it helps nobody.
 */
export const ADMIN_CALLS_PENDING_MAX = 64;
/** Most Ready rounds handled in one turn before yielding to the event loop. */
export const READY_ROUNDS_PER_TURN_MAX = 64;
/**
 * Milliseconds of Ready rounds after which a turn yields to the event loop and goes on in the
 * next one. Every shard of a node shares one event loop: a follower catching up on 100,000
 * entries applied them 4,096 a round for up to 64 rounds in one turn, holding the loop for
 * seconds, and the shards this node led missed their heartbeats and elected new leaders.
 */
export const TURN_WORK_MS_MAX = 25;
/**
 * Most committed entries one Ready hands the state machine (the Raft core's
 * committedEntriesPerReadyMax, lowered from its 4,096). A Ready's entries apply in one batch
 * that no turn can split: a follower that came back 70,000 entries behind applied 4,096 puts
 * at a time under load, 270-340 ms each, and those batches were the longest stalls of its event
 * loop. At 45-85 us a put, 256 take 12-22 ms, inside TURN_WORK_MS_MAX, so the turn yields
 * between batches; under load a leader's Ready holds 40-60 entries and never reaches it.
 */
export const APPLY_ENTRIES_PER_READY_MAX = 256;

/**
 * How long a leader whose commit index moved waits for an append to carry it to the followers
 * before it sends them the commit alone (raft's deferCommitNotices). Under load the next
 * proposal's append carries it well within this; a lone write is told once it has passed, so
 * a follower applies (and its watchers hear) a write at most this much later than without the
 * deferral.
 */
export const COMMIT_NOTICE_DELAY_MS = 20;
/**
 * How long a held proposal (the resolves after a cross-shard transaction's reply) waits for
 * another proposal on its shard to share a Ready round with, before it is proposed alone. A
 * reader that meets one of its intents releases it sooner (see ShardReplica.releaseHeld).
 */
export const PROPOSAL_HOLD_MS = 20;
/**
 * Most entries of inbound appends stepped in one turn; the rest wait for the next. A leader
 * pipelines up to 64 appends of up to 1,024 entries to a follower that catches up: stepped at
 * once, they made one Ready whose log write alone held the event loop for hundreds of ms.
 */
export const INBOUND_ENTRIES_PER_TURN_MAX = 4_096;
/**
 * Applied entries between two state-machine snapshots. A snapshot copies the whole state
 * machine (keys and watch history: 28 MB for 10,000 keys of 256 bytes with a full history) and
 * writes it into the Raft log with an fsync, holding the event loop 100-400 ms. Every 10,000
 * entries that was 5-9% of every node's CPU under a put load; the state machine is durable on
 * its own, so snapshots only bound the log (as etcd's default of 100,000 does).
 */
export const SNAPSHOT_INTERVAL_ENTRIES = 100_000;
/** Entries kept behind a snapshot so that slightly lagging followers need no snapshot. */
export const LOG_RETAINED_ENTRIES = 2_000;
/**
 * Most log entries one turn compacts behind a snapshot; a longer log goes over several turns.
 * Deleting 95,000 entries in one SQLite transaction held the event loop 220-240 ms on a quiet
 * node and ~500 ms under a put load, long enough for the node's other shards to miss heartbeats;
 * steps of 5,000 still held it 120-250 ms each under load (their commits set off WAL
 * checkpoints), steps of 1,000 no longer show among a loaded node's longest turns.
 */
export const COMPACT_ENTRIES_PER_TURN_MAX = 1_000;
/** How long after a failed snapshot or compaction the next attempt waits, ms. */
export const SNAPSHOT_RETRY_MS = 30_000;

/** How many recent apply durations a replica keeps for percentiles. */
export const APPLY_SAMPLES_MAX = 512;
