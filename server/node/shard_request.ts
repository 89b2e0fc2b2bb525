/**
 * The requests one node asks of a shard's replica, locally or over the peer channel, and their
 * JSON wire form.
 *
 * A client request becomes one `ShardRequest` per shard it touches; the node that hosts the
 * shard's leader executes it. Forwarding sends the same value as JSON, so a forwarded request
 * and a local one run the very same code. Errors cross back as `AspenError`s with their code
 * and details (the peer channel carries them).
 */
import {
  AspenError,
  type Command,
  type KeyRange,
  validateCommand,
  type WatchFilter,
} from "../../shard/mod.ts";

/** A range read as a shard executes it. */
export interface ShardRange {
  readonly range: KeyRange;
  readonly limit: number;
  readonly after: string | null;
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  readonly reverse: boolean;
}

/** What a node asks of a shard. */
export type ShardRequest =
  | { readonly kind: "propose"; readonly command: Command }
  | { readonly kind: "get"; readonly key: string; readonly serializable: boolean }
  | { readonly kind: "range"; readonly range: ShardRange; readonly serializable: boolean }
  | { readonly kind: "leaseKeepAlive"; readonly id: number }
  | { readonly kind: "leaseInfo"; readonly id: number }
  | { readonly kind: "status" }
  | {
    readonly kind: "watchPoll";
    readonly filter: WatchFilter;
    /** The first revision wanted; null means "from the next applied entry". */
    readonly fromRevision: number | null;
    readonly waitMs: number;
  }
  | { readonly kind: "transferLeader"; readonly to: number };

/** Request kinds that a follower may serve from its own state. */
export function isSerializable(request: ShardRequest): boolean {
  if (request.kind === "watchPoll") return true;
  return (request.kind === "get" || request.kind === "range") && request.serializable;
}

/** Request kinds that are safe to retry on another replica when the first did not answer. */
export function isIdempotent(request: ShardRequest): boolean {
  return request.kind !== "propose";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a request for the peer channel. */
export function encodeShardRequest(request: ShardRequest): Uint8Array {
  return encoder.encode(JSON.stringify(request));
}

/**
 * Decodes and checks a request that came over the peer channel.
 *
 * @throws {AspenError} `bad_request` for anything that is not a well-formed request.
 */
export function decodeShardRequest(bytes: Uint8Array): ShardRequest {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new AspenError("bad_request", "Cannot decode a forwarded request: not JSON", {}, {
      cause: error,
    });
  }
  const request = value as ShardRequest;
  const kind = (value as { kind?: unknown } | null)?.kind;
  switch (kind) {
    case "propose":
      validateCommand(request.kind === "propose" ? request.command : ({} as Command));
      return request;
    case "get":
    case "range":
    case "leaseKeepAlive":
    case "leaseInfo":
    case "status":
    case "transferLeader":
    case "watchPoll":
      return request;
    default:
      throw new AspenError("bad_request", `Cannot decode a forwarded request of kind ${kind}`);
  }
}

/** Encodes a response value for the peer channel. */
export function encodeShardResponse(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value ?? null));
}

/** Decodes a response value from the peer channel. */
export function decodeShardResponse<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}
