/**
 * Typed failures of peer requests (STYLE §7, kind 2: expected operating conditions).
 *
 * Every failure of `PeerTransport.request()` is a {@linkcode PeerRequestError}: an
 * `AspenError` whose `code` the HTTP layer already maps, plus a `kind` that says what
 * happened on the peer channel. A remote handler's `AspenError` crosses the wire with its code,
 * message and details intact (a `not_leader` with its leader hint, say).
 */

import { INTERNAL_ERROR_CODE } from "../api/mod.ts";
import { AspenError, type ErrorCode, type ErrorDetails, isErrorCode } from "../shard/mod.ts";
import type { WireError } from "./frame_codec.ts";

/** What went wrong with a peer request. */
export type PeerErrorKind =
  /** The deadline passed before an answer came. */
  | "timeout"
  /** There is no authenticated connection to the peer, or it broke mid-request. */
  | "unreachable"
  /** Too many requests are in flight to (or at) the peer. */
  | "overloaded"
  /** The payload is over PEER_PAYLOAD_BYTES_MAX. */
  | "too_large"
  /** The peer does not host the shard (or speaks the legacy protocol and the shard is not 0). */
  | "unknown_shard"
  /** The peer's handler answered with an error. */
  | "remote"
  /** This transport is closing. */
  | "closed";

const CODE_OF_KIND: Readonly<Record<Exclude<PeerErrorKind, "remote">, ErrorCode>> = {
  timeout: "timeout",
  unreachable: "shard_unavailable",
  overloaded: "too_many_requests",
  too_large: "request_too_large",
  unknown_shard: "unknown_shard",
  closed: "shard_unavailable",
};

/** The code an error frame carries for a handler failure that was not an AspenError. */
export { INTERNAL_ERROR_CODE };

/**
 * A failed peer request.
 *
 * @example
 * ```ts
 * try {
 *   await transport.request(2, 0, payload, { deadlineMs: 1000 });
 * } catch (error) {
 *   if (error instanceof PeerRequestError && error.kind === "timeout") retry();
 * }
 * ```
 */
export class PeerRequestError extends AspenError {
  readonly kind: PeerErrorKind;
  readonly nodeId: number;
  readonly shardId: number;

  constructor(
    fields: {
      kind: PeerErrorKind;
      nodeId: number;
      shardId: number;
      code: ErrorCode;
      message: string;
      details?: ErrorDetails;
    },
    options?: ErrorOptions,
  ) {
    const details = { ...fields.details, node: fields.nodeId, shard: fields.shardId };
    super(fields.code, fields.message, details, options);
    this.kind = fields.kind;
    this.nodeId = fields.nodeId;
    this.shardId = fields.shardId;
  }

  /** Builds a local failure whose code follows from its kind. */
  static local(
    kind: Exclude<PeerErrorKind, "remote">,
    target: { nodeId: number; shardId: number },
    message: string,
  ): PeerRequestError {
    return new PeerRequestError({ kind, code: CODE_OF_KIND[kind], message, ...target });
  }

  /** Rebuilds the error a remote node sent back. */
  static remote(
    error: WireError,
    target: { nodeId: number; shardId: number },
  ): PeerRequestError {
    // Peers of one cluster run one version, so every code they send is in ERROR_CODES; an
    // unknown one (a bug, or a newer peer mid-upgrade) becomes shard_unavailable, keeping it.
    const isKnown = isErrorCode(error.code);
    const code: ErrorCode = isKnown ? error.code : "shard_unavailable";
    const kind: PeerErrorKind = error.code === "unknown_shard" ? "unknown_shard" : "remote";
    const details = isKnown ? error.details : { ...error.details, remoteCode: error.code };
    return new PeerRequestError({ kind, code, message: error.message, details, ...target });
  }
}

/** Turns a handler failure into what goes on the wire. */
export function toWireError(error: unknown): WireError {
  if (error instanceof AspenError) {
    return { code: error.code, message: error.message, details: error.details };
  }
  return {
    code: INTERNAL_ERROR_CODE,
    message: "Cannot handle the request: the remote node failed (see its log)",
    details: {},
  };
}
