/**
 * The vocabulary of the Raft core: branded numbers, log entries, persistent state, snapshots,
 * membership changes and the messages replicas exchange.
 *
 * Terms, log indexes and replica ids are all plain integers at runtime; the brands stop one from
 * being passed where another is expected. The constructors below check the integer and its sign,
 * so every boundary (decoding, storage, config) can turn an untrusted number into a brand.
 */
import { assert } from "./assert.ts";

/** A replica id: the id of the node that hosts the replica, a positive safe integer. */
export type ReplicaId = number & { readonly __brand: "ReplicaId" };
/** A Raft term (Raft §5.1), a non-negative safe integer. */
export type Term = number & { readonly __brand: "Term" };
/** A position in the replicated log, a non-negative safe integer; index 0 is "before the log". */
export type LogIndex = number & { readonly __brand: "LogIndex" };

/** Brands `value` as a {@linkcode ReplicaId}; asserts it is a positive safe integer. */
export function replicaId(value: number): ReplicaId {
  assert(Number.isSafeInteger(value), "replica id must be a safe integer");
  assert(value > 0, "replica id must be positive");
  return value as ReplicaId;
}

/** Brands `value` as a {@linkcode Term}; asserts it is a non-negative safe integer. */
export function term(value: number): Term {
  assert(Number.isSafeInteger(value), "term must be a safe integer");
  assert(value >= 0, "term must not be negative");
  return value as Term;
}

/** Brands `value` as a {@linkcode LogIndex}; asserts it is a non-negative safe integer. */
export function logIndex(value: number): LogIndex {
  assert(Number.isSafeInteger(value), "log index must be a safe integer");
  assert(value >= 0, "log index must not be negative");
  return value as LogIndex;
}

/** What an entry carries: a client command, or a membership change (see membership.ts). */
export type EntryType = "normal" | "confChange";

/**
 * One log entry. A `normal` entry with empty `data` is the no-op a new leader appends so that it
 * can commit an entry of its own term (Raft §5.4.2, §8).
 */
export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state that must be durable before votes and acks that depend on it are sent (Raft §5). */
export interface HardState {
  readonly term: Term;
  readonly vote: ReplicaId | null;
  readonly commit: LogIndex;
}

/** A group's membership: voters count toward quorums; learners only receive the log. */
export interface ConfState {
  readonly voters: readonly ReplicaId[];
  readonly learners: readonly ReplicaId[];
}

/** Where a snapshot sits in the log, and the membership in force at that index. */
export interface SnapshotMetadata {
  readonly index: LogIndex;
  readonly term: Term;
  readonly confState: ConfState;
}

/** A state-machine snapshot: opaque bytes produced by the state machine, plus metadata. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

/** A single-replica membership change (see membership.ts for why one at a time). */
export interface ConfChange {
  readonly type: "addVoter" | "addLearner" | "removeReplica";
  readonly replicaId: ReplicaId;
}

/** A linearizable read that may now be served: state applied through `index` is fresh enough. */
export interface ReadState {
  readonly requestId: number;
  readonly index: LogIndex;
}

/** Fields every message carries. `term` is the sender's term, or the term voted for. */
interface MessageHeader {
  readonly from: ReplicaId;
  readonly to: ReplicaId;
  readonly term: Term;
}

/** A request for a vote or a pre-vote (Raft §5.2, thesis §9.6). */
export interface VoteMessage extends MessageHeader {
  readonly type: "vote" | "preVote";
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  /** True when a leader transfer started this election: voters then ignore their lease. */
  readonly isTransfer: boolean;
}

/** The answer to a vote or pre-vote request. */
export interface VoteResponseMessage extends MessageHeader {
  readonly type: "voteResponse" | "preVoteResponse";
  readonly isRejected: boolean;
}

/** AppendEntries (Raft §5.3); with no entries it still carries the commit index. */
export interface AppendMessage extends MessageHeader {
  readonly type: "append";
  readonly prevIndex: LogIndex;
  readonly prevTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
}

/**
 * The answer to an append. Accepted: `index` is the last index now known to match. Rejected:
 * `index` is the rejected `prevIndex`, and the hint is the follower's last entry at or before it
 * whose term is at most the leader's `prevTerm` (fast backtracking).
 */
export interface AppendResponseMessage extends MessageHeader {
  readonly type: "appendResponse";
  readonly index: LogIndex;
  readonly isRejected: boolean;
  readonly rejectHintIndex: LogIndex;
  readonly rejectHintTerm: Term;
}

/**
 * A leader's heartbeat; `round` numbers it so that ReadIndex and leases can count acks. With
 * `quiesce` set it is the leader's last heartbeat before it goes quiet (see quiesce.ts): a
 * follower whose log ends at `commit` stops its election timer until the next message.
 */
export interface HeartbeatMessage extends MessageHeader {
  readonly type: "heartbeat";
  readonly commit: LogIndex;
  readonly round: number;
  readonly quiesce: boolean;
}

/** The answer to a heartbeat, echoing its round. */
export interface HeartbeatResponseMessage extends MessageHeader {
  readonly type: "heartbeatResponse";
  readonly round: number;
}

/** One chunk of an InstallSnapshot transfer (Raft §7); chunks are sent in offset order. */
export interface SnapshotChunkMessage extends MessageHeader {
  readonly type: "snapshotChunk";
  readonly metadata: SnapshotMetadata;
  readonly offset: number;
  readonly totalBytes: number;
  readonly data: Uint8Array;
}

/** A follower's progress through a snapshot transfer: bytes of `snapshotIndex` received. */
export interface SnapshotAckMessage extends MessageHeader {
  readonly type: "snapshotAck";
  readonly snapshotIndex: LogIndex;
  readonly offset: number;
}

/** Leader transfer: the target should start an election at once (thesis §3.10). */
export interface TimeoutNowMessage extends MessageHeader {
  readonly type: "timeoutNow";
}

/** Every message a replica sends to another. */
export type Message =
  | VoteMessage
  | VoteResponseMessage
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotChunkMessage
  | SnapshotAckMessage
  | TimeoutNowMessage;

/** The type tag of a {@linkcode Message}. */
export type MessageType = Message["type"];

/** The empty hard state of a replica that has never voted or learned a commit. */
export const EMPTY_HARD_STATE: HardState = { term: 0 as Term, vote: null, commit: 0 as LogIndex };

/** Whether two hard states are equal field by field. */
export function isHardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** The payload size of `entries` in bytes; the unit of every byte limit on entries. */
export function entriesBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entry.data.byteLength;
  return total;
}
