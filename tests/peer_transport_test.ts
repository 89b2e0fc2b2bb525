/**
 * Checks the peer transport end to end over real QUIC on 127.0.0.1 (ephemeral ports): two
 * and three nodes exchange batched Raft messages for several shards and concurrent RPCs in
 * both directions over one connection per pair; everything queued in one turn leaves as one
 * frame; an unknown shard gets an error frame while the connection stays up; RPC failures are
 * typed (remote error, unknown shard, timeout, unreachable, too large, overloaded, closed);
 * queues are bounded and drops are counted; fault injection refuses to work unless enabled.
 * Tests wait for events through the fixture's hub, never for wall-clock time.
 */

import assert from "node:assert/strict";
import { AspenError, ERROR_CODES, type ErrorCode } from "../shard/mod.ts";
import {
  createClusterCa,
  PEER_PAYLOAD_BYTES_MAX,
  type PeerProtocol,
  PeerRequestError,
  PeerTransport,
  type PeerTransportOptions,
} from "../transport/mod.ts";
import {
  hasCode,
  peerStats,
  TestCluster,
  type TestNode,
  text,
  untext,
} from "./fixtures/peer_cluster.ts";

const SHARDS = [0, 1, 2, 3];

/** Sends `rounds` rounds of one message per shard, flushing each round explicitly. */
function sendRounds(from: TestNode, to: TestNode, rounds: number): number[] {
  const framesPerFlush: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    for (const shardId of SHARDS) {
      assert.equal(from.transport.send(to.nodeId, shardId, text(`r${round}`)), true);
    }
    const before = peerStats(from, to.nodeId).framesOut;
    from.transport.flush();
    framesPerFlush.push(peerStats(from, to.nodeId).framesOut - before);
  }
  return framesPerFlush;
}

async function requestMany(from: TestNode, to: TestNode, count: number): Promise<void> {
  const answers = await Promise.all(
    Array.from(
      { length: count },
      (_, i) => from.transport.request(to.nodeId, i % 4, text(`q${i}`), { deadlineMs: 10_000 }),
    ),
  );
  answers.forEach((answer, i) => assert.equal(untext(answer), `${to.nodeId}/${i % 4}:q${i}`));
}

Deno.test("two transports exchange batched Raft messages and concurrent RPCs", async () => {
  const cluster = new TestCluster();
  try {
    const [one, two] = await cluster.startAll([1, 2]);
    assert.ok(one !== undefined && two !== undefined);
    const rpcs = Promise.all([requestMany(one, two, 50), requestMany(two, one, 50)]);
    assert.deepEqual(sendRounds(one, two, 10), Array(10).fill(1), "one frame per flush");
    assert.deepEqual(sendRounds(two, one, 10), Array(10).fill(1), "one frame per flush");
    await rpcs;
    await cluster.until(
      () => two.received.length === 40 && one.received.length === 40,
      "all Raft messages",
    );
    const expected = Array.from({ length: 10 }, (_, round) => `r${round}`);
    for (const shardId of SHARDS) {
      assert.deepEqual(two.textsFrom(1, shardId), expected, `order for shard ${shardId}`);
      assert.deepEqual(one.textsFrom(2, shardId), expected, `order for shard ${shardId}`);
    }
    for (const [node, peer] of [[one, two], [two, one]] as const) {
      const stats = peerStats(node, peer.nodeId);
      assert.equal(stats.connectionsOpened, 1, "one connection for every shard");
      assert.equal(stats.isUp, true);
      assert.equal(stats.protocol, "aspen-raft-shard");
      assert.equal(stats.messagesOut, 40);
      assert.equal(stats.messagesIn, 40);
      assert.equal(stats.requestsOut, 50);
      assert.equal(stats.requestsIn, 50);
      assert.equal(stats.messagesDropped, 0);
      assert.ok(stats.rttMs !== null && stats.rttMs > 0, "the ping measured a round trip");
      assert.ok(stats.bytesOut > 0 && stats.bytesIn > 0);
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("three transports exchange messages and RPCs in every direction at once", async () => {
  const cluster = new TestCluster();
  try {
    const nodes = await cluster.startAll([1, 2, 3]);
    const work: Promise<void>[] = [];
    for (const from of nodes) {
      for (const to of nodes) {
        if (from === to) continue;
        work.push(requestMany(from, to, 20));
        for (const shardId of SHARDS) from.transport.send(to.nodeId, shardId, text(`m${shardId}`));
      }
    }
    await Promise.all(work);
    await cluster.until(() => nodes.every((node) => node.received.length === 8), "all messages");
    for (const node of nodes) {
      for (const stats of node.transport.stats().peers) {
        assert.equal(stats.connectionsOpened, 1, `node ${node.nodeId} to ${stats.nodeId}`);
        assert.equal(stats.messagesIn, 4);
      }
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerTransport.send() coalesces one turn's messages into one frame", async () => {
  const cluster = new TestCluster();
  try {
    const [one, two] = await cluster.startAll([1, 2]);
    assert.ok(one !== undefined && two !== undefined);
    // After a round trip both pings are answered, so only our batch can add a frame.
    await one.transport.request(2, 0, text("settle"), { deadlineMs: 10_000 });
    const before = peerStats(one, 2).framesOut;
    for (const shardId of SHARDS) one.transport.send(2, shardId, text("heartbeat"));
    await cluster.until(() => two.received.length === 4, "the heartbeats");
    assert.equal(peerStats(one, 2).framesOut - before, 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("an unknown shard gets an error frame back and the connection stays up", async () => {
  const cluster = new TestCluster();
  try {
    const [one, two] = await cluster.startAll([1, 2], { shards: [0, 1] });
    assert.ok(one !== undefined && two !== undefined);
    one.transport.send(2, 0, text("a"));
    one.transport.send(2, 9, text("lost"));
    one.transport.send(2, 0, text("c"));
    await cluster.until(() => peerStats(one, 2).unknownShardErrorsIn === 1, "the error frame");
    assert.deepEqual(two.textsFrom(1, 0), ["a", "c"]);
    assert.deepEqual(two.textsFrom(1, 9), []);
    await assert.rejects(
      () => one.transport.request(2, 9, text("x"), { deadlineMs: 10_000 }),
      (error) => error instanceof PeerRequestError && error.kind === "unknown_shard",
    );
    const answer = await one.transport.request(2, 1, text("still up"), { deadlineMs: 10_000 });
    assert.equal(untext(answer), "2/1:still up");
    assert.equal(peerStats(one, 2).connectionsOpened, 1);
    assert.equal(peerStats(two, 1).connectionsOpened, 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerTransport.request() carries remote errors with their code and details", async () => {
  const cluster = new TestCluster();
  try {
    await cluster.startAll([2], {
      onRequest: (_from, shardId) => {
        if (shardId === 0) {
          throw new AspenError("not_leader", "Cannot put: not the leader", { leader: 3 });
        }
        return Promise.reject(new TypeError("a bug in the handler"));
      },
    });
    const [one, two] = [await cluster.node(1), await cluster.node(2)];
    await one.start({ nodeId: 1 }, [two]);
    await cluster.until(() => one.transport.isPeerUp(2), "the connection");
    const notLeader = await one.transport.request(2, 0, text("x"), { deadlineMs: 10_000 })
      .then(() => null, (error: unknown) => error);
    assert.ok(notLeader instanceof PeerRequestError);
    assert.equal(notLeader.kind, "remote");
    assert.equal(notLeader.code, "not_leader");
    assert.equal(notLeader.details.leader, 3);
    assert.equal(notLeader.message, "Cannot put: not the leader");
    const internal = await one.transport.request(2, 1, text("x"), { deadlineMs: 10_000 })
      .then(() => null, (error: unknown) => error);
    assert.ok(internal instanceof PeerRequestError);
    assert.equal(internal.code, "shard_unavailable");
    assert.equal(internal.details.remoteCode, "internal");
    assert.ok(two.logs.some((line) => line.level === "error"), "the remote logged its bug");
    assert.equal(peerStats(one, 2).requestsFailed, 2);
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerTransport.request() carries every ErrorCode through unchanged", async () => {
  const cluster = new TestCluster();
  try {
    const [one] = await cluster.startAll([1, 2], {
      onRequest: (_from, _shardId, payload) => {
        const code = untext(payload) as ErrorCode;
        throw new AspenError(code, `Cannot do it: ${code}`, { detail: code });
      },
    });
    for (const code of ERROR_CODES) {
      const error = await one!.transport.request(2, 0, text(code), { deadlineMs: 10_000 })
        .then(() => null, (failure: unknown) => failure);
      assert.ok(error instanceof PeerRequestError, code);
      assert.equal(error.code, code);
      assert.equal(error.message, `Cannot do it: ${code}`);
      assert.equal(error.details.detail, code);
      assert.equal(error.details.remoteCode, undefined, `${code} is known to the channel`);
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerTransport.request() fails with typed errors", async (t) => {
  const cluster = new TestCluster();
  const { promise: never, resolve: release } = Promise.withResolvers<Uint8Array>();
  try {
    await cluster.startAll([2], {
      onRequest: (_from, shardId) => shardId === 3 ? never : Promise.resolve(text("ok")),
    });
    const [one, two] = [await cluster.node(1), await cluster.node(2)];
    await one.start({ nodeId: 1, limits: { requestsInflightMax: 2 } }, [two]);
    await cluster.until(() => one.transport.isPeerUp(2), "the connection");
    const isKind = (kind: string) => (error: unknown) =>
      error instanceof PeerRequestError && error.kind === kind;
    await t.step("timeout when no answer comes before the deadline", async () => {
      await assert.rejects(
        () => one.transport.request(2, 3, text("slow"), { deadlineMs: 20 }),
        (error) => isKind("timeout")(error) && hasCode("timeout")(error),
      );
    });
    await t.step("unreachable for a node with no connection", async () => {
      await assert.rejects(
        () => one.transport.request(9, 0, text("x"), { deadlineMs: 1_000 }),
        (error) => isKind("unreachable")(error) && hasCode("shard_unavailable")(error),
      );
    });
    await t.step("too_large for a payload over the limit", async () => {
      const payload = new Uint8Array(PEER_PAYLOAD_BYTES_MAX + 1);
      await assert.rejects(
        () => one.transport.request(2, 0, payload, { deadlineMs: 1_000 }),
        (error) => isKind("too_large")(error) && hasCode("request_too_large")(error),
      );
    });
    const slow = [1, 2].map(() =>
      one.transport.request(2, 3, text("slow"), { deadlineMs: 60_000 }).catch((e) => e)
    );
    await t.step("overloaded past requestsInflightMax", async () => {
      await assert.rejects(
        () => one.transport.request(2, 0, text("x"), { deadlineMs: 1_000 }),
        (error) => isKind("overloaded")(error) && hasCode("too_many_requests")(error),
      );
    });
    await t.step("closed for requests in flight when the transport closes", async () => {
      await one.stop();
      for (const outcome of await Promise.all(slow)) {
        assert.ok(isKind("closed")(outcome), String(outcome));
      }
      await cluster.until(() => !two.transport.isPeerUp(1), "node 2 to see the close");
    });
  } finally {
    release(text("late"));
    await cluster.close();
  }
});

Deno.test("a node refuses requests past inboundRequestsInflightMax", async () => {
  const cluster = new TestCluster();
  const { promise: never, resolve: release } = Promise.withResolvers<Uint8Array>();
  try {
    await cluster.startAll([2], {
      limits: { inboundRequestsInflightMax: 1 },
      onRequest: () => never,
    });
    const [one, two] = [await cluster.node(1), await cluster.node(2)];
    await one.start({ nodeId: 1 }, [two]);
    await cluster.until(() => one.transport.isPeerUp(2), "the connection");
    const first = one.transport.request(2, 0, text("held"), { deadlineMs: 60_000 });
    await assert.rejects(
      () => one.transport.request(2, 0, text("x"), { deadlineMs: 10_000 }),
      (error) =>
        error instanceof PeerRequestError && error.kind === "remote" &&
        error.code === "too_many_requests",
    );
    release(text("done"));
    assert.equal(untext(await first), "done");
  } finally {
    release(text("late"));
    await cluster.close();
  }
});

Deno.test("PeerTransport.send() drops and counts past its bounds", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2]);
    const one = await cluster.node(1);
    await one.start({ nodeId: 1, limits: { queueMessagesMax: 3 } }, [two!]);
    await cluster.until(() => one.transport.isPeerUp(2), "the connection");
    const queued = [1, 2, 3, 4, 5].map((i) => one.transport.send(2, 0, text(`m${i}`)));
    assert.deepEqual(queued, [true, true, true, false, false]);
    assert.equal(one.transport.send(7, 0, text("nobody")), false);
    await cluster.until(() => two!.received.length === 3, "the queued messages");
    assert.deepEqual(two!.textsFrom(1, 0), ["m1", "m2", "m3"]);
    assert.equal(peerStats(one, 2).messagesDroppedQueueFull, 2);
    assert.equal(one.transport.stats().unknownPeerDrops, 1);
    await two!.stop();
    await cluster.until(() => !one.transport.isPeerUp(2), "the disconnect");
    assert.equal(one.transport.send(2, 0, text("while down")), false);
    assert.equal(peerStats(one, 2).messagesDroppedDisconnected, 1);
    assert.equal(peerStats(one, 2).messagesDropped, 3);
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerFaults refuses every change unless enabled at start", async () => {
  const cluster = new TestCluster();
  try {
    const [one] = await cluster.startAll([1]);
    assert.throws(
      () => one!.transport.faults.set(2, { dropProbability: 1, delayMs: 0 }),
      hasCode("forbidden"),
    );
    assert.throws(() => one!.transport.faults.clear(), hasCode("forbidden"));
    assert.equal(one!.transport.faults.isEnabled, false);
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerFaults drops and delays traffic to chosen peers when enabled", async () => {
  const cluster = new TestCluster();
  try {
    const [one, two] = await cluster.startAll([1, 2], { faults: { enabled: true, seed: 7 } });
    assert.ok(one !== undefined && two !== undefined);
    const faults = one.transport.faults;
    assert.throws(() => faults.set(2, { dropProbability: 2, delayMs: 0 }), hasCode("bad_request"));
    faults.set(2, { dropProbability: 1, delayMs: 0 });
    assert.equal(one.transport.send(2, 0, text("dropped")), false);
    assert.equal(peerStats(one, 2).messagesDroppedFault, 1);
    await assert.rejects(
      () => one.transport.request(2, 0, text("dropped"), { deadlineMs: 20 }),
      hasCode("timeout"),
    );
    faults.set(2, { dropProbability: 0, delayMs: 5 });
    for (const i of [1, 2, 3]) one.transport.send(2, 0, text(`late${i}`));
    const answer = await one.transport.request(2, 1, text("delayed"), { deadlineMs: 10_000 });
    assert.equal(untext(answer), "2/1:delayed");
    await cluster.until(() => two.received.length === 3, "the delayed messages");
    assert.deepEqual(two.textsFrom(1, 0), ["late1", "late2", "late3"]);
    faults.clear();
    assert.equal(one.transport.send(2, 0, text("normal")), true);
    await cluster.until(() => two.received.length === 4, "the last message");
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerTransport.flush() splits a queue over the frame and count limits", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2]);
    const one = await cluster.node(1);
    await one.start({ nodeId: 1, limits: { queueMessagesMax: 20_000 } }, [two!]);
    await cluster.until(() => one.transport.isPeerUp(2), "the connection");
    await one.transport.request(2, 0, text("settle"), { deadlineMs: 10_000 });
    const big = (fill: number) => new Uint8Array(1_500_000).fill(fill);
    let before = peerStats(one, 2).framesOut;
    for (const fill of [1, 2, 3]) one.transport.send(2, fill, big(fill));
    one.transport.flush();
    assert.equal(peerStats(one, 2).framesOut - before, 2, "4 MiB frames hold two 1.5 MB messages");
    before = peerStats(one, 2).framesOut;
    for (let i = 0; i < 20_000; i += 1) one.transport.send(2, 0, text("x"));
    one.transport.flush();
    assert.equal(peerStats(one, 2).framesOut - before, 2, "16,384 messages per frame at most");
    await cluster.until(() => two!.received.length === 20_003, "every message");
    for (const fill of [1, 2, 3]) {
      const [message] = two!.received.filter((m) => m.shardId === fill);
      assert.equal(message?.text.length, 1_500_000);
      assert.equal(message?.text.charCodeAt(0), fill);
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerTransport.setPeer() and removePeer() change whom a node dials", async () => {
  const cluster = new TestCluster();
  try {
    const [two] = await cluster.startAll([2]);
    const one = await cluster.node(1);
    await one.start({ nodeId: 1 }, []);
    assert.equal(one.transport.isPeerUp(2), false);
    one.transport.setPeer(2, two!.endpoint);
    await cluster.until(() => one.transport.isPeerUp(2) && two!.transport.isPeerUp(1), "up");
    one.transport.removePeer(2);
    assert.equal(one.transport.isPeerUp(2), false);
    assert.deepEqual(one.transport.stats().peers, []);
    await cluster.until(() => !two!.transport.isPeerUp(1), "node 2 to see the close");
    assert.throws(
      () => one.transport.setPeer(1, two!.endpoint),
      hasCode("bad_config"),
      "a node is not its own peer",
    );
    assert.throws(() => one.transport.setPeer(3, { address: "nowhere" }), hasCode("bad_config"));
  } finally {
    await cluster.close();
  }
});

Deno.test("PeerTransport.start() refuses bad options with bad_config", async (t) => {
  const cluster = new TestCluster();
  const node = await cluster.node(1);
  const stranger = await cluster.node(2, { ca: await createClusterCa() });
  const base = {
    nodeId: 1,
    listen: "127.0.0.1:0",
    identity: node.identity,
    trust: { caCertificatePem: node.caCertificatePem },
    clusterSecret: "test-cluster-secret-0123456789",
    peers: new Map(),
    handlers: {
      hostsShard: () => true,
      onRaftMessage: () => {},
      onRequest: () => Promise.resolve(new Uint8Array(0)),
    },
  };
  const cases: { name: string; options: Partial<PeerTransportOptions> }[] = [
    { name: "node id 0", options: { nodeId: 0 } },
    { name: "a short secret", options: { clusterSecret: "short" } },
    { name: "a bad listen address", options: { listen: "127.0.0.1" } },
    { name: "a bad limit", options: { limits: { queueMessagesMax: 0 } } },
    { name: "keep-alive not below idle", options: { limits: { keepAliveIntervalMs: 9_000 } } },
    {
      name: "an answer buffer below the send buffer",
      options: { limits: { answerBufferBytesMax: 1 } },
    },
    { name: "an unknown protocol", options: { protocols: ["h3" as PeerProtocol] } },
    { name: "itself as a peer", options: { peers: new Map([[1, { address: "x:1" }]]) } },
    { name: "a peer without a port", options: { peers: new Map([[2, { address: "x" }]]) } },
    { name: "an identity another CA issued", options: { identity: stranger.identity } },
    {
      name: "an identity that is the CA's own certificate",
      options: { identity: { ...(await cluster.ca()), fingerprint: "" } },
    },
    { name: "a CA that holds no certificate", options: { trust: { caCertificatePem: "x" } } },
    {
      name: "a CA that is not the identity's issuer",
      options: { trust: { caCertificatePem: stranger.caCertificatePem } },
    },
    {
      name: "an identity with a broken key",
      options: {
        identity: {
          ...node.identity,
          keyPem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        },
      },
    },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, async () => {
      await assert.rejects(
        () => PeerTransport.start({ ...base, ...testCase.options }),
        hasCode("bad_config"),
      );
    });
  }
});
