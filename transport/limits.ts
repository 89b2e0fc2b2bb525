/**
 * Named limits of the peer channel (STYLE §6: everything has a limit, none is "0 = unlimited").
 *
 * Wire limits (frame and payload sizes, batch counts) are constants because both ends must
 * agree on them. Per-node tunables (queues, timers, backoff) live in {@linkcode PeerLimits},
 * whose defaults are the `*_DEFAULT` constants below; tests pass smaller timers.
 */

import { assert } from "../raft/mod.ts";

/** The largest frame body (everything after the 4-byte length) that either side accepts. */
export const FRAME_BYTES_MAX = 4 * 1024 * 1024;
/**
 * The largest node certificate (DER) sent in the handshake. Aspen's are about 600 bytes (one
 * P-256 key, a few names); the cap bounds what an unauthenticated peer makes a node parse.
 */
export const PEER_CERTIFICATE_BYTES_MAX = 2048;
/**
 * Before authentication a peer may only send handshake frames, which are small: the largest,
 * a challenge, carries a node id, a nonce, an HMAC, a signature and one certificate.
 */
export const HANDSHAKE_FRAME_BYTES_MAX = PEER_CERTIFICATE_BYTES_MAX + 256;
/** The largest payload of one Raft message or one request/response. */
export const PEER_PAYLOAD_BYTES_MAX = FRAME_BYTES_MAX - 64;
/** The most Raft messages in one batch frame; a larger flush is split into several frames. */
export const BATCH_MESSAGES_MAX = 16_384;
/** The longest error code, and the longest error JSON, carried by an error frame. */
export const ERROR_JSON_BYTES_MAX = 16 * 1024;
/**
 * The most nodes in a cluster: the most entries in the config's `[cluster] peers` list (this
 * node included) and the most peers one node's channel tracks (configured plus authenticated
 * inbound ones). One constant for both, so that start() can never be handed more configured
 * peers than the channel tracks. 64 rather than 1,024: each peer may hold up to
 * QUEUE_BYTES_MAX_DEFAULT + ANSWER_BUFFER_BYTES_MAX_DEFAULT (48 MiB) of queued bytes, so 64
 * peers bound that at 3 GiB where 1,024 would allow 48 GiB, and shard placement, status fan-out
 * and the peers list itself are sized for tens of nodes, not thousands.
 */
export const PEERS_MAX = 64;
/** The most refused certificate fingerprints, and the most refused node ids, per node. */
export const PEERS_REFUSED_MAX = 4096;
/** The fewest bytes a cluster secret may have: a shorter one is guessable offline. */
export const CLUSTER_SECRET_BYTES_MIN = 16;
/** Inbound connections that may sit in the TLS or Aspen handshake at once. */
export const PENDING_HANDSHAKES_MAX = 64;

/** Per-node tunables of the peer channel. All are positive integers. */
export interface PeerLimits {
  /** Raft messages queued for one peer between flushes; past it new ones are dropped. */
  readonly queueMessagesMax: number;
  /** Payload bytes queued for one peer between flushes; past it new ones are dropped. */
  readonly queueBytesMax: number;
  /** Bytes handed to the QUIC stream and not yet accepted by it; past it flushes wait. */
  readonly sendBufferBytesMax: number;
  /**
   * Bytes handed to the QUIC stream and not yet accepted by it past which this node stops
   * answering the peer: its requests are shed unrun, and responses, error frames and pongs
   * are dropped (see InboundDispatcher). At least `sendBufferBytesMax`, so that answers are
   * shed only once Raft traffic to the peer is held back already.
   */
  readonly answerBufferBytesMax: number;
  /** Requests this node has in flight to one peer; past it `request()` is refused. */
  readonly requestsInflightMax: number;
  /** Requests one peer may have in flight at this node; past it they are refused. */
  readonly inboundRequestsInflightMax: number;
  /** The longest deadline a request may ask for. */
  readonly requestDeadlineMsMax: number;
  /** First reconnect delay; it doubles after each failure up to `reconnectDelayMsMax`. */
  readonly reconnectDelayMsMin: number;
  /** The cap of the reconnect backoff. */
  readonly reconnectDelayMsMax: number;
  /** How often a ping frame measures the round-trip time. */
  readonly pingIntervalMs: number;
  /** QUIC keep-alive period, so idle but healthy connections never time out. */
  readonly keepAliveIntervalMs: number;
  /** QUIC idle timeout: a silent peer is declared gone after this long. */
  readonly idleTimeoutMs: number;
  /** Time allowed for the Aspen handshake after the TLS handshake. */
  readonly handshakeTimeoutMs: number;
}

/** Default for {@linkcode PeerLimits.queueMessagesMax}. */
export const QUEUE_MESSAGES_MAX_DEFAULT = 8_192;
/** Default for {@linkcode PeerLimits.queueBytesMax}. */
export const QUEUE_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;
/** Default for {@linkcode PeerLimits.sendBufferBytesMax}. */
export const SEND_BUFFER_BYTES_MAX_DEFAULT = 8 * 1024 * 1024;
/** Default for {@linkcode PeerLimits.answerBufferBytesMax}. */
export const ANSWER_BUFFER_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
/** Default for {@linkcode PeerLimits.requestsInflightMax}. */
export const REQUESTS_INFLIGHT_MAX_DEFAULT = 4_096;
/** Default for {@linkcode PeerLimits.inboundRequestsInflightMax}. */
export const INBOUND_REQUESTS_INFLIGHT_MAX_DEFAULT = 4_096;
/** Default for {@linkcode PeerLimits.requestDeadlineMsMax}. */
export const REQUEST_DEADLINE_MS_MAX_DEFAULT = 60_000;
/** Default for {@linkcode PeerLimits.reconnectDelayMsMin}. */
export const RECONNECT_DELAY_MS_MIN_DEFAULT = 50;
/** Default for {@linkcode PeerLimits.reconnectDelayMsMax}. */
export const RECONNECT_DELAY_MS_MAX_DEFAULT = 2_000;
/**
 * Default for {@linkcode PeerLimits.pingIntervalMs}: the round trip is only a metric, and each
 * ping and pong costs an idle node wakeups at both ends (bench/idle.ts).
 */
export const PING_INTERVAL_MS_DEFAULT = 5_000;
/** Default for {@linkcode PeerLimits.keepAliveIntervalMs}. */
export const KEEP_ALIVE_INTERVAL_MS_DEFAULT = 1_000;
/** Default for {@linkcode PeerLimits.idleTimeoutMs}. */
export const IDLE_TIMEOUT_MS_DEFAULT = 5_000;
/** Default for {@linkcode PeerLimits.handshakeTimeoutMs}. */
export const HANDSHAKE_TIMEOUT_MS_DEFAULT = 5_000;

/** The defaults of every tunable. */
export const PEER_LIMITS_DEFAULT: PeerLimits = Object.freeze({
  queueMessagesMax: QUEUE_MESSAGES_MAX_DEFAULT,
  queueBytesMax: QUEUE_BYTES_MAX_DEFAULT,
  sendBufferBytesMax: SEND_BUFFER_BYTES_MAX_DEFAULT,
  answerBufferBytesMax: ANSWER_BUFFER_BYTES_MAX_DEFAULT,
  requestsInflightMax: REQUESTS_INFLIGHT_MAX_DEFAULT,
  inboundRequestsInflightMax: INBOUND_REQUESTS_INFLIGHT_MAX_DEFAULT,
  requestDeadlineMsMax: REQUEST_DEADLINE_MS_MAX_DEFAULT,
  reconnectDelayMsMin: RECONNECT_DELAY_MS_MIN_DEFAULT,
  reconnectDelayMsMax: RECONNECT_DELAY_MS_MAX_DEFAULT,
  pingIntervalMs: PING_INTERVAL_MS_DEFAULT,
  keepAliveIntervalMs: KEEP_ALIVE_INTERVAL_MS_DEFAULT,
  idleTimeoutMs: IDLE_TIMEOUT_MS_DEFAULT,
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS_DEFAULT,
});

/** The largest value any timer or count limit may take (about 24 days in ms; fits setTimeout). */
export const PEER_LIMIT_VALUE_MAX = 2_000_000_000;

/**
 * Checks a limits object and returns the name of the first bad field, or null when all are good.
 * Relationships are checked too: backoff min <= max, keep-alive < idle timeout, the answer
 * buffer at least the send buffer.
 */
export function findInvalidPeerLimit(limits: PeerLimits): string | null {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value)) return name;
    if (value < 1 || value > PEER_LIMIT_VALUE_MAX) return name;
  }
  if (limits.reconnectDelayMsMin > limits.reconnectDelayMsMax) return "reconnectDelayMsMin";
  if (limits.keepAliveIntervalMs >= limits.idleTimeoutMs) return "keepAliveIntervalMs";
  if (limits.queueBytesMax < PEER_PAYLOAD_BYTES_MAX) return "queueBytesMax";
  if (limits.answerBufferBytesMax < limits.sendBufferBytesMax) return "answerBufferBytesMax";
  return null;
}

// Relationships between the wire constants, checked once at module load.
assert(PEER_PAYLOAD_BYTES_MAX + 64 <= FRAME_BYTES_MAX, "payload plus headers fits a frame");
assert(HANDSHAKE_FRAME_BYTES_MAX < FRAME_BYTES_MAX, "handshake frames are small");
assert(FRAME_BYTES_MAX < 2 ** 32, "frame length fits the 4-byte prefix");
assert(ERROR_JSON_BYTES_MAX < PEER_PAYLOAD_BYTES_MAX, "an error frame fits a frame");
assert(findInvalidPeerLimit(PEER_LIMITS_DEFAULT) === null, "default limits are valid");
