/**
 * The follower side: accepting appends (Raft §5.3), heartbeats, snapshot chunks (Raft §7) and
 * TimeoutNow. Every answer is queued as a message, so it reaches the network only after the
 * Ready that holds the state it acknowledges has been persisted.
 */
import { assert } from "./assert.ts";
import { maybeQuiesceFollower } from "./quiesce.ts";
import type { RaftCore } from "./raft_core.ts";
import type {
  AppendMessage,
  HeartbeatMessage,
  LogIndex,
  Message,
  Snapshot,
  SnapshotChunkMessage,
  Term,
} from "./types.ts";

/** Handles a message at a follower. */
export function stepFollower(raft: RaftCore, message: Message): void {
  assert(raft.role === "follower", "stepFollower() needs a follower");
  switch (message.type) {
    case "append":
      hearFromLeader(raft, message.from);
      handleAppend(raft, message);
      break;
    case "heartbeat":
      hearFromLeader(raft, message.from);
      handleHeartbeat(raft, message);
      break;
    case "snapshotChunk":
      hearFromLeader(raft, message.from);
      handleSnapshotChunk(raft, message);
      break;
    case "timeoutNow":
      // Leader transfer (thesis §3.10): campaign at once, past any lease.
      raft.hup(true);
      break;
    default:
      break;
  }
}

function hearFromLeader(raft: RaftCore, leader: Message["from"]): void {
  if (raft.leader !== null) {
    assert(raft.leader === leader, `two leaders in term ${raft.term}`);
  }
  raft.electionElapsed = 0;
  raft.leader = leader;
}

function acceptUpTo(raft: RaftCore, to: Message["from"], index: LogIndex): void {
  raft.send({
    type: "appendResponse",
    from: raft.id,
    to,
    term: raft.term,
    index,
    isRejected: false,
    rejectHintIndex: 0 as LogIndex,
    rejectHintTerm: 0 as Term,
  });
}

function handleAppend(raft: RaftCore, message: AppendMessage): void {
  const log = raft.log;
  if (message.prevIndex < log.committed) {
    // Everything up to our commit index is settled; say so, and the leader moves on.
    acceptUpTo(raft, message.from, log.committed);
    return;
  }
  if (log.matchTerm(message.prevIndex, message.prevTerm)) {
    const lastNew = (message.prevIndex + message.entries.length) as LogIndex;
    const conflict = log.findConflict(message.entries);
    if (conflict !== null) {
      assert(conflict > log.committed, "a leader never conflicts with a committed entry");
      const first = message.entries[0];
      assert(first !== undefined, "a conflict needs entries");
      raft.appendToLog(message.entries.slice(conflict - first.index));
    }
    log.commitTo(Math.min(message.commit, lastNew) as LogIndex);
    acceptUpTo(raft, message.from, lastNew);
    return;
  }
  const hint = log.findConflictByTerm(
    Math.min(message.prevIndex, log.lastIndex()) as LogIndex,
    message.prevTerm,
  );
  raft.send({
    type: "appendResponse",
    from: raft.id,
    to: message.from,
    term: raft.term,
    index: message.prevIndex,
    isRejected: true,
    rejectHintIndex: hint.index,
    rejectHintTerm: hint.term,
  });
}

function handleHeartbeat(raft: RaftCore, message: HeartbeatMessage): void {
  if (message.commit > raft.log.lastIndex() && !raft.confState().voters.includes(raft.id)) {
    // The leader counts on entries this replica lacks: its log was dropped and it was hosted
    // again empty under the same id (a learner, or a replica that knows no configuration yet).
    // A learner counts in no quorum, so its loss endangers nothing: say where the log ends,
    // and the leader starts over from there (handleRejection in replication.ts).
    raft.send({
      type: "appendResponse",
      from: raft.id,
      to: message.from,
      term: raft.term,
      index: message.commit,
      isRejected: true,
      rejectHintIndex: raft.log.lastIndex(),
      rejectHintTerm: 0 as Term,
    });
    return;
  }
  // A voter's acknowledged entries make up commit quorums: losing them is a broken disk or a
  // broken operator, not something to paper over.
  assert(message.commit <= raft.log.lastIndex(), "a heartbeat commit is within our match");
  raft.log.commitTo(message.commit);
  if (message.quiesce) maybeQuiesceFollower(raft, message.commit, message.round);
  raft.leaderRound = Math.max(raft.leaderRound, message.round);
  raft.send({
    type: "heartbeatResponse",
    from: raft.id,
    to: message.from,
    term: raft.term,
    round: message.round,
  });
}

function ackChunk(raft: RaftCore, message: SnapshotChunkMessage, offset: number): void {
  raft.send({
    type: "snapshotAck",
    from: raft.id,
    to: message.from,
    term: raft.term,
    snapshotIndex: message.metadata.index,
    offset,
  });
}

/** Reassembles chunks in offset order; a chunk out of order is answered with what we have. */
function handleSnapshotChunk(raft: RaftCore, message: SnapshotChunkMessage): void {
  const { metadata } = message;
  if (metadata.index <= raft.log.committed) {
    raft.snapshotAssembly = null;
    acceptUpTo(raft, message.from, raft.log.committed);
    return;
  }
  if (message.totalBytes > raft.limits.snapshotBytesMax) return;
  if (message.offset === 0) {
    raft.snapshotAssembly = {
      index: metadata.index,
      term: metadata.term,
      totalBytes: message.totalBytes,
      chunks: [],
      receivedBytes: 0,
    };
  }
  const assembly = raft.snapshotAssembly;
  const isSame = assembly !== null && assembly.index === metadata.index &&
    assembly.term === metadata.term && assembly.totalBytes === message.totalBytes;
  if (!isSame || assembly.receivedBytes !== message.offset) {
    ackChunk(raft, message, isSame ? assembly.receivedBytes : 0);
    return;
  }
  if (assembly.receivedBytes + message.data.byteLength > assembly.totalBytes) return;
  assembly.chunks.push(message.data.slice());
  assembly.receivedBytes += message.data.byteLength;
  if (assembly.receivedBytes < assembly.totalBytes) {
    ackChunk(raft, message, assembly.receivedBytes);
    return;
  }
  raft.snapshotAssembly = null;
  const data = new Uint8Array(assembly.totalBytes);
  let offset = 0;
  for (const chunk of assembly.chunks) {
    data.set(chunk, offset);
    offset += chunk.byteLength;
  }
  restore(raft, message.from, { metadata, data });
}

/** Installs a complete snapshot, or only fast-forwards the commit when the log has it. */
function restore(raft: RaftCore, leader: Message["from"], snapshot: Snapshot): void {
  const { index, term, confState } = snapshot.metadata;
  assert(index > raft.log.committed, "restore() needs a snapshot past the commit index");
  if (raft.log.matchTerm(index, term)) {
    raft.log.commitTo(index);
    acceptUpTo(raft, leader, raft.log.committed);
    return;
  }
  raft.log.restore(snapshot);
  raft.configHistory.reset(index, confState);
  raft.onConfigChanged();
  acceptUpTo(raft, leader, raft.log.lastIndex());
}
