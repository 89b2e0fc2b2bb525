/** Checks the refused-peers file: fingerprints and `node <id>` lines, comments, and errors. */

import assert from "node:assert/strict";
import { AspenError } from "../shard/mod.ts";
import { parseRefusedPeers } from "./refused_peers_file.ts";

const FINGERPRINT = "ab".repeat(32);

Deno.test("parseRefusedPeers() reads fingerprints and node ids, skipping comments", () => {
  const text = `# removed nodes\nnode 4\n\n${FINGERPRINT}  # node 5's old certificate\n` +
    `${"CD:".repeat(31)}CD\n`;
  assert.deepEqual(parseRefusedPeers("r.txt", text), {
    certificateFingerprints: [FINGERPRINT, `${"CD:".repeat(31)}CD`],
    nodeIds: [4],
  });
});

Deno.test("parseRefusedPeers() names the file and line of a bad entry", () => {
  for (const line of ["node 0", "node x", "abc", "ab".repeat(33)]) {
    assert.throws(
      () => parseRefusedPeers("r.txt", `node 4\n${line}\n`),
      (error) =>
        error instanceof AspenError && error.code === "bad_config" &&
        error.message.includes('"r.txt" line 2'),
    );
  }
});
