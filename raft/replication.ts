/**
 * The leader side of log replication (Raft §5.3): sending appends and snapshot chunks under flow
 * control, handling the answers, fast backtracking, and advancing the commit index only over
 * entries of the leader's own term (Raft §5.4.2).
 */
import { assert } from "./assert.ts";
import { SNAPSHOT_CHUNK_BYTES_MAX } from "./limits.ts";
import { Progress } from "./progress.ts";
import { quorumValue } from "./quorum.ts";
import type { RaftCore } from "./raft_core.ts";
import type {
  AppendResponseMessage,
  Entry,
  HeartbeatResponseMessage,
  LogIndex,
  Message,
  ReplicaId,
  SnapshotAckMessage,
} from "./types.ts";
import { entriesBytes } from "./types.ts";

/** Gives every member a fresh progress at `lastIndex + 1` (a new leader's view). */
export function resetProgress(raft: RaftCore): void {
  raft.progress.clear();
  syncProgress(raft);
}

/** Adds progress for new members and drops it for removed ones. */
export function syncProgress(raft: RaftCore): void {
  const { voters, learners } = raft.confState();
  const members = new Set([...voters, ...learners]);
  for (const id of [...raft.progress.keys()]) {
    if (!members.has(id)) raft.progress.delete(id);
  }
  const next = (raft.log.lastIndex() + 1) as LogIndex;
  for (const id of members) {
    if (id === raft.id || raft.progress.has(id)) continue;
    raft.progress.set(id, new Progress({ match: 0 as LogIndex, next }));
  }
  if (raft.leadTransferee !== null && !voters.includes(raft.leadTransferee)) {
    raft.leadTransferee = null;
  }
  if (maybeCommit(raft)) broadcastAppend(raft);
}

/**
 * Tells the followers a commit index that just moved: at once, unless notices are deferred
 * (RaftConfig.deferCommitNotices); then the next append or heartbeat, or sendCommitNotices(),
 * tells them.
 */
export function noticeCommit(raft: RaftCore): void {
  if (raft.config.deferCommitNotices !== true) broadcastAppend(raft);
}

/**
 * Whether a follower in steady replication could use a commit index it has not been sent: one
 * up to its match (past that its log may still disagree with the leader's).
 */
function isCommitNoticeDue(raft: RaftCore, progress: Progress): boolean {
  if (progress.state !== "replicate" || progress.isPaused) return false;
  return progress.commitSent < Math.min(raft.log.committed, progress.match);
}

/** Whether sendCommitNotices() would send anything. */
export function hasCommitNoticesDue(raft: RaftCore): boolean {
  if (raft.role !== "leader" || raft.quiesced) return false;
  for (const progress of raft.progress.values()) {
    if (isCommitNoticeDue(raft, progress)) return true;
  }
  return false;
}

/**
 * Sends an append (empty when nothing new is due) to every follower behind on the commit;
 * whether it sent any.
 */
export function sendCommitNotices(raft: RaftCore): boolean {
  if (raft.role !== "leader" || raft.quiesced) return false;
  let isSent = false;
  for (const [id, progress] of raft.progress) {
    if (isCommitNoticeDue(raft, progress) && sendAppend(raft, id, true)) isSent = true;
  }
  return isSent;
}

/** Appends the leader's own entries (terms and indexes already set) and commits if it can. */
export function appendAsLeader(raft: RaftCore, entries: readonly Entry[]): void {
  assert(raft.role === "leader", "appendAsLeader() needs a leader");
  const first = entries[0];
  assert(first !== undefined, "appendAsLeader() needs entries");
  assert(first.index === raft.log.lastIndex() + 1, "a leader only appends at its end");
  for (const entry of entries) {
    assert(entry.term === raft.term, "a leader appends entries of its own term");
    if (entry.data.byteLength === 0) continue;
    raft.uncommitted.push({ index: entry.index, bytes: entry.data.byteLength });
    raft.uncommittedBytes += entry.data.byteLength;
  }
  raft.appendToLog(entries);
  if (raft.role === "leader") maybeCommit(raft);
}

/** Sends appends (or just the commit index) to every follower that is not paused. */
export function broadcastAppend(raft: RaftCore): void {
  for (const id of raft.progress.keys()) sendAppend(raft, id, true);
}

/** Starts a heartbeat round: every follower gets the commit index it can safely use. */
export function broadcastHeartbeat(raft: RaftCore): void {
  const round = raft.readOnly.nextRound(raft.leaderTicks, raft.config.leaseClock?.nowMs() ?? null);
  for (const [id, progress] of raft.progress) {
    // Never more than the follower's match: its log past that may still disagree.
    const commit = Math.min(progress.match, raft.log.committed) as LogIndex;
    progress.commitSent = Math.max(progress.commitSent, commit) as LogIndex;
    raft.send({
      type: "heartbeat",
      from: raft.id,
      to: id,
      term: raft.term,
      commit,
      round,
      quiesce: false,
    });
  }
  releaseReads(raft);
}

/**
 * Sends the next append to `to` if flow control allows; falls back to a snapshot when the
 * entries it needs are compacted. Returns whether anything was sent.
 */
export function sendAppend(raft: RaftCore, to: ReplicaId, isEmptyAllowed: boolean): boolean {
  const progress = raft.progress.get(to);
  assert(progress !== undefined, "sendAppend() to a replica without progress");
  if (progress.isPaused) return false;
  const prevIndex = (progress.next - 1) as LogIndex;
  const prevTerm = raft.log.term(prevIndex);
  const lastIndex = raft.log.lastIndex();
  const high = Math.min(lastIndex + 1, progress.next + raft.limits.appendEntriesMax) as LogIndex;
  const entries = prevTerm === null
    ? null
    : raft.log.slice(progress.next, high, raft.limits.appendBytesMax);
  if (prevTerm === null || entries === null) {
    startSnapshot(raft, to, progress);
    return progress.snapshotTooLarge === null;
  }
  if (entries.length === 0 && !isEmptyAllowed) return false;
  raft.send({
    type: "append",
    from: raft.id,
    to,
    term: raft.term,
    prevIndex,
    prevTerm,
    entries,
    commit: raft.log.committed,
  });
  progress.commitSent = raft.log.committed;
  const last = (prevIndex + entries.length) as LogIndex;
  progress.onAppendSent(entries.length, last, entriesBytes(entries));
  return true;
}

/** Handles a message at a leader. */
export function stepLeader(raft: RaftCore, message: Message): void {
  switch (message.type) {
    case "appendResponse":
      handleAppendResponse(raft, message);
      break;
    case "heartbeatResponse":
      handleHeartbeatResponse(raft, message);
      break;
    case "snapshotAck":
      handleSnapshotAck(raft, message);
      break;
    case "append":
    case "heartbeat":
    case "snapshotChunk":
      assert(false, `two leaders in term ${raft.term}: ${raft.id} and ${message.from}`);
      break;
    default:
      // Vote answers for an election already won, and TimeoutNow at a leader: nothing to do.
      break;
  }
}

/**
 * Advances the commit index to what a quorum has matched, if it is of the current term. The
 * leader counts only the entries its caller persisted, as every follower's match is what it
 * persisted (Raft thesis §10.2.1): drivers may send a leader's appends before its own flush,
 * and a commit index covering entries that only the leader's volatile log holds would reach
 * followers and learners, who would apply an entry that a power loss at the leader erases.
 * A single voter therefore commits its entries in the Ready after the one that writes them.
 */
export function maybeCommit(raft: RaftCore): boolean {
  const { voters } = raft.confState();
  if (voters.length === 0) return false;
  const persisted = raft.log.persistedLastIndex();
  const matched = quorumValue(voters, (id) => {
    if (id === raft.id) return persisted;
    return raft.progress.get(id)?.match ?? 0;
  }) as LogIndex;
  if (matched <= raft.log.committed) return false;
  // Raft §5.4.2: count replicas only for an entry of the current term.
  if (raft.log.term(matched) !== raft.term) return false;
  const isFirstCommitOfTerm = raft.log.term(raft.log.committed) !== raft.term;
  raft.log.commitTo(matched);
  releaseUncommitted(raft);
  if (isFirstCommitOfTerm) {
    raft.readOnly.releaseAwaitingCommit(matched);
    if (raft.progress.size === 0) releaseReads(raft);
  }
  return true;
}

/** With check-quorum: whether a majority of voters answered since the last check; resets. */
export function isQuorumActive(raft: RaftCore): boolean {
  const { voters } = raft.confState();
  const active = quorumValue(voters, (id) => {
    if (id === raft.id) return 1;
    return raft.progress.get(id)?.isRecentActive === true ? 1 : 0;
  });
  for (const progress of raft.progress.values()) progress.isRecentActive = false;
  return active === 1;
}

/** Releases the reads a quorum has confirmed, counting this leader at the latest round. */
export function releaseReads(raft: RaftCore): void {
  raft.readOnly.release(quorumRound(raft));
}

/** The latest heartbeat round that a majority of voters (this leader included) acked. */
export function quorumRound(raft: RaftCore): number {
  const { voters } = raft.confState();
  if (voters.length === 0) return 0;
  return quorumValue(voters, (id) => {
    if (id === raft.id) return raft.readOnly.round;
    return raft.progress.get(id)?.ackedRound ?? 0;
  });
}

function handleAppendResponse(raft: RaftCore, message: AppendResponseMessage): void {
  const progress = raft.progress.get(message.from);
  if (progress === undefined) return;
  progress.isRecentActive = true;
  if (message.isRejected) {
    handleRejection(raft, message, progress);
    return;
  }
  const wasPaused = progress.isPaused;
  const isProbeMatch = progress.state === "probe" && progress.match === message.index;
  if (!progress.maybeUpdate(message.index) && !isProbeMatch) return;
  if (progress.state === "probe") {
    progress.becomeReplicate();
  } else if (progress.state === "snapshot") {
    if (progress.snapshotTooLarge === null && progress.match >= progress.pendingSnapshotIndex) {
      progress.becomeProbe();
      progress.becomeReplicate();
    }
  } else {
    progress.inflights.freeLessOrEqual(message.index);
  }
  if (maybeCommit(raft)) {
    noticeCommit(raft);
  } else if (wasPaused) {
    // The follower was paused when the commit index last moved: this tells it (even empty).
    sendAppend(raft, message.from, true);
  }
  while (raft.role === "leader" && sendAppend(raft, message.from, false)) {
    if (progress.state === "snapshot") break;
  }
  const isCaughtUp = progress.match === raft.log.lastIndex();
  if (raft.leadTransferee === message.from && isCaughtUp) sendTimeoutNow(raft, message.from);
}

function handleRejection(raft: RaftCore, message: AppendResponseMessage, progress: Progress): void {
  if (
    message.rejectHintIndex < progress.match && raft.confState().learners.includes(message.from)
  ) {
    // A learner whose log ends before what it acknowledged: hosted again empty (follower.ts,
    // handleHeartbeat). It counts in no quorum, so its progress may go back; a voter's never
    // does (a stale rejection from a voter is ignored below).
    progress.forgetMatch(message.rejectHintIndex);
    sendAppend(raft, message.from, true);
    return;
  }
  let nextCandidate = (message.rejectHintIndex + 1) as LogIndex;
  if (message.rejectHintTerm > 0) {
    const found = raft.log.findConflictByTerm(message.rejectHintIndex, message.rejectHintTerm);
    nextCandidate = (found.index + 1) as LogIndex;
  }
  const wasReplicate = progress.state === "replicate";
  if (!progress.maybeDecrease(message.index, nextCandidate)) return;
  if (wasReplicate) {
    const next = Math.max(Math.min(message.index, nextCandidate), progress.match + 1);
    progress.becomeProbe();
    progress.next = next as LogIndex;
  }
  sendAppend(raft, message.from, true);
}

function handleHeartbeatResponse(raft: RaftCore, message: HeartbeatResponseMessage): void {
  const progress = raft.progress.get(message.from);
  if (progress === undefined) return;
  progress.isRecentActive = true;
  progress.isProbeSent = false;
  if (message.round > progress.ackedRound && message.round <= raft.readOnly.round) {
    progress.ackedRound = message.round;
    releaseReads(raft);
  }
  if (progress.state === "snapshot" && progress.snapshotTooLarge !== null) {
    // Look again: a newer snapshot may fit now. Sends nothing while it still does not.
    progress.becomeProbe();
    sendAppend(raft, message.from, true);
    return;
  }
  if (progress.state === "snapshot") {
    // The chunk in flight is sent again only once this answer shows it or its ack was lost:
    // the follower answers in order, so its answer to a heartbeat sent after the chunk comes
    // after the chunk's ack. Sent again on every answer, a chunk whose ack was slower than a
    // heartbeat went twice, and each copy's ack sent a chunk of its own (see handleSnapshotAck).
    if (progress.isChunkInflight && message.round <= progress.chunkRound) return;
    progress.isChunkInflight = false;
    sendSnapshotChunk(raft, message.from, progress);
    return;
  }
  if (progress.match < raft.log.lastIndex()) {
    if (progress.state === "replicate" && progress.inflights.isFull) {
      progress.inflights.freeFirst();
    }
    sendAppend(raft, message.from, true);
  }
}

function handleSnapshotAck(raft: RaftCore, message: SnapshotAckMessage): void {
  const progress = raft.progress.get(message.from);
  if (progress === undefined) return;
  progress.isRecentActive = true;
  if (progress.state !== "snapshot") return;
  if (message.snapshotIndex !== progress.pendingSnapshotIndex) return;
  // The follower acks every chunk it gets, copies too. An ack that leaves the offset where it
  // is while a chunk is in flight answers a copy: sending on it would keep one more chunk in
  // flight for good (copies grew by one per heartbeat: 900 MiB of chunks for a 31 MiB state).
  if (progress.isChunkInflight && message.offset === progress.snapshotOffset) return;
  progress.snapshotOffset = message.offset;
  progress.isChunkInflight = false;
  sendSnapshotChunk(raft, message.from, progress);
}

/**
 * Starts sending the latest snapshot to `to`, unless it is over the group's snapshot limit:
 * the follower would drop every chunk of it, so the leader records the refusal instead (shown
 * in the status) and sends nothing.
 */
function startSnapshot(raft: RaftCore, to: ReplicaId, progress: Progress): void {
  const { metadata, data } = raft.log.unstable.snapshot ?? raft.log.storage.snapshot();
  assert(metadata.index >= progress.next - 1, "a snapshot must cover missing entries");
  const limit = raft.limits.snapshotBytesMax;
  const bytes = data.byteLength;
  if (bytes > limit) {
    progress.refuseSnapshot({ index: metadata.index, bytes, limit });
    return;
  }
  // The storage may read the data from a file each time it is asked (it need not keep every
  // replica's snapshot in memory): the progress keeps these bytes while it sends them.
  progress.becomeSnapshot({ metadata, data });
  sendSnapshotChunk(raft, to, progress);
}

/** Sends the chunk after what the follower acknowledged; restarts on a newer snapshot. */
function sendSnapshotChunk(raft: RaftCore, to: ReplicaId, progress: Progress): void {
  if (progress.isChunkInflight) return;
  const snapshot = progress.pendingSnapshot;
  assert(snapshot !== null, "snapshot state keeps the snapshot being sent");
  const { metadata, data } = snapshot;
  let offset = Math.min(progress.snapshotOffset, data.byteLength);
  if (offset === data.byteLength && offset > 0) {
    // Everything was acknowledged but the install answer got lost: resend the last chunk,
    // which the follower answers with its commit index.
    offset = Math.max(0, data.byteLength - SNAPSHOT_CHUNK_BYTES_MAX);
  }
  const chunk = data.subarray(offset, Math.min(data.byteLength, offset + SNAPSHOT_CHUNK_BYTES_MAX));
  raft.send({
    type: "snapshotChunk",
    from: raft.id,
    to,
    term: raft.term,
    metadata,
    offset,
    totalBytes: data.byteLength,
    data: chunk,
  });
  progress.isChunkInflight = true;
  progress.chunkRound = raft.readOnly.round;
}

/** Asks `to` to campaign at once; ends this leader's lease reads for the rest of its term. */
export function sendTimeoutNow(raft: RaftCore, to: ReplicaId): void {
  raft.hasSentTimeoutNow = true;
  raft.send({ type: "timeoutNow", from: raft.id, to, term: raft.term });
}

function releaseUncommitted(raft: RaftCore): void {
  let count = 0;
  for (const item of raft.uncommitted) {
    if (item.index > raft.log.committed) break;
    raft.uncommittedBytes -= item.bytes;
    count++;
  }
  if (count > 0) raft.uncommitted = raft.uncommitted.slice(count);
  assert(raft.uncommittedBytes >= 0, "uncommitted bytes must not go negative");
}
