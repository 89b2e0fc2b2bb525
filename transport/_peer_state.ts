/**
 * Per-peer state of the transport, private to the peer folder: the connection, the queue of
 * Raft messages waiting for the next flush, and the counters; plus the pure function that
 * cuts a queue into batch frames.
 */

import { assert } from "../raft/mod.ts";
import type { PeerConnection } from "./_connection.ts";
import {
  BATCH_OVERHEAD_BYTES,
  batchMessageBytes,
  type CodecOptions,
  encodeRaftBatch,
  FRAME_HEADER_BYTES,
  type ShardMessage,
} from "./frame_codec.ts";
import { BATCH_MESSAGES_MAX, FRAME_BYTES_MAX } from "./limits.ts";
import type { ResolvedEndpoint } from "./options.ts";
import { createPeerCounters, type PeerCounters, type PeerStats } from "./stats.ts";

/** Everything the transport keeps about one peer. */
export interface PeerState {
  readonly nodeId: number;
  readonly counters: PeerCounters;
  /** Where to dial it; null for a peer known only from its inbound connection. */
  endpoint: ResolvedEndpoint | null;
  /** Invariant: non-null exactly while an authenticated connection is open. */
  connection: PeerConnection | null;
  /** Invariant: empty whenever `connection` is null. */
  queue: ShardMessage[];
  queueBytes: number;
  dialLoop: Promise<void> | null;
  isRemoved: boolean;
}

/** A fresh state for `nodeId`, with no endpoint and no connection. */
export function createPeerState(nodeId: number): PeerState {
  return {
    nodeId,
    counters: createPeerCounters(),
    endpoint: null,
    connection: null,
    queue: [],
    queueBytes: 0,
    dialLoop: null,
    isRemoved: false,
  };
}

/** A snapshot of one peer for `stats()`. */
export function snapshotPeer(peer: PeerState): PeerStats {
  const counters = peer.counters;
  return {
    ...counters,
    nodeId: peer.nodeId,
    isUp: peer.connection !== null,
    protocol: peer.connection?.protocol ?? null,
    reconnects: Math.max(0, counters.connectionsOpened - 1),
    messagesDropped: counters.messagesDroppedQueueFull + counters.messagesDroppedDisconnected +
      counters.messagesDroppedFault + counters.messagesDroppedLegacy,
    queueMessages: peer.queue.length,
    sendBufferBytes: peer.connection?.sendBufferBytes ?? 0,
  };
}

/**
 * Encodes queued messages as few batch frames as the limits allow, in order: a frame closes
 * when the next message would take it past FRAME_BYTES_MAX or BATCH_MESSAGES_MAX.
 */
export function encodeBatchFrames(
  messages: readonly ShardMessage[],
  codec: CodecOptions,
): Uint8Array[] {
  assert(messages.length > 0, "encodeBatchFrames() has messages");
  const frames: Uint8Array[] = [];
  const emptyBodyBytes = BATCH_OVERHEAD_BYTES - FRAME_HEADER_BYTES;
  let start = 0;
  let bodyBytes = emptyBodyBytes;
  for (let i = 0; i < messages.length; i += 1) {
    const messageBytes = batchMessageBytes(messages[i]!.payload.length, codec);
    const isFull = bodyBytes + messageBytes > FRAME_BYTES_MAX || i - start >= BATCH_MESSAGES_MAX;
    if (i > start && isFull) {
      frames.push(encodeRaftBatch(messages, { start, end: i }, codec));
      start = i;
      bodyBytes = emptyBodyBytes;
    }
    bodyBytes += messageBytes;
  }
  frames.push(encodeRaftBatch(messages, { start, end: messages.length }, codec));
  return frames;
}
