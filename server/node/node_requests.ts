/**
 * The node-level requests of the peer channel (shard id NODE_CHANNEL_SHARD): an empty payload
 * asks for the node's info (cluster_status.ts), and the rebalance driver asks a node to host or
 * drop a replica (replica_host.ts), tells it that it was removed from the cluster, asks for
 * the status views of the shards it leads (one request per node instead of one per shard), or
 * for the members record as the node last read it.
 */
import { AspenError } from "../../shard/mod.ts";

/** What one node asks of another. */
export type NodeRequest =
  | { readonly kind: "info" }
  /**
   * Host an empty replica of `shard` for a group led in `term`. Refused when this node dropped
   * the replica on the word of a later term's leader: the asker's view is older than that drop
   * (a deposed leader that still lists the replica). Absent term (an older driver): no check.
   */
  | { readonly kind: "hostReplica"; readonly shard: number; readonly term?: number }
  /**
   * Drop the replica of `shard` that its group no longer lists, as seen by a leader of term
   * `term`: a replica that has seen a later term is refused (the view came from a deposed
   * leader, and the replica may be a member of the newer configuration).
   */
  | { readonly kind: "dropReplica"; readonly shard: number; readonly term: number }
  /** The node was removed from the cluster: it stops and refuses to start again. */
  | { readonly kind: "removed" }
  /**
   * The status views of the shards whose replica on this node leads now (`{ views }`), as a
   * `status` shard request to each would answer: the rebalance driver's pass asks every node
   * once instead of every shard. A node before this kind answers `bad_request`; the driver then
   * asks its shards one by one.
   */
  | { readonly kind: "leaderViews" }
  /**
   * The members and placement records as this node last read them (`MembersRecordAnswer`): a
   * node that cannot reach shard 0's leader (a member that joined while it was down, say, and
   * whose address it never learned) learns the newer records, and so the addresses, from the
   * peers it can reach. A node before this kind answers `bad_request`, which counts as no answer.
   */
  | { readonly kind: "membersRecord" };

/** The answer to a `membersRecord` node request (null: no record read yet). */
export interface MembersRecordAnswer {
  readonly members: string | null;
  readonly placement: string | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a node request (info is the empty payload that nodes have always sent). */
export function encodeNodeRequest(request: NodeRequest): Uint8Array {
  if (request.kind === "info") return new Uint8Array(0);
  return encoder.encode(JSON.stringify(request));
}

/**
 * Decodes and checks a node request.
 *
 * @throws {AspenError} `bad_request` for anything else.
 */
export function decodeNodeRequest(payload: Uint8Array): NodeRequest {
  if (payload.byteLength === 0) return { kind: "info" };
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch (error) {
    throw new AspenError("bad_request", "Cannot decode a node request: not JSON", {}, {
      cause: error,
    });
  }
  const request = (typeof value === "object" && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  if (request.kind === "removed") return { kind: "removed" };
  if (request.kind === "leaderViews") return { kind: "leaderViews" };
  if (request.kind === "membersRecord") return { kind: "membersRecord" };
  if (request.kind === "hostReplica" || request.kind === "dropReplica") {
    const shard = request.shard;
    if (typeof shard !== "number" || !Number.isSafeInteger(shard) || shard < 0) {
      throw new AspenError("bad_request", "Cannot decode a node request: bad shard id");
    }
    const term = request.term;
    if (request.kind === "hostReplica" && term === undefined) return { kind: request.kind, shard };
    if (typeof term !== "number" || !Number.isSafeInteger(term) || term < 0) {
      throw new AspenError("bad_request", "Cannot decode a node request: bad term");
    }
    return { kind: request.kind, shard, term };
  }
  throw new AspenError(
    "bad_request",
    `Cannot decode a node request: unknown kind ${JSON.stringify(request.kind)}`,
  );
}
