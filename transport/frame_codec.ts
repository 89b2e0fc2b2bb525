/**
 * The peer channel's wire format: length-prefixed frames, their encoders, and a streaming
 * decoder that copes with frames split across reads and many frames in one read.
 *
 * ```text
 * frame      := length:u32 type:u8 body     (length counts type + body: 1..FRAME_BYTES_MAX)
 * hello      := 0x01 version:u8 dialerNode:u32 listenerNode:u32 nonce:32B
 * challenge  := 0x02 listenerNode:u32 nonce:32B proof:32B signature:64B certificate
 * proof      := 0x03 proof:32B signature:64B certificate  (certificate = the rest, DER)
 * raft_batch := 0x10 count:u32 { [shard:u32] length:u32 payload }*count
 * request    := 0x11 requestId:u32 [shard:u32] deadlineMs:u32 payload  (payload = the rest)
 * response   := 0x12 requestId:u32 [shard:u32] payload
 * error      := 0x13 requestId:u32 [shard:u32] json {"code","message","details"}
 * ping, pong := 0x20 / 0x21 pingId:u32
 * ```
 *
 * All integers are big-endian. `[shard:u32]` is present under ALPN `aspen-raft-shard` and
 * absent under the legacy ALPN `aspen-raft`, where every message belongs to shard 0. An error
 * frame with requestId 0 answers a Raft message (for example, an unknown shard).
 *
 * A request's `deadlineMs` is what was left of the caller's deadline when the frame was
 * written: a duration, never a clock reading, because the two nodes' clocks are unrelated. The
 * receiver's deadline is its own clock at receipt plus that duration (time in transit is not
 * counted); 0 means the caller has given up already. Version 2 of the protocol added the field;
 * the hello's version byte keeps a version 1 node and a version 2 node from ever exchanging a
 * request frame (the handshake refuses the pair). Version 3 added the node's certificate and
 * its signature to the challenge and proof frames (node-bound identities, see handshake.ts).
 *
 * Payloads handed out by the parser are views into the received chunk, never copies; the
 * transport never writes into received chunks, so the views stay valid. Every decoding
 * failure is a {@linkcode FrameError}; nothing else is thrown for any input (fuzz-tested).
 */

import { assert } from "../raft/mod.ts";
import {
  BATCH_MESSAGES_MAX,
  ERROR_JSON_BYTES_MAX,
  FRAME_BYTES_MAX,
  PEER_CERTIFICATE_BYTES_MAX,
  PEER_PAYLOAD_BYTES_MAX,
} from "./limits.ts";

/** ALPN of the sharded protocol: each message carries a 4-byte shard id. */
export const ALPN_SHARDED = "aspen-raft-shard";
/** ALPN of the legacy protocol: messages carry no shard id and all belong to shard 0. */
export const ALPN_LEGACY = "aspen-raft";
/** One of the two ALPN protocols the peer channel speaks. */
export type PeerProtocol = typeof ALPN_SHARDED | typeof ALPN_LEGACY;

/** The version byte of the hello frame; 3 since nodes prove their node id with their key. */
export const PROTOCOL_VERSION = 3;
/** Bytes of a handshake nonce. */
export const NONCE_BYTES = 32;
/** Bytes of an HMAC-SHA256 proof. */
export const PROOF_BYTES = 32;
/** Bytes of an ECDSA P-256 signature in WebCrypto's raw form (r and s, 32 bytes each). */
export const SIGNATURE_BYTES = 64;
/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;
/** The largest node id and shard id (both travel as u32). Node id 0 is reserved. */
export const WIRE_ID_MAX = 0xffff_ffff;

/** Frame type bytes. */
export const FrameType = Object.freeze({
  hello: 0x01,
  challenge: 0x02,
  proof: 0x03,
  raftBatch: 0x10,
  request: 0x11,
  response: 0x12,
  error: 0x13,
  ping: 0x20,
  pong: 0x21,
});

/** Why a byte sequence is not a valid frame. */
export type FrameErrorReason = "frame_too_large" | "frame_malformed";

/** The only error the decoder and parser throw: the peer sent bytes we cannot accept. */
export class FrameError extends Error {
  override readonly name = "FrameError";
  readonly reason: FrameErrorReason;

  constructor(reason: FrameErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** One opaque Raft message tagged with its shard. */
export interface ShardMessage {
  readonly shardId: number;
  readonly payload: Uint8Array;
}

/** The details of an error frame; `code` is a stable snake_case code. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly details: Readonly<Record<string, string | number | boolean | null>>;
}

/** A parsed frame. */
export type Frame =
  | {
    readonly type: "hello";
    readonly version: number;
    readonly dialerNodeId: number;
    readonly listenerNodeId: number;
    readonly nonce: Uint8Array;
  }
  | ({
    readonly type: "challenge";
    readonly listenerNodeId: number;
    readonly nonce: Uint8Array;
  } & NodeProof)
  | ({ readonly type: "proof" } & NodeProof)
  | { readonly type: "raft_batch"; readonly messages: readonly ShardMessage[] }
  | {
    readonly type: "request";
    readonly requestId: number;
    readonly shardId: number;
    /** What was left of the caller's deadline when the frame was written, ms; 0 = expired. */
    readonly deadlineMs: number;
    readonly payload: Uint8Array;
  }
  | {
    readonly type: "response";
    readonly requestId: number;
    readonly shardId: number;
    readonly payload: Uint8Array;
  }
  | {
    readonly type: "error";
    readonly requestId: number;
    readonly shardId: number;
    readonly error: WireError;
  }
  | { readonly type: "ping" | "pong"; readonly pingId: number };

/** What each side of the handshake sends to prove itself (see handshake.ts). */
export interface NodeProof {
  /** HMAC-SHA256 of the transcript keyed by the cluster secret, PROOF_BYTES. */
  readonly proof: Uint8Array;
  /** ECDSA P-256 signature of the transcript with the node's key, SIGNATURE_BYTES. */
  readonly signature: Uint8Array;
  /** The node's certificate, DER, 1..PEER_CERTIFICATE_BYTES_MAX bytes. */
  readonly certificate: Uint8Array;
}

/** Codec options that depend on the negotiated ALPN. */
export interface CodecOptions {
  /** True under `aspen-raft-shard`; false under the legacy `aspen-raft`. */
  readonly hasShardPrefix: boolean;
}

/** Encodes a hello frame (dialer to listener, first frame on a connection). */
export function encodeHello(
  hello: { dialerNodeId: number; listenerNodeId: number; nonce: Uint8Array },
): Uint8Array {
  assert(hello.nonce.length === NONCE_BYTES, "hello nonce has NONCE_BYTES");
  const frame = allocateFrame(FrameType.hello, 1 + 4 + 4 + NONCE_BYTES);
  frame.view.setUint8(5, PROTOCOL_VERSION);
  frame.view.setUint32(6, checkNodeId(hello.dialerNodeId));
  frame.view.setUint32(10, checkNodeId(hello.listenerNodeId));
  frame.bytes.set(hello.nonce, 14);
  return frame.bytes;
}

/** Encodes a challenge frame (listener to dialer: its nonce and its proofs). */
export function encodeChallenge(
  challenge: { listenerNodeId: number; nonce: Uint8Array } & NodeProof,
): Uint8Array {
  assert(challenge.nonce.length === NONCE_BYTES, "challenge nonce has NONCE_BYTES");
  const frame = allocateFrame(FrameType.challenge, 4 + NONCE_BYTES + nodeProofBytes(challenge));
  frame.view.setUint32(5, checkNodeId(challenge.listenerNodeId));
  frame.bytes.set(challenge.nonce, 9);
  writeNodeProof(frame.bytes, 9 + NONCE_BYTES, challenge);
  return frame.bytes;
}

/** Encodes a proof frame (dialer to listener: the dialer's proofs). */
export function encodeProof(proof: NodeProof): Uint8Array {
  const frame = allocateFrame(FrameType.proof, nodeProofBytes(proof));
  writeNodeProof(frame.bytes, 5, proof);
  return frame.bytes;
}

function nodeProofBytes(proof: NodeProof): number {
  assert(proof.proof.length === PROOF_BYTES, "a proof has PROOF_BYTES");
  assert(proof.signature.length === SIGNATURE_BYTES, "a signature has SIGNATURE_BYTES");
  assert(proof.certificate.length >= 1, "a certificate is not empty");
  assert(proof.certificate.length <= PEER_CERTIFICATE_BYTES_MAX, "a certificate fits");
  return PROOF_BYTES + SIGNATURE_BYTES + proof.certificate.length;
}

function writeNodeProof(bytes: Uint8Array, offset: number, proof: NodeProof): void {
  bytes.set(proof.proof, offset);
  bytes.set(proof.signature, offset + PROOF_BYTES);
  bytes.set(proof.certificate, offset + PROOF_BYTES + SIGNATURE_BYTES);
}

function parseNodeProof(body: Uint8Array, offset: number, name: string): NodeProof {
  const certificateOffset = offset + PROOF_BYTES + SIGNATURE_BYTES;
  const certificateBytes = body.length - certificateOffset;
  if (certificateBytes < 1 || certificateBytes > PEER_CERTIFICATE_BYTES_MAX) {
    throw malformed(
      `${name} frame is ${body.length} bytes; its certificate must be ` +
        `1..${PEER_CERTIFICATE_BYTES_MAX} bytes`,
    );
  }
  return {
    proof: body.subarray(offset, offset + PROOF_BYTES),
    signature: body.subarray(offset + PROOF_BYTES, certificateOffset),
    certificate: body.subarray(certificateOffset),
  };
}

/** The encoded size of one message inside a batch frame. */
export function batchMessageBytes(payloadBytes: number, options: CodecOptions): number {
  return (options.hasShardPrefix ? 8 : 4) + payloadBytes;
}

/** The encoded size of a batch frame's fixed part: length, type and count. */
export const BATCH_OVERHEAD_BYTES = FRAME_HEADER_BYTES + 1 + 4;

/**
 * Encodes `messages[start..end)` as one raft_batch frame.
 *
 * The caller keeps the frame within FRAME_BYTES_MAX (see `batchMessageBytes`); under the legacy
 * protocol every message must belong to shard 0.
 */
export function encodeRaftBatch(
  messages: readonly ShardMessage[],
  range: { start: number; end: number },
  options: CodecOptions,
): Uint8Array {
  const count = range.end - range.start;
  assert(count >= 1 && count <= BATCH_MESSAGES_MAX, "batch count is 1..BATCH_MESSAGES_MAX");
  let bodyBytes = 1 + 4;
  for (let i = range.start; i < range.end; i += 1) {
    bodyBytes += batchMessageBytes(messages[i]!.payload.length, options);
  }
  const frame = allocateFrame(FrameType.raftBatch, bodyBytes - 1);
  const { view, bytes } = frame;
  view.setUint32(5, count);
  let offset = 9;
  for (let i = range.start; i < range.end; i += 1) {
    const message = messages[i]!;
    if (options.hasShardPrefix) {
      view.setUint32(offset, checkShardId(message.shardId));
      offset += 4;
    } else {
      assert(message.shardId === 0, "the legacy protocol carries shard 0 only");
    }
    view.setUint32(offset, message.payload.length);
    bytes.set(message.payload, offset + 4);
    offset += 4 + message.payload.length;
  }
  assert(offset === bytes.length, "encodeRaftBatch() filled the frame exactly");
  return bytes;
}

/** Encodes a request frame; `deadlineMs` is what is left of the caller's deadline. */
export function encodeRequest(
  message: { requestId: number; shardId: number; deadlineMs: number; payload: Uint8Array },
  options: CodecOptions,
): Uint8Array {
  assert(message.payload.length <= PEER_PAYLOAD_BYTES_MAX, "payload fits the payload limit");
  assert(Number.isInteger(message.deadlineMs), "deadlineMs is an integer");
  assert(message.deadlineMs >= 0 && message.deadlineMs <= 0xffff_ffff, "deadlineMs is u32");
  const prefixBytes = 4 + (options.hasShardPrefix ? 4 : 0);
  const frame = allocateFrame(FrameType.request, prefixBytes + 4 + message.payload.length);
  writeRequestPrefix(frame.view, message, options);
  frame.view.setUint32(5 + prefixBytes, message.deadlineMs);
  frame.bytes.set(message.payload, 5 + prefixBytes + 4);
  return frame.bytes;
}

/** Encodes a response frame. */
export function encodeResponse(
  message: { requestId: number; shardId: number; payload: Uint8Array },
  options: CodecOptions,
): Uint8Array {
  assert(message.payload.length <= PEER_PAYLOAD_BYTES_MAX, "payload fits the payload limit");
  const prefixBytes = 4 + (options.hasShardPrefix ? 4 : 0);
  const frame = allocateFrame(FrameType.response, prefixBytes + message.payload.length);
  writeRequestPrefix(frame.view, message, options);
  frame.bytes.set(message.payload, 5 + prefixBytes);
  return frame.bytes;
}

/** Encodes an error frame; requestId 0 means "about a Raft message", not a request. */
export function encodeError(
  message: { requestId: number; shardId: number; error: WireError },
  options: CodecOptions,
): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify({
    code: message.error.code,
    message: message.error.message.slice(0, 1_000),
    details: message.error.details,
  }));
  assert(json.length <= ERROR_JSON_BYTES_MAX, "error JSON fits ERROR_JSON_BYTES_MAX");
  const prefixBytes = 4 + (options.hasShardPrefix ? 4 : 0);
  const frame = allocateFrame(FrameType.error, prefixBytes + json.length);
  writeRequestPrefix(frame.view, message, options);
  frame.bytes.set(json, 5 + prefixBytes);
  return frame.bytes;
}

/** Encodes a ping or pong frame. */
export function encodePingOrPong(type: "ping" | "pong", pingId: number): Uint8Array {
  assert(Number.isInteger(pingId) && pingId >= 0 && pingId <= WIRE_ID_MAX, "pingId is u32");
  const frame = allocateFrame(type === "ping" ? FrameType.ping : FrameType.pong, 4);
  frame.view.setUint32(5, pingId);
  return frame.bytes;
}

/**
 * Parses one frame body (type byte and what follows, without the length prefix).
 *
 * @throws {FrameError} `frame_malformed` for an unknown type, a wrong size, a count or length
 *   that does not add up, trailing bytes, or an error frame whose JSON is not the right shape.
 */
export function parseFrame(body: Uint8Array, options: CodecOptions): Frame {
  if (body.length < 1) throw malformed("frame is empty");
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const type = body[0]!;
  switch (type) {
    case FrameType.hello:
      expectBodyBytes(body, 1 + 1 + 4 + 4 + NONCE_BYTES, "hello");
      return {
        type: "hello",
        version: body[1]!,
        dialerNodeId: view.getUint32(2),
        listenerNodeId: view.getUint32(6),
        nonce: body.subarray(10, 10 + NONCE_BYTES),
      };
    case FrameType.challenge:
      return {
        type: "challenge",
        ...parseNodeProof(body, 5 + NONCE_BYTES, "challenge"),
        listenerNodeId: view.getUint32(1),
        nonce: body.subarray(5, 5 + NONCE_BYTES),
      };
    case FrameType.proof:
      return { type: "proof", ...parseNodeProof(body, 1, "proof") };
    case FrameType.raftBatch:
      return { type: "raft_batch", messages: parseRaftBatch(body, view, options) };
    case FrameType.request:
    case FrameType.response:
    case FrameType.error:
      return parseRequestLike(type, body, view, options);
    case FrameType.ping:
    case FrameType.pong:
      expectBodyBytes(body, 1 + 4, "ping");
      return { type: type === FrameType.ping ? "ping" : "pong", pingId: view.getUint32(1) };
    default:
      throw malformed(`frame type 0x${type.toString(16)} is unknown`);
  }
}

/**
 * Splits a byte stream into frame bodies.
 *
 * Whole frames inside one chunk are handed out as views without copying; only a frame split
 * across chunks is assembled, into one buffer allocated once at its final size (so a large
 * frame arriving in many small reads costs one copy, not a quadratic series of concats).
 * After a {@linkcode FrameError} the decoder must be discarded with its connection.
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder(FRAME_BYTES_MAX);
 * decoder.push(chunk, (body) => console.log(parseFrame(body, { hasShardPrefix: true })));
 * ```
 */
export class FrameDecoder {
  #frameBytesMax: number;
  #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFilled = 0;
  #partial: Uint8Array | null = null;
  #partialFilled = 0;

  /** @param frameBytesMax the largest frame body accepted; raised after authentication. */
  constructor(frameBytesMax: number) {
    this.#frameBytesMax = checkFrameBytesMax(frameBytesMax);
  }

  /** Changes the largest accepted frame body (the handshake uses a small one). */
  set frameBytesMax(value: number) {
    this.#frameBytesMax = checkFrameBytesMax(value);
  }

  /** Bytes held back waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.#headerFilled + this.#partialFilled;
  }

  /**
   * Feeds one chunk; calls `onFrame` with each complete frame body in order. When `onFrame`
   * returns `false`, decoding stops right after that frame and the bytes consumed so far are
   * returned; the caller keeps the rest (the handshake reads one frame at a time this way).
   *
   * @returns the number of bytes of `chunk` consumed (all of them unless stopped).
   * @throws {FrameError} `frame_too_large` or `frame_malformed` (a zero length).
   */
  push(chunk: Uint8Array, onFrame: (body: Uint8Array) => unknown): number {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#partial !== null) {
        const partial = this.#partial;
        offset = this.#fillPartial(chunk, offset);
        if (this.#partial === null && onFrame(partial) === false) return offset;
        continue;
      }
      if (this.#headerFilled === 0 && chunk.length - offset >= FRAME_HEADER_BYTES) {
        const length = this.#checkLength(readUint32(chunk, offset));
        const end = offset + FRAME_HEADER_BYTES + length;
        if (end <= chunk.length) {
          const body = chunk.subarray(offset + FRAME_HEADER_BYTES, end);
          offset = end;
          if (onFrame(body) === false) return offset;
        } else {
          this.#partial = new Uint8Array(length);
          this.#partialFilled = 0;
          offset += FRAME_HEADER_BYTES;
        }
        continue;
      }
      this.#header[this.#headerFilled] = chunk[offset]!;
      this.#headerFilled += 1;
      offset += 1;
      if (this.#headerFilled === FRAME_HEADER_BYTES) {
        this.#headerFilled = 0;
        this.#partial = new Uint8Array(this.#checkLength(readUint32(this.#header, 0)));
        this.#partialFilled = 0;
      }
    }
    assert(offset === chunk.length, "push() consumed the whole chunk");
    return offset;
  }

  /** Copies bytes into the partial frame; clears it when complete. Returns the new offset. */
  #fillPartial(chunk: Uint8Array, offset: number): number {
    const partial = this.#partial;
    assert(partial !== null, "fillPartial() has a partial frame");
    const take = Math.min(partial.length - this.#partialFilled, chunk.length - offset);
    partial.set(chunk.subarray(offset, offset + take), this.#partialFilled);
    this.#partialFilled += take;
    if (this.#partialFilled === partial.length) {
      this.#partial = null;
      this.#partialFilled = 0;
    }
    return offset + take;
  }

  #checkLength(length: number): number {
    if (length === 0) throw malformed("frame length is 0");
    if (length > this.#frameBytesMax) {
      throw new FrameError(
        "frame_too_large",
        `Cannot accept a frame: length is ${length} bytes but the limit is ${this.#frameBytesMax}`,
      );
    }
    return length;
  }
}

function parseRaftBatch(
  body: Uint8Array,
  view: DataView,
  options: CodecOptions,
): ShardMessage[] {
  if (body.length < 5) throw malformed("raft_batch is shorter than its count");
  const count = view.getUint32(1);
  const headerBytes = options.hasShardPrefix ? 8 : 4;
  if (count < 1 || count > BATCH_MESSAGES_MAX) {
    throw malformed(`raft_batch count is ${count} but must be 1..${BATCH_MESSAGES_MAX}`);
  }
  if (count * headerBytes > body.length - 5) throw malformed("raft_batch count exceeds its bytes");
  const messages: ShardMessage[] = new Array(count);
  let offset = 5;
  for (let i = 0; i < count; i += 1) {
    if (body.length - offset < headerBytes) throw malformed("raft_batch message header is cut");
    let shardId = 0;
    if (options.hasShardPrefix) {
      shardId = view.getUint32(offset);
      offset += 4;
    }
    const length = view.getUint32(offset);
    offset += 4;
    if (length > body.length - offset) throw malformed("raft_batch message overruns the frame");
    messages[i] = { shardId, payload: body.subarray(offset, offset + length) };
    offset += length;
  }
  if (offset !== body.length) throw malformed("raft_batch has trailing bytes");
  return messages;
}

function parseRequestLike(
  type: number,
  body: Uint8Array,
  view: DataView,
  options: CodecOptions,
): Frame {
  const prefixBytes = 1 + 4 + (options.hasShardPrefix ? 4 : 0);
  if (body.length < prefixBytes) throw malformed("request frame is shorter than its header");
  const requestId = view.getUint32(1);
  const shardId = options.hasShardPrefix ? view.getUint32(5) : 0;
  if (type === FrameType.error) {
    return { type: "error", requestId, shardId, error: parseWireError(body.subarray(prefixBytes)) };
  }
  if (requestId === 0) throw malformed("request id 0 is reserved");
  if (type === FrameType.response) {
    return { type: "response", requestId, shardId, payload: body.subarray(prefixBytes) };
  }
  if (body.length < prefixBytes + 4) throw malformed("request frame has no deadline");
  const deadlineMs = view.getUint32(prefixBytes);
  return {
    type: "request",
    requestId,
    shardId,
    deadlineMs,
    payload: body.subarray(prefixBytes + 4),
  };
}

/** The most detail fields an error frame may carry. */
const ERROR_DETAILS_MAX = 32;

function parseWireError(json: Uint8Array): WireError {
  if (json.length > ERROR_JSON_BYTES_MAX) throw malformed("error JSON is over the limit");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (error) {
    throw malformed(`error JSON does not parse: ${String(error)}`);
  }
  if (typeof value !== "object" || value === null) throw malformed("error JSON is not an object");
  const record = value as Record<string, unknown>;
  const { code, message, details } = record;
  if (typeof code !== "string" || !/^[a-z_]{1,64}$/.test(code)) {
    throw malformed("error code is not snake_case");
  }
  if (typeof message !== "string") throw malformed("error message is not a string");
  if (typeof details !== "object" || details === null || Array.isArray(details)) {
    throw malformed("error details is not an object");
  }
  const entries = Object.entries(details as Record<string, unknown>);
  if (entries.length > ERROR_DETAILS_MAX) throw malformed("error details has too many fields");
  const checked: Record<string, string | number | boolean | null> = {};
  for (const [key, item] of entries) {
    const isScalar = item === null || ["string", "number", "boolean"].includes(typeof item);
    if (!isScalar) throw malformed(`error detail "${key}" is not a scalar`);
    checked[key] = item as string | number | boolean | null;
  }
  return { code, message, details: checked };
}

function writeRequestPrefix(
  view: DataView,
  message: { requestId: number; shardId: number },
  options: CodecOptions,
): void {
  assert(Number.isInteger(message.requestId), "requestId is an integer");
  assert(message.requestId >= 0 && message.requestId <= WIRE_ID_MAX, "requestId is u32");
  view.setUint32(5, message.requestId);
  if (options.hasShardPrefix) view.setUint32(9, checkShardId(message.shardId));
  else assert(message.shardId === 0, "the legacy protocol carries shard 0 only");
}

function allocateFrame(type: number, bodyBytesAfterType: number) {
  const length = 1 + bodyBytesAfterType;
  assert(length <= FRAME_BYTES_MAX, "an encoded frame fits FRAME_BYTES_MAX");
  const bytes = new Uint8Array(FRAME_HEADER_BYTES + length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, length);
  view.setUint8(4, type);
  return { bytes, view };
}

function expectBodyBytes(body: Uint8Array, expected: number, name: string): void {
  if (body.length !== expected) {
    throw malformed(`${name} frame is ${body.length} bytes but must be ${expected}`);
  }
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) |
    bytes[offset + 3]!) >>> 0;
}

function checkFrameBytesMax(value: number): number {
  assert(Number.isSafeInteger(value), "frameBytesMax is an integer");
  assert(value >= 1 && value <= FRAME_BYTES_MAX, "frameBytesMax is 1..FRAME_BYTES_MAX");
  return value;
}

/** Asserts a node id is a u32 above 0 and returns it. */
export function checkNodeId(nodeId: number): number {
  assert(Number.isInteger(nodeId), "node id is an integer");
  assert(nodeId >= 1 && nodeId <= WIRE_ID_MAX, "node id is 1..2^32-1");
  return nodeId;
}

/** Asserts a shard id is a u32 and returns it. */
export function checkShardId(shardId: number): number {
  assert(Number.isInteger(shardId), "shard id is an integer");
  assert(shardId >= 0 && shardId <= WIRE_ID_MAX, "shard id is 0..2^32-1");
  return shardId;
}

function malformed(reason: string): FrameError {
  return new FrameError("frame_malformed", `Cannot parse a frame: ${reason}`);
}
