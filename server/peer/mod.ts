/**
 * @module
 * The peer channel: every byte between Aspen nodes travels here, over QUIC
 * (`Deno.QuicEndpoint`, unstable "net"). It moves opaque payloads tagged with a shard id; the
 * Raft message codec lives in raft/ and the request codec in server/, not here.
 *
 * Allowed dependencies: raft/ (assertions) and shard/ (AspenError) through their mod.ts,
 * Deno's QUIC and WebCrypto APIs. No npm packages: the X.509 encoder is our own _der.ts.
 *
 * ## What it does
 * - One QUIC connection per pair of nodes, shared by every shard. The node with the smaller id
 *   dials; the other listens. Reconnects use exponential backoff with a cap.
 * - One long-lived bidirectional stream per connection carries length-prefixed frames both
 *   ways (format in frame_codec.ts). ALPN `aspen-raft-shard` puts a 4-byte big-endian shard id
 *   before each message; the legacy ALPN `aspen-raft` carries shard 0 only, without the prefix.
 * - `send()` queues one-way Raft messages; each flush writes everything queued for a peer as
 *   one batch frame, so the heartbeats of all shards for a peer leave together. Queues are
 *   bounded and drop (counted) when full or when the peer is down.
 * - `request()` is RPC for forwarding client requests to a shard's leader: ids, many in
 *   flight, a deadline each, typed errors ({@linkcode PeerRequestError}).
 * - An unknown shard gets an error frame back and the connection stays up; a malformed or
 *   over-limit frame closes that connection only. Nothing the peer sends can throw out of the
 *   transport (`conn.closed` and every stream promise are always observed).
 * - `stats()` gives per-peer round-trip time (ping frames), frames and bytes in and out, drops,
 *   connection state and reconnects.
 *
 * ## Trust model
 * Each node creates an ECDSA P-256 key and a self-signed certificate on first start
 * ({@linkcode loadOrCreatePeerIdentity}) and keeps them in its data dir. Two checks guard
 * every connection:
 *
 * 1. **Certificate pinning (authenticates the listener, encrypts the link).** A dialer knows
 *    each peer's certificate (`PeerEndpoint.certificatePem`, learned when the peer joined:
 *    recorded with its address in the cluster membership). It connects with
 *    `caCerts: [that certificate]` and `serverName: "localhost"`. Every Aspen certificate names
 *    `DNS:localhost`, so the pinned certificate is the only root that can vouch for it: public
 *    CAs never issue for "localhost". A listener holding any other key fails TLS.
 * 2. **Cluster-secret handshake (authenticates both sides, proves membership).** QUIC in Deno
 *    has no client certificates, so the first thing on a connection is an HMAC-SHA256
 *    challenge-response keyed by the cluster secret, over both nonces, both node ids, the ALPN
 *    and the listener's certificate fingerprint (handshake.ts). The secret never crosses the
 *    wire. Until the dialer's proof checks out, the listener reads nothing but handshake
 *    frames (at most 128 bytes each) and delivers nothing; a failure closes the connection.
 *
 * So a process without the cluster secret cannot deliver a Raft message or a request, and
 * cannot pose as a listener; a process with the secret but not a peer's key cannot pose as
 * that peer's listener. A secret holder can claim any node id as a dialer: the secret is the
 * cluster's membership credential, and whoever holds it is trusted as a member.
 *
 * The dialer needs the listener's certificate; the listener needs nothing about the dialer
 * but the secret. Because the smaller id dials, a newly added node with a larger id can be
 * reached before it knows anyone's certificate.
 *
 * @example
 * ```ts
 * import { loadOrCreatePeerIdentity, PeerTransport } from "./mod.ts";
 *
 * const identity = await loadOrCreatePeerIdentity({
 *   directory: "data/node-1", nodeId: 1, listenHost: "127.0.0.1",
 * });
 * const transport = await PeerTransport.start({
 *   nodeId: 1,
 *   listen: "127.0.0.1:7001",
 *   identity,
 *   clusterSecret,
 *   peers: new Map([[2, { address: "127.0.0.1:7002", certificatePem: node2Certificate }]]),
 *   handlers: {
 *     hostsShard: (shardId) => replicas.has(shardId),
 *     onRaftMessage: (from, shardId, payload) => replicas.get(shardId)!.inbox.push(payload),
 *     onRequest: (from, shardId, payload) => router.handle(shardId, payload),
 *   },
 * });
 * transport.send(2, 0, heartbeat);
 * const answer = await transport.request(2, 3, forwarded, { deadlineMs: 2000 });
 * await transport.close();
 * ```
 */

export {
  type PeerEndpoint,
  type PeerHandlers,
  PeerTransport,
  type PeerTransportOptions,
} from "./peer_transport.ts";
export { INTERNAL_ERROR_CODE, type PeerErrorKind, PeerRequestError } from "./errors.ts";
export {
  FAULT_DELAY_MS_MAX,
  type PeerFaultOptions,
  type PeerFaultRule,
  PeerFaults,
} from "./faults.ts";
export {
  certificateFingerprint,
  createPeerIdentity,
  loadOrCreatePeerIdentity,
  PEER_CERTIFICATE_FILE,
  PEER_KEY_FILE,
  type PeerIdentity,
  type PeerIdentityOptions,
} from "./identity.ts";
export {
  BATCH_MESSAGES_MAX,
  CLUSTER_SECRET_BYTES_MIN,
  FRAME_BYTES_MAX,
  HANDSHAKE_FRAME_BYTES_MAX,
  PEER_LIMITS_DEFAULT,
  PEER_PAYLOAD_BYTES_MAX,
  type PeerLimits,
  PEERS_MAX,
} from "./limits.ts";
export type { PeerCounters, PeerStats, PeerTransportStats } from "./stats.ts";
export { createConsoleLogger, type LogFields, type PeerLogger } from "./logger.ts";
export { formatHostPort, type HostPort, parseHostPort } from "./address.ts";
// The wire format and handshake, for tools and for tests that speak the protocol by hand.
export {
  ALPN_LEGACY,
  ALPN_SHARDED,
  encodeChallenge,
  encodeError,
  encodeHello,
  encodePingOrPong,
  encodeProof,
  encodeRaftBatch,
  encodeRequestOrResponse,
  type Frame,
  FrameDecoder,
  FrameError,
  type FrameErrorReason,
  FrameType,
  parseFrame,
  type PeerProtocol,
  type ShardMessage,
  type WireError,
} from "./frame_codec.ts";
export {
  computeProof,
  createNonce,
  type HandshakeTranscript,
  importClusterSecret,
  verifyProof,
} from "./handshake.ts";
