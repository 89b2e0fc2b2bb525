/**
 * Inbound traffic of authenticated connections, private to the peer folder: Raft batches go
 * to the handlers shard by shard, requests run the request handler and their answers (or
 * typed errors) go back on the same connection.
 */

import { assert, AssertionError } from "../../raft/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import type { PeerConnection } from "./_connection.ts";
import { toWireError } from "./errors.ts";
import type { PeerFaults } from "./faults.ts";
import {
  encodeError,
  encodeRequestOrResponse,
  type ShardMessage,
  type WireError,
} from "./frame_codec.ts";
import { PEER_PAYLOAD_BYTES_MAX, type PeerLimits } from "./limits.ts";
import { describeError, type PeerLogger } from "./logger.ts";
import type { PeerHandlers } from "./options.ts";
import type { PeerCounters } from "./stats.ts";

/** What the dispatcher needs from its transport. */
export interface InboundContext {
  readonly nodeId: number;
  readonly handlers: PeerHandlers;
  readonly limits: PeerLimits;
  readonly logger: PeerLogger;
  readonly faults: PeerFaults;
  countersOf(nodeId: number): PeerCounters | undefined;
  onFatal(error: unknown): void;
}

/** Dispatches inbound Raft batches and requests to the node's handlers. */
export class InboundDispatcher {
  readonly #context: InboundContext;

  constructor(context: InboundContext) {
    this.#context = context;
  }

  /** Hands each message to its shard; answers unknown shards with one error frame each. */
  onRaftBatch(connection: PeerConnection, messages: readonly ShardMessage[]): void {
    const fromNodeId = connection.remoteNodeId;
    let unknownShards: Set<number> | null = null;
    for (const message of messages) {
      if (this.#context.handlers.hostsShard(message.shardId)) {
        this.#context.handlers.onRaftMessage(fromNodeId, message.shardId, message.payload);
      } else {
        unknownShards ??= new Set();
        unknownShards.add(message.shardId);
      }
    }
    if (unknownShards === null) return;
    for (const shardId of unknownShards) {
      const error = unknownShardError(this.#context.nodeId, shardId, "deliver a Raft message");
      connection.write(encodeError({ requestId: 0, shardId, error }, connection.codec), 0);
    }
  }

  /** Checks limits and the shard, then runs the handler and writes its answer back. */
  onRequest(
    connection: PeerConnection,
    request: { requestId: number; shardId: number; payload: Uint8Array },
  ): void {
    const fromNodeId = connection.remoteNodeId;
    const counters = this.#context.countersOf(fromNodeId);
    if (counters !== undefined) counters.requestsIn += 1;
    const reply = (frame: Uint8Array) => {
      if (!this.#context.faults.shouldDrop(fromNodeId)) {
        connection.write(frame, this.#context.faults.delayMs(fromNodeId));
      }
    };
    const replyError = (error: WireError) =>
      reply(encodeError({ ...request, error }, connection.codec));
    if (connection.inboundRequestsInflight >= this.#context.limits.inboundRequestsInflightMax) {
      replyError({
        code: "too_many_requests",
        message: `Cannot take a request from node ${fromNodeId}: ` +
          `${connection.inboundRequestsInflight} are in flight already`,
        details: { limit: this.#context.limits.inboundRequestsInflightMax },
      });
      return;
    }
    if (!this.#context.handlers.hostsShard(request.shardId)) {
      replyError(unknownShardError(this.#context.nodeId, request.shardId, "handle a request"));
      return;
    }
    connection.inboundRequestsInflight += 1;
    this.#answer(connection, request, reply).catch((error: unknown) =>
      this.#context.onFatal(error)
    );
  }

  async #answer(
    connection: PeerConnection,
    request: { requestId: number; shardId: number; payload: Uint8Array },
    reply: (frame: Uint8Array) => void,
  ): Promise<void> {
    const codec = connection.codec;
    try {
      const payload = await this.#context.handlers.onRequest(
        connection.remoteNodeId,
        request.shardId,
        request.payload,
      );
      assert(payload instanceof Uint8Array, "onRequest() resolves to a Uint8Array");
      if (payload.length <= PEER_PAYLOAD_BYTES_MAX) {
        reply(encodeRequestOrResponse("response", { ...request, payload }, codec));
        return;
      }
      const error: WireError = {
        code: "request_too_large",
        message: `Cannot answer request ${request.requestId}: response is ${payload.length} ` +
          `bytes but the limit is ${PEER_PAYLOAD_BYTES_MAX}`,
        details: { limit: PEER_PAYLOAD_BYTES_MAX },
      };
      reply(encodeError({ ...request, error }, codec));
    } catch (error) {
      if (error instanceof AssertionError) throw error;
      if (!(error instanceof AspenError)) {
        this.#context.logger.error("A peer request handler failed", {
          node: connection.remoteNodeId,
          shard: request.shardId,
          error: describeError(error),
        });
      }
      reply(encodeError({ ...request, error: toWireError(error) }, codec));
    } finally {
      connection.inboundRequestsInflight -= 1;
    }
  }
}

function unknownShardError(nodeId: number, shardId: number, action: string): WireError {
  return {
    code: "unknown_shard",
    message: `Cannot ${action} for shard ${shardId}: node ${nodeId} does not host it`,
    details: { shard: shardId, node: nodeId },
  };
}
