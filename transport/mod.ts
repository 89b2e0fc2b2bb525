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
 * CA:TRUE certificate). Every node has its own P-256 key and an end-entity certificate the CA
 * issued for its node id: SAN `URI:aspen://node/<id>` and `DNS:node-<id>.aspen.invalid` (plus
 * `DNS:localhost` and its listen IP), kept in its data dir. A node whose credentials hold the
 * CA key issues its own on first start ({@linkcode loadOrCreatePeerIdentity}), and reissues
 * one that names no node id or another one; a node given credentials without the CA key must
 * be given its identity ({@linkcode createPeerIdentity} + {@linkcode writePeerIdentity}, which
 * `aspen cluster issue-node` runs and the join flow will run over the network). So a node needs
 * only its peers' addresses to dial them. Three checks guard every connection:
 *
 * 1. **TLS for the node's name (authenticates the listener as the node dialed).** A dialer
 *    connects with `caCerts: [the CA certificate]` and `serverName: "node-<id>.aspen.invalid"`
 *    for the node id it dials. `.invalid` is reserved, no public CA issues for it, and the CA
 *    issues that name only in node `<id>`'s certificate, so TLS passes only for a certificate
 *    the cluster CA issued to that very node: another node's (NotValidForName), another CA's
 *    (BadSignature) and a self-signed one (UnknownIssuer) fail. The link is encrypted.
 * 2. **Per-node proof in the handshake (authenticates both sides' node ids).** Deno's QUIC has
 *    no client certificates and does not expose the certificate the server presented, so
 *    after TLS each side sends its certificate and an ECDSA P-256 signature, made with its node
 *    key, over a transcript of both nonces, both node ids, the ALPN, the CA fingerprint and its
 *    role (handshake.ts). The verifier checks that the CA issued the certificate, that it is
 *    within its validity, that it names exactly the node id claimed, and that the signature
 *    verifies with its key. Until the dialer's proofs check out, the listener reads nothing
 *    but handshake frames (at most HANDSHAKE_FRAME_BYTES_MAX bytes each) and delivers nothing.
 * 3. **Refused peers (removed nodes).** A certificate fingerprint or node id in the refused set
 *    ({@linkcode PeerTransport.setRefusedPeers}, or `refusedPeers` at start) fails the
 *    handshake on either side with a "Refused node N" log line; making a connected peer refused
 *    closes its connection at once, and a refused node id is not dialed.
 *
 * The cluster-secret HMAC stays in the handshake, checked before anything else of the peer's
 * proof. What it adds: a process that never held a node's files (no secret) cannot make a
 * listener parse a certificate or verify a signature, so the X.509 parser and the ECDSA check
 * face only past or present members. It is no longer the membership credential: every node,
 * and every removed node, has it; the node key and certificate are.
 *
 * What an attacker can do:
 * - **(c) With nothing**, even on the network path: no TLS as a listener (no CA-issued key for
 *   the name), no proof as a dialer (no secret, no node key); it can drop and delay packets.
 * - **(a) With one node's key and certificate (and its credentials file: the secret)**: act as
 *   that node, dial and answer as it, read what is sent to it, until it is refused. It cannot
 *   claim any other node id: its certificate names one node, TLS for another node's name fails,
 *   and it cannot sign for another certificate's key. It cannot relay other nodes' connections
 *   either: a dialer's TLS checks the name of the node it means to reach. If that node's
 *   credentials file held the CA key, the attacker can mint any node's certificate: keep the CA
 *   key off nodes that do not need it (`aspen cluster credentials --without-ca-key`).
 * - **(b) With a removed node's files**, once its certificate fingerprint or node id is
 *   refused on every node: nothing more than (c) plus the secret. Its handshakes fail on both
 *   sides; nobody dials it; TLS still accepts its certificate (rustls checks no revocation), but
 *   only for its own name, which members no longer dial. Before the refusal reaches a node, it
 *   is as (a). Refusal by fingerprint alone does not cover a fresh certificate issued for the
 *   same id; refuse the node id too when the id is retired.
 *
 * Keep node keys as private as the credentials file (the key file is written with mode 0600).
 *
 * @example
 * ```ts
 * import { loadOrCreatePeerIdentity, PeerTransport } from "./mod.ts";
 *
 * // From the credentials file written by `aspen cluster init` (createClusterCa()); keyPem may
 * // be null when the data dir holds an identity `aspen cluster issue-node` wrote.
 * const ca = { keyPem: credentials.caKeyPem, certificatePem: credentials.caCertificatePem };
 * const identity = await loadOrCreatePeerIdentity({
 *   directory: "data/node-1", nodeId: 1, listenHost: "127.0.0.1", ca,
 * });
 * const transport = await PeerTransport.start({
 *   nodeId: 1,
 *   listen: "127.0.0.1:7001",
 *   identity,
 *   trust: { caCertificatePem: ca.certificatePem },
 *   clusterSecret: credentials.secret,
 *   refusedPeers: { certificateFingerprints: [removedNodeFingerprint], nodeIds: [5] },
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
  createPeerKey,
  importPeerSigningKey,
  isCertificateIssuedBy,
  issuePeerCertificate,
  loadOrCreatePeerIdentity,
  parseCaCertificate,
  PEER_CERTIFICATE_FILE,
  PEER_KEY_FILE,
  type PeerIdentity,
  type PeerIdentityOptions,
  type TrustedCa,
  writeFileAtomic,
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
