/**
 * The options of `PeerTransport.start()`, the handler interface the node runtime implements,
 * and their validation. Every check fails with `AspenError` code `bad_config`, naming the
 * option and its value, so that a misconfigured node stops at startup.
 */

import { AspenError } from "../shard/mod.ts";
import { type HostPort, parseHostPort } from "./address.ts";
import type { PeerFaultOptions } from "./faults.ts";
import {
  ALPN_LEGACY,
  ALPN_SHARDED,
  checkNodeId,
  type PeerProtocol,
  WIRE_ID_MAX,
} from "./frame_codec.ts";
import type { X509Certificate } from "./_x509.ts";
import {
  certificateDer,
  certificateFingerprint,
  checkPeerCertificate,
  parseCaCertificate,
  type PeerIdentity,
} from "./identity.ts";
import { findInvalidPeerLimit, PEER_LIMITS_DEFAULT, type PeerLimits } from "./limits.ts";
import type { PeerLogger } from "./logger.ts";
import type { RefusedPeers } from "./refused_peers.ts";

/** Where a peer listens. Its certificate needs no configuration: it must chain to the CA. */
export interface PeerEndpoint {
  /** "host:port" of the peer's QUIC listener. */
  readonly address: string;
}

/** The roots of trust of the peer channel (see the trust model in mod.ts). */
export interface PeerTrust {
  /**
   * The cluster CA certificate, PEM, from the credentials file. Dialers accept a listener only
   * if its certificate chains to it, and this node's own identity must have been issued by it.
   */
  readonly caCertificatePem: string;
}

/** What the node runtime does with traffic from peers. */
export interface PeerHandlers {
  /** True when this node hosts a replica of `shardId`; false means "unknown shard". */
  hostsShard(shardId: number): boolean;
  /** One Raft message for a local replica; must not throw (a throw is treated as a bug). */
  onRaftMessage(fromNodeId: number, shardId: number, payload: Uint8Array): void;
  /**
   * A forwarded request; reject with an AspenError to send a typed error back. `deadlineMs`
   * is what is left of the caller's deadline (at least 1, at most `requestDeadlineMsMax`),
   * measured from now on this node's clock: past it nobody waits for the answer, so the
   * handler should not start work then, nor wait longer (answer `timeout`).
   */
  onRequest(
    fromNodeId: number,
    shardId: number,
    payload: Uint8Array,
    options: { readonly deadlineMs: number },
  ): Promise<Uint8Array>;
  /** Called when the connection to a peer comes up or goes down. */
  onPeerStateChange?(nodeId: number, isUp: boolean): void;
}

/** Options of {@linkcode PeerTransport.start}. */
export interface PeerTransportOptions {
  /** This node's id, 1..2^32-1. */
  readonly nodeId: number;
  /** "host:port" to listen on; port 0 picks a free port (see `listenAddress`). */
  readonly listen: string;
  /** This node's key and CA-issued certificate (`loadOrCreatePeerIdentity()`). */
  readonly identity: PeerIdentity;
  /** The cluster CA that every node's certificate must chain to. */
  readonly trust: PeerTrust;
  /** The cluster secret from `cluster init`; never sent, only used as an HMAC key. */
  readonly clusterSecret: string;
  /**
   * Peers to refuse although the cluster CA issued their certificate (removed nodes), by
   * certificate fingerprint or node id. Replace it later with `setRefusedPeers()`.
   */
  readonly refusedPeers?: RefusedPeers;
  /** Known peers. Only peers with a larger id are dialed; smaller ones dial us. */
  readonly peers: ReadonlyMap<number, PeerEndpoint>;
  readonly handlers: PeerHandlers;
  /** Tunables; missing fields take PEER_LIMITS_DEFAULT. */
  readonly limits?: Partial<PeerLimits>;
  /** Receives the transport's log lines. Default: warnings and errors to stderr, no info. */
  readonly logger?: PeerLogger;
  /** ALPNs offered and accepted, by preference. Default: sharded, then legacy. */
  readonly protocols?: readonly PeerProtocol[];
  /** Test-only fault injection; disabled unless `{ enabled: true }`. */
  readonly faults?: PeerFaultOptions;
  /** Receives errors that are bugs (a handler threw). Default: rethrow, ending the process. */
  readonly onFatalError?: (error: unknown) => void;
}

/** A peer endpoint, parsed. */
export interface ResolvedEndpoint extends HostPort {
  readonly address: string;
}

/** The trust of a running transport: the CA to dial with and its fingerprint. */
export interface ResolvedTrust {
  readonly caCertificatePem: string;
  /** The CA certificate, parsed: peers' certificates must chain to it. */
  readonly caCertificate: X509Certificate;
  /** Lowercase hex SHA-256 of the CA certificate; bound into every handshake proof. */
  readonly caFingerprint: string;
}

/** Merges limit overrides with the defaults and validates them.
 *
 * @throws {AspenError} `bad_config` naming the first bad limit.
 */
export function resolveLimits(overrides: Partial<PeerLimits> | undefined): PeerLimits {
  const limits: PeerLimits = { ...PEER_LIMITS_DEFAULT, ...overrides };
  const invalid = findInvalidPeerLimit(limits);
  if (invalid !== null) {
    const value = String(limits[invalid as keyof PeerLimits]);
    throw new AspenError(
      "bad_config",
      `Cannot use peer limit ${invalid} = ${value}: out of range`,
      {
        limit: invalid,
      },
    );
  }
  return limits;
}

/** Validates the ALPN list; the default is sharded first, then legacy. */
export function resolveProtocols(
  protocols: readonly PeerProtocol[] | undefined,
): readonly PeerProtocol[] {
  const resolved = protocols ?? [ALPN_SHARDED, ALPN_LEGACY];
  const isValid = resolved.length >= 1 && resolved.length <= 2 &&
    new Set(resolved).size === resolved.length &&
    resolved.every((protocol) => protocol === ALPN_SHARDED || protocol === ALPN_LEGACY);
  if (!isValid) {
    throw new AspenError("bad_config", `Cannot use peer protocols "${resolved.join(",")}"`);
  }
  return resolved;
}

/** Checks a peer id: 1..2^32-1 and not this node. */
export function checkPeerId(nodeId: number, selfNodeId: number): void {
  const isValid = Number.isInteger(nodeId) && nodeId >= 1 && nodeId <= WIRE_ID_MAX;
  if (!isValid || nodeId === selfNodeId) {
    throw new AspenError("bad_config", `Cannot use peer node id ${nodeId}`, { node: nodeId });
  }
  checkNodeId(nodeId);
}

/** Parses a peer endpoint.
 *
 * @throws {AspenError} `bad_config` when the address is not "host:port".
 */
export function resolveEndpoint(nodeId: number, endpoint: PeerEndpoint): ResolvedEndpoint {
  const hostPort = parseHostPort(endpoint.address, {
    what: `the address of node ${nodeId}`,
    isListen: false,
  });
  return { ...hostPort, address: endpoint.address };
}

/**
 * Checks that the node's identity was issued by the cluster CA for this node id (a node with a
 * stray certificate would be refused by every peer, so it stops at startup instead).
 *
 * @throws {AspenError} `bad_config` when the CA holds no certificate, did not issue the
 *   identity's certificate, is the identity's certificate, or the certificate names another
 *   node (or none: issued before node-bound certificates).
 */
export async function resolveTrust(
  trust: PeerTrust,
  identity: PeerIdentity,
  nodeId: number,
): Promise<ResolvedTrust> {
  const caFingerprint = await certificateFingerprint(trust.caCertificatePem);
  if (await certificateFingerprint(identity.certificatePem) === caFingerprint) {
    throw new AspenError(
      "bad_config",
      "Cannot use the peer identity: it is the cluster CA itself, and TLS refuses a CA " +
        "certificate as a node certificate (CaUsedAsEndEntity)",
      { ca: caFingerprint },
    );
  }
  const caCertificate = parseCaCertificate(trust.caCertificatePem);
  const der = certificateDer(identity.certificatePem);
  const checked = der === null
    ? { refused: "it holds no PEM certificate" }
    : await checkPeerCertificate(der, { ca: caCertificate, nodeId, now: new Date() });
  if ("refused" in checked) {
    throw new AspenError(
      "bad_config",
      `Cannot use the peer identity of node ${nodeId}: ${checked.refused} ` +
        `(identity ${identity.fingerprint}, CA ${caFingerprint})`,
      { identity: identity.fingerprint, ca: caFingerprint },
    );
  }
  return { caCertificatePem: trust.caCertificatePem, caCertificate, caFingerprint };
}
