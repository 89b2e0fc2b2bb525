/**
 * Checks that peer requests carry their caller's deadline, over real QUIC: the handler gets
 * what is left of it (capped by the receiver's `requestDeadlineMsMax`); a request frame whose
 * deadline is 0 is answered `timeout` and never run; a request held back by an injected delay
 * until its deadline passed is never sent, so the peer never runs it; a dialer of protocol
 * version 1 (whose request frames have no deadline) is refused at the handshake. Tests wait
 * for events (frames, answers, handler calls), never for wall-clock time.
 */

import assert from "node:assert/strict";
import {
  encodeHello,
  encodeRequest,
  type Frame,
  PEER_LIMITS_DEFAULT,
  PeerRequestError,
} from "../transport/mod.ts";
import { closeCodeOf, RawPeer } from "./fixtures/peer_raw_client.ts";
import { TEST_SECRET, TestCluster, type TestNode, text, untext } from "./fixtures/peer_cluster.ts";

const SHARDED = { hasShardPrefix: true };
/** The close code of a protocol error (transport/_establish.ts). */
const PROTOCOL_ERROR = 1;

/** Requests node 2's handler ran: payload text and the deadline it was given. */
interface Seen {
  readonly text: string;
  readonly deadlineMs: number;
}

async function startPair(
  cluster: TestCluster,
  seen: Seen[],
): Promise<{ one: TestNode; two: TestNode }> {
  const [one, two] = await cluster.startAll([1, 2], {
    faults: { enabled: true, seed: 1 },
    onRequest: (_from, _shardId, payload, options) => {
      seen.push({ text: untext(payload), deadlineMs: options.deadlineMs });
      cluster.hub.notify();
      return Promise.resolve(text(`ok ${untext(payload)}`));
    },
  });
  return { one: one!, two: two! };
}

async function openRaw(cluster: TestCluster, two: TestNode): Promise<RawPeer> {
  const raw = await RawPeer.open({
    address: two.transport.listenAddress,
    caCertificatePem: two.caCertificatePem,
  });
  const challenge = await raw.handshake({
    dialerNodeId: 1,
    listenerNodeId: 2,
    identity: await cluster.identityFor(1),
    secret: TEST_SECRET,
    caCertificatePem: two.caCertificatePem,
  });
  assert.equal(challenge?.type, "challenge");
  return raw;
}

/** The answer (response or error frame) to `requestId`, skipping pings and other traffic. */
async function answerTo(raw: RawPeer, requestId: number): Promise<Frame> {
  for (let index = 1;; index++) {
    const frame = await raw.nextFrame(index);
    assert.ok(frame !== null, `an answer to request ${requestId} before the connection closed`);
    const isAnswer = frame.type === "response" || frame.type === "error";
    if (isAnswer && frame.requestId === requestId) return frame;
  }
}

Deno.test("a peer request hands its handler what is left of the caller's deadline", async () => {
  const cluster = new TestCluster();
  const seen: Seen[] = [];
  try {
    const { one } = await startPair(cluster, seen);
    const answer = await one.transport.request(2, 0, text("q"), { deadlineMs: 5_000 });
    assert.equal(untext(answer), "ok q");
    assert.equal(seen.length, 1);
    assert.ok(seen[0]!.deadlineMs >= 1 && seen[0]!.deadlineMs <= 5_000, `${seen[0]!.deadlineMs}`);
  } finally {
    await cluster.close();
  }
});

Deno.test("a request frame whose deadline is 0 is answered timeout and never run", async () => {
  const cluster = new TestCluster();
  const seen: Seen[] = [];
  try {
    const { two } = await startPair(cluster, seen);
    const raw = await openRaw(cluster, two);
    try {
      const frame = (requestId: number, deadlineMs: number, value: string) =>
        encodeRequest({ requestId, shardId: 0, deadlineMs, payload: text(value) }, SHARDED);
      await raw.write(frame(1, 0, "expired"));
      await raw.write(frame(2, 0xffff_ffff, "far"));
      const expired = await answerTo(raw, 1);
      assert.ok(expired.type === "error", "an error frame");
      assert.equal(expired.error.code, "timeout");
      const far = await answerTo(raw, 2);
      assert.ok(far.type === "response");
      assert.equal(untext(far.payload), "ok far");
      assert.deepEqual(seen.map((item) => item.text), ["far"], "the expired one never ran");
      assert.ok(
        seen[0]!.deadlineMs <= PEER_LIMITS_DEFAULT.requestDeadlineMsMax,
        "capped by the receiver",
      );
    } finally {
      await raw.close();
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("a request held back past its deadline by a delay is never sent", async () => {
  const cluster = new TestCluster();
  const seen: Seen[] = [];
  try {
    const { one } = await startPair(cluster, seen);
    one.transport.faults.set(2, { dropProbability: 0, delayMs: 300 });
    const late = one.transport.request(2, 0, text("late"), { deadlineMs: 50 });
    // Delays keep the order of frames: once "on time" has run, "late" would have run before.
    const onTime = one.transport.request(2, 0, text("on time"), { deadlineMs: 10_000 });
    await assert.rejects(
      late,
      (error) => error instanceof PeerRequestError && error.kind === "timeout",
    );
    assert.equal(untext(await onTime), "ok on time");
    assert.deepEqual(seen.map((item) => item.text), ["on time"]);
  } finally {
    await cluster.close();
  }
});

Deno.test("a dialer of protocol version 1 is refused at the handshake", async () => {
  const cluster = new TestCluster();
  const seen: Seen[] = [];
  try {
    const { two } = await startPair(cluster, seen);
    const raw = await RawPeer.open({
      address: two.transport.listenAddress,
      caCertificatePem: two.caCertificatePem,
    });
    try {
      const hello = encodeHello({ dialerNodeId: 1, listenerNodeId: 2, nonce: new Uint8Array(32) });
      hello[5] = 1; // the version byte
      await raw.write(hello);
      const closed = await raw.closed;
      assert.equal(closeCodeOf(closed), PROTOCOL_ERROR);
      assert.equal(raw.frames.length, 0, "no challenge for a version 1 dialer");
    } finally {
      await raw.close();
    }
    await cluster.until(
      () => two.transport.stats().inboundHandshakeFailures === 1,
      "the refusal to be counted",
    );
  } finally {
    await cluster.close();
  }
});
