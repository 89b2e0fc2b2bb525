/**
 * The refused-peers file (`[cluster] refused_peers_file`): the node certificates and node ids
 * this node refuses on the peer channel, for removed nodes. One entry a line: a certificate's
 * SHA-256 fingerprint (64 hex digits, colons allowed, as `aspen cluster issue-node` prints
 * it) or a node id (`node 4`); blank lines and `#` comments are ignored.
 *
 * ```text
 * # node 4 was removed on 2026-11-30
 * node 4
 * 3f1c...e9a0
 * ```
 */

import { AspenError } from "../shard/mod.ts";
import type { RefusedPeers } from "../transport/mod.ts";

/** The largest refused-peers file read, in bytes. */
export const REFUSED_PEERS_FILE_BYTES_MAX = 1024 * 1024;

/**
 * Parses the file's text.
 *
 * @throws {AspenError} `bad_config` naming the file and line of an entry that is neither.
 */
export function parseRefusedPeers(path: string, text: string): RefusedPeers {
  if (text.length > REFUSED_PEERS_FILE_BYTES_MAX) {
    throw new AspenError(
      "bad_config",
      `Cannot read refused peers "${path}": over ${REFUSED_PEERS_FILE_BYTES_MAX} bytes`,
    );
  }
  const certificateFingerprints: string[] = [];
  const nodeIds: number[] = [];
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    const node = /^node\s+([1-9][0-9]{0,9})$/.exec(line);
    if (node !== null) {
      nodeIds.push(Number(node[1]));
    } else if (/^[0-9a-fA-F:]+$/.test(line) && line.replaceAll(":", "").length === 64) {
      certificateFingerprints.push(line);
    } else {
      throw new AspenError(
        "bad_config",
        `Cannot read refused peers "${path}" line ${index + 1}: "${line}" is neither a ` +
          'certificate fingerprint (64 hex digits) nor "node <id>"',
      );
    }
  }
  return { certificateFingerprints, nodeIds };
}

/**
 * Reads and parses the file at `path`.
 *
 * @throws {AspenError} `bad_config` when it is missing or malformed.
 */
export async function readRefusedPeers(path: string): Promise<RefusedPeers> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new AspenError("bad_config", `Cannot read refused peers "${path}"`, {}, {
      cause: error,
    });
  }
  return parseRefusedPeers(path, text);
}
