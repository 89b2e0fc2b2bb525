/**
 * The peers this node refuses: node certificates by fingerprint and node ids, for removed
 * nodes. The transport checks every handshake against it (after the certificate and signature
 * checks, so a refusal is only ever logged for a genuine CA-issued certificate) and closes a
 * live connection of a peer that becomes refused. The node runtime sets it from its config at
 * start and may replace it while running (the membership runtime will feed it from the meta
 * store).
 */

import { AspenError } from "../shard/mod.ts";
import { checkNodeId, WIRE_ID_MAX } from "./frame_codec.ts";
import { PEERS_REFUSED_MAX } from "./limits.ts";

/** Which peers to refuse; either list may be empty. */
export interface RefusedPeers {
  /** SHA-256 fingerprints of node certificates, hex (colons and case are ignored). */
  readonly certificateFingerprints?: readonly string[];
  /** Node ids refused whatever certificate they present. */
  readonly nodeIds?: readonly number[];
}

/** A validated, normalised refused set. */
export class RefusedPeerSet {
  #fingerprints: ReadonlySet<string> = new Set();
  #nodeIds: ReadonlySet<number> = new Set();

  /**
   * Replaces the set.
   *
   * @throws {AspenError} `bad_config` for a fingerprint that is not 64 hex digits, a bad node
   *   id, or more than PEERS_REFUSED_MAX entries in either list.
   */
  replace(refused: RefusedPeers): void {
    const fingerprints = (refused.certificateFingerprints ?? []).map(normalizeFingerprint);
    const nodeIds = refused.nodeIds ?? [];
    for (const nodeId of nodeIds) {
      if (!Number.isInteger(nodeId) || nodeId < 1 || nodeId > WIRE_ID_MAX) {
        throw new AspenError("bad_config", `Cannot refuse node id ${nodeId}: must be 1..2^32-1`);
      }
      checkNodeId(nodeId);
    }
    if (fingerprints.length > PEERS_REFUSED_MAX || nodeIds.length > PEERS_REFUSED_MAX) {
      throw new AspenError(
        "bad_config",
        `Cannot refuse more than ${PEERS_REFUSED_MAX} certificates or node ids`,
        { limit: PEERS_REFUSED_MAX },
      );
    }
    this.#fingerprints = new Set(fingerprints);
    this.#nodeIds = new Set(nodeIds);
  }

  /** Why node `nodeId` presenting certificate `fingerprint` is refused, or null if it is not. */
  reasonFor(nodeId: number, fingerprint: string): string | null {
    if (this.#nodeIds.has(nodeId)) return `node ${nodeId} is refused`;
    if (this.#fingerprints.has(fingerprint)) return `its certificate ${fingerprint} is refused`;
    return null;
  }

  /** True when node `nodeId` is refused by id (so there is no point dialing it). */
  isNodeRefused(nodeId: number): boolean {
    return this.#nodeIds.has(nodeId);
  }
}

/** "AB:CD:..." or "abcd..." to lowercase hex without separators. */
function normalizeFingerprint(text: string): string {
  const hex = String(text).replaceAll(":", "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new AspenError(
      "bad_config",
      `Cannot refuse certificate "${text}": a fingerprint is the SHA-256 of the certificate, ` +
        "64 hex digits",
    );
  }
  return hex;
}
