/**
 * The remote half of `GET /v1/watch`, in process: a node that hosts no replica of the watched
 * shard polls the one that does through a fake peer channel, whose answers are the errors a
 * remote node sends back (rebuilt by PeerRequestError.remote, as the peer channel does). An
 * error that polling again cannot cure (`limit_exceeded`, `compacted`) ends the stream with
 * that error event after one poll; a transient one (`shard_unavailable`) is polled again.
 */
import { deepEqual, equal } from "node:assert/strict";
import { Hono } from "hono";
import type { ErrorCode } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import { ClusterRouter, KvService, type PeerChannel } from "../node/mod.ts";
import { PeerRequestError } from "../../transport/mod.ts";
import { addWatchRoute } from "./watch_route.ts";

/** Polls allowed before a stream that should have ended counts as retrying forever. */
const POLLS_MAX = 3;

interface WatchRun {
  /** The `data:` lines of the stream, parsed. */
  readonly events: Record<string, unknown>[];
  readonly polls: number;
}

/** Watches key "a" on a node that hosts nothing; the remote answers `answers[i]` to poll i. */
async function watchRemote(answers: readonly ErrorCode[]): Promise<WatchRun> {
  let polls = 0;
  const tooMany = Promise.withResolvers<void>();
  const peers: PeerChannel = {
    request: (toNode, shard) => {
      polls++;
      if (polls > POLLS_MAX) tooMany.resolve();
      const code = answers[Math.min(polls, answers.length) - 1]!;
      const wire = { code, message: `Cannot watch: ${code}`, details: { limit: 7 } };
      return Promise.reject(PeerRequestError.remote(wire, { nodeId: toNode, shardId: shard }));
    },
    isConnected: () => true,
  };
  const logger = new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 });
  const nowMs = () => performance.now();
  const router = new ClusterRouter({
    nodeId: 1,
    members: [2],
    replicationFactor: 1,
    local: new Map(),
    peers,
    nowMs,
    logger,
  });
  const service = new KvService({ router, shardCount: 1, nowMs, requestTimeoutMs: 5_000 });
  const app = new Hono();
  addWatchRoute(app, service, new Map());
  const response = await app.request("/v1/watch?key=a");
  equal(response.status, 200);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const next = await Promise.race([reader.read(), tooMany.promise.then(() => null)]);
    if (next === null || next.done) break;
    text += next.value;
  }
  await reader.cancel();
  const events = [...text.matchAll(/^data: (.*)$/gm)].map((match) => JSON.parse(match[1]!));
  return { events, polls };
}

Deno.test("a remote watch ends with an error that polling again cannot cure", async (t) => {
  for (const code of ["limit_exceeded", "compacted", "bad_request"] as const) {
    await t.step(code, async () => {
      const run = await watchRemote([code]);
      equal(run.polls, 1, "no retry");
      deepEqual(run.events, [{
        type: "error",
        code,
        message: `Cannot watch: ${code}`,
        shard: 0,
        limit: 7,
        node: 2,
      }]);
    });
  }
});

Deno.test("a remote watch polls again after a transient error", async () => {
  const run = await watchRemote(["shard_unavailable", "limit_exceeded"]);
  equal(run.polls >= 2, true, "polled again after shard_unavailable");
  equal(run.events.length, 1);
  equal(run.events[0]!.code, "limit_exceeded");
});
