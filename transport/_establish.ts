/**
 * Opening a peer connection, private to the peer folder: the QUIC dial or accept, the single
 * long-lived bidirectional stream, and the handshake (see handshake.ts): each side proves the
 * cluster secret and proves its node id with its CA-issued certificate and key.
 *
 * Both functions either return an authenticated {@linkcode PeerLink} or throw; on any failure
 * they close the QUIC connection themselves, so a caller never holds a half-open link.
 */

import {
  ALPN_LEGACY,
  ALPN_SHARDED,
  checkNodeId,
  encodeChallenge,
  encodeHello,
  encodeProof,
  FrameDecoder,
  type NodeProof,
  parseFrame,
  type PeerProtocol,
  PROTOCOL_VERSION,
} from "./frame_codec.ts";
import { nodeDnsName } from "./_x509.ts";
import {
  computeProof,
  createNonce,
  type HandshakeRole,
  type HandshakeTranscript,
  signTranscript,
  verifyProof,
  verifyTranscriptSignature,
} from "./handshake.ts";
import { checkPeerCertificate } from "./identity.ts";
import { FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX, type PeerLimits } from "./limits.ts";
import type { ResolvedTrust } from "./options.ts";
import type { RefusedPeerSet } from "./refused_peers.ts";

/** QUIC application close codes used by the peer channel. */
export const CloseCode = Object.freeze({
  normal: 0,
  protocolError: 1,
  authenticationFailed: 2,
  replaced: 3,
  handshakeTimeout: 4,
  peerRemoved: 5,
  internalError: 6,
  peerRefused: 7,
});

/** An authenticated connection, ready for traffic. */
export interface PeerLink {
  readonly conn: Deno.QuicConn;
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly decoder: FrameDecoder;
  /** Bytes read during the handshake that belong to the traffic phase (not yet decoded). */
  readonly leftoverBytes: Uint8Array;
  readonly remoteNodeId: number;
  /** The SHA-256 fingerprint of the certificate the peer proved its node id with. */
  readonly remoteCertificateFingerprint: string;
  readonly protocol: PeerProtocol;
  readonly role: "dialer" | "listener";
  /** Settles when the QUIC connection is closed; never rejects. */
  readonly closed: Promise<Deno.QuicCloseInfo | Error>;
}

/** What both sides need for the handshake. */
export interface HandshakeContext {
  readonly selfNodeId: number;
  readonly secretKey: CryptoKey;
  readonly limits: PeerLimits;
  /** The cluster CA: the dialer's only extra TLS root, and bound into every proof. */
  readonly trust: ResolvedTrust;
  /** This node's own identity: its signing key and its certificate (DER) to send. */
  readonly self: { readonly signingKey: CryptoKey; readonly certificateDer: Uint8Array };
  /** Peers refused although their certificate is genuine (removed nodes). */
  readonly refused: RefusedPeerSet;
}

/** The QUIC transport options shared by dialing and listening. */
export function quicTransportOptions(limits: PeerLimits): Deno.QuicTransportOptions {
  return {
    keepAliveInterval: limits.keepAliveIntervalMs,
    maxIdleTimeout: limits.idleTimeoutMs,
    // One stream per connection carries everything, so the peer may open exactly one.
    maxConcurrentBidirectionalStreams: 1,
    maxConcurrentUnidirectionalStreams: 1,
  };
}

/**
 * Dials `target`, verifies that its certificate chains to the cluster CA, and runs the dialer
 * side of the handshake.
 *
 * @throws {Error} when the connection, TLS or the Aspen handshake fails, or times out.
 */
export async function dialPeer(
  context: HandshakeContext & {
    readonly endpoint: Deno.QuicEndpoint;
    readonly target: { nodeId: number; hostname: string; port: number };
    readonly protocols: readonly PeerProtocol[];
  },
): Promise<PeerLink> {
  const conn = await Deno.connectQuic({
    ...quicTransportOptions(context.limits),
    endpoint: context.endpoint,
    hostname: context.target.hostname,
    port: context.target.port,
    // The cluster CA issues node N's certificate for node-N.aspen.invalid, a reserved name
    // that no public CA issues, so TLS passes only for a certificate the cluster CA issued to
    // the node this dialer means to reach (see _x509.ts).
    serverName: nodeDnsName(context.target.nodeId),
    caCerts: [context.trust.caCertificatePem],
    alpnProtocols: [...context.protocols],
  });
  const closed = settleClosed(conn);
  return await withHandshakeTimeout(conn, context.limits, async () => {
    const protocol = negotiatedProtocol(conn);
    const stream = await conn.createBidirectionalStream();
    const channel = new HandshakeChannel(stream.readable.getReader(), stream.writable.getWriter());
    const dialerNonce = createNonce();
    channel.write(encodeHello({
      dialerNodeId: context.selfNodeId,
      listenerNodeId: context.target.nodeId,
      nonce: dialerNonce,
    }));
    const challenge = parseFrame(await channel.next(), { hasShardPrefix: true });
    if (challenge.type !== "challenge") throw handshakeError("expected a challenge frame");
    if (challenge.listenerNodeId !== context.target.nodeId) {
      throw handshakeError(`the listener is node ${challenge.listenerNodeId}`);
    }
    const transcript: HandshakeTranscript = {
      alpn: protocol,
      dialerNodeId: context.selfNodeId,
      listenerNodeId: context.target.nodeId,
      dialerNonce,
      listenerNonce: challenge.nonce.slice(),
      caFingerprint: context.trust.caFingerprint,
    };
    const fingerprint = await checkNodeProof(context, {
      role: "listener",
      nodeId: context.target.nodeId,
      transcript,
      received: challenge,
    });
    channel.write(encodeProof(await makeNodeProof(context, "dialer", transcript)));
    return channel.toLink({
      conn,
      closed,
      remoteNodeId: context.target.nodeId,
      remoteCertificateFingerprint: fingerprint,
      protocol,
      role: "dialer",
    });
  });
}

/**
 * Runs the listener side on an accepted QUIC connection: waits for the dialer's stream, checks
 * its hello, answers with a challenge, and checks the dialer's proof.
 *
 * @throws {Error} when the handshake fails or times out; the connection is closed by then.
 */
export async function acceptPeer(
  context: HandshakeContext & { readonly conn: Deno.QuicConn },
): Promise<PeerLink> {
  const { conn } = context;
  const closed = settleClosed(conn);
  return await withHandshakeTimeout(conn, context.limits, async () => {
    const protocol = negotiatedProtocol(conn);
    const streams = conn.incomingBidirectionalStreams.getReader();
    const first = await streams.read();
    streams.releaseLock();
    if (first.done) throw handshakeError("the dialer opened no stream");
    const channel = new HandshakeChannel(
      first.value.readable.getReader(),
      first.value.writable.getWriter(),
    );
    const hello = parseFrame(await channel.next(), { hasShardPrefix: true });
    if (hello.type !== "hello") throw handshakeError("expected a hello frame");
    checkHello(hello, context.selfNodeId);
    const transcript: HandshakeTranscript = {
      alpn: protocol,
      dialerNodeId: hello.dialerNodeId,
      listenerNodeId: context.selfNodeId,
      dialerNonce: hello.nonce.slice(),
      listenerNonce: createNonce(),
      caFingerprint: context.trust.caFingerprint,
    };
    channel.write(encodeChallenge({
      listenerNodeId: context.selfNodeId,
      nonce: transcript.listenerNonce,
      ...await makeNodeProof(context, "listener", transcript),
    }));
    const proof = parseFrame(await channel.next(), { hasShardPrefix: true });
    if (proof.type !== "proof") throw handshakeError("expected a proof frame");
    const fingerprint = await checkNodeProof(context, {
      role: "dialer",
      nodeId: hello.dialerNodeId,
      transcript,
      received: proof,
    });
    return channel.toLink({
      conn,
      closed,
      remoteNodeId: hello.dialerNodeId,
      remoteCertificateFingerprint: fingerprint,
      protocol,
      role: "listener",
    });
  });
}

/** Raised when a peer fails the cluster-secret check or cannot prove its node id. */
export class PeerAuthenticationError extends Error {
  override readonly name: string = "PeerAuthenticationError";
}

/** Raised when a peer proved its node id but is refused (a removed node). */
export class PeerRefusedError extends PeerAuthenticationError {
  override readonly name: string = "PeerRefusedError";
  readonly nodeId: number;
  readonly certificateFingerprint: string;

  constructor(message: string, peer: { nodeId: number; certificateFingerprint: string }) {
    super(message);
    this.nodeId = peer.nodeId;
    this.certificateFingerprint = peer.certificateFingerprint;
  }
}

/** This side's proofs of `role`: the cluster-secret HMAC, and its signature and certificate. */
async function makeNodeProof(
  context: HandshakeContext,
  role: HandshakeRole,
  transcript: HandshakeTranscript,
): Promise<NodeProof> {
  return {
    proof: await computeProof(context.secretKey, role, transcript),
    signature: await signTranscript(context.self.signingKey, role, transcript),
    certificate: context.self.certificateDer,
  };
}

/**
 * Checks the peer's proofs, in order of cost: the cluster-secret HMAC first (so that nobody
 * without the secret makes this node parse a certificate or verify a signature), then its
 * certificate (issued by the cluster CA, valid now, naming the node id it claims), then its
 * signature with that certificate's key, then the refused set.
 *
 * @returns the fingerprint of the peer's certificate.
 * @throws {PeerAuthenticationError} when a check fails; {@linkcode PeerRefusedError} when the
 *   peer proved its id but is refused.
 */
async function checkNodeProof(
  context: HandshakeContext,
  check: {
    role: HandshakeRole;
    nodeId: number;
    transcript: HandshakeTranscript;
    received: NodeProof;
  },
): Promise<string> {
  const { role, nodeId, transcript, received } = check;
  const who = `the ${role} (node ${nodeId})`;
  if (!await verifyProof(context.secretKey, role, transcript, received.proof)) {
    throw authenticationError(`the cluster-secret proof of ${who} is wrong`);
  }
  const certificate = await checkPeerCertificate(received.certificate, {
    ca: context.trust.caCertificate,
    nodeId,
    now: new Date(),
  });
  if ("refused" in certificate) throw authenticationError(`${who}: ${certificate.refused}`);
  const fingerprint = certificate.fingerprint;
  const isSigned = await verifyTranscriptSignature(
    certificate.publicKey,
    role,
    transcript,
    received.signature,
  );
  if (!isSigned) {
    throw authenticationError(`the signature of ${who} does not verify with its certificate`);
  }
  const refusal = context.refused.reasonFor(nodeId, fingerprint);
  if (refusal !== null) {
    throw new PeerRefusedError(`Cannot authenticate a peer: ${who} is refused: ${refusal}`, {
      nodeId,
      certificateFingerprint: fingerprint,
    });
  }
  return fingerprint;
}

function checkHello(
  hello: { version: number; dialerNodeId: number; listenerNodeId: number },
  selfNodeId: number,
): void {
  if (hello.version !== PROTOCOL_VERSION) {
    throw handshakeError(`protocol version ${hello.version} is not ${PROTOCOL_VERSION}`);
  }
  if (hello.listenerNodeId !== selfNodeId) {
    throw handshakeError(`the dialer wants node ${hello.listenerNodeId}, this is ${selfNodeId}`);
  }
  // Invariant: the node with the smaller id dials, so each pair has one connection.
  if (hello.dialerNodeId === 0 || hello.dialerNodeId >= selfNodeId) {
    throw handshakeError(`node ${hello.dialerNodeId} may not dial node ${selfNodeId}`);
  }
  checkNodeId(hello.dialerNodeId);
}

/**
 * Reads handshake frames one at a time with a small frame limit. Bytes behind the last
 * handshake frame are not decoded here: they are handed to the traffic phase untouched, so
 * the full frame limit applies only once the peer is authenticated.
 */
class HandshakeChannel {
  readonly #decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #rest: Uint8Array = new Uint8Array(0);
  #writeFailure: unknown = null;

  constructor(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    writer: WritableStreamDefaultWriter<Uint8Array>,
  ) {
    this.#reader = reader;
    this.#writer = writer;
  }

  /** Returns the next frame body, reading more chunks as needed. */
  async next(): Promise<Uint8Array> {
    for (;;) {
      let frame: Uint8Array | null = null;
      const consumed = this.#decoder.push(this.#rest, (body) => {
        frame = body;
        return false;
      });
      this.#rest = this.#rest.subarray(consumed);
      if (frame !== null) return frame;
      if (this.#writeFailure !== null) throw this.#writeFailure;
      const result = await this.#reader.read();
      if (result.done) throw handshakeError("the stream ended during the handshake");
      this.#rest = result.value;
    }
  }

  /** Writes a handshake frame; a failure surfaces at the next read. */
  write(frame: Uint8Array): void {
    this.#writer.write(frame).catch((error: unknown) => {
      this.#writeFailure = error;
    });
  }

  /** Hands the stream to the traffic phase; call only after the peer is authenticated. */
  toLink(
    fields: Pick<
      PeerLink,
      "conn" | "closed" | "remoteNodeId" | "remoteCertificateFingerprint" | "protocol" | "role"
    >,
  ): PeerLink {
    this.#decoder.frameBytesMax = FRAME_BYTES_MAX;
    return {
      ...fields,
      reader: this.#reader,
      writer: this.#writer,
      decoder: this.#decoder,
      leftoverBytes: this.#rest,
    };
  }
}

async function withHandshakeTimeout<T>(
  conn: Deno.QuicConn,
  limits: PeerLimits,
  run: () => Promise<T>,
): Promise<T> {
  let isTimedOut = false;
  const timer = setTimeout(() => {
    isTimedOut = true;
    conn.close({ closeCode: CloseCode.handshakeTimeout, reason: "handshake timeout" });
  }, limits.handshakeTimeoutMs);
  try {
    return await run();
  } catch (error) {
    if (isTimedOut) throw handshakeError("it timed out", error);
    closeQuietly(conn, error);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function negotiatedProtocol(conn: Deno.QuicConn): PeerProtocol {
  const protocol = conn.protocol;
  if (protocol === ALPN_SHARDED || protocol === ALPN_LEGACY) return protocol;
  throw handshakeError(`ALPN "${String(protocol)}" is not an Aspen peer protocol`);
}

/** Attaches handlers to `conn.closed` at once: an unobserved rejection would end the process. */
export function settleClosed(conn: Deno.QuicConn): Promise<Deno.QuicCloseInfo | Error> {
  return conn.closed.then(
    (info) => info,
    (error: unknown) => error instanceof Error ? error : new Error(String(error)),
  );
}

function closeQuietly(conn: Deno.QuicConn, cause: unknown): void {
  const isAuth = cause instanceof PeerAuthenticationError;
  const closeCode = isAuth ? CloseCode.authenticationFailed : CloseCode.protocolError;
  const reason = isAuth ? "authentication failed" : "handshake failed";
  conn.close({ closeCode, reason });
}

function handshakeError(reason: string, cause?: unknown): Error {
  const message = `Cannot open a peer connection: ${reason}`;
  return cause === undefined ? new Error(message) : new Error(message, { cause });
}

function authenticationError(reason: string): PeerAuthenticationError {
  return new PeerAuthenticationError(`Cannot authenticate a peer: ${reason}`);
}
