/**
 * The client-facing requests a leader accepts: proposals, membership changes, linearizable
 * reads and leadership transfer. Each returns a discriminated union, never throws for an
 * expected condition (STYLE §7).
 */
import { assert } from "./assert.ts";
import { ENTRY_BYTES_MAX, REQUEST_ID_MAX } from "./limits.ts";
import { checkConfChange, encodeConfChange } from "./membership.ts";
import type { RaftCore } from "./raft_core.ts";
import * as replication from "./replication.ts";
import type { ConfChange, Entry, EntryType, LogIndex, ReplicaId, Term } from "./types.ts";

/** Why a request was refused because this replica is not the leader, with a hint. */
export interface NotLeader {
  readonly kind: "not_leader";
  readonly leader: ReplicaId | null;
}

/** The outcome of {@linkcode RawNode.propose} and {@linkcode RawNode.proposeConfChange}. */
export type ProposeResult =
  | { readonly kind: "ok"; readonly index: LogIndex; readonly term: Term }
  | NotLeader
  | { readonly kind: "dropped"; readonly reason: string }
  | { readonly kind: "entry_too_large"; readonly bytes: number; readonly bytesMax: number }
  | { readonly kind: "uncommitted_too_large"; readonly bytes: number; readonly bytesMax: number }
  | { readonly kind: "conf_change_pending"; readonly reason: string }
  | { readonly kind: "invalid_conf_change"; readonly reason: string };

/** The outcome of {@linkcode RawNode.readIndex}; `ok` means a ReadState will follow. */
export type ReadIndexResult =
  | { readonly kind: "ok" }
  | NotLeader
  | { readonly kind: "too_many_reads"; readonly pendingMax: number };

/** The outcome of {@linkcode RawNode.transferLeadership}. */
export type TransferResult =
  | { readonly kind: "ok" }
  | NotLeader
  | { readonly kind: "invalid_target"; readonly reason: string };

/** Appends a client command (see ProposeResult for every refusal). */
export function propose(
  raft: RaftCore,
  data: Uint8Array,
  type: EntryType = "normal",
): ProposeResult {
  const result = appendProposal(raft, data, type);
  if (result.kind !== "ok") return result;
  replication.broadcastAppend(raft);
  raft.checkRemovedLeader();
  return result;
}

/**
 * Appends several client commands, then sends them in one append per follower. propose()
 * sends one append per command, and each append costs a follower a turn and a response: a
 * driver that proposes everything queued during one turn this way sends a follower one
 * message instead of one per command. One result per command, in order; a refused command
 * does not stop the ones after it.
 */
export function proposeBatch(raft: RaftCore, datas: readonly Uint8Array[]): ProposeResult[] {
  const results: ProposeResult[] = [];
  let appended = 0;
  for (const data of datas) {
    const result = appendProposal(raft, data, "normal");
    if (result.kind === "ok") appended++;
    results.push(result);
  }
  assert(results.length === datas.length, "proposeBatch() has one result per command");
  if (appended > 0) {
    replication.broadcastAppend(raft);
    raft.checkRemovedLeader();
  }
  return results;
}

/** Checks one command and appends it to the leader's log, without sending anything. */
function appendProposal(raft: RaftCore, data: Uint8Array, type: EntryType): ProposeResult {
  if (raft.role !== "leader") return { kind: "not_leader", leader: raft.leader };
  if (raft.leadTransferee !== null) {
    return { kind: "dropped", reason: `leadership is moving to ${raft.leadTransferee}` };
  }
  if (data.byteLength > ENTRY_BYTES_MAX) {
    return { kind: "entry_too_large", bytes: data.byteLength, bytesMax: ENTRY_BYTES_MAX };
  }
  const bytesMax = raft.limits.uncommittedBytesMax;
  const bytes = raft.uncommittedBytes + data.byteLength;
  if (raft.uncommittedBytes > 0 && bytes > bytesMax) {
    return { kind: "uncommitted_too_large", bytes, bytesMax };
  }
  const entry: Entry = {
    term: raft.term,
    index: (raft.log.lastIndex() + 1) as LogIndex,
    type,
    data,
  };
  replication.appendAsLeader(raft, [entry]);
  assert(raft.log.lastIndex() === entry.index, "the proposal is the last entry");
  return { kind: "ok", index: entry.index, term: entry.term };
}

/** Appends a membership change, one at a time (see membership.ts for the rules and why). */
export function proposeConfChange(raft: RaftCore, change: ConfChange): ProposeResult {
  if (raft.role !== "leader") return { kind: "not_leader", leader: raft.leader };
  const committed = raft.log.committed;
  if (raft.configHistory.lastChangeIndex() > committed) {
    const reason = `the change at index ${raft.configHistory.lastChangeIndex()} is uncommitted`;
    return { kind: "conf_change_pending", reason };
  }
  if (raft.log.term(committed) !== raft.term) {
    return { kind: "conf_change_pending", reason: "no entry of this term is committed yet" };
  }
  const problem = checkConfChange(raft.confState(), change);
  if (problem !== null) return { kind: "invalid_conf_change", reason: problem };
  const learnerMatch = raft.progress.get(change.replicaId)?.match ?? 0;
  if (change.type === "addVoter" && learnerMatch === 0) {
    // A replica that stored none of the log knows no configuration and does not vote (see
    // RaftCore's vote handling). Made a voter then, it could be the vote a quorum needs: if
    // the leader lost its lease before the first append reached it, no candidate could win.
    const reason = `replica ${change.replicaId} has stored none of the log yet, so it could ` +
      "not vote (add it as a learner, promote it once it has)";
    return { kind: "conf_change_pending", reason };
  }
  return propose(raft, encodeConfChange(change), "confChange");
}

/** Registers a linearizable read (thesis §6.4); its ReadState arrives in a later Ready. */
export function readIndex(raft: RaftCore, requestId: number): ReadIndexResult {
  assert(Number.isSafeInteger(requestId), "readIndex() needs an integer request id");
  assert(requestId >= 0 && requestId <= REQUEST_ID_MAX, "readIndex() request id out of range");
  if (raft.role !== "leader") return { kind: "not_leader", leader: raft.leader };
  if (!raft.readOnly.hasRoom) {
    return { kind: "too_many_reads", pendingMax: raft.readOnly.pendingCount };
  }
  const committed = raft.log.committed;
  if (raft.log.term(committed) !== raft.term) {
    raft.readOnly.awaitCommit(requestId);
    return { kind: "ok" };
  }
  if (raft.confState().voters.length === 1 && raft.isPromotable()) {
    raft.readOnly.readStates.push({ requestId, index: committed });
    return { kind: "ok" };
  }
  const isLeaseUsable = raft.leadTransferee === null && !raft.hasSentTimeoutNow;
  if (raft.config.leaseReads && isLeaseUsable && isLeaseValid(raft)) {
    raft.readOnly.readStates.push({ requestId, index: committed });
    return { kind: "ok" };
  }
  raft.readOnly.register(requestId, committed);
  return { kind: "ok" };
}

/** Starts moving leadership to `to` (thesis §3.10); proposals are dropped meanwhile. */
export function transferLeadership(raft: RaftCore, to: ReplicaId): TransferResult {
  if (raft.role !== "leader") return { kind: "not_leader", leader: raft.leader };
  if (to === raft.id) return { kind: "invalid_target", reason: `replica ${to} already leads` };
  const progress = raft.progress.get(to);
  if (progress === undefined || !raft.confState().voters.includes(to)) {
    return { kind: "invalid_target", reason: `replica ${to} is not a voter` };
  }
  if (raft.leadTransferee === to) return { kind: "ok" };
  raft.leadTransferee = to;
  // The transfer must finish within one election timeout, or it is abandoned.
  raft.electionElapsed = 0;
  if (progress.match === raft.log.lastIndex()) {
    replication.sendTimeoutNow(raft, to);
  } else {
    replication.sendAppend(raft, to, true);
  }
  return { kind: "ok" };
}

function isLeaseValid(raft: RaftCore): boolean {
  const clock = raft.config.leaseClock;
  return raft.readOnly.isLeaseValid({
    quorumRound: replication.quorumRound(raft),
    leaderTicks: raft.leaderTicks,
    electionTicks: raft.config.electionTicks,
    clock: clock === undefined ? null : { nowMs: clock.nowMs(), tickMs: clock.tickMs },
  });
}
