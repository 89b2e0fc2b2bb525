/**
 * @module
 * The pure Raft consensus core: a deterministic state machine driven by ticks, messages and
 * proposals, whose only output is a `Ready` value that the caller persists, sends and applies.
 *
 * Allowed dependencies: none. This folder imports nothing of ours and no third-party package,
 * and never touches clocks, timers, randomness, I/O or Promises (see tests/tidy_test.ts).
 *
 * Features: elections with randomized timeouts, pre-vote and check-quorum; pipelined
 * replication with fast backtracking; chunked snapshots; single-replica membership changes with
 * learners (see membership.ts for why one at a time); leader transfer; batched ReadIndex and
 * optional lease reads. Every limit is in limits.ts.
 *
 * @example
 * ```ts
 * import { MemoryStorage, RawNode, replicaId, SeededPrng } from "./mod.ts";
 * const storage = new MemoryStorage({ voters: [replicaId(1)], learners: [] });
 * const node = new RawNode({
 *   id: replicaId(1), electionTicks: 10, heartbeatTicks: 1, prng: new SeededPrng(7),
 *   preVote: true, checkQuorum: true, leaseReads: false,
 * }, storage);
 * node.campaign();
 * while (node.hasReady()) {
 *   const ready = node.ready();
 *   if (ready.hardState !== null) storage.setHardState(ready.hardState);
 *   storage.append(ready.entries);
 *   // send ready.messages, apply ready.committed
 *   node.advance(ready);
 * }
 * ```
 */
export { assert, AssertionError } from "./assert.ts";
export type {
  AppendMessage,
  AppendResponseMessage,
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  LogIndex,
  Message,
  MessageType,
  ReadState,
  ReplicaId,
  Snapshot,
  SnapshotAckMessage,
  SnapshotChunkMessage,
  SnapshotMetadata,
  Term,
  TimeoutNowMessage,
  VoteMessage,
  VoteResponseMessage,
} from "./types.ts";
export {
  EMPTY_HARD_STATE,
  entriesBytes,
  isHardStateEqual,
  logIndex,
  replicaId,
  term,
} from "./types.ts";
export * from "./limits.ts";
export type { Prng } from "./prng.ts";
export { SeededPrng } from "./prng.ts";
export type { LeaseClock, RaftConfig, RaftLimits } from "./config.ts";
export { checkRaftConfig, DEFAULT_RAFT_LIMITS, RaftConfigError } from "./config.ts";
export type { InitialState, LogStorage, WritableLogStorage } from "./storage.ts";
export {
  bootstrapEntries,
  bootstrapHardState,
  checkAppendable,
  EMPTY_CONF_STATE,
  initialSnapshot,
  MemoryStorage,
} from "./storage.ts";
export type { Ready } from "./ready.ts";
export type { ProgressStatus, Status } from "./raw_node.ts";
export { RawNode } from "./raw_node.ts";
export type { Role } from "./raft_core.ts";
export type { ProgressState, SnapshotTooLarge } from "./progress.ts";
export type { NotLeader, ProposeResult, ReadIndexResult, TransferResult } from "./requests.ts";
export type { DecodeResult } from "./codec.ts";
export { decodeMessage, encodeMessage } from "./codec.ts";
export {
  applyConfChange,
  checkConfChange,
  decodeConfChange,
  encodeConfChange,
} from "./membership.ts";
export { quorumSize, quorumValue, voteResult } from "./quorum.ts";
export type { VoteResult } from "./quorum.ts";
