/**
 * The remote half of `GET /v1/watch`, in process: a node that hosts no replica of the watched
 * shard polls the one that does through a fake peer channel, whose answers are the errors a
 * remote node sends back (rebuilt by PeerRequestError.remote, as the peer channel does). An
 * error that polling again cannot cure (`limit_exceeded`, `compacted`) ends the stream with
 * that error event after one poll; a transient one (`shard_unavailable`) is polled again.
 */
import { deepEqual, equal } from "node:assert/strict";
import { Hono } from "hono";
import { AspenError, type ErrorCode } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import {
  ClusterRouter,
  decodeShardRequest,
  KvService,
  type PeerChannel,
  type ShardRequest,
} from "../node/mod.ts";
import { PeerRequestError } from "../../transport/mod.ts";
import { addWatchRoute, startRevisions } from "./watch_route.ts";

/** No test here runs a cross-shard transaction: the service gets a coordinator that refuses. */
const NO_COORDINATOR = {
  txn: () => Promise.reject(new Error("no cross-shard txn in this test")),
  optimistic: () => Promise.reject(new Error("no cross-shard txn in this test")),
  push: () => Promise.reject(new Error("no cross-shard txn in this test")),
};

const NULL = new TextEncoder().encode("null");

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
    request: (toNode, shard, payload) => {
      // The stream's cancellation when it ends is no poll.
      if (decodeShardRequest(payload).kind === "watchCancel") return Promise.resolve(NULL);
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
  const service = new KvService({
    router,
    shardCount: 1,
    nowMs,
    requestTimeoutMs: 5_000,
    coordinator: NO_COORDINATOR,
  });
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

/** A fake replica: `answer(request, i)` answers the i-th pull; every request is recorded. */
async function watchScripted(options: {
  readonly answer: (request: ShardRequest, pull: number) => unknown;
  readonly eventsWanted: number;
  /** False when the replica predates watchStream: nothing is cancelled there. */
  readonly isStreamed: boolean;
}): Promise<{ requests: ShardRequest[]; values: string[] }> {
  const requests: ShardRequest[] = [];
  const cancelled = Promise.withResolvers<void>();
  const peers: PeerChannel = {
    request: (toNode, shard, payload) => {
      const request = decodeShardRequest(payload);
      requests.push(request);
      if (request.kind === "watchCancel") {
        cancelled.resolve();
        return Promise.resolve(NULL);
      }
      const answer = options.answer(request, requests.length);
      if (answer instanceof Error) {
        const wire = { code: "bad_request", message: answer.message, details: {} };
        return Promise.reject(PeerRequestError.remote(wire, { nodeId: toNode, shardId: shard }));
      }
      if (answer === undefined) {
        // No event yet: wait until the stream is cancelled, then answer as the replica does.
        return cancelled.promise.then(() => {
          const wire = { code: "watch_cancelled", message: "cancelled", details: {} };
          throw PeerRequestError.remote(wire, { nodeId: toNode, shardId: shard });
        });
      }
      return Promise.resolve(new TextEncoder().encode(JSON.stringify(answer)));
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
  const service = new KvService({
    router,
    shardCount: 1,
    nowMs,
    requestTimeoutMs: 5_000,
    coordinator: NO_COORDINATOR,
  });
  const app = new Hono();
  addWatchRoute(app, service, new Map());
  const response = await app.request("/v1/watch?key=a");
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const values = () =>
    [...text.matchAll(/^data: (.*)$/gm)].map((match) => JSON.parse(match[1]!).kv.value as string);
  while (values().length < options.eventsWanted) {
    const next = await reader.read();
    if (next.done) break;
    text += next.value;
  }
  await reader.cancel();
  if (options.isStreamed) await cancelled.promise;
  return { requests, values: values() };
}

function putEvent(value: string, revision: number) {
  const kv = { key: "a", value, version: 1, createRevision: revision, modRevision: revision };
  return { type: "put", kv: { ...kv, lease: 0 }, prevKv: null, revision };
}

Deno.test("a remote watch pulls from its last position and cancels on disconnect", async () => {
  const run = await watchScripted({
    eventsWanted: 3,
    isStreamed: true,
    answer: (_request, pull) => {
      if (pull === 1) return { items: [], position: { revision: 5, skip: 0 } };
      if (pull === 2) {
        return { items: [putEvent("x", 5), putEvent("y", 5)], position: { revision: 5, skip: 2 } };
      }
      if (pull === 3) return { items: [putEvent("z", 9)], position: { revision: 9, skip: 1 } };
      return undefined;
    },
  });
  deepEqual(run.values, ["x", "y", "z"]);
  const requests = run.requests;
  deepEqual(requests.map((request) => request.kind), [
    "watchStream",
    "watchStream",
    "watchStream",
    "watchStream",
    "watchCancel",
  ]);
  const positions = requests.map((request) =>
    request.kind === "watchStream" ? request.position : "cancel"
  );
  deepEqual(positions, [
    null,
    { revision: 5, skip: 0 },
    { revision: 5, skip: 2 },
    { revision: 9, skip: 1 },
    "cancel",
  ]);
  const ids = new Set(run.requests.map((request) => "streamId" in request && request.streamId));
  equal(ids.size, 1, "one stream id throughout");
});

Deno.test("a remote watch falls back to polling a replica that predates watchStream", async () => {
  const run = await watchScripted({
    eventsWanted: 2,
    isStreamed: false,
    answer: (request, pull) => {
      if (request.kind === "watchStream") {
        return new Error('Cannot decode a forwarded request of kind "watchStream"');
      }
      if (pull === 2) return { items: [putEvent("x", 3)], nextRevision: 4 };
      // The poll from revision 3 repeats "x"; the pump drops what it wrote already.
      if (pull === 3) return { items: [putEvent("x", 3), putEvent("y", 3)], nextRevision: 4 };
      return { items: [], nextRevision: 4 };
    },
  });
  deepEqual(run.values, ["x", "y"]);
  deepEqual(run.requests.slice(0, 3).map((request) => request.kind), [
    "watchStream",
    "watchPoll",
    "watchPoll",
  ]);
});

Deno.test("startRevisions() reads fromRevision (key) and fromRevisions (prefix)", async (t) => {
  const prefix = { ids: [0, 1, 2], isKey: false, shardCount: 3, fromRevision: undefined };
  const key = { ids: [1], isKey: true, shardCount: 3, fromRevisions: undefined };
  const cases: { name: string; query: Parameters<typeof startRevisions>[0]; want: unknown }[] = [
    {
      name: "a map per shard",
      query: { ...prefix, fromRevisions: "0:5,2:9" },
      want: [[0, 5], [2, 9]],
    },
    { name: "no start", query: { ...prefix, fromRevisions: undefined }, want: [] },
    { name: "a key's revision", query: { ...key, fromRevision: "7" }, want: [[1, 7]] },
    {
      name: "fromRevision on a prefix",
      query: { ...prefix, fromRevision: "7", fromRevisions: undefined },
      want: "needs a key",
    },
    {
      name: "fromRevisions on a key",
      query: { ...key, fromRevision: undefined, fromRevisions: "1:3" },
      want: "for a prefix",
    },
    {
      name: "both",
      query: { ...prefix, fromRevision: "1", fromRevisions: "0:1" },
      want: "not both",
    },
    {
      name: "unknown shard",
      query: { ...prefix, fromRevisions: "3:1" },
      want: "shard 3 does not exist",
    },
    { name: "shard twice", query: { ...prefix, fromRevisions: "1:1,1:2" }, want: "named twice" },
    { name: "revision 0", query: { ...prefix, fromRevisions: "1:0" }, want: "positive integer" },
    { name: "not a pair", query: { ...prefix, fromRevisions: "1" }, want: "not shard:revision" },
    { name: "too many", query: { ...prefix, fromRevisions: "0:1,1:1,2:1,0:2" }, want: "4 entries" },
  ];
  for (const { name, query, want } of cases) {
    await t.step(name, () => {
      if (typeof want !== "string") {
        deepEqual([...startRevisions(query)], want);
        return;
      }
      try {
        startRevisions(query);
      } catch (error) {
        equal(error instanceof AspenError && error.code === "bad_request", true);
        equal((error as Error).message.includes(want), true, (error as Error).message);
        return;
      }
      throw new Error(`${name}: accepted`);
    });
  }
});
