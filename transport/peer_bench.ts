/**
 * Benchmarks of the peer channel (`deno bench -A transport/peer_bench.ts`).
 *
 * - Frame encode and decode of a 64-message batch of 100-byte Raft messages, and decode of a
 *   stream of small frames cut into 16 KiB reads (the shape QUIC delivers).
 * - Loopback over real QUIC between two transports in this process: 10,000 one-way 100-byte
 *   messages sent in batches of 500 per flush (messages per second = 10,000 x iter/s), and
 *   RPC round trips, one at a time and 100 in flight.
 *
 * Everything shares the machine's two cores with the receiver, so compare ratios within one
 * run rather than absolute numbers across runs.
 */

import {
  createClusterCa,
  createPeerIdentity,
  encodeRaftBatch,
  encodeRequest,
  FRAME_BYTES_MAX,
  FrameDecoder,
  parseFrame,
  PeerTransport,
  type ShardMessage,
} from "./mod.ts";

const SHARDED = { hasShardPrefix: true };
const PAYLOAD = new Uint8Array(100).fill(7);
const batch: ShardMessage[] = Array.from({ length: 64 }, (_, i) => ({
  shardId: i % 8,
  payload: PAYLOAD,
}));
const encodedBatch = encodeRaftBatch(batch, { start: 0, end: batch.length }, SHARDED);

const smallFrames: Uint8Array[] = Array.from(
  { length: 2_000 },
  (_, i) =>
    encodeRequest({ requestId: i + 1, shardId: 1, deadlineMs: 1_000, payload: PAYLOAD }, SHARDED),
);
const stream = new Uint8Array(smallFrames.reduce((sum, frame) => sum + frame.length, 0));
smallFrames.reduce((offset, frame) => (stream.set(frame, offset), offset + frame.length), 0);
const streamChunks: Uint8Array[] = [];
for (let offset = 0; offset < stream.length; offset += 16 * 1024) {
  streamChunks.push(stream.subarray(offset, offset + 16 * 1024));
}

Deno.bench("encode a 64 x 100 B raft batch", { group: "codec" }, () => {
  encodeRaftBatch(batch, { start: 0, end: batch.length }, SHARDED);
});

Deno.bench("decode a 64 x 100 B raft batch", { group: "codec" }, () => {
  const decoder = new FrameDecoder(FRAME_BYTES_MAX);
  decoder.push(encodedBatch, (body) => parseFrame(body, SHARDED));
});

Deno.bench("decode 2,000 request frames in 16 KiB reads", { group: "codec" }, () => {
  const decoder = new FrameDecoder(FRAME_BYTES_MAX);
  let count = 0;
  for (const chunk of streamChunks) {
    decoder.push(chunk, (body) => {
      parseFrame(body, SHARDED);
      count += 1;
    });
  }
  if (count !== smallFrames.length) throw new Error(`decoded ${count} frames`);
});

const MESSAGES_PER_ITERATION = 10_000;
const MESSAGES_PER_FLUSH = 500;
const secret = "bench-cluster-secret-0123456789";
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let receivedCount = 0;
let onReceived: (() => void) | null = null;
const handlers = {
  hostsShard: () => true,
  onRaftMessage: () => {
    receivedCount += 1;
    if (receivedCount === MESSAGES_PER_ITERATION) onReceived?.();
  },
  onRequest: (_from: number, _shard: number, payload: Uint8Array) => Promise.resolve(payload),
};
const ca = await createClusterCa();
const trust = { caCertificatePem: ca.certificatePem };
const identities = await Promise.all(
  [1, 2].map((nodeId) => createPeerIdentity({ nodeId, listenHost: "127.0.0.1", ca })),
);
const receiver = await PeerTransport.start({
  nodeId: 2,
  listen: "127.0.0.1:0",
  identity: identities[1]!,
  trust,
  clusterSecret: secret,
  peers: new Map(),
  handlers,
  logger: quiet,
});
const { promise: connected, resolve: markConnected } = Promise.withResolvers<void>();
const sender = await PeerTransport.start({
  nodeId: 1,
  listen: "127.0.0.1:0",
  identity: identities[0]!,
  trust,
  clusterSecret: secret,
  peers: new Map([[2, { address: receiver.listenAddress }]]),
  handlers: {
    ...handlers,
    onPeerStateChange: (_node: number, isUp: boolean) => isUp && markConnected(),
  },
  logger: quiet,
  limits: { queueMessagesMax: MESSAGES_PER_ITERATION },
});
await connected;

Deno.bench("loopback: 10,000 x 100 B raft messages, 500 per flush", {
  group: "loopback",
  n: 40,
  warmup: 5,
}, async () => {
  receivedCount = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  onReceived = resolve;
  for (let sent = 0; sent < MESSAGES_PER_ITERATION; sent += MESSAGES_PER_FLUSH) {
    for (let i = 0; i < MESSAGES_PER_FLUSH; i += 1) sender.send(2, i % 8, PAYLOAD);
    sender.flush();
    // Yield so the receiver's reads interleave with our writes, as in a real node.
    await new Promise((next) => setTimeout(next, 0));
  }
  await promise;
});

Deno.bench("loopback: 1 RPC round trip at a time (100 B)", {
  group: "rpc",
  n: 2_000,
  warmup: 100,
}, async () => {
  await sender.request(2, 1, PAYLOAD, { deadlineMs: 10_000 });
});

Deno.bench("loopback: 100 RPCs in flight (100 B each)", {
  group: "rpc",
  n: 100,
  warmup: 10,
}, async () => {
  await Promise.all(
    Array.from(
      { length: 100 },
      (_, i) => sender.request(2, i % 8, PAYLOAD, { deadlineMs: 10_000 }),
    ),
  );
});

globalThis.addEventListener("unload", () => {
  const stats = sender.stats().peers[0];
  console.log(`sender to node 2: ${JSON.stringify(stats)}`);
});
// deno bench has no teardown hook; the open endpoints end with the process.
