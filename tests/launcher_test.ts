/**
 * LocalCluster.waitForLeaders() explains a cluster that does not come up: a node that exits on
 * its own fails the wait at once (not after the whole timeout), naming the node, its exit code
 * and its last output lines.
 */
import { match, rejects } from "node:assert/strict";
import { LocalCluster } from "../cli/launcher.ts";
import type { AspenError } from "../shard/mod.ts";
import { ASPEN_COMMAND } from "./_cluster.ts";

Deno.test("waitForLeaders() fails at once with the output of a node that exited", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-launcher-" });
  const cluster = await LocalCluster.launch({
    dir,
    nodes: 1,
    shards: 1,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: () => {},
    extraNodeArgs: ["--no-such-flag"],
  });
  try {
    const started = Date.now();
    await rejects(cluster.waitForLeaders(1, 30_000), (error: AspenError) => {
      match(error.message, /node 1 exited \(code 2/);
      match(error.message, /n1 \| .*no-such-flag/);
      return Date.now() - started < 20_000;
    });
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
