/**
 * Checks that answers on the peer channel respect back-pressure, over real QUIC: a hand-driven
 * raw peer authenticates, stops reading, and sends requests (and pings) whose answers are
 * large. The responder must keep the bytes waiting on that connection within
 * `answerBufferBytesMax` plus one answer, shed the requests it cannot answer (counted, not
 * run), keep the connection up, and keep serving a healthy peer. A second test checks that a
 * ping whose pong never comes is replaced after an idle timeout, so that a shed pong does not
 * stop the round-trip measurement for good. Tests wait for events, never for wall-clock time.
 */

import assert from "node:assert/strict";
import {
  encodePingOrPong,
  encodeRaftBatch,
  encodeRequest,
  encodeResponse,
} from "../transport/mod.ts";
import { RawPeer } from "./fixtures/peer_raw_client.ts";
import {
  HANG_GUARD_MS,
  peerStats,
  TEST_SECRET,
  TestCluster,
  text,
  untext,
} from "./fixtures/peer_cluster.ts";

const SHARDED = { hasShardPrefix: true };
/** The size of each answer: large, so that a few of them fill the answer buffer. */
const ANSWER_BYTES = 64 * 1024;
const SEND_BUFFER_BYTES_MAX = 256 * 1024;
const ANSWER_BUFFER_BYTES_MAX = 512 * 1024;
/** Requests the raw peer sends per wave: their answers total 6.4 MiB, 12 answer buffers. */
const REQUESTS_PER_WAVE = 100;
const WAVES = 4;

function raftBatch(value: string): Uint8Array {
  return encodeRaftBatch([{ shardId: 0, payload: text(value) }], { start: 0, end: 1 }, SHARDED);
}

Deno.test("a peer that sends requests and never reads gets its answers shed", async () => {
  const cluster = new TestCluster();
  const big = new Uint8Array(ANSWER_BYTES);
  let handled = 0;
  try {
    const [two, three] = await cluster.startAll([2, 3], {
      limits: {
        sendBufferBytesMax: SEND_BUFFER_BYTES_MAX,
        answerBufferBytesMax: ANSWER_BUFFER_BYTES_MAX,
      },
      onRequest: (from, shardId, payload) => {
        if (from !== 1) return Promise.resolve(text(`2/${shardId}:${untext(payload)}`));
        handled += 1;
        cluster.hub.notify();
        return Promise.resolve(big);
      },
    });
    const raw = await RawPeer.open({
      address: two!.transport.listenAddress,
      caCertificatePem: two!.caCertificatePem,
    });
    await raw.handshake({
      dialerNodeId: 1,
      identity: await cluster.identityFor(1),
      listenerNodeId: 2,
      secret: TEST_SECRET,
      caCertificatePem: two!.caCertificatePem,
    });
    raw.stopReading();
    const fromRaw = () => two!.transport.stats().peers.find((peer) => peer.nodeId === 1);
    const answerFrameBytes = encodeResponse({
      requestId: 1,
      shardId: 0,
      payload: big,
    }, SHARDED).length;
    // Waves, so that later requests arrive after the answers of earlier ones backed up (one
    // burst would be dispatched before any answer is written).
    for (let wave = 0; wave < WAVES; wave++) {
      for (let i = 1; i <= REQUESTS_PER_WAVE; i++) {
        const requestId = wave * REQUESTS_PER_WAVE + i;
        const request = {
          requestId,
          shardId: 0,
          deadlineMs: 10_000,
          payload: text(`q${requestId}`),
        };
        await raw.write(encodeRequest(request, SHARDED));
      }
      await raw.write(encodePingOrPong("ping", wave + 1));
      // A Raft message after the wave: once delivered, every request before it was taken in.
      await raw.write(raftBatch(`wave ${wave}`));
      await cluster.until(() => two!.textsFrom(1, 0).length === wave + 1, `wave ${wave}`);
      const sent = (wave + 1) * REQUESTS_PER_WAVE;
      assert.equal(fromRaw()?.requestsIn, sent);
      await cluster.until(
        () => handled + fromRaw()!.requestsShed === sent,
        `wave ${wave} to be run or shed`,
      );
      const waiting = fromRaw()!.sendBufferBytes;
      assert.ok(
        waiting <= ANSWER_BUFFER_BYTES_MAX + answerFrameBytes,
        `wave ${wave}: ${waiting} bytes wait for node 1, over the answer buffer and one answer`,
      );
    }
    const stats = peerStats(two!, 1);
    assert.ok(stats.answersDropped > 0, "answers past the buffer are dropped");
    assert.ok(stats.requestsShed >= REQUESTS_PER_WAVE, "later waves are shed unrun");
    assert.ok(handled < WAVES * REQUESTS_PER_WAVE, `${handled} requests ran; the rest were shed`);
    assert.equal(stats.isUp, true, "the connection stays up: shedding, not closing");
    const answer = await three!.transport.request(2, 1, text("still"), { deadlineMs: 10_000 });
    assert.equal(untext(answer), "2/1:still", "the node keeps serving a healthy peer");
    three!.transport.send(2, 3, text("alive"));
    await cluster.until(() => two!.textsFrom(3, 3).length === 1, "a Raft message from node 3");
    assert.equal(peerStats(two!, 3).answersDropped, 0, "nothing was shed for node 3");
    await raw.close();
  } finally {
    await cluster.close();
  }
});

Deno.test("a ping whose pong never comes is sent again after an idle timeout", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2], {
      limits: { pingIntervalMs: 20, keepAliveIntervalMs: 100, idleTimeoutMs: 300 },
    });
    const raw = await RawPeer.open({
      address: two!.transport.listenAddress,
      caCertificatePem: two!.caCertificatePem,
    });
    await raw.handshake({
      dialerNodeId: 1,
      identity: await cluster.identityFor(1),
      listenerNodeId: 2,
      secret: TEST_SECRET,
      caCertificatePem: two!.caCertificatePem,
    });
    // The raw peer never answers a ping. Node 2 pings at connect, then again once the first
    // ping has waited an idle timeout: two distinct ping ids.
    const pingIds = new Set<number>();
    const guard = setTimeout(
      () => raw.conn.close({ closeCode: 0, reason: "hang guard" }),
      HANG_GUARD_MS,
    );
    try {
      for (let index = 1; pingIds.size < 2; index++) {
        const frame = await raw.nextFrame(index);
        assert.ok(frame !== null, `a second ping within ${HANG_GUARD_MS} ms`);
        if (frame.type === "ping") pingIds.add(frame.pingId);
      }
    } finally {
      clearTimeout(guard);
    }
    assert.equal(pingIds.size, 2);
    await raw.close();
  } finally {
    await cluster.close();
  }
});
