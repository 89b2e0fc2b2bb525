/**
 * The peer transport: one QUIC endpoint per node, one authenticated connection per pair of
 * nodes shared by every shard, batched one-way Raft traffic, and request/response RPC.
 *
 * ```text
 *   send(to, shard, payload) -> per-peer queue --(one flush per turn)--> one raft_batch frame
 *   request(to, shard, payload, {deadlineMs}) -> request frame, id in flight -> response/error
 *   handlers.onRaftMessage / handlers.onRequest  <- frames from peers, after the handshake
 * ```
 *
 * Connection ownership. Invariant: the node with the smaller id dials and the larger one only
 * listens, so each pair has exactly one connection and both sides agree on it without a
 * tie-break. A dialer retries with exponential backoff (reconnectDelayMsMin doubling up to
 * reconnectDelayMsMax, with jitter) and starts over from the minimum after each connection
 * that passed the handshake. A listener accepts any node that proves the cluster secret; a
 * newer connection from the same node replaces the older one (the dialer restarted).
 *
 * Loss. Raft tolerates lost messages, so `send()` never blocks and never grows without bound:
 * a message for a peer that is down, whose queue is full, or that a fault drops, is counted
 * and dropped. Requests fail fast with a typed error instead (see errors.ts).
 */

import { clearImmediate, setImmediate } from "node:timers";
import { assert } from "../raft/mod.ts";
import { addressInUseError, AspenError } from "../shard/mod.ts";
import { type ConnectionEvents, PeerConnection } from "./_connection.ts";
import {
  acceptPeer,
  CloseCode,
  dialPeer,
  type HandshakeContext,
  type PeerLink,
  PeerRefusedError,
  quicTransportOptions,
} from "./_establish.ts";
import { InboundDispatcher } from "./_inbound.ts";
import { createPeerState, encodeBatchFrames, type PeerState, snapshotPeer } from "./_peer_state.ts";
import { formatHostPort, parseHostPort } from "./address.ts";
import { PeerRequestError } from "./errors.ts";
import { PeerFaults } from "./faults.ts";
import {
  checkShardId,
  type FrameError,
  type PeerProtocol,
  WIRE_ID_MAX,
  type WireError,
} from "./frame_codec.ts";
import { importClusterSecret } from "./handshake.ts";
import { certificateDer, importPeerSigningKey } from "./identity.ts";
import {
  PEER_PAYLOAD_BYTES_MAX,
  type PeerLimits,
  PEERS_MAX,
  PENDING_HANDSHAKES_MAX,
} from "./limits.ts";
import { createConsoleLogger, describeError, type PeerLogger } from "./logger.ts";
import {
  checkPeerId,
  type PeerEndpoint,
  type PeerHandlers,
  type PeerTransportOptions,
  type ResolvedEndpoint,
  resolveEndpoint,
  resolveLimits,
  resolveProtocols,
  resolveTrust,
} from "./options.ts";
import { type RefusedPeers, RefusedPeerSet } from "./refused_peers.ts";
import type { PeerTransportStats } from "./stats.ts";

export type { PeerEndpoint, PeerHandlers, PeerTransportOptions, PeerTrust } from "./options.ts";

interface Sleeper {
  readonly timer: ReturnType<typeof setTimeout>;
  readonly resolve: () => void;
}

/**
 * A node's peer channel. Create it with {@linkcode PeerTransport.start}; always `close()` it.
 *
 * @example
 * ```ts
 * const transport = await PeerTransport.start({
 *   nodeId: 1, listen: "127.0.0.1:7001", identity, clusterSecret, handlers,
 *   trust: { caCertificatePem: credentials.caCertificatePem },
 *   peers: new Map([[2, { address: "127.0.0.1:7002" }]]),
 * });
 * transport.send(2, 0, raftMessageBytes);
 * const answer = await transport.request(2, 3, requestBytes, { deadlineMs: 2000 });
 * await transport.close();
 * ```
 */
export class PeerTransport {
  readonly nodeId: number;
  /** Test-only fault injection; mutating it throws unless it was enabled at start. */
  readonly faults: PeerFaults;
  readonly #limits: PeerLimits;
  readonly #handlers: PeerHandlers;
  readonly #logger: PeerLogger;
  readonly #protocols: readonly PeerProtocol[];
  readonly #endpoint: Deno.QuicEndpoint;
  readonly #listener: Deno.QuicListener;
  readonly #handshake: HandshakeContext;
  readonly #onFatalError: (error: unknown) => void;
  readonly #peers = new Map<number, PeerState>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #sleepers = new Set<Sleeper>();
  readonly #events: ConnectionEvents;
  readonly #inbound: InboundDispatcher;
  #flushTimer: ReturnType<typeof setImmediate> | null = null;
  #requestIdNext = 1;
  #pendingHandshakes = 0;
  #closing: Promise<void> | null = null;
  #isClosing = false;
  #inboundHandshakeFailures = 0;
  #malformedFrameConnections = 0;
  #unknownPeerDrops = 0;

  /**
   * Validates the options, binds the endpoint, and starts listening and dialing.
   *
   * @throws {AspenError} `bad_config` for a bad node id, address or limit, an identity that
   *   the cluster CA did not issue, or a cluster secret that is too short.
   */
  static async start(options: PeerTransportOptions): Promise<PeerTransport> {
    const limits = resolveLimits(options.limits);
    const protocols = resolveProtocols(options.protocols);
    if (!Number.isInteger(options.nodeId) || options.nodeId < 1 || options.nodeId > WIRE_ID_MAX) {
      throw new AspenError("bad_config", `Cannot use node id ${options.nodeId}: must be 1..2^32-1`);
    }
    const secretKey = await importClusterSecret(options.clusterSecret);
    const trust = await resolveTrust(options.trust, options.identity, options.nodeId);
    const self = {
      signingKey: await importPeerSigningKey(options.identity),
      certificateDer: certificateDer(options.identity.certificatePem)!,
    };
    const refused = new RefusedPeerSet();
    refused.replace(options.refusedPeers ?? {});
    const peers = new Map<number, ResolvedEndpoint>();
    for (const [nodeId, endpoint] of options.peers) {
      checkPeerId(nodeId, options.nodeId);
      peers.set(nodeId, resolveEndpoint(nodeId, endpoint));
    }
    const listen = parseHostPort(options.listen, {
      what: "the peer listen address",
      isListen: true,
    });
    let endpoint: Deno.QuicEndpoint;
    try {
      endpoint = new Deno.QuicEndpoint(listen);
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw addressInUseError("listen for peers", options.listen, error);
      }
      throw error;
    }
    let listener: Deno.QuicListener;
    try {
      listener = endpoint.listen({
        ...quicTransportOptions(limits),
        alpnProtocols: [...protocols],
        key: options.identity.keyPem,
        cert: options.identity.certificatePem,
      });
    } catch (error) {
      endpoint.close();
      throw new AspenError("bad_config", "Cannot listen for peers: the identity was refused", {
        address: options.listen,
      }, { cause: error });
    }
    const handshake = { selfNodeId: options.nodeId, secretKey, limits, trust, self, refused };
    const transport = new PeerTransport(options, {
      limits,
      protocols,
      endpoint,
      listener,
      handshake,
    });
    transport.#begin(peers);
    return transport;
  }

  /** Use {@linkcode PeerTransport.start}; the constructor only assigns fields. */
  constructor(
    options: PeerTransportOptions,
    parts: {
      limits: PeerLimits;
      protocols: readonly PeerProtocol[];
      endpoint: Deno.QuicEndpoint;
      listener: Deno.QuicListener;
      handshake: HandshakeContext;
    },
  ) {
    this.nodeId = options.nodeId;
    this.faults = new PeerFaults(options.faults ?? { enabled: false });
    this.#limits = parts.limits;
    this.#handlers = options.handlers;
    this.#logger = options.logger ?? createConsoleLogger(options.nodeId);
    this.#protocols = parts.protocols;
    this.#endpoint = parts.endpoint;
    this.#listener = parts.listener;
    this.#handshake = parts.handshake;
    this.#onFatalError = options.onFatalError ?? rethrowLater;
    this.#events = this.#createEvents();
    this.#inbound = new InboundDispatcher({
      nodeId: this.nodeId,
      handlers: this.#handlers,
      limits: this.#limits,
      logger: this.#logger,
      faults: this.faults,
      countersOf: (nodeId) => this.#peers.get(nodeId)?.counters,
      onFatal: (error) => this.#fatal(error),
    });
  }

  /** The bound listen address, "host:port" (useful after listening on port 0). */
  get listenAddress(): string {
    return formatHostPort(this.#endpoint.addr);
  }

  /** True while an authenticated connection to `nodeId` is open. */
  isPeerUp(nodeId: number): boolean {
    return (this.#peers.get(nodeId)?.connection ?? null) !== null;
  }

  /**
   * The fingerprint of the certificate `nodeId` proved its id with on the open connection, or
   * null when there is none.
   */
  peerCertificate(nodeId: number): string | null {
    return this.#peers.get(nodeId)?.connection?.remoteCertificateFingerprint ?? null;
  }

  /**
   * Queues one Raft message for `toNodeId`. Everything queued for a peer before the next flush
   * (a later macrotask, or an explicit `flush()`) leaves as one batch frame.
   *
   * @returns true when queued; false when dropped (peer down or unknown, queue full, a legacy
   *   peer and a shard other than 0, or an injected fault). Drops are counted in `stats()`.
   */
  send(toNodeId: number, shardId: number, payload: Uint8Array): boolean {
    checkShardId(shardId);
    assert(payload.length <= PEER_PAYLOAD_BYTES_MAX, "a Raft message fits PEER_PAYLOAD_BYTES_MAX");
    const peer = this.#peers.get(toNodeId);
    if (peer === undefined) {
      this.#unknownPeerDrops += 1;
      return false;
    }
    const { counters, connection } = peer;
    if (connection === null) {
      counters.messagesDroppedDisconnected += 1;
      return false;
    }
    if (!connection.codec.hasShardPrefix && shardId !== 0) {
      counters.messagesDroppedLegacy += 1;
      return false;
    }
    if (this.faults.shouldDrop(toNodeId)) {
      counters.messagesDroppedFault += 1;
      return false;
    }
    const isQueueFull = peer.queue.length >= this.#limits.queueMessagesMax ||
      peer.queueBytes + payload.length > this.#limits.queueBytesMax;
    if (isQueueFull) {
      counters.messagesDroppedQueueFull += 1;
      return false;
    }
    peer.queue.push({ shardId, payload });
    peer.queueBytes += payload.length;
    this.#scheduleFlush();
    return true;
  }

  /** Writes every queued message now, one batch frame (or a few, if large) per peer. */
  flush(): void {
    if (this.#flushTimer !== null) {
      clearImmediate(this.#flushTimer);
      this.#flushTimer = null;
    }
    for (const peer of this.#peers.values()) {
      if (peer.queue.length > 0) this.#flushPeer(peer);
    }
  }

  /**
   * Sends a request to the handler of `shardId` on `toNodeId` and waits for its answer.
   *
   * Many requests may be in flight on the one connection; each has its own id and deadline.
   * There is no retry here: the caller knows whether a retry is safe.
   *
   * @throws {PeerRequestError} kind `timeout` (code timeout), `unreachable` or `closed`
   *   (shard_unavailable), `overloaded` (too_many_requests), `too_large`
   *   (request_too_large), `unknown_shard`, or `remote` with the remote handler's code.
   */
  async request(
    toNodeId: number,
    shardId: number,
    payload: Uint8Array,
    options: { readonly deadlineMs: number },
  ): Promise<Uint8Array> {
    checkShardId(shardId);
    assert(Number.isSafeInteger(options.deadlineMs), "deadlineMs is an integer");
    assert(options.deadlineMs >= 1, "deadlineMs is positive");
    assert(options.deadlineMs <= this.#limits.requestDeadlineMsMax, "deadlineMs is in limits");
    const peer = this.#peers.get(toNodeId);
    const connection = this.#checkRequest(peer, { nodeId: toNodeId, shardId }, payload);
    assert(peer !== undefined, "checkRequest() found the peer");
    peer.counters.requestsOut += 1;
    try {
      return await connection.request({
        requestId: this.#nextRequestId(connection),
        shardId,
        payload,
        deadlineMs: options.deadlineMs,
        isDropped: this.faults.shouldDrop(toNodeId),
        delayMs: this.faults.delayMs(toNodeId),
      });
    } catch (error) {
      peer.counters.requestsFailed += 1;
      throw error;
    }
  }

  /**
   * Adds a peer or changes its address (membership changes, joins). A changed address closes
   * the current outbound connection so the next dial uses the new one. Ignored after close().
   *
   * @throws {AspenError} `bad_config` for a bad id or address, or past PEERS_MAX.
   */
  setPeer(nodeId: number, endpoint: PeerEndpoint): void {
    checkPeerId(nodeId, this.nodeId);
    const resolved = resolveEndpoint(nodeId, endpoint);
    if (this.#isClosing) return;
    const peer = this.#peers.get(nodeId) ?? this.#addPeer(nodeId);
    if (peer === null) {
      throw new AspenError("bad_config", `Cannot add node ${nodeId}: over ${PEERS_MAX} peers`);
    }
    const previous = peer.endpoint;
    peer.endpoint = resolved;
    const isChanged = previous !== null && previous.address !== resolved.address;
    if (isChanged && peer.connection?.role === "dialer") {
      peer.connection.close(CloseCode.normal, "peer endpoint changed");
    }
    this.#ensureDialLoop(peer);
  }

  /**
   * Replaces the set of refused peers (removed nodes), by certificate fingerprint or node id.
   * Later handshakes from or to them fail, dialing a refused node id stops (and starts again
   * once it is no longer refused), and an open connection whose peer is now refused is closed
   * at once.
   *
   * @throws {AspenError} `bad_config` for a malformed fingerprint or node id; the old set
   *   stays in force then.
   */
  setRefusedPeers(refused: RefusedPeers): void {
    this.#handshake.refused.replace(refused);
    for (const peer of this.#peers.values()) {
      const connection = peer.connection;
      if (connection === null) continue;
      const reason = this.#handshake.refused.reasonFor(
        peer.nodeId,
        connection.remoteCertificateFingerprint,
      );
      if (reason === null) continue;
      this.#logger.warn(`Closing the connection to node ${peer.nodeId}: ${reason}`, {
        certificate: connection.remoteCertificateFingerprint,
      });
      connection.close(CloseCode.peerRefused, "peer refused");
    }
    // A node id no longer refused is dialed again.
    for (const peer of this.#peers.values()) this.#ensureDialLoop(peer);
  }

  /** Forgets a peer: closes its connection, drops its queue, and stops dialing it. */
  removePeer(nodeId: number): void {
    const peer = this.#peers.get(nodeId);
    if (peer === undefined) return;
    peer.isRemoved = true;
    this.#peers.delete(nodeId);
    peer.connection?.close(CloseCode.peerRemoved, "peer removed");
    peer.queue = [];
    peer.queueBytes = 0;
  }

  /** A snapshot of every peer's state and counters. */
  stats(): PeerTransportStats {
    const peers = [...this.#peers.values()].map(snapshotPeer);
    peers.sort((a, b) => a.nodeId - b.nodeId);
    return {
      nodeId: this.nodeId,
      listenAddress: this.listenAddress,
      peers,
      inboundHandshakeFailures: this.#inboundHandshakeFailures,
      malformedFrameConnections: this.#malformedFrameConnections,
      unknownPeerDrops: this.#unknownPeerDrops,
    };
  }

  /**
   * Stops listening and dialing, closes every connection (requests in flight fail with kind
   * `closed`), and resolves once every loop has ended and the endpoint is closed.
   */
  close(): Promise<void> {
    if (this.#closing === null) {
      this.#isClosing = true;
      this.#closing = this.#shutdown();
    }
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#flushTimer !== null) clearImmediate(this.#flushTimer);
    this.#flushTimer = null;
    for (const sleeper of this.#sleepers) {
      clearTimeout(sleeper.timer);
      sleeper.resolve();
    }
    this.#sleepers.clear();
    this.#listener.stop();
    for (const peer of this.#peers.values()) {
      peer.connection?.close(CloseCode.normal, "node shutting down", "closed");
    }
    this.#endpoint.close();
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #begin(peers: ReadonlyMap<number, ResolvedEndpoint>): void {
    for (const [nodeId, endpoint] of peers) {
      const peer = this.#addPeer(nodeId);
      assert(peer !== null, "start() keeps the configured peers within PEERS_MAX");
      peer.endpoint = endpoint;
    }
    this.#spawn(this.#acceptLoop());
    for (const peer of this.#peers.values()) this.#ensureDialLoop(peer);
  }

  #addPeer(nodeId: number): PeerState | null {
    if (this.#peers.size >= PEERS_MAX) return null;
    const peer = createPeerState(nodeId);
    this.#peers.set(nodeId, peer);
    return peer;
  }

  #checkRequest(
    peer: PeerState | undefined,
    target: { nodeId: number; shardId: number },
    payload: Uint8Array,
  ): PeerConnection {
    const fail = (
      kind: "closed" | "too_large" | "unreachable" | "unknown_shard" | "overloaded",
      reason: string,
    ) => {
      if (peer !== undefined) peer.counters.requestsFailed += 1;
      return PeerRequestError.local(
        kind,
        target,
        `Cannot send a request to node ${target.nodeId} for shard ${target.shardId}: ${reason}`,
      );
    };
    if (this.#isClosing) throw fail("closed", "this node is shutting down");
    if (payload.length > PEER_PAYLOAD_BYTES_MAX) {
      throw fail(
        "too_large",
        `payload is ${payload.length} bytes but the limit is ` +
          `${PEER_PAYLOAD_BYTES_MAX}`,
      );
    }
    if (peer === undefined) this.#unknownPeerDrops += 1;
    const connection = peer?.connection ?? null;
    if (connection === null) throw fail("unreachable", "there is no connection to it");
    if (!connection.codec.hasShardPrefix && target.shardId !== 0) {
      throw fail("unknown_shard", "it speaks the legacy protocol, which carries shard 0 only");
    }
    if (connection.requestsInflight >= this.#limits.requestsInflightMax) {
      throw fail("overloaded", `${connection.requestsInflight} requests are in flight`);
    }
    return connection;
  }

  #nextRequestId(connection: PeerConnection): number {
    // Invariant: requestsInflight < requestsInflightMax < 2^32, so a free id exists.
    for (;;) {
      const requestId = this.#requestIdNext;
      this.#requestIdNext = requestId === WIRE_ID_MAX ? 1 : requestId + 1;
      if (!connection.hasPendingRequest(requestId)) return requestId;
    }
  }

  /** Flushes once the I/O ready now is handled (setImmediate; setTimeout(0) waits 1-4 ms). */
  #scheduleFlush(): void {
    if (this.#flushTimer !== null || this.#isClosing) return;
    this.#flushTimer = setImmediate(() => {
      this.#flushTimer = null;
      this.flush();
    });
  }

  #flushPeer(peer: PeerState): void {
    const connection = peer.connection;
    // Invariant: a queue is emptied when its connection closes, so queued implies connected.
    assert(connection !== null, "a peer with queued messages is connected");
    if (!connection.hasSendCapacity) return; // onWritable() flushes again
    const messages = peer.queue;
    peer.queue = [];
    peer.queueBytes = 0;
    const delayMs = this.faults.delayMs(peer.nodeId);
    for (const frame of encodeBatchFrames(messages, connection.codec)) {
      connection.write(frame, delayMs);
    }
    peer.counters.messagesOut += messages.length;
  }

  #ensureDialLoop(peer: PeerState): void {
    if (peer.dialLoop !== null || !this.#shouldDial(peer)) return;
    const loop = this.#dialLoop(peer).finally(() => {
      peer.dialLoop = null;
    });
    peer.dialLoop = loop;
    this.#spawn(loop);
  }

  #shouldDial(peer: PeerState): boolean {
    const isDialer = this.nodeId < peer.nodeId;
    return isDialer && !this.#isClosing && !peer.isRemoved && peer.endpoint !== null &&
      !this.#handshake.refused.isNodeRefused(peer.nodeId);
  }

  async #dialLoop(peer: PeerState): Promise<void> {
    let delayMs = this.#limits.reconnectDelayMsMin;
    while (this.#shouldDial(peer)) {
      const connection = await this.#dialOnce(peer);
      if (connection !== null) {
        delayMs = this.#limits.reconnectDelayMsMin;
        await connection.done;
      }
      if (!this.#shouldDial(peer)) return;
      await this.#sleep(withJitter(delayMs));
      if (connection === null) delayMs = Math.min(delayMs * 2, this.#limits.reconnectDelayMsMax);
    }
  }

  async #dialOnce(peer: PeerState): Promise<PeerConnection | null> {
    const endpoint = peer.endpoint;
    assert(endpoint !== null, "dialOnce() has an endpoint");
    let link: PeerLink;
    try {
      link = await dialPeer({
        ...this.#handshake,
        endpoint: this.#endpoint,
        target: { ...endpoint, nodeId: peer.nodeId },
        protocols: this.#protocols,
      });
    } catch (error) {
      peer.counters.connectFailures += 1;
      if (!this.#isClosing) {
        this.#logHandshakeFailure(`Cannot connect to node ${peer.nodeId}`, error, {
          address: endpoint.address,
        });
      }
      return null;
    }
    return this.#install(link);
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let incoming: Deno.QuicIncoming;
      try {
        incoming = await this.#listener.incoming();
      } catch (error) {
        if (this.#isClosing) return;
        throw new Error("Cannot accept peer connections: the listener failed", { cause: error });
      }
      if (this.#pendingHandshakes >= PENDING_HANDSHAKES_MAX) {
        this.#inboundHandshakeFailures += 1;
        incoming.refuse();
        continue;
      }
      this.#spawn(this.#acceptOne(incoming));
    }
  }

  async #acceptOne(incoming: Deno.QuicIncoming): Promise<void> {
    this.#pendingHandshakes += 1;
    // Never read incoming.remoteAddr: in Deno 2.9 any use of the incoming resource besides
    // accept() consumes it, and accept() then fails with BadResource.
    let from = "unknown";
    let link: PeerLink;
    try {
      const conn = await incoming.accept();
      from = formatHostPort(conn.remoteAddr);
      link = await acceptPeer({ ...this.#handshake, conn });
    } catch (error) {
      this.#inboundHandshakeFailures += 1;
      if (!this.#isClosing) {
        this.#logHandshakeFailure("Cannot accept a peer connection", error, { from });
      }
      return;
    } finally {
      this.#pendingHandshakes -= 1;
    }
    const connection = this.#install(link);
    if (connection !== null) await connection.done;
  }

  /** Makes an authenticated link the peer's connection, replacing an older one. */
  #install(link: PeerLink): PeerConnection | null {
    const nodeId = link.remoteNodeId;
    let peer = this.#peers.get(nodeId);
    if (peer === undefined && link.role === "listener") peer = this.#addPeer(nodeId) ?? undefined;
    if (this.#isClosing || peer === undefined || peer.isRemoved) {
      link.conn.close({ closeCode: CloseCode.normal, reason: "not accepting this peer" });
      this.#spawn(link.closed.then(() => undefined));
      return null;
    }
    peer.connection?.close(CloseCode.replaced, "replaced by a newer connection");
    const connection = new PeerConnection(link, {
      events: this.#events,
      counters: peer.counters,
      limits: this.#limits,
    });
    peer.connection = connection;
    peer.counters.connectionsOpened += 1;
    connection.start();
    this.#logger.info(`Connected to node ${nodeId}`, { protocol: link.protocol, role: link.role });
    this.#handlers.onPeerStateChange?.(nodeId, true);
    return connection;
  }

  /** A refused (removed) peer gets its own log line naming it and its certificate. */
  #logHandshakeFailure(message: string, error: unknown, fields: Record<string, string>): void {
    if (error instanceof PeerRefusedError) {
      this.#logger.warn(`Refused node ${error.nodeId}: its certificate or node id is refused`, {
        ...fields,
        node: error.nodeId,
        certificate: error.certificateFingerprint,
      });
      return;
    }
    this.#logger.warn(message, { ...fields, error: describeError(error) });
  }

  #createEvents(): ConnectionEvents {
    return {
      onRaftBatch: (connection, messages) => this.#inbound.onRaftBatch(connection, messages),
      onRequest: (connection, request) => this.#inbound.onRequest(connection, request),
      onRaftError: (connection, shardId, error) => this.#onRaftError(connection, shardId, error),
      onWritable: (connection) => {
        const peer = this.#peers.get(connection.remoteNodeId);
        if (peer?.connection === connection && peer.queue.length > 0) this.#flushPeer(peer);
      },
      onClosed: (connection) => this.#onClosed(connection),
      onProtocolError: (connection, error) => this.#onProtocolError(connection, error),
      onFatal: (error) => this.#fatal(error),
    };
  }

  #onRaftError(connection: PeerConnection, shardId: number, error: WireError): void {
    const peer = this.#peers.get(connection.remoteNodeId);
    if (peer !== undefined && error.code === "unknown_shard") {
      peer.counters.unknownShardErrorsIn += 1;
    }
    this.#logger.warn(`Node ${connection.remoteNodeId} refused a Raft message`, {
      shard: shardId,
      code: error.code,
      message: error.message,
    });
  }

  #onClosed(connection: PeerConnection): void {
    const peer = this.#peers.get(connection.remoteNodeId);
    if (peer === undefined || peer.connection !== connection) return;
    peer.connection = null;
    peer.counters.messagesDroppedDisconnected += peer.queue.length;
    peer.queue = [];
    peer.queueBytes = 0;
    if (!this.#isClosing) {
      this.#logger.info(`Disconnected from node ${peer.nodeId}`, {
        reason: connection.closeReason,
      });
    }
    this.#handlers.onPeerStateChange?.(peer.nodeId, false);
  }

  #onProtocolError(connection: PeerConnection, error: FrameError): void {
    this.#malformedFrameConnections += 1;
    this.#logger.warn(`Closing the connection to node ${connection.remoteNodeId}`, {
      reason: error.reason,
      error: error.message,
    });
  }

  #sleep(delayMs: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const sleeper: Sleeper = {
      timer: setTimeout(() => {
        this.#sleepers.delete(sleeper);
        resolve();
      }, delayMs),
      resolve,
    };
    this.#sleepers.add(sleeper);
    return promise;
  }

  /** Tracks a background task so close() can wait for it; a failure is a bug. */
  #spawn(task: Promise<void>): void {
    const tracked: Promise<void> = task
      .catch((error: unknown) => this.#fatal(error))
      .finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }

  #fatal(error: unknown): void {
    this.#logger.error("The peer transport hit a bug", { error: describeError(error) });
    this.#onFatalError(error);
  }
}

/** Spreads reconnects of many nodes apart: 75%..125% of the delay. */
function withJitter(delayMs: number): number {
  return Math.max(1, Math.round(delayMs * (0.75 + Math.random() / 2)));
}

/** The default fatal handler: rethrow outside any promise chain, so the process ends. */
function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}
