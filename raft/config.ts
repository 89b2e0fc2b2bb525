/**
 * The configuration of one replica's Raft core, validated up front with precise messages
 * (etcd-style): every problem names the field, its value and the allowed range.
 */
import type { Prng } from "./prng.ts";
import {
  APPEND_BYTES_MAX,
  APPEND_ENTRIES_MAX,
  COMMITTED_ENTRIES_PER_READY_MAX,
  ELECTION_TICKS_MAX,
  ELECTION_TO_HEARTBEAT_RATIO_MIN,
  SNAPSHOT_BYTES_MAX,
  UNCOMMITTED_BYTES_MAX,
} from "./limits.ts";
import type { LogIndex, ReplicaId } from "./types.ts";

/** Per-replica tunables that may be lowered below the compiled-in maximums (never raised). */
export interface RaftLimits {
  /** Payload bytes per append message, 1..APPEND_BYTES_MAX. */
  readonly appendBytesMax: number;
  /** Entries per append message, 1..APPEND_ENTRIES_MAX. */
  readonly appendEntriesMax: number;
  /** Uncommitted payload bytes at a leader, 1..UNCOMMITTED_BYTES_MAX. */
  readonly uncommittedBytesMax: number;
  /**
   * Committed entries handed out per Ready, 1..COMMITTED_ENTRIES_PER_READY_MAX. The caller
   * applies one Ready's entries in one batch, so this must fit its state machine's batch bound;
   * the simulator lowers it (and its state machine's bound with it) to reach the bound quickly.
   */
  readonly committedEntriesPerReadyMax: number;
  /**
   * The largest snapshot, in bytes, 1..SNAPSHOT_BYTES_MAX: a follower refuses to reassemble a
   * larger one, and a leader refuses to send one (every replica of a group has the same limits).
   */
  readonly snapshotBytesMax: number;
}

/** The limits used when a config names none: the compiled-in maximums. */
export const DEFAULT_RAFT_LIMITS: RaftLimits = {
  appendBytesMax: APPEND_BYTES_MAX,
  appendEntriesMax: APPEND_ENTRIES_MAX,
  uncommittedBytesMax: UNCOMMITTED_BYTES_MAX,
  committedEntriesPerReadyMax: COMMITTED_ENTRIES_PER_READY_MAX,
  snapshotBytesMax: SNAPSHOT_BYTES_MAX,
};

/** The configuration of a {@linkcode RawNode}. */
export interface RaftConfig {
  /** This replica's id (its node's id). */
  readonly id: ReplicaId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized up to 2x). */
  readonly electionTicks: number;
  /** Ticks between a leader's heartbeats. */
  readonly heartbeatTicks: number;
  /** The source of election jitter. */
  readonly prng: Prng;
  /** Run a pre-vote round before a real election (thesis §9.6). */
  readonly preVote: boolean;
  /** A leader steps down when a quorum has not answered within an election timeout. */
  readonly checkQuorum: boolean;
  /** Serve reads from a leader lease instead of a heartbeat round; needs `checkQuorum`. */
  readonly leaseReads: boolean;
  /**
   * Let an idle group go quiet (quiesce.ts); absent: true. The driver must then report peers
   * that went down (RawNode.reportLeaderDown), or a quiesced group waits for its leader forever.
   */
  readonly quiesce?: boolean;
  /**
   * A leader whose commit index moved does not send every follower an empty append to say so
   * (etcd's behaviour, the default): the next append or heartbeat carries the new commit index,
   * or the driver calls RawNode.sendCommitNotices() when no append followed soon enough. One
   * isolated write then costs four messages instead of eight; followers apply it later.
   */
  readonly deferCommitNotices?: boolean;
  /**
   * The driver's monotonic clock, for read leases: a lease then also ends by the clock, an
   * election timeout less a tick after the heartbeat round it rests on was sent, however few
   * ticks the driver delivered meanwhile (a process paused by SIGSTOP, or a starved event
   * loop, gets its timer callbacks late and few). Without it a lease is measured in ticks only.
   * Injected like `prng`, so that simulations stay deterministic.
   */
  readonly leaseClock?: LeaseClock;
  /** The index the state machine has applied already (defaults to the snapshot's index). */
  readonly applied?: LogIndex;
  /** Lowered limits; defaults to {@linkcode DEFAULT_RAFT_LIMITS}. */
  readonly limits?: RaftLimits;
}

/** A monotonic clock and the length of one tick on it (see RaftConfig.leaseClock). */
export interface LeaseClock {
  /** Monotonic milliseconds; it must keep running while the process is paused. */
  readonly nowMs: () => number;
  /** How long one tick is meant to be, in the same milliseconds. */
  readonly tickMs: number;
}

/** Thrown by the RawNode constructor for an invalid {@linkcode RaftConfig}. */
export class RaftConfigError extends Error {
  override readonly name = "RaftConfigError";
}

/** Returns the first problem with `config`, or null when it is valid. */
export function checkRaftConfig(config: RaftConfig): string | null {
  const prefix = `Cannot start replica ${config.id}`;
  if (!Number.isSafeInteger(config.id) || config.id <= 0) {
    return `${prefix}: id must be a positive integer`;
  }
  const ticks = checkRange("heartbeatTicks", config.heartbeatTicks, 1, ELECTION_TICKS_MAX);
  if (ticks !== null) return `${prefix}: ${ticks}`;
  const election = checkRange("electionTicks", config.electionTicks, 1, ELECTION_TICKS_MAX);
  if (election !== null) return `${prefix}: ${election}`;
  const minimum = config.heartbeatTicks * ELECTION_TO_HEARTBEAT_RATIO_MIN;
  if (config.electionTicks < minimum) {
    return `${prefix}: electionTicks is ${config.electionTicks} but must be at least ` +
      `${ELECTION_TO_HEARTBEAT_RATIO_MIN} * heartbeatTicks (${minimum})`;
  }
  if (config.leaseReads && !config.checkQuorum) {
    return `${prefix}: leaseReads is true but needs checkQuorum to be true`;
  }
  const tickMs = config.leaseClock?.tickMs;
  if (tickMs !== undefined && !(Number.isFinite(tickMs) && tickMs > 0)) {
    return `${prefix}: leaseClock.tickMs is ${tickMs} but must be a positive number`;
  }
  if (config.applied !== undefined && !(Number.isSafeInteger(config.applied))) {
    return `${prefix}: applied must be a non-negative integer`;
  }
  if (config.applied !== undefined && config.applied < 0) {
    return `${prefix}: applied is ${config.applied} but must not be negative`;
  }
  return config.limits === undefined ? null : checkLimits(prefix, config.limits);
}

function checkLimits(prefix: string, limits: RaftLimits): string | null {
  const problems = [
    checkRange("limits.appendBytesMax", limits.appendBytesMax, 1, APPEND_BYTES_MAX),
    checkRange("limits.appendEntriesMax", limits.appendEntriesMax, 1, APPEND_ENTRIES_MAX),
    checkRange(
      "limits.uncommittedBytesMax",
      limits.uncommittedBytesMax,
      1,
      UNCOMMITTED_BYTES_MAX,
    ),
    checkRange(
      "limits.committedEntriesPerReadyMax",
      limits.committedEntriesPerReadyMax,
      1,
      COMMITTED_ENTRIES_PER_READY_MAX,
    ),
    checkRange("limits.snapshotBytesMax", limits.snapshotBytesMax, 1, SNAPSHOT_BYTES_MAX),
  ];
  const problem = problems.find((item) => item !== null);
  return problem === undefined || problem === null ? null : `${prefix}: ${problem}`;
}

function checkRange(name: string, value: number, min: number, max: number): string | null {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    return `${name} is ${value} but must be an integer in ${min}..${max}`;
  }
  return null;
}
