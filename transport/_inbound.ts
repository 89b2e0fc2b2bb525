/**
 * Inbound traffic of authenticated connections, private to the peer folder: Raft batches go
 * to the handlers shard by shard, requests run the request handler and their answers (or
 * typed errors) go back on the same connection.
 *
 * Back-pressure on answers. A peer that sends requests and does not read the answers (stuck,
 * buggy or hostile) would make this node buffer every answer. Past `answerBufferBytesMax`
 * unaccepted bytes on its connection, this node sheds: new requests from that peer are not
 * run and get no answer, and answers that finish are dropped; the peer's requests end in
 * `timeout` at their deadlines, which callers already handle (a write's outcome is then
 * unknown and it is never retried blindly; see cluster_router.ts). Memory stays bounded by the
 * limit plus one answer, and no work is done for answers nobody reads.
 *
 * Two other answers were rejected. Pausing the read loop (back-pressure through QUIC flow
 * control, as HTTP/2 does per stream) would also stop the Raft traffic and the responses that
 * share this one stream, and two nodes whose buffers to each other are full would then wait
 * on each other forever. Closing the connection would cut Raft traffic to a peer that is only
 * briefly slow, and reconnect churn under load; shedding lets it recover by itself.
 */

import { assert, AssertionError } from "../raft/mod.ts";
import { AspenError } from "../shard/mod.ts";
import type { InboundRequest, PeerConnection } from "./_connection.ts";
import { toWireError } from "./errors.ts";
import type { PeerFaults } from "./faults.ts";
import { encodeError, encodeResponse, type ShardMessage, type WireError } from "./frame_codec.ts";
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
      connection.writeAnswer(encodeError({ requestId: 0, shardId, error }, connection.codec), 0);
    }
  }

  /**
   * Checks the deadline, limits and the shard, then runs the handler and writes its answer
   * back. The handler gets what is left of the caller's deadline, capped at this node's
   * `requestDeadlineMsMax`; a request whose caller has given up already is answered `timeout`
   * and never run.
   */
  onRequest(connection: PeerConnection, request: InboundRequest): void {
    const fromNodeId = connection.remoteNodeId;
    const counters = this.#context.countersOf(fromNodeId);
    if (counters !== undefined) counters.requestsIn += 1;
    if (!connection.hasAnswerCapacity) {
      // The peer is not reading its answers: shed the request unrun (see the module doc).
      if (counters !== undefined) counters.requestsShed += 1;
      return;
    }
    const reply = (frame: Uint8Array) => {
      if (!this.#context.faults.shouldDrop(fromNodeId)) {
        connection.writeAnswer(frame, this.#context.faults.delayMs(fromNodeId));
      }
    };
    const replyError = (error: WireError) =>
      reply(encodeError({ ...request, error }, connection.codec));
    const deadlineMs = Math.min(request.deadlineMs, this.#context.limits.requestDeadlineMsMax);
    if (deadlineMs === 0) {
      replyError({
        code: "timeout",
        message: `Cannot handle request ${request.requestId} from node ${fromNodeId}: ` +
          "its deadline passed before it arrived",
        details: { shard: request.shardId },
      });
      return;
    }
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
    this.#answer(connection, { ...request, deadlineMs }, reply).catch((error: unknown) =>
      this.#context.onFatal(error)
    );
  }

  async #answer(
    connection: PeerConnection,
    request: InboundRequest,
    reply: (frame: Uint8Array) => void,
  ): Promise<void> {
    const codec = connection.codec;
    try {
      const payload = await this.#context.handlers.onRequest(
        connection.remoteNodeId,
        request.shardId,
        request.payload,
        { deadlineMs: request.deadlineMs },
      );
      assert(payload instanceof Uint8Array, "onRequest() resolves to a Uint8Array");
      if (payload.length <= PEER_PAYLOAD_BYTES_MAX) {
        const { requestId, shardId } = request;
        reply(encodeResponse({ requestId, shardId, payload }, codec));
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
