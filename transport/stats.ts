/**
 * Counters of the peer channel, for `/metrics` and the dashboard.
 *
 * Counters only grow (Prometheus counters); `isUp`, `rttMs` and the queue sizes are gauges.
 * The transport keeps one mutable {@linkcode PeerCounters} per peer and hands out frozen
 * {@linkcode PeerStats} snapshots.
 */

import type { PeerProtocol } from "./frame_codec.ts";

/** The mutable counters the transport keeps per peer. */
export interface PeerCounters {
  framesOut: number;
  /** Stream writes: frames queued while a write is in flight go out together in the next. */
  streamWrites: number;
  framesIn: number;
  bytesOut: number;
  bytesIn: number;
  messagesOut: number;
  messagesIn: number;
  /** Messages dropped because the queue for the peer was full. */
  messagesDroppedQueueFull: number;
  /** Messages dropped because there was no connection to the peer. */
  messagesDroppedDisconnected: number;
  /** Messages dropped by an injected fault. */
  messagesDroppedFault: number;
  /** Messages dropped because the peer speaks the legacy protocol and the shard is not 0. */
  messagesDroppedLegacy: number;
  requestsOut: number;
  requestsIn: number;
  /** Requests from the peer shed unrun because its answers were backing up (not read). */
  requestsShed: number;
  /** Responses, error frames and pongs dropped because the peer was not reading them. */
  answersDropped: number;
  /** Outbound requests that ended in an error of any kind. */
  requestsFailed: number;
  /** Error frames the peer sent about our Raft messages (unknown shard). */
  unknownShardErrorsIn: number;
  /** Connections to or from the peer that completed the handshake. */
  connectionsOpened: number;
  /** Dials or handshakes with the peer that failed. */
  connectFailures: number;
  /** The last ping round trip, or null before the first pong. */
  rttMs: number | null;
  /** An exponentially smoothed round trip (weight 1/8 for each new sample, as TCP does). */
  rttMsSmoothed: number | null;
}

/** A snapshot of one peer's state and counters. */
export interface PeerStats extends Readonly<PeerCounters> {
  readonly nodeId: number;
  readonly isUp: boolean;
  /** The negotiated ALPN of the current connection, null when down. */
  readonly protocol: PeerProtocol | null;
  /** Connections after the first one: how often the link was re-established. */
  readonly reconnects: number;
  /** Total messages dropped, whatever the reason. */
  readonly messagesDropped: number;
  /** Raft messages waiting for the next flush. */
  readonly queueMessages: number;
  /** Bytes written to the connection that its QUIC stream has not accepted yet. */
  readonly sendBufferBytes: number;
}

/** A snapshot of the whole transport. */
export interface PeerTransportStats {
  readonly nodeId: number;
  /** The bound listen address, "host:port". */
  readonly listenAddress: string;
  readonly peers: readonly PeerStats[];
  /** Inbound connections refused or failed before the peer was known (TLS, hello, proof). */
  readonly inboundHandshakeFailures: number;
  /** Connections closed because the peer sent a malformed or over-limit frame. */
  readonly malformedFrameConnections: number;
  /** Messages and requests addressed to a node this transport has never heard of. */
  readonly unknownPeerDrops: number;
}

/** Returns fresh zeroed counters. */
export function createPeerCounters(): PeerCounters {
  return {
    framesOut: 0,
    streamWrites: 0,
    framesIn: 0,
    bytesOut: 0,
    bytesIn: 0,
    messagesOut: 0,
    messagesIn: 0,
    messagesDroppedQueueFull: 0,
    messagesDroppedDisconnected: 0,
    messagesDroppedFault: 0,
    messagesDroppedLegacy: 0,
    requestsOut: 0,
    requestsIn: 0,
    requestsShed: 0,
    answersDropped: 0,
    requestsFailed: 0,
    unknownShardErrorsIn: 0,
    connectionsOpened: 0,
    connectFailures: 0,
    rttMs: null,
    rttMsSmoothed: null,
  };
}

/** Folds a new round-trip sample into the counters. */
export function recordRoundTrip(counters: PeerCounters, rttMs: number): void {
  counters.rttMs = rttMs;
  counters.rttMsSmoothed = counters.rttMsSmoothed === null
    ? rttMs
    : counters.rttMsSmoothed + (rttMs - counters.rttMsSmoothed) / 8;
}
