/**
 * joinedState(): a member that cannot answer yet (a cluster still starting: 503
 * shard_unavailable) is asked again, with the same key; a final refusal ends the join at once.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import type { Config } from "../config.ts";
import { Logger } from "../log.ts";
import { joinedState } from "./join.ts";

const quiet = new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 });

Deno.test("joinedState() asks again while the member starts, and stops on a refusal", async () => {
  const dir = await Deno.makeTempDir();
  const keys: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    keys.push((await req.json() as { publicKey: string }).publicKey);
    const [status, code, message] = keys.length <= 2
      ? [503, "shard_unavailable", "shard 0 has not recorded it yet; try again"]
      : [409, "conflict", "node id 4 is used"];
    return Response.json({ error: { code, message } }, { status });
  });
  try {
    const config = {
      node: { id: 4, dataDir: dir, peerListen: "127.0.0.1:1", httpListen: "127.0.0.1:2" },
      cluster: { join: `http://127.0.0.1:${server.addr.port}`, joinToken: "t" },
    } as unknown as Config;
    await rejects(
      joinedState(config, quiet),
      (error) =>
        error instanceof AspenError && error.code === "conflict" && /is used/.test(error.message),
    );
    equal(keys.length, 3, "two transient answers, then the refusal");
    ok(keys.every((key) => key === keys[0]), "every attempt offers the same key");
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
