/**
 * Every pair of limits that meet, proven so that one cannot exceed the other: the largest
 * thing one side may produce is built and encoded with the real codecs (Raft messages, peer
 * frames, shard commands) and checked against the limit of the side that receives it, and
 * configurable limits are checked at the largest value their validation accepts. Each case
 * names both limits. Relations already asserted at module load are exercised here with the
 * real encoders, where encoding overhead matters.
 *
 * Not provable, so not here: the largest snapshot a leader can create has no bound (the state
 * machine holds any number of keys), so SNAPSHOT_BYTES_MAX cannot cover it; instead a leader
 * refuses to send a snapshot over the limit and reports it (raft/replication_test.ts).
 */
import { equal, ok } from "node:assert/strict";
import { HTTP_BODY_BYTES_MAX } from "../server/http/mod.ts";
import {
  APPEND_BYTES_MAX,
  APPEND_ENTRIES_MAX,
  checkRaftConfig,
  COMMITTED_BYTES_PER_READY_MAX,
  COMMITTED_ENTRIES_PER_READY_MAX,
  decodeMessage,
  DEFAULT_RAFT_LIMITS,
  encodeMessage,
  type Entry,
  ENTRY_BYTES_MAX,
  INFLIGHT_BYTES_MAX,
  type LogIndex,
  type Message,
  MESSAGE_BYTES_MAX,
  type RaftConfig,
  replicaId,
  REPLICAS_MAX,
  SeededPrng,
  SNAPSHOT_BYTES_MAX,
  SNAPSHOT_CHUNK_BYTES_MAX,
  type Term,
  UNCOMMITTED_BYTES_MAX,
} from "../raft/mod.ts";
import {
  APPLY_BATCH_ENTRIES_MAX,
  encodeCommand,
  KEY_BYTES_MAX,
  REQUEST_BYTES_MAX,
  VALUE_BYTES_MAX,
} from "../shard/mod.ts";
import {
  encodeRaftBatch,
  FRAME_BYTES_MAX,
  FrameDecoder,
  parseFrame,
  PEER_LIMITS_DEFAULT,
  PEER_PAYLOAD_BYTES_MAX,
} from "../transport/mod.ts";

/** Large enough that every varint in a message takes its longest form. */
const BIG = Number.MAX_SAFE_INTEGER - 10 * APPEND_ENTRIES_MAX;
const ids = Array.from({ length: REPLICAS_MAX }, (_, i) => replicaId(255 - i));

/** The largest append a leader sends: APPEND_ENTRIES_MAX entries of APPEND_BYTES_MAX total. */
function maximalAppend(): Message {
  const each = Math.floor(APPEND_BYTES_MAX / APPEND_ENTRIES_MAX);
  const entries: Entry[] = Array.from({ length: APPEND_ENTRIES_MAX }, (_, i) => ({
    index: (BIG + i + 1) as LogIndex,
    term: BIG as Term,
    type: "normal",
    data: new Uint8Array(i === 0 ? APPEND_BYTES_MAX - each * (APPEND_ENTRIES_MAX - 1) : each),
  }));
  const bytes = entries.reduce((sum, entry) => sum + entry.data.byteLength, 0);
  equal(bytes, APPEND_BYTES_MAX, "the append carries exactly APPEND_BYTES_MAX");
  return {
    type: "append",
    from: ids[0]!,
    to: ids[1]!,
    term: BIG as Term,
    prevIndex: BIG as LogIndex,
    prevTerm: BIG as Term,
    entries,
    commit: BIG as LogIndex,
  };
}

/** The largest snapshot chunk: SNAPSHOT_CHUNK_BYTES_MAX of data, a full membership. */
function maximalChunk(): Message {
  return {
    type: "snapshotChunk",
    from: ids[0]!,
    to: ids[1]!,
    term: BIG as Term,
    metadata: {
      index: BIG as LogIndex,
      term: BIG as Term,
      confState: { voters: ids.slice(0, REPLICAS_MAX / 2), learners: ids.slice(REPLICAS_MAX / 2) },
    },
    offset: SNAPSHOT_BYTES_MAX - SNAPSHOT_CHUNK_BYTES_MAX,
    totalBytes: SNAPSHOT_BYTES_MAX,
    data: new Uint8Array(SNAPSHOT_CHUNK_BYTES_MAX),
  };
}

/** Sends `payload` as the only message of a peer batch frame and reads it back. */
function throughPeerFrame(payload: Uint8Array): number {
  const frame = encodeRaftBatch([{ shardId: 0xffff_fffe, payload }], { start: 0, end: 1 }, {
    hasShardPrefix: true,
  });
  ok(frame.byteLength <= FRAME_BYTES_MAX, `a frame of ${frame.byteLength} bytes fits`);
  const decoder = new FrameDecoder(FRAME_BYTES_MAX);
  let received = 0;
  decoder.push(frame, (body) => {
    const parsed = parseFrame(body, { hasShardPrefix: true });
    if (parsed.type === "raft_batch") received = parsed.messages[0]?.payload.byteLength ?? 0;
  });
  equal(received, payload.byteLength, "the peer frame decodes to the same payload");
  return frame.byteLength;
}

const VALID_CONFIG: RaftConfig = {
  id: replicaId(1),
  electionTicks: 10,
  heartbeatTicks: 1,
  prng: new SeededPrng(1),
  preVote: true,
  checkQuorum: true,
  leaseReads: false,
};

Deno.test("limits: a full append (APPEND_BYTES_MAX) encoded fits MESSAGE_BYTES_MAX", () => {
  const bytes = encodeMessage(maximalAppend());
  ok(bytes.byteLength <= MESSAGE_BYTES_MAX, `${bytes.byteLength} <= ${MESSAGE_BYTES_MAX}`);
  ok(decodeMessage(bytes).ok, "the decoder accepts it");
});

Deno.test("limits: MESSAGE_BYTES_MAX fits PEER_PAYLOAD_BYTES_MAX and FRAME_BYTES_MAX", () => {
  ok(MESSAGE_BYTES_MAX <= PEER_PAYLOAD_BYTES_MAX, "a message fits a peer payload");
  throughPeerFrame(new Uint8Array(MESSAGE_BYTES_MAX));
  throughPeerFrame(encodeMessage(maximalAppend()));
  ok(PEER_LIMITS_DEFAULT.queueBytesMax >= MESSAGE_BYTES_MAX, "a message fits the peer queue");
});

Deno.test("limits: ENTRY_BYTES_MAX alone fits APPEND_BYTES_MAX, a message and a frame", () => {
  const message: Message = {
    ...maximalAppend(),
    entries: [{
      index: (BIG + 1) as LogIndex,
      term: BIG as Term,
      type: "normal",
      data: new Uint8Array(ENTRY_BYTES_MAX),
    }],
  } as Message;
  ok(ENTRY_BYTES_MAX <= APPEND_BYTES_MAX, "ENTRY_BYTES_MAX <= APPEND_BYTES_MAX");
  const bytes = encodeMessage(message);
  ok(bytes.byteLength <= MESSAGE_BYTES_MAX, `${bytes.byteLength} <= ${MESSAGE_BYTES_MAX}`);
  throughPeerFrame(bytes);
});

Deno.test("limits: SNAPSHOT_CHUNK_BYTES_MAX, encoded, fits MESSAGE_BYTES_MAX and a frame", () => {
  const bytes = encodeMessage(maximalChunk());
  ok(bytes.byteLength <= MESSAGE_BYTES_MAX, `${bytes.byteLength} <= ${MESSAGE_BYTES_MAX}`);
  ok(decodeMessage(bytes).ok, "the decoder accepts the last chunk of the largest snapshot");
  throughPeerFrame(bytes);
});

Deno.test("limits: the follower's snapshotBytesMax never passes what the codec decodes", () => {
  const largest = encodeMessage(maximalChunk());
  ok(decodeMessage(largest).ok, "a chunk of a SNAPSHOT_BYTES_MAX snapshot decodes");
  const over = encodeMessage({ ...maximalChunk(), totalBytes: SNAPSHOT_BYTES_MAX + 1 } as Message);
  equal(decodeMessage(over).ok, false, "a chunk of a larger snapshot does not");
  equal(DEFAULT_RAFT_LIMITS.snapshotBytesMax, SNAPSHOT_BYTES_MAX);
  const limits = { ...DEFAULT_RAFT_LIMITS, snapshotBytesMax: SNAPSHOT_BYTES_MAX + 1 };
  ok(checkRaftConfig({ ...VALID_CONFIG, limits }) !== null, "snapshotBytesMax is capped");
});

Deno.test("limits: committed entries per Ready (count) fit APPLY_BATCH_ENTRIES_MAX", () => {
  ok(COMMITTED_ENTRIES_PER_READY_MAX <= APPLY_BATCH_ENTRIES_MAX, "the constant fits");
  // The largest value the config accepts fits the apply batch; anything larger is refused.
  const withCount = (count: number) => ({
    ...VALID_CONFIG,
    limits: { ...DEFAULT_RAFT_LIMITS, committedEntriesPerReadyMax: count },
  });
  equal(checkRaftConfig(withCount(COMMITTED_ENTRIES_PER_READY_MAX)), null);
  ok(checkRaftConfig(withCount(COMMITTED_ENTRIES_PER_READY_MAX + 1)) !== null, "capped");
  equal(DEFAULT_RAFT_LIMITS.committedEntriesPerReadyMax, COMMITTED_ENTRIES_PER_READY_MAX);
});

Deno.test("limits: COMMITTED_BYTES_PER_READY_MAX and the budgets hold ENTRY_BYTES_MAX", () => {
  ok(
    ENTRY_BYTES_MAX <= COMMITTED_BYTES_PER_READY_MAX,
    "COMMITTED_BYTES_PER_READY_MAX >= one entry",
  );
  ok(ENTRY_BYTES_MAX <= UNCOMMITTED_BYTES_MAX, "UNCOMMITTED_BYTES_MAX >= one entry");
  ok(APPEND_BYTES_MAX <= INFLIGHT_BYTES_MAX, "INFLIGHT_BYTES_MAX >= one full append");
});

Deno.test("limits: the largest put fits REQUEST_BYTES_MAX, which fits ENTRY_BYTES_MAX", () => {
  const put = encodeCommand({
    type: "put",
    key: "k".repeat(KEY_BYTES_MAX),
    value: "\u00e9".repeat(VALUE_BYTES_MAX / 2),
    lease: Number.MAX_SAFE_INTEGER,
    prevKv: true,
  });
  ok(put.byteLength <= REQUEST_BYTES_MAX, `${put.byteLength} <= REQUEST_BYTES_MAX`);
  ok(REQUEST_BYTES_MAX <= ENTRY_BYTES_MAX, "an accepted command fits an entry");
});

Deno.test("limits: a put's HTTP body fits HTTP_BODY_BYTES_MAX whatever its characters", () => {
  // server/http/body.ts reads at most HTTP_BODY_BYTES_MAX bytes of body; JSON spells a control
  // character in six bytes, so the largest value of them is six times VALUE_BYTES_MAX.
  for (const character of ["v", '"', "\u0001", "\u{1F600}"]) {
    const body = JSON.stringify({
      value: character.repeat(VALUE_BYTES_MAX / new TextEncoder().encode(character).length),
      lease: Number.MAX_SAFE_INTEGER,
      prevKv: true,
    });
    const bytes = new TextEncoder().encode(body).byteLength;
    ok(bytes <= HTTP_BODY_BYTES_MAX, `${JSON.stringify(character)}: ${bytes} bytes fit`);
  }
  ok(6 * REQUEST_BYTES_MAX <= HTTP_BODY_BYTES_MAX, "any escaped command fits a body");
});
