/**
 * Checks who may talk on the peer channel, over real QUIC: a transport or a hand-driven raw
 * peer without the cluster secret delivers nothing (no Raft message, no request) and is
 * disconnected, whether it sends a wrong proof, traffic before the handshake, or traffic
 * piggybacked behind a wrong proof; a listener with the wrong secret is refused by the
 * dialer; a listener whose certificate another cluster's CA issued fails the dialer's TLS
 * (the dialer trusts its own CA only), and a proof over another CA's fingerprint is refused
 * although TLS passed; a malformed or over-limit frame from an
 * authenticated peer closes that one connection while the node keeps serving another peer;
 * and the legacy ALPN maps messages without a shard prefix to shard 0.
 */

import assert from "node:assert/strict";
import {
  ALPN_LEGACY,
  createClusterCa,
  encodeProof,
  encodeRaftBatch,
  encodeRequest,
  PeerRequestError,
} from "../transport/mod.ts";
import { closeCodeOf, RawPeer } from "./fixtures/peer_raw_client.ts";
import { peerStats, TEST_SECRET, TestCluster, text, untext } from "./fixtures/peer_cluster.ts";

/** A well-formed proof frame's content; only its type matters where it is used. */
const junkProof = {
  proof: new Uint8Array(32),
  signature: new Uint8Array(64),
  certificate: new Uint8Array(1),
};
const WRONG_SECRET = "not-the-cluster-secret-at-all!";
const PROTOCOL_ERROR = 1;
const AUTHENTICATION_FAILED = 2;

const raftBatch = (shardId: number, value: string) =>
  encodeRaftBatch([{ shardId, payload: text(value) }], { start: 0, end: 1 }, {
    hasShardPrefix: true,
  });
const requestFrame = (shardId: number, value: string) =>
  encodeRequest({ requestId: 1, shardId, deadlineMs: 10_000, payload: text(value) }, {
    hasShardPrefix: true,
  });

Deno.test("a transport with the wrong cluster secret delivers nothing", async (t) => {
  const cluster = new TestCluster();
  let requestsSeen = 0;
  try {
    const [two] = await cluster.startAll([2], {
      onRequest: () => {
        requestsSeen += 1;
        return Promise.resolve(text("never"));
      },
    });
    const intruder = await cluster.node(1);
    await intruder.start({ nodeId: 1, secret: WRONG_SECRET }, [two!]);
    await t.step("as a dialer: the listener refuses its proof", async () => {
      await cluster.until(
        () => two!.transport.stats().inboundHandshakeFailures >= 2,
        "two failed handshakes at the listener",
      );
      await cluster.until(() => peerStats(intruder, 2).connectFailures >= 2, "dial failures");
      assert.equal(intruder.transport.send(2, 0, text("inject")), false);
      await assert.rejects(
        () => intruder.transport.request(2, 0, text("inject"), { deadlineMs: 1_000 }),
        (error) => error instanceof PeerRequestError && error.kind === "unreachable",
      );
      assert.equal(two!.transport.isPeerUp(1), false);
      assert.deepEqual(two!.received, []);
      assert.equal(requestsSeen, 0);
    });
    await intruder.stop();
    await t.step("as a listener: the dialer refuses its proof and sends nothing", async () => {
      const dialer = await cluster.node(3);
      const fakeListener = await cluster.node(4);
      await fakeListener.start({ nodeId: 4, secret: WRONG_SECRET }, []);
      await dialer.start({ nodeId: 3 }, [fakeListener]);
      await cluster.until(() => peerStats(dialer, 4).connectFailures >= 2, "dial failures");
      assert.equal(dialer.transport.isPeerUp(4), false);
      assert.equal(fakeListener.transport.isPeerUp(3), false);
      assert.deepEqual(fakeListener.received, []);
    });
  } finally {
    await cluster.close();
  }
});

Deno.test("a listener whose certificate another CA issued is refused by TLS", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2]);
    const stranger = await cluster.node(3, { ca: await createClusterCa() });
    await stranger.start({ nodeId: 3 }, []);
    const one = await cluster.node(1);
    await one.start({ nodeId: 1 }, [two!]);
    one.transport.setPeer(3, stranger.endpoint);
    await cluster.until(() => peerStats(one, 3).connectFailures >= 2, "TLS failures");
    await cluster.until(() => one.transport.isPeerUp(2), "the CA-issued peer to connect");
    assert.equal(one.transport.isPeerUp(3), false);
    assert.equal(stranger.transport.isPeerUp(1), false);
    assert.equal(stranger.transport.stats().peers.length, 0, "no hello got through");
    const failures = one.logs.filter((line) => line.fields?.address === stranger.endpoint.address);
    assert.ok(failures.length >= 2);
    for (const line of failures) {
      // rustls: the stranger's chain names a CA called like ours, but our CA did not sign it.
      assert.match(String(line.fields?.error), /invalid peer certificate: BadSignature/);
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("a proof over another CA's fingerprint is refused after TLS passed", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2]);
    const otherCa = await createClusterCa();
    const raw = await RawPeer.open({
      address: two!.transport.listenAddress,
      caCertificatePem: two!.caCertificatePem,
    });
    const challenge = await raw.handshake({
      dialerNodeId: 1,
      identity: await cluster.identityFor(1),
      listenerNodeId: 2,
      secret: TEST_SECRET,
      caCertificatePem: otherCa.certificatePem,
      trailing: raftBatch(0, "inject"),
    });
    assert.equal(challenge?.type, "challenge", "TLS and the hello passed");
    assert.equal(await closeCode(cluster, raw), AUTHENTICATION_FAILED);
    await raw.close();
    assert.deepEqual(two!.received, []);
    assert.equal(two!.transport.stats().inboundHandshakeFailures, 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("a raw peer without the secret is disconnected and delivers nothing", async (t) => {
  const cluster = new TestCluster();
  let requestsSeen = 0;
  try {
    const [two] = await cluster.startAll([2], {
      onRequest: () => {
        requestsSeen += 1;
        return Promise.resolve(text("never"));
      },
    });
    const target = {
      address: two!.transport.listenAddress,
      caCertificatePem: two!.caCertificatePem,
    };
    await t.step("a wrong proof with traffic right behind it", async () => {
      const raw = await RawPeer.open(target);
      const trailing = new Uint8Array([...raftBatch(0, "inject"), ...requestFrame(0, "inject")]);
      const challenge = await raw.handshake({
        dialerNodeId: 1,
        identity: await cluster.identityFor(1),
        listenerNodeId: 2,
        secret: WRONG_SECRET,
        caCertificatePem: target.caCertificatePem,
        trailing,
      });
      assert.equal(challenge?.type, "challenge", "the listener answered the hello");
      assert.equal(await closeCode(cluster, raw), AUTHENTICATION_FAILED);
      assert.equal(raw.frames.length, 1, "nothing but the challenge came back");
      await raw.close();
    });
    await t.step("traffic before any handshake", async () => {
      const raw = await RawPeer.open(target);
      await raw.write(raftBatch(0, "inject"));
      assert.equal(await closeCode(cluster, raw), PROTOCOL_ERROR);
      assert.deepEqual(raw.frames, []);
      await raw.close();
    });
    await t.step("a hello that claims a larger id than the listener's", async () => {
      const raw = await RawPeer.open(target);
      const challenge = await raw.handshake({
        dialerNodeId: 3,
        identity: await cluster.identityFor(3),
        listenerNodeId: 2,
        secret: TEST_SECRET,
        caCertificatePem: target.caCertificatePem,
      });
      assert.equal(challenge, null, "the listener closed instead of answering");
      await raw.close();
    });
    assert.deepEqual(two!.received, []);
    assert.equal(requestsSeen, 0);
    assert.equal(two!.transport.stats().inboundHandshakeFailures, 3);
    assert.equal(two!.transport.stats().peers.length, 0, "no peer state for intruders");
  } finally {
    await cluster.close();
  }
});

Deno.test("a malformed frame closes that connection while the node serves others", async (t) => {
  const cluster = new TestCluster();
  try {
    const [three, five] = await cluster.startAll([3, 5]);
    const target = {
      address: five!.transport.listenAddress,
      caCertificatePem: five!.caCertificatePem,
    };
    const cases = [
      { name: "an unknown frame type", bytes: Uint8Array.of(0, 0, 0, 2, 0x7f, 0) },
      { name: "a length over FRAME_BYTES_MAX", bytes: Uint8Array.of(0x7f, 0xff, 0xff, 0xff) },
      {
        name: "a batch whose count overruns it",
        bytes: Uint8Array.of(0, 0, 0, 5, 0x10, 0, 0, 0, 9),
      },
      { name: "a handshake frame after the handshake", bytes: encodeProof(junkProof) },
    ];
    let closedCount = 0;
    for (const testCase of cases) {
      await t.step(testCase.name, async () => {
        const raw = await RawPeer.open(target);
        await raw.handshake({
          dialerNodeId: 1,
          identity: await cluster.identityFor(1),
          listenerNodeId: 5,
          secret: TEST_SECRET,
          caCertificatePem: target.caCertificatePem,
          trailing: new Uint8Array([...raftBatch(0, `before ${closedCount}`), ...testCase.bytes]),
        });
        assert.equal(await closeCode(cluster, raw), PROTOCOL_ERROR);
        await raw.close();
        closedCount += 1;
        await cluster.until(
          () => five!.transport.stats().malformedFrameConnections === closedCount,
          "the protocol error to be counted",
        );
        const answer = await three!.transport.request(5, 2, text("still"), { deadlineMs: 10_000 });
        assert.equal(untext(answer), "5/2:still");
        three!.transport.send(5, 1, text(`alive ${closedCount}`));
        await cluster.until(
          () => five!.textsFrom(3, 1).length === closedCount,
          "a message from the healthy peer",
        );
      });
    }
    assert.deepEqual(five!.textsFrom(1, 0), ["before 0", "before 1", "before 2", "before 3"]);
    assert.equal(peerStats(five!, 3).connectionsOpened, 1, "the healthy connection never broke");
  } finally {
    await cluster.close();
  }
});

Deno.test("the legacy ALPN carries unprefixed messages for shard 0", async (t) => {
  const cluster = new TestCluster();
  try {
    await t.step("a legacy dialer and a current listener", async () => {
      const [two] = await cluster.startAll([2]);
      const one = await cluster.node(1);
      await one.start({ nodeId: 1, protocols: [ALPN_LEGACY] }, [two!]);
      await cluster.until(() => one.transport.isPeerUp(2) && two!.transport.isPeerUp(1), "up");
      assert.equal(peerStats(one, 2).protocol, "aspen-raft");
      assert.equal(peerStats(two!, 1).protocol, "aspen-raft");
      assert.equal(one.transport.send(2, 0, text("zero")), true);
      assert.equal(one.transport.send(2, 3, text("three")), false);
      assert.equal(peerStats(one, 2).messagesDroppedLegacy, 1);
      assert.equal(two!.transport.send(1, 0, text("back")), true);
      const answer = await one.transport.request(2, 0, text("q"), { deadlineMs: 10_000 });
      assert.equal(untext(answer), "2/0:q");
      await assert.rejects(
        () => one.transport.request(2, 1, text("q"), { deadlineMs: 10_000 }),
        (error) => error instanceof PeerRequestError && error.kind === "unknown_shard",
      );
      await cluster.until(() => two!.received.length === 1 && one.received.length === 1, "msgs");
      assert.deepEqual(two!.textsFrom(1, 0), ["zero"]);
      assert.deepEqual(one.textsFrom(2, 0), ["back"]);
    });
    await t.step("a raw legacy peer's unprefixed bytes land in shard 0", async () => {
      const [two] = await cluster.startAll([7], { protocols: [ALPN_LEGACY] });
      const target = {
        address: two!.transport.listenAddress,
        caCertificatePem: two!.caCertificatePem,
        protocol: ALPN_LEGACY,
      } as const;
      const raw = await RawPeer.open(target);
      // count=1, length=5, "hello": no shard id anywhere.
      const legacyBatch = Uint8Array.of(
        0,
        0,
        0,
        14,
        0x10,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        5,
        ...text("hello"),
      );
      await raw.handshake({
        dialerNodeId: 1,
        identity: await cluster.identityFor(1),
        listenerNodeId: 7,
        secret: TEST_SECRET,
        caCertificatePem: target.caCertificatePem,
        trailing: legacyBatch,
      });
      await cluster.until(() => two!.received.length === 1, "the legacy message");
      assert.deepEqual(two!.received, [{ from: 1, shardId: 0, text: "hello" }]);
      await raw.close();
    });
  } finally {
    await cluster.close();
  }
});

Deno.test("a peer that stays silent is closed at the handshake timeout", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2], { limits: { handshakeTimeoutMs: 100 } });
    const raw = await RawPeer.open({
      address: two!.transport.listenAddress,
      caCertificatePem: two!.caCertificatePem,
    });
    await raw.write(new Uint8Array(0));
    const HANDSHAKE_TIMEOUT = 4;
    assert.equal(await closeCode(cluster, raw), HANDSHAKE_TIMEOUT);
    await raw.close();
    await cluster.until(
      () => two!.transport.stats().inboundHandshakeFailures === 1,
      "the failure to be counted",
    );
  } finally {
    await cluster.close();
  }
});

/** How `raw` was closed; fails instead of hanging when the listener leaves it open. */
async function closeCode(cluster: TestCluster, raw: RawPeer): Promise<number | null> {
  const outcome: { closed: Deno.QuicCloseInfo | Error | null } = { closed: null };
  void raw.closed.then((closed) => {
    outcome.closed = closed;
    cluster.hub.notify();
  });
  await cluster.until(() => outcome.closed !== null, "the listener to close the connection");
  return closeCodeOf(outcome.closed!);
}
