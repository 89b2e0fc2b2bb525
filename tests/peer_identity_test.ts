/**
 * Checks node identities on the peer channel, over real QUIC: a node proves its node id with
 * its own key and the certificate the cluster CA issued for that id; a dialer holding the
 * secret and a genuine certificate of another node cannot claim an id that is not its own; a
 * certificate another CA issued is refused although the cluster secret is right; a refused
 * (removed) node's certificate or node id is refused at the handshake on either side, with a
 * log line naming it, and its open connection is closed when it becomes refused at runtime.
 */

import assert from "node:assert/strict";
import {
  createClusterCa,
  createPeerIdentity,
  encodeRequest,
  PeerTransport,
} from "../transport/mod.ts";
import { closeCodeOf, RawPeer } from "./fixtures/peer_raw_client.ts";
import { TEST_SECRET, TestCluster, type TestNode, text, untext } from "./fixtures/peer_cluster.ts";

const AUTHENTICATION_FAILED = 2;

Deno.test("a node proves its node id: each side sees the other's certificate", async () => {
  const cluster = new TestCluster();
  try {
    const [one, two] = await cluster.startAll([1, 2]);
    one!.transport.send(2, 1, text("hello"));
    await cluster.until(() => two!.textsFrom(1, 1).length === 1, "the message");
    const answer = await one!.transport.request(2, 0, text("q"), { deadlineMs: 10_000 });
    assert.equal(untext(answer), "2/0:q");
    assert.equal(one!.transport.peerCertificate(2), two!.identity.fingerprint);
    assert.equal(two!.transport.peerCertificate(1), one!.identity.fingerprint);
  } finally {
    await cluster.close();
  }
});

Deno.test("a transport refuses to start with a certificate for another node id", async () => {
  const cluster = new TestCluster();
  const ca = await cluster.ca();
  const identity = await createPeerIdentity({ nodeId: 3, listenHost: "127.0.0.1", ca });
  await assert.rejects(
    () =>
      PeerTransport.start({
        nodeId: 1,
        listen: "127.0.0.1:0",
        identity,
        trust: { caCertificatePem: ca.certificatePem },
        clusterSecret: TEST_SECRET,
        peers: new Map(),
        handlers: {
          hostsShard: () => true,
          onRaftMessage: () => {},
          onRequest: () => Promise.resolve(new Uint8Array(0)),
        },
      }),
    /names node 3, not node 1/,
  );
});

Deno.test("a dialer with only its own key cannot claim another node's id", async (t) => {
  const cluster = new TestCluster();
  try {
    const [two, three] = await cluster.startAll([2, 3]);
    const target = {
      address: three!.transport.listenAddress,
      caCertificatePem: three!.caCertificatePem,
    };
    await t.step("node 2's certificate and key, claiming node 1", async () => {
      const raw = await RawPeer.open(target);
      const challenge = await raw.handshake({
        dialerNodeId: 1,
        listenerNodeId: 3,
        identity: two!.identity,
        secret: TEST_SECRET,
        caCertificatePem: target.caCertificatePem,
        trailing: requestFrame("inject"),
      });
      assert.equal(challenge?.type, "challenge", "TLS, the hello and the secret passed");
      assert.equal(await closeCode(cluster, raw), AUTHENTICATION_FAILED);
      assert.equal(raw.frames.length, 1, "nothing but the challenge came back");
      await raw.close();
    });
    await t.step("node 1's certificate, signed with node 2's key", async () => {
      const one = await cluster.identityFor(1);
      const raw = await RawPeer.open(target);
      await raw.handshake({
        dialerNodeId: 1,
        listenerNodeId: 3,
        identity: { ...one, keyPem: two!.identity.keyPem },
        secret: TEST_SECRET,
        caCertificatePem: target.caCertificatePem,
        trailing: requestFrame("inject"),
      });
      assert.equal(await closeCode(cluster, raw), AUTHENTICATION_FAILED);
      await raw.close();
    });
    await t.step("the same dialer with node 1's own key is accepted", async () => {
      const raw = await RawPeer.open(target);
      await raw.handshake({
        dialerNodeId: 1,
        listenerNodeId: 3,
        identity: await cluster.identityFor(1),
        secret: TEST_SECRET,
        caCertificatePem: target.caCertificatePem,
      });
      await cluster.until(() => three!.transport.isPeerUp(1), "node 1 accepted");
      await raw.close();
    });
    assert.equal(three!.transport.stats().inboundHandshakeFailures, 2);
    assert.match(warnings(three!), /names node 2, not node 1/);
    assert.match(warnings(three!), /signature of the dialer \(node 1\) does not verify/);
  } finally {
    await cluster.close();
  }
});

Deno.test("a certificate another CA issued is refused although the secret is right", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2]);
    const otherCa = await createClusterCa();
    const raw = await RawPeer.open({
      address: two!.transport.listenAddress,
      caCertificatePem: two!.caCertificatePem,
    });
    await raw.handshake({
      dialerNodeId: 1,
      listenerNodeId: 2,
      identity: await createPeerIdentity({ nodeId: 1, listenHost: "127.0.0.1", ca: otherCa }),
      secret: TEST_SECRET,
      caCertificatePem: two!.caCertificatePem,
      trailing: requestFrame("inject"),
    });
    assert.equal(await closeCode(cluster, raw), AUTHENTICATION_FAILED);
    await raw.close();
    assert.equal(two!.transport.isPeerUp(1), false);
    assert.match(warnings(two!), /was not issued by the cluster CA/);
  } finally {
    await cluster.close();
  }
});

Deno.test("a refused certificate is refused and its open connection closed", async (t) => {
  const cluster = new TestCluster();
  try {
    const [one, two, three] = await cluster.startAll([1, 2, 3]);
    await t.step("refusing node 1's certificate at runtime closes 1-2 only", async () => {
      two!.transport.setRefusedPeers({ certificateFingerprints: [one!.identity.fingerprint] });
      assert.equal(two!.transport.isPeerUp(1), false, "closed at once");
      await cluster.until(() => !one!.transport.isPeerUp(2), "node 1 to see the close");
      // The dialer sends right behind its proof, so it learns of the refusal by the close.
      await cluster.until(() => refusals(two!, 1) >= 2, "node 1's redials to be refused");
      assert.equal(two!.transport.isPeerUp(1), false);
      assert.equal(two!.transport.isPeerUp(3), true, "node 3 is not affected");
      assert.equal(one!.transport.isPeerUp(3), true, "node 1 still talks to node 3");
      assert.match(warnings(two!), /Closing the connection to node 1: its certificate/);
      assert.deepEqual(two!.textsFrom(1, 0), []);
    });
    await t.step("lifting the refusal lets node 1 back in", async () => {
      two!.transport.setRefusedPeers({});
      await cluster.until(() => two!.transport.isPeerUp(1), "node 1 to reconnect");
    });
    await t.step("a dialer refuses a listener by node id and stops dialing it", async () => {
      one!.transport.setRefusedPeers({ nodeIds: [3] });
      assert.equal(one!.transport.isPeerUp(3), false);
      await cluster.until(() => !three!.transport.isPeerUp(1), "node 3 to see the close");
      assert.equal(one!.transport.isPeerUp(2), true);
    });
    await t.step("lifting a node id refusal makes the dialer dial again", async () => {
      one!.transport.setRefusedPeers({});
      await cluster.until(() => one!.transport.isPeerUp(3), "node 1 to redial node 3");
    });
    await t.step("a malformed fingerprint is refused as config", () => {
      assert.throws(
        () => one!.transport.setRefusedPeers({ certificateFingerprints: ["abc"] }),
        /64 hex digits/,
      );
    });
  } finally {
    await cluster.close();
  }
});

Deno.test("a node started with a refused set refuses that peer as listener", async () => {
  const cluster = new TestCluster();
  try {
    const one = await cluster.node(1);
    const two = await cluster.node(2);
    await two.start({ nodeId: 2, refusedPeers: { nodeIds: [1] } }, []);
    await one.start({ nodeId: 1 }, [two]);
    await cluster.until(() => refusals(two, 1) >= 2, "refused dials");
    assert.equal(two.transport.isPeerUp(1), false);
    const line = two.logs.find((line) => line.message.startsWith("Refused node 1"));
    assert.equal(line?.fields?.certificate, one.identity.fingerprint);
  } finally {
    await cluster.close();
  }
});

function requestFrame(value: string): Uint8Array {
  const request = { requestId: 1, shardId: 0, deadlineMs: 10_000, payload: text(value) };
  return encodeRequest(request, { hasShardPrefix: true });
}

function refusals(node: TestNode, refusedId: number): number {
  return node.logs.filter((line) => line.message.startsWith(`Refused node ${refusedId}`)).length;
}

function warnings(node: TestNode): string {
  return node.logs.filter((line) => line.level === "warn").map((line) =>
    `${line.message} ${JSON.stringify(line.fields ?? {})}`
  ).join("\n");
}

async function closeCode(cluster: TestCluster, raw: RawPeer): Promise<number | null> {
  const outcome: { closed: Deno.QuicCloseInfo | Error | null } = { closed: null };
  void raw.closed.then((closed) => {
    outcome.closed = closed;
    cluster.hub.notify();
  });
  await cluster.until(() => outcome.closed !== null, "the listener to close the connection");
  return closeCodeOf(outcome.closed!);
}
