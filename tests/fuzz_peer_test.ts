/**
 * Hostile peer traffic against the QUIC port of a real `aspen node` process (node 3 of a
 * 3-node cluster). A hand-driven raw peer holding the cluster secret passes the handshake as
 * node 1, then sends a seeded mix of: random bytes, huge length prefixes, unknown frame types,
 * batches whose count overruns the frame, handshake frames after the handshake, frames cut
 * short, valid frames with flipped bytes, Raft batches and requests for shards the node does
 * not host (or that do not exist), Raft batches whose payload is garbage, and forwarded
 * requests whose payload is garbage or well-formed JSON with missing or mistyped fields.
 *
 * Checks: a malformed frame closes that connection with the protocol-error code; a request
 * for an unknown shard or with a bad payload is answered with an error frame and the
 * connection stays up; whatever was sent, node 3 never exits and afterwards still serves
 * writes and reads, every shard has a leader, and the replicas converge.
 * `ASPEN_FUZZ_SEED` replays a run; the seed is printed.
 */
import { deepEqual, equal } from "node:assert/strict";
import { SeededPrng } from "../raft/mod.ts";
import { parseCredentials } from "../server/auth.ts";
import {
  createPeerIdentity,
  encodeProof,
  encodeRaftBatch,
  encodeRequest,
  encodeResponse,
  type Frame,
  type PeerIdentity,
} from "../transport/mod.ts";
import { ChaosCluster } from "./chaos/cluster.ts";
import { awaitConvergence } from "./chaos/verify.ts";
import { closeCodeOf, RawPeer } from "./fixtures/peer_raw_client.ts";

/** Connections opened per run, each carrying one hostile input. */
const FUZZ_CONNECTIONS = Number(Deno.env.get("ASPEN_FUZZ_CONNECTIONS") ?? 60);
/** How long the listener may take to close or answer. */
const ANSWER_TIMEOUT_MS = 10_000;
/** Frames read while looking for an answer among heartbeats. */
const ANSWER_FRAMES_MAX = 10_000;
/** The close code of a protocol error (transport/_establish.ts). */
const PROTOCOL_ERROR = 1;
const SHARDED = { hasShardPrefix: true };

/** What the listener must do with one input. */
type Expectation = "close" | "error_frame" | "anything";

interface PeerInput {
  readonly label: string;
  readonly bytes: Uint8Array;
  readonly expect: Expectation;
}

type InputMaker = (prng: SeededPrng) => PeerInput;

const encoder = new TextEncoder();

const INPUTS: readonly InputMaker[] = [
  (prng) => ({
    label: "random bytes",
    bytes: randomBytes(prng, 1 + prng.nextInt(4096)),
    expect: "anything",
  }),
  () => ({
    label: "huge length prefix",
    bytes: Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x10),
    expect: "close",
  }),
  () => ({
    label: "length over the limit",
    bytes: Uint8Array.of(0x7f, 0xff, 0xff, 0xff),
    expect: "close",
  }),
  () => ({
    label: "unknown frame type",
    bytes: Uint8Array.of(0, 0, 0, 2, 0x7f, 0),
    expect: "close",
  }),
  () => ({ label: "empty frame", bytes: Uint8Array.of(0, 0, 0, 0), expect: "close" }),
  () => ({
    label: "batch count overrun",
    bytes: Uint8Array.of(0, 0, 0, 5, 0x10, 0, 0, 0, 9),
    expect: "close",
  }),
  () => ({
    label: "handshake after handshake",
    bytes: encodeProof({
      proof: new Uint8Array(32),
      signature: new Uint8Array(64),
      certificate: new Uint8Array(1),
    }),
    expect: "close",
  }),
  (prng) => {
    const frame = raftBatch(0, randomBytes(prng, 64));
    return {
      label: "frame cut short",
      bytes: frame.subarray(0, 1 + prng.nextInt(frame.length - 2)),
      expect: "anything",
    };
  },
  (prng) => {
    const frame = raftBatch(prng.nextInt(2), randomBytes(prng, 32 + prng.nextInt(200)));
    for (let i = 0; i < 3; i++) frame[prng.nextInt(frame.length)] = prng.nextInt(256);
    return { label: "flipped bytes", bytes: frame, expect: "anything" };
  },
  (prng) => ({
    label: "raft batch for a shard not hosted",
    bytes: raftBatch(pick(prng, [2, 7, 1024, 0xffff_fffe]), randomBytes(prng, 16)),
    expect: "error_frame",
  }),
  (prng) => ({
    label: "raft batch with a garbage payload",
    bytes: raftBatch(prng.nextInt(2), randomBytes(prng, 1 + prng.nextInt(300))),
    expect: "anything",
  }),
  (prng) => ({
    label: "request for a shard not hosted",
    bytes: request(pick(prng, [2, 9, 0xffff_fffe]), encoder.encode('{"kind":"status"}')),
    expect: "error_frame",
  }),
  (prng) => ({
    label: "request with a garbage payload",
    bytes: request(prng.nextInt(2), randomBytes(prng, 1 + prng.nextInt(200))),
    expect: "error_frame",
  }),
  (prng) => ({
    label: "request with bad fields",
    bytes: request(prng.nextInt(2), encoder.encode(JSON.stringify(pick(prng, BAD_REQUESTS)))),
    expect: "error_frame",
  }),
  (prng) => ({
    label: "request whose deadline passed",
    bytes: encodeRequest({
      requestId: 7,
      shardId: prng.nextInt(2),
      deadlineMs: 0,
      payload: encoder.encode('{"kind":"status"}'),
    }, SHARDED),
    expect: "error_frame",
  }),
  (prng) => ({
    // Version 1 had no deadline: the payload's first bytes are read as one, the rest is junk.
    label: "request frame of protocol version 1",
    bytes: frameOf(Uint8Array.of(
      0x11,
      0,
      0,
      0,
      7,
      0,
      0,
      0,
      prng.nextInt(2),
      ...encoder.encode('{"kind":"status"}'),
    )),
    expect: "error_frame",
  }),
  (prng) => ({
    label: "response nobody asked for",
    bytes: encodeResponse({
      requestId: 1 + prng.nextInt(1000),
      shardId: 0,
      payload: randomBytes(prng, 8),
    }, SHARDED),
    expect: "anything",
  }),
];

/** Forwarded requests that are JSON but not valid requests. */
const BAD_REQUESTS: readonly unknown[] = [
  null,
  [],
  { kind: "get" },
  { kind: "get", key: 5, serializable: "yes" },
  { kind: "range" },
  { kind: "range", range: { range: 7 } },
  { kind: "leaseKeepAlive", id: "x" },
  { kind: "leaseInfo", id: -1 },
  { kind: "transferLeader", to: "two" },
  { kind: "transferLeader", to: 99 },
  { kind: "propose", command: { type: "put", key: 1 } },
  { kind: "propose" },
  { kind: "explode" },
];

Deno.test({
  name: "peer fuzz: hostile frames close their connection and the node carries on",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const seed = Number(Deno.env.get("ASPEN_FUZZ_SEED") ?? 20_260_802);
    console.log(`peer fuzz seed ${seed} (ASPEN_FUZZ_SEED replays it)`);
    const chaos = await ChaosCluster.launch({
      nodes: 3,
      shards: 2,
      isFaultInjectionEnabled: false,
    });
    try {
      const path = chaos.cluster.record.credentialsFile;
      const credentials = parseCredentials(path, await Deno.readTextFile(path));
      const target = {
        address: chaos.cluster.nodes.find((node) => node.id === 3)!.peerAddress,
        caCertificatePem: credentials.caCertificatePem,
        identity: await createPeerIdentity({
          nodeId: 1,
          listenHost: "127.0.0.1",
          ca: { keyPem: credentials.caKeyPem!, certificatePem: credentials.caCertificatePem },
        }),
      };
      const prng = new SeededPrng(seed);
      const failures: string[] = [];
      const seen: Record<string, number> = {};
      // Every kind of input and every bad request once, then a seeded random mix.
      const sweep = [
        ...INPUTS,
        ...BAD_REQUESTS.map((bad): InputMaker => () => ({
          label: "request with bad fields",
          bytes: request(0, encoder.encode(JSON.stringify(bad))),
          expect: "error_frame",
        })),
      ];
      for (let i = 0; i < sweep.length + FUZZ_CONNECTIONS; i++) {
        const input = (sweep[i] ?? INPUTS[prng.nextInt(INPUTS.length)]!)(prng);
        seen[input.label] = (seen[input.label] ?? 0) + 1;
        const send = () =>
          sendInput(target, credentials.secret, input).catch((error) =>
            `connection failed (${error}); node 3 log:\n${chaos.logsOf(3).slice(-15).join("\n")}`
          );
        let problem = await send();
        if (problem === REPLACED) problem = await send();
        if (problem !== null) failures.push(`#${i} ${input.label}: ${problem}`);
        if (!chaos.cluster.isRunning(3)) failures.push(`#${i} ${input.label}: node 3 exited`);
        if (!chaos.cluster.isRunning(3)) break;
      }
      console.log(`inputs: ${JSON.stringify(seen)}`);
      equal(failures.length, 0, `seed ${seed}:\n${failures.join("\n")}`);
      deepEqual(chaos.unexpectedExits, []);
      await chaos.cluster.waitForLeaders(3, 30_000);
      const write = await chaos.call(3, {
        method: "PUT",
        path: "/v1/kv/after-fuzz",
        body: { value: "ok" },
        timeoutMs: 15_000,
      });
      equal(write.status, 200, "node 3 still serves writes");
      for (const id of chaos.nodeIds) {
        const read = await chaos.call(id, {
          method: "GET",
          path: "/v1/kv/after-fuzz",
          timeoutMs: 15_000,
        });
        equal((read.json?.kv as { value?: string } | undefined)?.value, "ok", `read through ${id}`);
      }
      const anomalies = await awaitConvergence(chaos, {
        shards: 2,
        replicasPerShard: 3,
        timeoutMs: 30_000,
        nowMs: () => performance.now(),
      });
      deepEqual(anomalies, []);
      const fatal = chaos.logsOf(3).filter((line) => /AssertionError|Uncaught|EXITED/.test(line));
      deepEqual(fatal, []);
    } finally {
      await chaos.destroy({ keepDir: false });
    }
  },
});

/** Opens a connection, authenticates as node 1, sends `input`; returns what went wrong, or null. */
async function sendInput(
  target: { address: string; caCertificatePem: string; identity: PeerIdentity },
  secret: string,
  input: PeerInput,
): Promise<string | null> {
  const raw = await RawPeer.open(target);
  try {
    const challenge = await raw.handshake({
      dialerNodeId: 1,
      listenerNodeId: 3,
      identity: target.identity,
      secret,
      caCertificatePem: target.caCertificatePem,
      trailing: input.bytes,
    });
    if (challenge?.type !== "challenge") return `no challenge: ${JSON.stringify(challenge)}`;
    if (input.expect === "close") {
      const closed = await within(raw.closed, ANSWER_TIMEOUT_MS);
      if (closed === null) return "the connection stayed open";
      const code = closeCodeOf(closed);
      return code === PROTOCOL_ERROR ? null : `closed with code ${code}, not a protocol error`;
    }
    if (input.expect === "error_frame") {
      const frame = await within(nextAnswer(raw), ANSWER_TIMEOUT_MS);
      if (frame === undefined) return REPLACED;
      if (frame === null) return "no answer";
      return frame.type === "error" ? null : `answered ${frame.type}, not an error frame`;
    }
    // Anything goes, but the listener must still be there to say so: wait briefly.
    await within(raw.closed, 200);
    return null;
  } finally {
    await raw.close();
  }
}

/**
 * What sendInput() says when node 3 closed the connection before answering: this connection
 * claims to be node 1, and the real node 1 reconnecting replaces it. The input is sent again.
 */
const REPLACED = "closed before answering (replaced by the real node 1's connection?)";

/**
 * The first answer after the challenge: an error or a response. Pings and the Raft traffic
 * that node 3 sends to "node 1" on this connection (it replaced the real one) are skipped.
 */
async function nextAnswer(raw: RawPeer): Promise<Frame | undefined> {
  for (let index = 1; index < ANSWER_FRAMES_MAX; index++) {
    const frame = await raw.nextFrame(index);
    if (frame === null) return undefined;
    if (frame.type === "error" || frame.type === "response") return frame;
  }
  return undefined;
}

async function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function raftBatch(shardId: number, payload: Uint8Array): Uint8Array {
  return encodeRaftBatch([{ shardId, payload }], { start: 0, end: 1 }, SHARDED);
}

function request(shardId: number, payload: Uint8Array): Uint8Array {
  return encodeRequest({ requestId: 7, shardId, deadlineMs: ANSWER_TIMEOUT_MS, payload }, SHARDED);
}

/** Prefixes a frame body with its length. */
function frameOf(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

function randomBytes(prng: SeededPrng, count: number): Uint8Array {
  const bytes = new Uint8Array(count);
  for (let i = 0; i < count; i++) bytes[i] = prng.nextInt(256);
  return bytes;
}

function pick<T>(prng: SeededPrng, items: readonly T[]): T {
  return items[prng.nextInt(items.length)]!;
}
