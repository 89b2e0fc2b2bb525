/**
 * One authenticated peer connection, private to the peer folder: the read loop that decodes
 * frames, the write path with its byte accounting, the table of requests in flight, and the
 * ping timer that measures the round-trip time.
 *
 * It knows nothing of shards or handlers: decoded traffic goes up to the transport through
 * {@linkcode ConnectionEvents}. It never throws out of its loops: a malformed frame closes this
 * connection (and only this one), and a failing handler is reported as fatal to the transport.
 */

import { assert } from "../raft/mod.ts";
import { EarliestTimer } from "./earliest_timer.ts";
import { CloseCode, type PeerLink } from "./_establish.ts";
import { type PeerErrorKind, PeerRequestError } from "./errors.ts";
import {
  ALPN_SHARDED,
  type CodecOptions,
  encodePingOrPong,
  encodeRequest,
  FrameError,
  parseFrame,
  type PeerProtocol,
  type ShardMessage,
  WIRE_ID_MAX,
  type WireError,
} from "./frame_codec.ts";
import type { PeerLimits } from "./limits.ts";
import { describeError } from "./logger.ts";
import { type PeerCounters, recordRoundTrip } from "./stats.ts";

/** What a connection reports to its transport. */
export interface ConnectionEvents {
  onRaftBatch(connection: PeerConnection, messages: readonly ShardMessage[]): void;
  onRequest(connection: PeerConnection, request: InboundRequest): void;
  /** An error frame about a Raft message we sent (requestId 0). */
  onRaftError(connection: PeerConnection, shardId: number, error: WireError): void;
  /** The send buffer drained below its limit after being full. */
  onWritable(connection: PeerConnection): void;
  /** Called once, synchronously, when the connection closes for any reason. */
  onClosed(connection: PeerConnection): void;
  onProtocolError(connection: PeerConnection, error: FrameError): void;
  /** A handler threw: a bug. The transport decides how the process ends. */
  onFatal(error: unknown): void;
}

/** One request from the peer, as its frame carried it. */
export interface InboundRequest {
  readonly requestId: number;
  readonly shardId: number;
  /** What was left of the caller's deadline when the peer wrote the frame, ms; 0 = expired. */
  readonly deadlineMs: number;
  readonly payload: Uint8Array;
}

/** One outbound request to send on a connection. */
export interface OutboundRequest {
  readonly requestId: number;
  readonly shardId: number;
  readonly payload: Uint8Array;
  readonly deadlineMs: number;
  /** An injected fault: register the request but never send it, so it times out. */
  readonly isDropped: boolean;
  readonly delayMs: number;
}

/** A timer handle, whatever type the runtime's timer functions return. */
type TimerId = ReturnType<typeof setTimeout>;

/** The failure kinds a connection raises itself. */
type LocalErrorKind = Exclude<PeerErrorKind, "remote">;

interface PendingRequest {
  readonly shardId: number;
  readonly resolve: (payload: Uint8Array) => void;
  readonly reject: (error: PeerRequestError) => void;
  /** performance.now() past which the request fails with `timeout`. */
  readonly deadlineAtMs: number;
  readonly deadlineMs: number;
}

/** An authenticated connection carrying frames both ways on one stream. */
export class PeerConnection {
  readonly remoteNodeId: number;
  /** The fingerprint of the certificate the peer proved its node id with. */
  readonly remoteCertificateFingerprint: string;
  readonly protocol: PeerProtocol;
  readonly role: "dialer" | "listener";
  readonly codec: CodecOptions;
  /** Requests the remote node has in flight here; kept by the transport. */
  inboundRequestsInflight = 0;
  readonly #link: PeerLink;
  readonly #events: ConnectionEvents;
  readonly #counters: PeerCounters;
  readonly #limits: PeerLimits;
  readonly #pending = new Map<number, PendingRequest>();
  readonly #delayTimers = new Set<TimerId>();
  /**
   * One timer for every request deadline, armed for the earliest one it knows of. A timer per
   * request (created, then cleared on the answer) was 12-15% of the CPU of a busy RPC loop.
   */
  readonly #deadlineTimer = new EarliestTimer(
    () => performance.now(),
    () => this.#expireRequests(),
  );
  /** Frames waiting for the write in flight; written together as one chunk after it. */
  #outbox: Uint8Array[] = [];
  #outboxBytes = 0;
  #isWriting = false;
  #bytesUnacked = 0;
  #pingTimer: TimerId | null = null;
  #pingOutstanding: { id: number; sentAtMs: number } | null = null;
  #pingIdNext = 1;
  #isClosed = false;
  #closeReason = "";
  #readFailure: string | null = null;
  #done: Promise<void> | null = null;

  constructor(
    link: PeerLink,
    context: { events: ConnectionEvents; counters: PeerCounters; limits: PeerLimits },
  ) {
    this.#link = link;
    this.remoteNodeId = link.remoteNodeId;
    this.remoteCertificateFingerprint = link.remoteCertificateFingerprint;
    this.protocol = link.protocol;
    this.role = link.role;
    this.codec = { hasShardPrefix: link.protocol === ALPN_SHARDED };
    this.#events = context.events;
    this.#counters = context.counters;
    this.#limits = context.limits;
  }

  /** Starts the read loop and the ping timer; call once. */
  start(): void {
    assert(this.#done === null, "PeerConnection.start() runs once");
    const readLoop = this.#readLoop();
    this.#done = Promise.all([readLoop, this.#link.closed]).then(() => undefined);
    if (this.#isClosed) return;
    this.#pingTimer = setInterval(() => this.#ping(), this.#limits.pingIntervalMs);
    this.#ping();
  }

  /** Settles when the read loop has ended and QUIC has closed the connection. */
  get done(): Promise<void> {
    assert(this.#done !== null, "PeerConnection.done is read after start()");
    return this.#done;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Why the connection closed, for logs; empty while open. */
  get closeReason(): string {
    return this.#closeReason;
  }

  /** False while more than `sendBufferBytesMax` bytes wait inside the QUIC stream. */
  get hasSendCapacity(): boolean {
    return this.#bytesUnacked < this.#limits.sendBufferBytesMax;
  }

  /**
   * False while `answerBufferBytesMax` bytes or more wait inside the QUIC stream: the peer is
   * not reading what this node writes, and answers to it must be shed (see writeAnswer()).
   */
  get hasAnswerCapacity(): boolean {
    return this.#bytesUnacked < this.#limits.answerBufferBytesMax;
  }

  /** Bytes written to this connection that the QUIC stream has not accepted yet. */
  get sendBufferBytes(): number {
    return this.#bytesUnacked;
  }

  /** Requests this node has in flight on the connection. */
  get requestsInflight(): number {
    return this.#pending.size;
  }

  /** True when `requestId` is waiting for an answer here. */
  hasPendingRequest(requestId: number): boolean {
    return this.#pending.has(requestId);
  }

  /** Writes one encoded frame, after `delayMs` when a fault delays it; false when closed. */
  write(frame: Uint8Array, delayMs: number): boolean {
    if (this.#isClosed) return false;
    this.#writeAfter(delayMs, () => this.#writeNow(frame));
    return true;
  }

  /**
   * Writes an answer to the peer (a response, an error frame), or drops and counts it when
   * the peer has stopped reading: without this bound, a peer that sends requests and never
   * reads would grow this node's outbox with every answer. A dropped answer costs the peer
   * a `timeout` at its deadline, as a lost packet would. Returns false when not written.
   */
  writeAnswer(frame: Uint8Array, delayMs: number): boolean {
    if (this.#isClosed) return false;
    if (!this.hasAnswerCapacity) {
      this.#counters.answersDropped += 1;
      return false;
    }
    return this.write(frame, delayMs);
  }

  /** Sends a request and resolves with the response payload, or rejects with its failure. */
  request(request: OutboundRequest): Promise<Uint8Array> {
    assert(!this.#isClosed, "request() is only called on an open connection");
    assert(!this.#pending.has(request.requestId), "request ids are unique per connection");
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    const deadlineAtMs = performance.now() + request.deadlineMs;
    const pending: PendingRequest = {
      shardId: request.shardId,
      resolve,
      reject,
      deadlineAtMs,
      deadlineMs: request.deadlineMs,
    };
    this.#pending.set(request.requestId, pending);
    this.#deadlineTimer.arm(deadlineAtMs);
    if (!request.isDropped) {
      this.#writeAfter(request.delayMs, () => this.#writeRequest(request, pending));
    }
    return promise;
  }

  /**
   * Closes the connection once; rejects every request in flight with `kind`.
   * Later calls do nothing.
   */
  close(closeCode: number, reason: string, kind: LocalErrorKind = "unreachable"): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#closeReason = this.#readFailure ?? reason;
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    for (const timer of this.#delayTimers) clearTimeout(timer);
    this.#delayTimers.clear();
    this.#deadlineTimer.disarm();
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const pending of this.#pending.values()) {
      pending.reject(PeerRequestError.local(
        kind,
        { nodeId: this.remoteNodeId, shardId: pending.shardId },
        `Cannot get an answer from node ${this.remoteNodeId} for shard ${pending.shardId}: ` +
          `the connection closed (${reason})`,
      ));
    }
    this.#pending.clear();
    this.#link.conn.close({ closeCode, reason });
    this.#events.onClosed(this);
  }

  /** Runs `write` now, or after `delayMs` when a fault delays traffic to the peer. */
  #writeAfter(delayMs: number, write: () => void): void {
    if (delayMs === 0) {
      write();
      return;
    }
    const timer = setTimeout(() => {
      this.#delayTimers.delete(timer);
      write();
    }, delayMs);
    this.#delayTimers.add(timer);
  }

  /**
   * Writes a request frame that carries what is left of its deadline at this moment, unless
   * nothing is left: a request that waited past its deadline (behind an injected delay) is
   * never sent, so the peer never runs work whose caller has given up. The deadline timer
   * fails it with `timeout`.
   */
  #writeRequest(request: OutboundRequest, pending: PendingRequest): void {
    // Answered or expired meanwhile (its id may even belong to a newer request now).
    if (this.#pending.get(request.requestId) !== pending) return;
    const remainingMs = Math.floor(pending.deadlineAtMs - performance.now());
    if (remainingMs < 1) return;
    const { requestId, shardId, payload } = request;
    this.#writeNow(
      encodeRequest({ requestId, shardId, deadlineMs: remainingMs, payload }, this.codec),
    );
  }

  async #readLoop(): Promise<void> {
    const onFrame = (body: Uint8Array) => this.#handleFrame(body);
    try {
      this.#counters.bytesIn += this.#link.leftoverBytes.length;
      this.#link.decoder.push(this.#link.leftoverBytes, onFrame);
      while (!this.#isClosed) {
        const chunk = await this.#readChunk();
        if (chunk === null) break;
        this.#counters.bytesIn += chunk.length;
        this.#link.decoder.push(chunk, onFrame);
      }
    } catch (error) {
      if (error instanceof FrameError) {
        this.#events.onProtocolError(this, error);
        this.close(CloseCode.protocolError, error.reason);
      } else {
        this.close(CloseCode.internalError, "internal error");
        this.#events.onFatal(error);
      }
    } finally {
      this.close(CloseCode.normal, "stream ended");
    }
  }

  /** The next chunk, or null when the stream ended or the connection broke. */
  async #readChunk(): Promise<Uint8Array | null> {
    try {
      const result = await this.#link.reader.read();
      return result.done ? null : result.value;
    } catch (error) {
      // The connection broke (peer closed, idle timeout, reset): the read loop ends and
      // close() rejects what is in flight; the transport reconnects if it is the dialer.
      this.#readFailure = describeError(error);
      return null;
    }
  }

  #handleFrame(body: Uint8Array): void {
    this.#counters.framesIn += 1;
    const frame = parseFrame(body, this.codec);
    switch (frame.type) {
      case "raft_batch":
        this.#counters.messagesIn += frame.messages.length;
        this.#events.onRaftBatch(this, frame.messages);
        return;
      case "request":
        this.#events.onRequest(this, frame);
        return;
      case "response":
        this.#settle(frame.requestId, frame.shardId, { payload: frame.payload });
        return;
      case "error":
        if (frame.requestId === 0) this.#events.onRaftError(this, frame.shardId, frame.error);
        else this.#settle(frame.requestId, frame.shardId, { error: frame.error });
        return;
      case "ping":
        // A pong is an answer too: a peer that pings and never reads must not grow the outbox.
        if (this.hasAnswerCapacity) this.#writeNow(encodePingOrPong("pong", frame.pingId));
        else this.#counters.answersDropped += 1;
        return;
      case "pong":
        this.#onPong(frame.pingId);
        return;
      default:
        throw new FrameError(
          "frame_malformed",
          `Cannot accept a ${frame.type} frame after the handshake`,
        );
    }
  }

  #settle(
    requestId: number,
    shardId: number,
    outcome: { payload: Uint8Array } | { error: WireError },
  ): void {
    const pending = this.#pending.get(requestId);
    // An answer after the deadline finds nothing: the caller has had its timeout already.
    if (pending === undefined) return;
    if (pending.shardId !== shardId) {
      throw new FrameError("frame_malformed", `Cannot match response ${requestId}: wrong shard`);
    }
    this.#pending.delete(requestId);
    if (this.#pending.size === 0) this.#deadlineTimer.disarm();
    if ("payload" in outcome) {
      pending.resolve(outcome.payload);
    } else {
      pending.reject(
        PeerRequestError.remote(outcome.error, { nodeId: this.remoteNodeId, shardId }),
      );
    }
  }

  #ping(): void {
    if (this.#isClosed) return;
    const now = performance.now();
    const outstanding = this.#pingOutstanding;
    // A pong may be shed by a peer whose answers back up (see writeAnswer()): a ping with no
    // pong for an idle timeout is taken as lost, so that the round trip is measured again.
    if (outstanding !== null && now - outstanding.sentAtMs < this.#limits.idleTimeoutMs) return;
    const id = this.#pingIdNext;
    this.#pingIdNext = id === WIRE_ID_MAX ? 1 : id + 1;
    this.#pingOutstanding = { id, sentAtMs: now };
    this.#writeNow(encodePingOrPong("ping", id));
  }

  #onPong(pingId: number): void {
    const outstanding = this.#pingOutstanding;
    if (outstanding === null || outstanding.id !== pingId) return;
    this.#pingOutstanding = null;
    recordRoundTrip(this.#counters, performance.now() - outstanding.sentAtMs);
  }

  /**
   * Queues one frame for the stream. Frames that arrive while a write is in flight go out
   * together in the next one, in order: one stream write per burst instead of one per frame
   * (each write costs a WritableStream round and an op, about as much as a small RPC itself).
   */
  #writeNow(frame: Uint8Array): void {
    if (this.#isClosed) return;
    this.#bytesUnacked += frame.length;
    this.#counters.framesOut += 1;
    this.#counters.bytesOut += frame.length;
    this.#outbox.push(frame);
    this.#outboxBytes += frame.length;
    if (!this.#isWriting) this.#writeOutbox();
  }

  #writeOutbox(): void {
    assert(!this.#isWriting, "one stream write at a time");
    if (this.#isClosed || this.#outbox.length === 0) return;
    const chunk = concatFrames(this.#outbox, this.#outboxBytes);
    this.#outbox = [];
    this.#outboxBytes = 0;
    this.#isWriting = true;
    this.#counters.streamWrites += 1;
    this.#link.writer.write(chunk).then(
      () => {
        this.#isWriting = false;
        const wasFull = !this.hasSendCapacity;
        this.#bytesUnacked -= chunk.length;
        assert(this.#bytesUnacked >= 0, "unacknowledged bytes never go negative");
        this.#writeOutbox();
        if (wasFull && this.hasSendCapacity) this.#events.onWritable(this);
      },
      () => {
        this.#isWriting = false;
        this.close(CloseCode.normal, "write failed");
      },
    );
  }

  /** Fails every request past its deadline, then re-arms for the earliest one left. */
  #expireRequests(): void {
    const now = performance.now();
    let earliest = Infinity;
    for (const [requestId, pending] of this.#pending) {
      if (pending.deadlineAtMs > now) {
        earliest = Math.min(earliest, pending.deadlineAtMs);
        continue;
      }
      this.#pending.delete(requestId);
      pending.reject(PeerRequestError.local(
        "timeout",
        { nodeId: this.remoteNodeId, shardId: pending.shardId },
        `Cannot get an answer from node ${this.remoteNodeId} for shard ${pending.shardId}: ` +
          `no response within ${pending.deadlineMs} ms`,
      ));
    }
    if (earliest !== Infinity) this.#deadlineTimer.arm(earliest);
  }
}

function concatFrames(frames: readonly Uint8Array[], totalBytes: number): Uint8Array {
  if (frames.length === 1) return frames[0]!;
  const chunk = new Uint8Array(totalBytes);
  let offset = 0;
  for (const frame of frames) {
    chunk.set(frame, offset);
    offset += frame.length;
  }
  assert(offset === totalBytes, "the outbox byte count matches its frames");
  return chunk;
}
