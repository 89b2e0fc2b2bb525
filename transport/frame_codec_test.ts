/**
 * Checks the peer wire format: every frame type round-trips under both ALPNs; the streaming
 * decoder yields the same frames however the bytes are cut into reads (one byte at a time,
 * every split point, everything merged); limits and malformed input raise FrameError; and a
 * seeded random-bytes fuzz (ASPEN_SEED replays it) shows that no input makes the decoder or
 * the parser throw anything but FrameError.
 */

import assert from "node:assert/strict";
import {
  type CodecOptions,
  encodeChallenge,
  encodeError,
  encodeHello,
  encodePingOrPong,
  encodeProof,
  encodeRaftBatch,
  encodeRequest,
  encodeResponse,
  type Frame,
  FrameDecoder,
  FrameError,
  parseFrame,
  type ShardMessage,
} from "./frame_codec.ts";
import {
  BATCH_MESSAGES_MAX,
  FRAME_BYTES_MAX,
  HANDSHAKE_FRAME_BYTES_MAX,
  PEER_CERTIFICATE_BYTES_MAX,
} from "./limits.ts";

/** A handshake proof with recognisable bytes (the codec does not look inside them). */
function nodeProof(
  fill: number,
): { proof: Uint8Array; signature: Uint8Array; certificate: Uint8Array } {
  return {
    proof: filled(32, fill),
    signature: filled(64, fill + 1),
    certificate: filled(600, fill + 2),
  };
}

const SHARDED: CodecOptions = { hasShardPrefix: true };
const LEGACY: CodecOptions = { hasShardPrefix: false };
const bytes = (text: string) => new TextEncoder().encode(text);
const filled = (length: number, value: number) => new Uint8Array(length).fill(value);

function decodeAll(chunks: readonly Uint8Array[], options: CodecOptions): Frame[] {
  const decoder = new FrameDecoder(FRAME_BYTES_MAX);
  const frames: Frame[] = [];
  for (const chunk of chunks) decoder.push(chunk, (body) => frames.push(parseFrame(body, options)));
  assert.equal(decoder.bufferedBytes, 0, "nothing is left half-decoded");
  return frames;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const batch: ShardMessage[] = [
  { shardId: 0, payload: bytes("heartbeat-0") },
  { shardId: 7, payload: bytes("") },
  { shardId: 0xffff_ffff, payload: filled(300, 9) },
];

const roundTripCases: {
  name: string;
  frame: Uint8Array;
  options: CodecOptions;
  expected: Frame;
}[] = [
  {
    name: "hello",
    frame: encodeHello({ dialerNodeId: 1, listenerNodeId: 2, nonce: filled(32, 1) }),
    options: SHARDED,
    expected: {
      type: "hello",
      version: 3,
      dialerNodeId: 1,
      listenerNodeId: 2,
      nonce: filled(32, 1),
    },
  },
  {
    name: "challenge",
    frame: encodeChallenge({ listenerNodeId: 9, nonce: filled(32, 2), ...nodeProof(3) }),
    options: SHARDED,
    expected: {
      type: "challenge",
      listenerNodeId: 9,
      nonce: filled(32, 2),
      ...nodeProof(3),
    },
  },
  {
    name: "proof",
    frame: encodeProof(nodeProof(4)),
    options: SHARDED,
    expected: { type: "proof", ...nodeProof(4) },
  },
  {
    name: "sharded raft batch",
    frame: encodeRaftBatch(batch, { start: 0, end: 3 }, SHARDED),
    options: SHARDED,
    expected: { type: "raft_batch", messages: batch },
  },
  {
    name: "legacy raft batch is all shard 0",
    frame: encodeRaftBatch([{ shardId: 0, payload: bytes("x") }], { start: 0, end: 1 }, LEGACY),
    options: LEGACY,
    expected: { type: "raft_batch", messages: [{ shardId: 0, payload: bytes("x") }] },
  },
  {
    name: "sharded request",
    frame: encodeRequest(
      { requestId: 5, shardId: 3, deadlineMs: 1500, payload: bytes("get a") },
      SHARDED,
    ),
    options: SHARDED,
    expected: {
      type: "request",
      requestId: 5,
      shardId: 3,
      deadlineMs: 1500,
      payload: bytes("get a"),
    },
  },
  {
    name: "legacy request whose deadline passed",
    frame: encodeRequest({ requestId: 6, shardId: 0, deadlineMs: 0, payload: bytes("") }, LEGACY),
    options: LEGACY,
    expected: { type: "request", requestId: 6, shardId: 0, deadlineMs: 0, payload: bytes("") },
  },
  {
    name: "legacy response",
    frame: encodeResponse({ requestId: 0xffff_ffff, shardId: 0, payload: bytes("") }, LEGACY),
    options: LEGACY,
    expected: { type: "response", requestId: 0xffff_ffff, shardId: 0, payload: bytes("") },
  },
  {
    name: "error with details",
    frame: encodeError({
      requestId: 0,
      shardId: 4,
      error: { code: "not_leader", message: "Cannot put", details: { leader: 2, x: null } },
    }, SHARDED),
    options: SHARDED,
    expected: {
      type: "error",
      requestId: 0,
      shardId: 4,
      error: { code: "not_leader", message: "Cannot put", details: { leader: 2, x: null } },
    },
  },
  {
    name: "ping",
    frame: encodePingOrPong("ping", 77),
    options: LEGACY,
    expected: { type: "ping", pingId: 77 },
  },
  {
    name: "pong",
    frame: encodePingOrPong("pong", 0),
    options: SHARDED,
    expected: { type: "pong", pingId: 0 },
  },
];

Deno.test("encode/parseFrame() round-trips every frame type under both protocols", async (t) => {
  for (const testCase of roundTripCases) {
    await t.step(testCase.name, () => {
      assert.deepEqual(decodeAll([testCase.frame], testCase.options), [testCase.expected]);
    });
  }
});

Deno.test("FrameDecoder.push() yields the same frames for every way of cutting the stream", () => {
  const frames = [
    encodeRaftBatch(batch, { start: 0, end: 3 }, SHARDED),
    encodePingOrPong("ping", 1),
    encodeRequest({ requestId: 1, shardId: 2, deadlineMs: 9, payload: filled(40, 5) }, SHARDED),
    encodeProof(nodeProof(6)),
  ];
  const stream = concat(frames);
  const expected = decodeAll(frames, SHARDED);
  assert.equal(expected.length, 4);
  assert.deepEqual(decodeAll([stream], SHARDED), expected, "all frames merged in one read");
  const oneByteReads = Array.from(stream, (byte) => Uint8Array.of(byte));
  assert.deepEqual(decodeAll(oneByteReads, SHARDED), expected, "one byte per read");
  for (let split = 1; split < stream.length; split += 1) {
    const chunks = [stream.subarray(0, split), stream.subarray(split)];
    assert.deepEqual(decodeAll(chunks, SHARDED), expected, `split at ${split}`);
  }
  for (let first = 1; first < stream.length; first += 7) {
    for (let second = first + 1; second < stream.length; second += 5) {
      const chunks = [
        stream.subarray(0, first),
        stream.subarray(first, second),
        stream.subarray(second),
      ];
      assert.deepEqual(decodeAll(chunks, SHARDED), expected, `splits at ${first}, ${second}`);
    }
  }
});

Deno.test("FrameDecoder.push() stops after a frame when onFrame returns false", () => {
  const first = encodeProof(nodeProof(1));
  const second = encodePingOrPong("ping", 2);
  const stream = concat([first, second]);
  for (const cut of [stream.length, first.length - 3]) {
    const decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
    const bodies: Uint8Array[] = [];
    let consumed = decoder.push(stream.subarray(0, cut), (body) => bodies.push(body) && false);
    if (cut < stream.length) {
      assert.equal(consumed, cut, "a split frame is buffered, not stopped on");
      consumed = cut + decoder.push(stream.subarray(cut), (body) => bodies.push(body) && false);
    }
    assert.equal(consumed, first.length, "decoding stopped right after the first frame");
    assert.equal(bodies.length, 1);
    assert.equal(bodies[0]![0], 0x03);
  }
});

Deno.test("FrameDecoder.push() hands out whole frames in one read as views, not copies", () => {
  const chunk = encodeRequest(
    { requestId: 1, shardId: 2, deadlineMs: 1, payload: filled(10, 1) },
    SHARDED,
  );
  const decoder = new FrameDecoder(FRAME_BYTES_MAX);
  const bodies: Uint8Array[] = [];
  decoder.push(chunk, (body) => bodies.push(body));
  assert.equal(bodies.length, 1);
  assert.equal(bodies[0]!.buffer, chunk.buffer);
});

Deno.test("FrameDecoder.push() assembles a large frame cut into many reads", () => {
  const payload = new Uint8Array(1024 * 1024);
  for (let i = 0; i < payload.length; i += 1) payload[i] = i % 251;
  const frame = encodeResponse({ requestId: 3, shardId: 1, payload }, SHARDED);
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < frame.length; offset += 65_521) {
    chunks.push(frame.subarray(offset, offset + 65_521));
  }
  const [decoded] = decodeAll(chunks, SHARDED);
  assert.ok(decoded?.type === "response");
  assert.deepEqual(decoded.payload, payload);
});

Deno.test("FrameDecoder.push() enforces the frame length limit", async (t) => {
  const header = (length: number) => {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, length);
    return out;
  };
  await t.step("a length of 0 is malformed", () => {
    assert.throws(
      () => new FrameDecoder(100).push(header(0), () => {}),
      (error) => error instanceof FrameError && error.reason === "frame_malformed",
    );
  });
  await t.step("one byte over the limit is refused before any body arrives", () => {
    let isCalled = false;
    const decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
    const push = () => decoder.push(header(HANDSHAKE_FRAME_BYTES_MAX + 1), () => isCalled = true);
    assert.throws(
      push,
      (error) => error instanceof FrameError && error.reason === "frame_too_large",
    );
    assert.equal(isCalled, false);
  });
  await t.step("a length of 2^32-1 is refused, also when the header is split", () => {
    const decoder = new FrameDecoder(FRAME_BYTES_MAX);
    decoder.push(Uint8Array.of(0xff, 0xff), () => {});
    assert.throws(() => decoder.push(Uint8Array.of(0xff, 0xff), () => {}), FrameError);
  });
  await t.step("exactly the limit is accepted", () => {
    const decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
    const frames: Uint8Array[] = [];
    const body = filled(HANDSHAKE_FRAME_BYTES_MAX, 0x20);
    decoder.push(concat([header(HANDSHAKE_FRAME_BYTES_MAX), body]), (f) => frames.push(f));
    assert.equal(frames.length, 1);
  });
  await t.step("raising the limit takes effect for the next header", () => {
    const decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
    const big = encodeRequest(
      { requestId: 1, shardId: 0, deadlineMs: 1, payload: filled(1000, 1) },
      SHARDED,
    );
    const frames: Uint8Array[] = [];
    decoder.push(concat([encodeProof(nodeProof(1)), big]), (body) => {
      frames.push(body);
      decoder.frameBytesMax = FRAME_BYTES_MAX;
    });
    assert.equal(frames.length, 2);
  });
});

Deno.test("parseFrame() rejects malformed bodies with FrameError", async (t) => {
  const validBatch = encodeRaftBatch(batch, { start: 0, end: 3 }, SHARDED).subarray(4);
  const withCount = (count: number) => {
    const body = validBatch.slice();
    new DataView(body.buffer).setUint32(1, count);
    return body;
  };
  const errorBody = (json: string) =>
    concat([Uint8Array.of(0x13, 0, 0, 0, 1, 0, 0, 0, 2), bytes(json)]);
  const cases: { name: string; body: Uint8Array; options?: CodecOptions }[] = [
    { name: "empty", body: new Uint8Array(0) },
    { name: "unknown type", body: Uint8Array.of(0x7f, 1, 2) },
    {
      name: "short hello",
      body: encodeHello({ dialerNodeId: 1, listenerNodeId: 2, nonce: filled(32, 0) }).subarray(
        4,
        20,
      ),
    },
    {
      name: "proof without a certificate",
      body: encodeProof(nodeProof(0)).subarray(4, 1 + 32 + 64),
    },
    {
      name: "proof with a certificate over the limit",
      body: concat([
        encodeProof(nodeProof(0)).subarray(4),
        new Uint8Array(PEER_CERTIFICATE_BYTES_MAX),
      ]),
    },
    { name: "batch count 0", body: withCount(0) },
    { name: "batch count over the limit", body: withCount(BATCH_MESSAGES_MAX + 1) },
    { name: "batch count larger than its bytes", body: withCount(1000) },
    { name: "batch count one too many", body: withCount(4) },
    { name: "batch count one too few (trailing bytes)", body: withCount(2) },
    { name: "sharded batch read as legacy", body: validBatch, options: LEGACY },
    { name: "request shorter than its header", body: Uint8Array.of(0x11, 0, 0, 1) },
    { name: "request id 0", body: Uint8Array.of(0x11, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9) },
    // Version 1 of the protocol had no deadline: such a frame with a short payload is cut.
    { name: "request without a deadline", body: Uint8Array.of(0x11, 0, 0, 0, 1, 0, 0, 0, 2, 7) },
    { name: "error JSON does not parse", body: errorBody("{") },
    { name: "error JSON is an array", body: errorBody("[]") },
    {
      name: "error code not snake_case",
      body: errorBody('{"code":"A","message":"","details":{}}'),
    },
    {
      name: "error details nested",
      body: errorBody('{"code":"a","message":"","details":{"x":{}}}'),
    },
    { name: "error message missing", body: errorBody('{"code":"a","details":{}}') },
    { name: "error not UTF-8", body: concat([errorBody(""), Uint8Array.of(0xff, 0xfe)]) },
    { name: "ping too short", body: Uint8Array.of(0x20, 0, 0) },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, () => {
      assert.throws(
        () => parseFrame(testCase.body, testCase.options ?? SHARDED),
        (error) => error instanceof FrameError && error.reason === "frame_malformed",
      );
    });
  }
});

/** mulberry32, seeded, so a failing fuzz run can be replayed with ASPEN_SEED. */
function createPrng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomInput(random: () => number, seeds: readonly Uint8Array[]): Uint8Array {
  const integer = (limit: number) => Math.floor(random() * limit);
  if (random() < 0.5) {
    const out = new Uint8Array(integer(200));
    for (let i = 0; i < out.length; i += 1) out[i] = integer(256);
    if (out.length >= 4 && random() < 0.7) out.set([0, 0, 0, integer(out.length)], 0);
    return out;
  }
  const out = seeds[integer(seeds.length)]!.slice();
  const flips = 1 + integer(4);
  for (let i = 0; i < flips && out.length > 0; i += 1) out[integer(out.length)] = integer(256);
  return out.subarray(0, random() < 0.3 ? integer(out.length + 1) : out.length);
}

Deno.test("FrameDecoder and parseFrame() throw only FrameError on random bytes", () => {
  const seed = Number(Deno.env.get("ASPEN_SEED") ?? "20250101");
  const random = createPrng(seed);
  const seeds = [
    encodeRaftBatch(batch, { start: 0, end: 3 }, SHARDED),
    encodeHello({ dialerNodeId: 1, listenerNodeId: 2, nonce: filled(32, 1) }),
    encodeError(
      { requestId: 1, shardId: 0, error: { code: "x", message: "", details: {} } },
      SHARDED,
    ),
    encodeRequest({ requestId: 1, shardId: 1, deadlineMs: 50, payload: bytes("p") }, SHARDED),
  ];
  let frameCount = 0;
  for (let run = 0; run < 3_000; run += 1) {
    const input = randomInput(random, seeds);
    const options = random() < 0.5 ? SHARDED : LEGACY;
    const decoder = new FrameDecoder(random() < 0.5 ? HANDSHAKE_FRAME_BYTES_MAX : FRAME_BYTES_MAX);
    try {
      let offset = 0;
      while (offset < input.length) {
        const size = 1 + Math.floor(random() * 64);
        decoder.push(input.subarray(offset, offset + size), (body) => {
          frameCount += 1;
          parseFrame(body, options);
        });
        offset += size;
      }
    } catch (error) {
      assert.ok(error instanceof FrameError, `seed ${seed} run ${run}: ${String(error)}`);
    }
  }
  assert.ok(frameCount > 100, `the fuzz reached the parser (${frameCount} frames)`);
});
