/**
 * The shape of the Raft state machine as its helper modules (replication.ts, follower.ts,
 * requests.ts) see it. Declaring it here, apart from the class in raft.ts, keeps the imports
 * acyclic: raft.ts imports the helpers, and the helpers import only this interface.
 */
import type { RaftConfig, RaftLimits } from "./config.ts";
import type { RaftLog } from "./log.ts";
import type { ConfigHistory } from "./membership.ts";
import type { Progress } from "./progress.ts";
import type { ReadOnly } from "./read_only.ts";
import type { ConfState, Entry, LogIndex, Message, ReplicaId, Term } from "./types.ts";

/** The role a replica plays in its group. */
export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** A snapshot being reassembled from chunks on a follower. */
export interface SnapshotAssembly {
  readonly index: LogIndex;
  readonly term: Term;
  readonly totalBytes: number;
  readonly chunks: Uint8Array[];
  receivedBytes: number;
}

/** The state and operations of one replica's Raft state machine (see raft.ts). */
export interface RaftCore {
  readonly id: ReplicaId;
  readonly config: RaftConfig;
  readonly limits: RaftLimits;
  readonly log: RaftLog;
  readonly configHistory: ConfigHistory;
  readonly readOnly: ReadOnly;
  term: Term;
  vote: ReplicaId | null;
  leader: ReplicaId | null;
  role: Role;
  progress: Map<ReplicaId, Progress>;
  messages: Message[];
  electionElapsed: number;
  leaderTicks: number;
  leadTransferee: ReplicaId | null;
  hasSentTimeoutNow: boolean;
  uncommitted: { index: LogIndex; bytes: number }[];
  uncommittedBytes: number;
  snapshotAssembly: SnapshotAssembly | null;
  /** This replica's group is quiet: it ignores ticks until an input wakes it (quiesce.ts). */
  quiesced: boolean;
  /** Follower only: the latest heartbeat round heard from the leader of this term. */
  leaderRound: number;
  /** Leader only: the commit index of `quietRound`, the first round that carried it. */
  quietCommit: number;
  quietRound: number;
  /** Wakes a quiesced replica: its clocks run from zero again (quiesce.ts). */
  unquiesce(): void;
  /** The configuration in force (the latest in the log). */
  confState(): ConfState;
  /** Whether this replica may campaign. */
  isPromotable(): boolean;
  /** Queues a message for the next Ready. */
  send(message: Message): void;
  /** Starts an election. */
  hup(isTransfer: boolean): void;
  becomeFollower(newTerm: Term, leader: ReplicaId | null): void;
  /** Appends entries and tracks the membership changes among them. */
  appendToLog(entries: readonly Entry[]): void;
  onConfigChanged(): void;
  checkRemovedLeader(): void;
  checkInvariants(): void;
}
