/**
 * A leader never sends a snapshot over the group's snapshot limit (`snapshotBytesMax`): the
 * follower would drop every chunk and stay behind for good while the leader resent it forever.
 * Three voters with a 100-byte limit; follower 3 is cut off while the leader snapshots (200
 * bytes) and compacts its log. Once 3 is back, the leader must send no chunk, record the
 * refusal in its status, and send nothing more per heartbeat than heartbeats; once a snapshot
 * that fits exists, the transfer must start and 3 must catch up. And a storage may read its
 * snapshot's data from disk each time it is asked: the leader asks once per transfer.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { DEFAULT_RAFT_LIMITS } from "./config.ts";
import { SeededPrng } from "./prng.ts";
import { RawNode } from "./raw_node.ts";
import { MemoryStorage } from "./storage.ts";
import type { ConfState, LogIndex, Message, ReplicaId, Snapshot } from "./types.ts";
import { SNAPSHOT_CHUNK_BYTES_MAX } from "./limits.ts";

const SNAPSHOT_LIMIT_BYTES = 100;

interface Member {
  readonly node: RawNode;
  readonly storage: MemoryStorage;
}

function makeGroup(
  snapshotBytesMax = SNAPSHOT_LIMIT_BYTES,
  newStorage = (confState: ConfState) => new MemoryStorage(confState),
): Map<number, Member> {
  const voters = [1, 2, 3] as ReplicaId[];
  const confState: ConfState = { voters, learners: [] };
  const members = new Map<number, Member>();
  for (const voter of voters) {
    const storage = newStorage(confState);
    const node = new RawNode({
      id: voter,
      electionTicks: 10,
      heartbeatTicks: 1,
      prng: new SeededPrng(voter),
      preVote: false,
      checkQuorum: false,
      leaseReads: false,
      limits: { ...DEFAULT_RAFT_LIMITS, snapshotBytesMax },
    }, storage);
    members.set(voter, { node, storage });
  }
  return members;
}

/** Persists and advances each member's Ready, if it has one; returns their messages. */
function persistReadies(members: Map<number, Member>): Message[] {
  const outbox: Message[] = [];
  for (const { node, storage } of members.values()) {
    if (!node.hasReady()) continue;
    const ready = node.ready();
    if (ready.snapshot !== null) storage.applySnapshot(ready.snapshot);
    storage.append(ready.entries);
    if (ready.hardState !== null) storage.setHardState(ready.hardState);
    outbox.push(...ready.messages);
    node.advance(ready);
  }
  return outbox;
}

/** Drains every Ready and delivers messages until quiet; returns every message sent. */
function settle(members: Map<number, Member>, isCut: (id: number) => boolean): Message[] {
  const sent: Message[] = [];
  for (let round = 0; round < 50; round++) {
    const outbox = persistReadies(members);
    if (outbox.length === 0) return sent;
    sent.push(...outbox);
    for (const message of outbox) {
      if (isCut(message.from) || isCut(message.to)) continue;
      members.get(message.to)?.node.step(message);
    }
  }
  throw new Error("the group did not settle");
}

/** Takes a snapshot of `bytes` at the leader's applied index and compacts the log to it. */
function snapshotLeader(leader: Member, bytes: number): LogIndex {
  const applied = leader.node.status().applied;
  leader.storage.createSnapshot(applied, leader.node.confStateAt(applied), new Uint8Array(bytes));
  leader.storage.compact(applied);
  return applied;
}

function heartbeatRound(members: Map<number, Member>): Message[] {
  members.get(1)!.node.tick();
  return settle(members, () => false);
}

Deno.test("replication: a leader refuses a snapshot over the limit, sends one that fits", () => {
  const members = makeGroup();
  const leader = members.get(1)!;
  leader.node.campaign();
  settle(members, () => false);
  equal(leader.node.status().role, "leader");
  for (let i = 0; i < 5; i++) leader.node.propose(new Uint8Array([i]));
  settle(members, (id) => id === 3);
  const tooLargeIndex = snapshotLeader(leader, 2 * SNAPSHOT_LIMIT_BYTES);

  const sentPerRound: number[] = [];
  for (let round = 0; round < 5; round++) {
    const sent = heartbeatRound(members);
    const chunks = sent.filter((message) => message.type === "snapshotChunk");
    equal(chunks.length, 0, "no chunk of a snapshot over the limit is sent");
    sentPerRound.push(sent.filter((message) => message.to === 3).length);
  }
  // The first round finds out (an append is rejected); after it, only heartbeats go to 3.
  deepStrictEqual(sentPerRound.slice(1), [1, 1, 1, 1], "one heartbeat per round, nothing else");
  const progress = leader.node.status().progress.find((item) => item.id === 3);
  equal(progress?.state, "snapshot");
  deepStrictEqual(progress?.snapshotTooLarge, {
    index: tooLargeIndex,
    bytes: 2 * SNAPSHOT_LIMIT_BYTES,
    limit: SNAPSHOT_LIMIT_BYTES,
  });

  leader.node.propose(new Uint8Array([9]));
  settle(members, () => false);
  const fitsIndex = snapshotLeader(leader, SNAPSHOT_LIMIT_BYTES);
  const sent = heartbeatRound(members);
  ok(sent.some((message) => message.type === "snapshotChunk"), "a snapshot that fits is sent");
  const status = leader.node.status();
  const caughtUp = status.progress.find((item) => item.id === 3);
  equal(caughtUp?.snapshotTooLarge, null);
  equal(caughtUp?.match, status.lastIndex);
  equal(members.get(3)!.storage.snapshot().metadata.index, fitsIndex);
});

/** A storage that reads its snapshot's data anew each time, and counts the reads. */
class ReadingStorage extends MemoryStorage {
  dataReads = 0;

  override snapshot(): Snapshot {
    const { metadata, data } = super.snapshot();
    const count = () => this.dataReads++;
    return {
      metadata,
      get data() {
        count();
        return data.slice();
      },
    };
  }
}

Deno.test("replication: a leader reads a stored snapshot's data once per transfer", () => {
  const members = makeGroup(
    8 * SNAPSHOT_CHUNK_BYTES_MAX,
    (confState) => new ReadingStorage(confState),
  );
  const leader = members.get(1)!;
  const storage = leader.storage as ReadingStorage;
  leader.node.campaign();
  settle(members, () => false);
  for (let i = 0; i < 5; i++) leader.node.propose(new Uint8Array([i]));
  settle(members, (id) => id === 3);
  const index = snapshotLeader(leader, 3 * SNAPSHOT_CHUNK_BYTES_MAX + 5);
  storage.dataReads = 0;
  const sent = heartbeatRound(members);
  const chunks = sent.filter((message) => message.type === "snapshotChunk");
  ok(chunks.length >= 4, `the snapshot goes in chunks (${chunks.length})`);
  equal(storage.dataReads, 1, "the progress keeps the bytes it sends");
  equal(members.get(3)!.storage.snapshot().metadata.index, index);
  equal(members.get(3)!.storage.snapshot().data.byteLength, 3 * SNAPSHOT_CHUNK_BYTES_MAX + 5);
});

/**
 * Runs the group with every message delivered `latency` steps after it was sent (unless
 * `isLost`) and the leader ticking (a heartbeat round) at every step, until `isDone` or
 * `steps` steps passed; returns every message sent.
 */
function runWithLatency(
  members: Map<number, Member>,
  latency: number,
  steps: number,
  isDone: () => boolean,
  isLost: (message: Message) => boolean = () => false,
): Message[] {
  const sent: Message[] = [];
  const inTransit: { at: number; message: Message }[] = [];
  for (let step = 0; step < steps && !isDone(); step++) {
    members.get(1)!.node.tick();
    const outbox = persistReadies(members);
    for (const message of outbox) inTransit.push({ at: step + latency, message });
    sent.push(...outbox);
    const due = inTransit.filter((item) => item.at <= step);
    inTransit.splice(0, inTransit.length, ...inTransit.filter((item) => item.at > step));
    for (const { message } of due) {
      if (!isLost(message)) members.get(message.to)?.node.step(message);
    }
  }
  return sent;
}

/**
 * A group whose follower 3 missed the entries behind a snapshot of `chunkCount` full chunks
 * that the leader took and compacted to: the follower can only catch up from the snapshot.
 */
function snapshotBehind(
  chunkCount: number,
): { members: Map<number, Member>; index: LogIndex; follower: Member } {
  const members = makeGroup(64 * SNAPSHOT_CHUNK_BYTES_MAX);
  const leader = members.get(1)!;
  leader.node.campaign();
  settle(members, () => false);
  for (let i = 0; i < 5; i++) leader.node.propose(new Uint8Array([i]));
  settle(members, (id) => id === 3);
  const index = snapshotLeader(leader, chunkCount * SNAPSHOT_CHUNK_BYTES_MAX);
  return { members, index, follower: members.get(3)! };
}

Deno.test("replication: a slow follower gets each chunk about once, not once per answer", () => {
  // Answers slower than the heartbeat interval: each heartbeat answer made the leader send the
  // unacknowledged chunk again, and every copy drew an ack that sent yet another chunk, so the
  // copies in flight grew by one per heartbeat and never died out (measured on a real cluster:
  // a 31 MiB snapshot took ~900 MiB of chunks, and requests queued behind them for seconds).
  const chunkCount = 40;
  const { members, index, follower } = snapshotBehind(chunkCount);
  const sent = runWithLatency(
    members,
    4,
    2_000,
    () => follower.storage.snapshot().metadata.index === index,
  );
  equal(follower.storage.snapshot().metadata.index, index, "the follower installed it");
  const chunks = sent.filter((message) => message.type === "snapshotChunk").length;
  ok(chunks <= 2 * chunkCount, `${chunks} chunks sent for a snapshot of ${chunkCount}`);
});

Deno.test("replication: a lost chunk or a lost ack is sent again after a heartbeat answer", () => {
  for (const lost of ["snapshotChunk", "snapshotAck"] as const) {
    const chunkCount = 10;
    const { members, index, follower } = snapshotBehind(chunkCount);
    let seen = 0;
    // The fifth of each kind is lost (and with it the transfer, unless it is sent again).
    const isLost = (message: Message) => message.type === lost && ++seen === 5;
    const isDone = () => follower.storage.snapshot().metadata.index === index;
    const sent = runWithLatency(members, 4, 2_000, isDone, isLost);
    equal(follower.storage.snapshot().metadata.index, index, `${lost}: installed anyway`);
    const chunks = sent.filter((message) => message.type === "snapshotChunk").length;
    ok(chunks <= chunkCount + 2, `${lost}: ${chunks} chunks for a snapshot of ${chunkCount}`);
  }
});
