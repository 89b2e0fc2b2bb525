/**
 * Per-seed simulation settings, drawn from the run's PRNG (swarm testing): each seed turns a
 * different mix of faults and features on, at different rates.
 */
import { COMMITTED_ENTRIES_PER_READY_MAX } from "../../raft/mod.ts";
import type { SeededPrng } from "../../raft/mod.ts";

/** Everything a run varies. Rates are probabilities per step (or per message). */
export interface SimOptions {
  readonly voterCount: number;
  readonly spareCount: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly tickUnits: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly leaseReads: boolean;
  readonly latencyUnitsMax: number;
  readonly diskLatencyUnitsMax: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly reorderRate: number;
  readonly proposeRate: number;
  readonly payloadBytesMax: number;
  readonly readRate: number;
  readonly crashRate: number;
  readonly downUnitsMax: number;
  readonly partitionRate: number;
  readonly membershipRate: number;
  readonly transferRate: number;
  readonly snapshotEvery: number;
  readonly compactionLag: number;
  readonly snapshotPaddingBytes: number;
  readonly appendEntriesMax: number;
  readonly uncommittedBytesMax: number;
  /** The Raft core's committed entries per Ready; the state machine's batch bound follows. */
  readonly committedEntriesPerReadyMax: number;
  /** The share of crashes that are power losses (the others are process crashes). */
  readonly powerLossRate: number;
  /** The chance that the state machine syncs after a batch (a checkpoint). */
  readonly machineSyncRate: number;
  /** The chance per step that a client proposes a burst of tiny writes at once. */
  readonly burstRate: number;
  /** The writes in one burst. */
  readonly burstEntries: number;
  /**
   * Quiet periods: every other stretch of this many units has no new writes, reads, membership
   * changes or transfers (crashes and partitions go on), so groups quiesce; 0: never quiet.
   */
  readonly quietUnits: number;
  /**
   * The chance per step that a live replica is paused (SIGSTOP: no timer, no message, no
   * disk) for up to `downUnitsMax` units; it resumes as a real process does: one late timer
   * tick, the messages that waited, and maybe a client read at a replica that believes it leads.
   */
  readonly pauseRate: number;
  /** Leaders defer commit notices (RaftConfig.deferCommitNotices), as nodes run them. */
  readonly deferCommitNotices: boolean;
  /** With deferred notices: units a leader waits before it sends the notices it owes. */
  readonly commitNoticeUnits: number;
}

/** Draws the options of one run. */
export function drawOptions(prng: SeededPrng): SimOptions {
  const pick = <T>(items: readonly T[]): T => items[prng.nextInt(items.length)]!;
  const checkQuorum = prng.nextInt(3) > 0;
  const heartbeatTicks = pick([1, 1, 2, 3]);
  return {
    voterCount: pick([1, 3, 3, 3, 5, 5]),
    spareCount: pick([0, 2, 3]),
    electionTicks: heartbeatTicks * pick([3, 5, 10]),
    heartbeatTicks,
    tickUnits: 10,
    preVote: prng.nextInt(3) > 0,
    checkQuorum,
    leaseReads: checkQuorum && prng.nextInt(2) === 0,
    latencyUnitsMax: pick([1, 5, 10, 30]),
    diskLatencyUnitsMax: pick([0, 0, 3, 10]),
    dropRate: pick([0, 0.01, 0.05, 0.2]),
    duplicateRate: pick([0, 0.01, 0.05]),
    reorderRate: pick([0, 0.01, 0.1, 1]),
    proposeRate: pick([0.05, 0.2, 0.5]),
    payloadBytesMax: pick([0, 16, 256]),
    readRate: pick([0, 0.02, 0.1]),
    crashRate: pick([0, 0.0005, 0.002, 0.005]),
    downUnitsMax: pick([50, 300, 1000]),
    partitionRate: pick([0, 0.001, 0.005]),
    membershipRate: pick([0, 0, 0.002, 0.01]),
    transferRate: pick([0, 0.001, 0.005]),
    snapshotEvery: pick([5, 20, 100, 1_000_000]),
    compactionLag: pick([0, 3, 20]),
    snapshotPaddingBytes: pick([0, 0, 0, 100, 700_000]),
    appendEntriesMax: pick([1, 2, 4, 1024]),
    uncommittedBytesMax: pick([512, 32 * 1024 * 1024]),
    // Drawn after the options above, so that older seeds keep their earlier choices.
    committedEntriesPerReadyMax: pick([8, 32, 128, COMMITTED_ENTRIES_PER_READY_MAX]),
    powerLossRate: pick([0, 0.5, 1]),
    machineSyncRate: pick([0.05, 0.3, 1]),
    burstRate: pick([0, 0, 0.001, 0.004]),
    burstEntries: pick([32, 128, 256]),
    quietUnits: pick([0, 0, 300, 1500]),
    pauseRate: pick([0, 0.0005, 0.002, 0.005]),
    deferCommitNotices: prng.nextInt(3) > 0,
    commitNoticeUnits: pick([1, 5, 30, 200]),
  };
}
