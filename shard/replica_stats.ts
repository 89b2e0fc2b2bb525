/**
 * What a shard replica reports of itself: its status and its counters, and the one place that
 * updates the apply timings. Re-exported by replica.ts and shard/mod.ts.
 */
import { assert, type Status } from "../raft/mod.ts";
import type { StorageStallStatus } from "./_storage_stall.ts";
import { APPLY_SAMPLES_MAX } from "./replica_limits.ts";

/** What a replica reports of itself, for status, metrics and routing. */
export interface ReplicaStatus extends Status {
  readonly shard: number;
  readonly stats: ReplicaStats;
  /** The write this replica keeps retrying because storage failed, or null. */
  readonly stall: StorageStallStatus | null;
}

/** Counters of one replica since it started. */
export interface ReplicaStats {
  proposals: number;
  proposalsDropped: number;
  applied: number;
  readsServed: number;
  /** Driver turns run. */
  turns: number;
  /** Ready rounds handled: each one log write (entries, hard state or snapshot) and its sends. */
  readyRounds: number;
  /** Ready rounds whose log write was fsynced (entries or a changed term/vote). */
  logSyncs: number;
  /**
   * Ready rounds that committed a log transaction: not those of messages only, nor those that
   * move only the commit index (held for the next write, see raft_log_storage.ts).
   */
  logWrites: number;
  /** Time spent writing the log, ms: the commit, plus the wait for a deferred fsync. */
  logWriteMs: number;
  /** Time spent applying committed entries to the state machine, ms. */
  applyMs: number;
  messagesDroppedInbound: number;
  /** Quiesced follower wakes because its leader's node went quiet (reportLeaderDown). */
  leaderDownWakes: number;
  /**
   * Turns in which this leader sent the commit index alone to followers behind on it (a
   * commit notice: no append carried it within COMMIT_NOTICE_DELAY_MS, or a follower read).
   */
  commitNotices: number;
  /** Proposals held for the next one to share their round (see _proposals.ts). */
  heldProposals: number;
  /** Held proposals that no other came for: proposed alone once PROPOSAL_HOLD_MS ended. */
  heldProposalsAlone: number;
  snapshotsCreated: number;
  snapshotsRestored: number;
  /** Snapshots received whose files were written off the event loop before their install. */
  snapshotsStaged: number;
  /** Log writes, restores and applies that failed on storage (each retry counts). */
  storageFailures: number;
  /** Snapshots and compactions that failed on storage. */
  snapshotFailures: number;
  /** The longest loop turn, in ms: how long this shard held the event loop at once. */
  turnMsMax: number;
  /** The longest apply of one Ready's committed entries, in ms. */
  applyMsMax: number;
  /** Recent apply latencies per entry batch, ms, newest last (bounded). */
  readonly applyMsRecent: number[];
}

/** Counters at zero, for a replica that starts. */
export function newReplicaStats(): ReplicaStats {
  return {
    proposals: 0,
    proposalsDropped: 0,
    applied: 0,
    turns: 0,
    readyRounds: 0,
    logSyncs: 0,
    logWrites: 0,
    logWriteMs: 0,
    applyMs: 0,
    readsServed: 0,
    messagesDroppedInbound: 0,
    leaderDownWakes: 0,
    commitNotices: 0,
    heldProposals: 0,
    heldProposalsAlone: 0,
    snapshotsCreated: 0,
    snapshotsRestored: 0,
    snapshotsStaged: 0,
    storageFailures: 0,
    snapshotFailures: 0,
    turnMsMax: 0,
    applyMsMax: 0,
    applyMsRecent: [],
  };
}

/** Counts one apply of `count` entries that took `elapsedMs`, keeping the samples bounded. */
export function recordApply(
  stats: ReplicaStats,
  apply: { readonly count: number; readonly elapsedMs: number },
): void {
  assert(apply.count > 0, "an apply has entries");
  stats.applied += apply.count;
  stats.applyMs += apply.elapsedMs;
  stats.applyMsMax = Math.max(stats.applyMsMax, apply.elapsedMs);
  stats.applyMsRecent.push(apply.elapsedMs);
  if (stats.applyMsRecent.length > APPLY_SAMPLES_MAX) stats.applyMsRecent.shift();
  assert(stats.applyMsRecent.length <= APPLY_SAMPLES_MAX, "apply samples stay bounded");
}
