/**
 * `GET /v1/watch?key=` or `?prefix=` (optionally `&fromRevision=`): Server-Sent Events of puts
 * and deletes, from the replicas this node hosts, and for shards it does not host by polling a
 * replica that does over the peer channel.
 *
 * A key watch follows its one shard; a prefix watch follows every shard (revisions are per
 * shard, so `fromRevision` needs a key when there are several). Each event names its shard.
 * The stream ends with an `error` event when the history no longer holds the asked revision
 * (`compacted`, with `oldestRevision`), when the watcher falls too far behind, or when polling
 * a remote shard fails with an error that another poll cannot cure (`limit_exceeded`, say).
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import {
  allShardIds,
  AspenError,
  type ErrorCode,
  type ErrorDetails,
  validateKey,
  type Watcher,
  type WatchEvent,
  type WatchFilter,
} from "../../shard/mod.ts";
import { apiKv, type KvService, type LocalShard, type WatchPoll } from "../node/mod.ts";
import { queryInteger } from "./body.ts";

/** Milliseconds between keep-alive comments on an idle stream. */
export const WATCH_KEEPALIVE_MS = 15_000;
/** How long one poll of a remote shard waits for events. */
export const REMOTE_POLL_WAIT_MS = 1_000;
/** The pause before polling a remote shard again after a failure. */
export const REMOTE_RETRY_MS = 500;

/**
 * Errors after which a remote watch polls again: the replica asked was unreachable, busy, slow,
 * closing or not the one to ask, and a later poll (of it or another replica) can succeed. Any
 * other error (`limit_exceeded`, `compacted`, `bad_request`, ...) would come back on every
 * poll: it ends the stream with an error event, as it does for a local watch.
 */
export const REMOTE_RETRY_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "timeout",
  "shard_unavailable",
  "not_leader",
  "unknown_shard",
  "proposal_dropped",
  "too_many_requests",
  "watch_cancelled",
]);

/** Adds the watch route. */
export function addWatchRoute(
  app: Hono,
  service: KvService,
  shards: ReadonlyMap<number, LocalShard>,
): void {
  app.get("/v1/watch", (c) => {
    const action = "watch";
    const key = c.req.query("key");
    const prefix = c.req.query("prefix");
    if ((key === undefined) === (prefix === undefined)) {
      throw new AspenError("bad_request", "Cannot watch: give exactly one of key or prefix");
    }
    if (key !== undefined) validateKey(key, action);
    const fromText = c.req.query("fromRevision");
    const fromRevision = fromText === undefined
      ? undefined
      : queryInteger(fromText, "fromRevision", action, {
        min: 1,
        max: Number.MAX_SAFE_INTEGER,
        defaultValue: 1,
      });
    const ids = key !== undefined ? [service.shardOf(key)] : allShardIds(service.shardCount);
    if (fromRevision !== undefined && ids.length > 1) {
      throw new AspenError(
        "bad_request",
        "Cannot watch: fromRevision needs a key, because revisions are per shard",
      );
    }
    const filter: WatchFilter = key !== undefined ? { key } : { prefix: prefix ?? "" };
    const watchers = subscribe(ids, shards, filter, fromRevision);
    const remote = ids.filter((shard) => !shards.has(shard));
    return streamSSE(c, async (stream) => {
      const stop = new AbortController();
      const keepAlive = setInterval(() => {
        stream.write(": keep-alive\n\n").catch(() => clearInterval(keepAlive));
      }, WATCH_KEEPALIVE_MS);
      stream.onAbort(() => {
        stop.abort();
        clearInterval(keepAlive);
        for (const { watcher } of watchers) watcher.cancel();
      });
      try {
        const write = (data: string) => stream.writeSSE({ data });
        await Promise.all([
          ...watchers.map(({ shard, watcher }) => pump(shard, watcher, write)),
          ...remote.map((shard) =>
            pumpRemote({ service, shard, filter, fromRevision, signal: stop.signal, write })
          ),
        ]);
      } finally {
        stop.abort();
        clearInterval(keepAlive);
        for (const { watcher } of watchers) watcher.cancel();
      }
    });
  });
}

function subscribe(
  ids: readonly number[],
  shards: ReadonlyMap<number, LocalShard>,
  filter: WatchFilter,
  fromRevision: number | undefined,
): { shard: number; watcher: Watcher }[] {
  const watchers: { shard: number; watcher: Watcher }[] = [];
  try {
    for (const shard of ids) {
      const local = shards.get(shard);
      if (local === undefined) continue;
      const options = fromRevision === undefined ? {} : { fromRevision };
      watchers.push({ shard, watcher: local.stateMachine.watch(filter, options) });
    }
  } catch (error) {
    for (const { watcher } of watchers) watcher.cancel();
    throw error;
  }
  return watchers;
}

async function pump(
  shard: number,
  watcher: Watcher,
  write: (data: string) => Promise<void>,
): Promise<void> {
  for await (const item of watcher) {
    if (item.type === "error") {
      await write(errorEventJson(item.error, shard));
      return;
    }
    await write(JSON.stringify(eventJson(item, shard)));
  }
}

/**
 * Follows a shard this node does not host by polling a replica that does, over the peer
 * channel; the stream survives leader changes and unreachable replicas (it retries).
 */
async function pumpRemote(options: {
  service: KvService;
  shard: number;
  filter: WatchFilter;
  fromRevision: number | undefined;
  signal: AbortSignal;
  write: (data: string) => Promise<void>;
}): Promise<void> {
  let from: number | null = options.fromRevision ?? null;
  while (!options.signal.aborted) {
    let poll: WatchPoll;
    try {
      poll = await options.service.run<WatchPoll>(options.shard, {
        kind: "watchPoll",
        filter: options.filter,
        fromRevision: from,
        waitMs: REMOTE_POLL_WAIT_MS,
      }, REMOTE_POLL_WAIT_MS + 3_000);
    } catch (error) {
      if (!(error instanceof AspenError)) throw error;
      if (!REMOTE_RETRY_CODES.has(error.code)) {
        await options.write(errorEventJson(error, options.shard));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, REMOTE_RETRY_MS));
      continue;
    }
    for (const item of poll.items) {
      if (item.type === "error") {
        await options.write(errorEventJson(item, options.shard));
        return;
      }
      await options.write(JSON.stringify(eventJson(item, options.shard)));
    }
    from = poll.nextRevision;
  }
}

/** The final `error` event of a stream: code, message, shard and the error's details. */
function errorEventJson(
  error: { code: string; message: string; details: ErrorDetails },
  shard: number,
): string {
  return JSON.stringify({
    type: "error",
    code: error.code,
    message: error.message,
    shard,
    ...error.details,
  });
}

function eventJson(item: WatchEvent, shard: number) {
  return {
    type: item.type,
    kv: apiKv(item.kv, shard),
    ...(item.prevKv === null ? {} : { prevKv: apiKv(item.prevKv, shard) }),
    shard,
    revision: item.revision,
  };
}
