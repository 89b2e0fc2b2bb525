/**
 * @module
 * The peer channel: every byte between Aspen nodes travels here, over QUIC
 * (`Deno.QuicEndpoint`, unstable "net"). It moves opaque payloads tagged with a shard id; the
 * Raft message codec lives in raft/ and the request codec in server/, not here.
 *
 * Allowed dependencies: raft/ (assertions) and shard/ (AspenError) through their mod.ts,
 * Deno's QUIC and WebCrypto APIs, and one npm package: `@peculiar/x509` (on WebCrypto) builds
 * and reads the cluster CA and node certificates in _x509.ts.
 * Nothing from the node runtime (server/) or above: the node imports this folder, not the
 * other way round.
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
 * `aspen cluster init` makes the cluster credentials once: the cluster secret and a cluster
 * certificate authority ({@linkcode createClusterCa}: an ECDSA P-256 key and a self-signed
 * CA:TRUE certificate). Every node gets the same credentials file. On first start a node makes
 * its own P-256 key and has the CA issue it an end-entity certificate (SAN `DNS:localhost`
 * plus its listen IP), and keeps both in its data dir ({@linkcode loadOrCreatePeerIdentity});
 * a later start reuses them while they were issued by the same CA, and re-issues otherwise.
 * So a node needs only its peers' addresses to dial them: no certificate is exchanged. Two
 * checks guard every connection:
 *
 * 1. **CA-verified TLS (authenticates the listener as a CA-issued node, encrypts the link).**
 *    A dialer connects with `caCerts: [the CA certificate]` (`trust.caCertificatePem`) and
 *    `serverName: "localhost"`. Public CAs never issue for "localhost", so the only chain that
 *    can pass is leaf -> cluster CA: a listener whose certificate another CA issued (even one
 *    with the same name) fails with BadSignature, a self-signed one with UnknownIssuer.
 *    `start()` also refuses an identity that the configured CA did not issue.
 * 2. **Cluster-secret handshake (authenticates both sides, proves membership).** QUIC in Deno
 *    has no client certificates, so the first thing on a connection is an HMAC-SHA256
 *    challenge-response keyed by the cluster secret, over both nonces, both node ids, the ALPN
 *    and the CA certificate's fingerprint (handshake.ts). The secret never crosses the wire.
 *    Until the dialer's proof checks out, the listener reads nothing but handshake frames (at
 *    most 128 bytes each) and delivers nothing; a failure closes the connection.
 *
 * What the transcript binds. With pinning, the transcript bound the listener's own certificate
 * fingerprint, which the dialer knew in advance. Deno's `QuicConn` does not expose the
 * certificate the server presented, so a dialer cannot learn which CA-issued leaf it got. A
 * leaf sent inside the handshake would not fix that: nothing ties those bytes to the TLS
 * session, so a relay could forward a genuine listener's leaf and proof unchanged. The proof
 * therefore binds the fact TLS did verify, the CA, and no more is claimed.
 *
 * So a process without the cluster secret cannot deliver a Raft message or a request (it
 * cannot make a dialer's proof) and cannot answer as a listener (it cannot make a listener's
 * proof); without a CA-issued key it cannot even finish TLS as a listener. The cluster
 * credentials (secret and CA key) are the membership credential: whoever holds them can mint
 * a certificate and claim any node id, as dialer or listener, and is trusted as a member. A
 * leaked node key without the secret lets an on-path attacker relay (and read) connections
 * between members, because every node certificate is valid for "localhost"; keep node keys
 * as private as the credentials file (the key file is written with mode 0600).
 *
 * @example
 * ```ts
 * import { loadOrCreatePeerIdentity, PeerTransport } from "./mod.ts";
 *
 * // From the credentials file written by `aspen cluster init` (createClusterCa()).
 * const ca = { keyPem: credentials.caKeyPem, certificatePem: credentials.caCertificatePem };
 * const identity = await loadOrCreatePeerIdentity({
 *   directory: "data/node-1", nodeId: 1, listenHost: "127.0.0.1", ca,
 * });
 * const transport = await PeerTransport.start({
 *   nodeId: 1,
 *   listen: "127.0.0.1:7001",
 *   identity,
 *   trust: { caCertificatePem: ca.certificatePem },
 *   clusterSecret: credentials.peerSecret,
 *   peers: new Map([[2, { address: "127.0.0.1:7002" }], [3, { address: "127.0.0.1:7003" }]]),
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
  type PeerTrust,
} from "./peer_transport.ts";
export { INTERNAL_ERROR_CODE, type PeerErrorKind, PeerRequestError } from "./errors.ts";
export {
  FAULT_DELAY_MS_MAX,
  type PeerFaultOptions,
  type PeerFaultRule,
  PeerFaults,
} from "./faults.ts";
export {
  certificateDer,
  certificateFingerprint,
  type CheckedPeerCertificate,
  checkPeerCertificate,
  type ClusterCa,
  createClusterCa,
  createPeerIdentity,
  importPeerSigningKey,
  isCertificateIssuedBy,
  loadOrCreatePeerIdentity,
  parseCaCertificate,
  PEER_CERTIFICATE_FILE,
  PEER_KEY_FILE,
  type PeerIdentity,
  type PeerIdentityOptions,
  type TrustedCa,
  writePeerIdentity,
} from "./identity.ts";
export { type RefusedPeers, RefusedPeerSet } from "./refused_peers.ts";
export {
  BATCH_MESSAGES_MAX,
  CLUSTER_SECRET_BYTES_MIN,
  FRAME_BYTES_MAX,
  HANDSHAKE_FRAME_BYTES_MAX,
  PEER_CERTIFICATE_BYTES_MAX,
  PEER_LIMITS_DEFAULT,
  PEER_PAYLOAD_BYTES_MAX,
  type PeerLimits,
  PEERS_MAX,
  PEERS_REFUSED_MAX,
} from "./limits.ts";
export type { PeerCounters, PeerStats, PeerTransportStats } from "./stats.ts";
export { createConsoleLogger, type LogFields, type PeerLogger } from "./logger.ts";
export {
  formatHostPort,
  HOSTNAME_LENGTH_MAX,
  type HostPort,
  type HostPortOptions,
  parseHostPort,
  PORT_MAX,
  readHostPort,
} from "./address.ts";
export { EarliestTimer } from "./earliest_timer.ts";
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
  encodeRequest,
  encodeResponse,
  type Frame,
  FrameDecoder,
  FrameError,
  type FrameErrorReason,
  FrameType,
  type NodeProof,
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
  signTranscript,
  verifyProof,
  verifyTranscriptSignature,
} from "./handshake.ts";
