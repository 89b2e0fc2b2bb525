/**
 * `GET /v1/watch?key=` or `?prefix=` (optionally `&fromRevision=`, or `&fromRevisions=` for a
 * prefix): Server-Sent Events of puts and deletes, from the replicas this node hosts, and for
 * shards it does not host from a replica that does, streamed over the peer channel
 * (remote_watch_pump.ts).
 *
 * A key watch follows its one shard; a prefix watch follows every shard. Revisions are per
 * shard, so a prefix watch that starts in the past names a revision per shard:
 * `fromRevisions=0:120,3:98` (shard:revision, comma-separated); shards it does not name start
 * at their next revision. `fromRevision` alone needs a key (or a cluster of one shard). Each
 * event names its shard, so a client that resumes builds the map from the last event of each
 * shard. A shard's part of the stream ends with an `error` event naming the shard when its
 * history no longer holds the asked revision (`compacted`, with `oldestRevision` and
 * `compactRevision`), when the watcher falls too far behind, or when a remote shard fails with
 * an error that asking again cannot cure (`limit_exceeded`, say).
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import {
  allShardIds,
  AspenError,
  type ErrorDetails,
  validateKey,
  type Watcher,
  type WatchEvent,
  type WatchFilter,
} from "../../shard/mod.ts";
import { apiKv, type KvService, type LocalShard } from "../node/mod.ts";
import { queryInteger } from "./body.ts";
import { abortableSleep, pumpRemote, type RemoteWatchItem } from "./remote_watch_pump.ts";
import { kvJsonText } from "./value_encoding.ts";

/** How often a running watch looks for shards a move added (shard moves, issue 14). */
export const WATCH_SHARD_MAP_CHECK_MS = 500;

/** Milliseconds between keep-alive comments on an idle stream. */
export const WATCH_KEEPALIVE_MS = 15_000;

/** Where each shard of a watch starts: a revision, or absent for "the next one". */
type StartRevisions = ReadonlyMap<number, number>;

/** One shard of a watch hosted here: its watcher, or the error that refused it. */
type LocalPart =
  | { readonly shard: number; readonly watcher: Watcher }
  | { readonly shard: number; readonly error: AspenError };

/** Adds the watch route. */
export function addWatchRoute(
  app: Hono,
  service: KvService,
  shards: ReadonlyMap<number, LocalShard>,
): void {
  let streamsOpened = 0;
  app.get("/v1/watch", (c) => {
    const key = c.req.query("key");
    const prefix = c.req.query("prefix");
    if ((key === undefined) === (prefix === undefined)) {
      throw new AspenError("bad_request", "Cannot watch: give exactly one of key or prefix");
    }
    if (key !== undefined) validateKey(key, "watch");
    const ids = key !== undefined ? [service.shardOf(key)] : allShardIds(service.shardCount);
    const starts = startRevisions({
      fromRevision: c.req.query("fromRevision"),
      fromRevisions: c.req.query("fromRevisions"),
      ids,
      isKey: key !== undefined,
      shardCount: service.shardCount,
    });
    const filter: WatchFilter = key !== undefined ? { key } : { prefix: prefix ?? "" };
    // A single shard's refusal (compacted, say) is the HTTP answer; with several shards it is
    // that shard's error event, and the other shards stream on.
    const locals = subscribe({ ids, shards, filter, starts, isRefusalThrown: ids.length === 1 });
    const remote = ids.filter((shard) => !shards.has(shard));
    return streamSSE(c, async (stream) => {
      const stop = new AbortController();
      const cancelAll = () => {
        stop.abort();
        clearInterval(keepAlive);
        for (const part of locals) if ("watcher" in part) part.watcher.cancel();
      };
      const keepAlive = setInterval(() => {
        stream.write(": keep-alive\n\n").catch(() => clearInterval(keepAlive));
      }, WATCH_KEEPALIVE_MS);
      stream.onAbort(cancelAll);
      try {
        const writeItem = (shard: number) => (item: RemoteWatchItem) =>
          stream.writeSSE({ data: itemJson(item, shard) });
        const remotePump = (shard: number, fromRevision: number | undefined) =>
          pumpRemote({
            service,
            shard,
            filter,
            fromRevision,
            streamId: `${service.nodeId}-${++streamsOpened}`,
            signal: stop.signal,
            write: writeItem(shard),
          });
        // The stream ends when every shard's part ended (errors), as before shard moves.
        const follow = new AbortController();
        stop.signal.addEventListener("abort", () => follow.abort(), { once: true });
        const parts = Promise.all([
          ...locals.map((part) => pumpLocal(part, writeItem(part.shard))),
          ...remote.map((shard) => remotePump(shard, starts.get(shard))),
        ]).finally(() => follow.abort());
        const wanted = () =>
          key !== undefined ? [service.shardOf(key)] : allShardIds(service.shardCount);
        const watch = { shards, filter, locals, writeItem, remotePump };
        await Promise.all([
          parts,
          followNewShards({
            watched: new Set(ids),
            wanted,
            signal: follow.signal,
            pump: (shard) => pumpNewShard(watch, shard),
          }),
        ]);
      } finally {
        cancelAll();
      }
    });
  });
}

/**
 * Follows the shard map while a watch runs: a shard that a move added (a prefix watch), or
 * the new shard of a watched key that moved, joins the stream from its first revision. Moved
 * keys arrive there without events (imports write none), so its history holds exactly the
 * changes made since it went into service.
 */
async function followNewShards(options: {
  readonly watched: Set<number>;
  readonly wanted: () => readonly number[];
  readonly signal: AbortSignal;
  readonly pump: (shard: number) => Promise<void>;
}): Promise<void> {
  const pumps: Promise<void>[] = [];
  while (!options.signal.aborted) {
    await abortableSleep(WATCH_SHARD_MAP_CHECK_MS, options.signal);
    if (options.signal.aborted) break;
    for (const shard of options.wanted()) {
      if (options.watched.has(shard)) continue;
      options.watched.add(shard);
      pumps.push(options.pump(shard));
    }
  }
  await Promise.all(pumps);
}

/** Streams a shard that joined a running watch, from its first revision. */
function pumpNewShard(
  watch: {
    readonly shards: ReadonlyMap<number, LocalShard>;
    readonly filter: WatchFilter;
    readonly locals: LocalPart[];
    readonly writeItem: (shard: number) => (item: RemoteWatchItem) => Promise<void>;
    readonly remotePump: (shard: number, fromRevision: number) => Promise<void>;
  },
  shard: number,
): Promise<void> {
  const { shards, filter } = watch;
  if (!shards.has(shard)) return watch.remotePump(shard, 1);
  const starts = new Map([[shard, 1]]);
  const [part] = subscribe({ ids: [shard], shards, filter, starts, isRefusalThrown: false });
  if (part === undefined) return Promise.resolve();
  watch.locals.push(part);
  return pumpLocal(part, watch.writeItem(shard));
}

/**
 * The start revision of each watched shard from `fromRevision` (one shard) or `fromRevisions`
 * (a prefix: `shard:revision,...`).
 *
 * @throws {AspenError} `bad_request` naming the parameter and what is wrong with it.
 */
export function startRevisions(query: {
  readonly fromRevision: string | undefined;
  readonly fromRevisions: string | undefined;
  readonly ids: readonly number[];
  readonly isKey: boolean;
  readonly shardCount: number;
}): StartRevisions {
  if (query.fromRevision !== undefined && query.fromRevisions !== undefined) {
    throw new AspenError(
      "bad_request",
      "Cannot watch: give fromRevision or fromRevisions, not both",
    );
  }
  if (query.fromRevision !== undefined) {
    if (query.ids.length > 1) {
      throw new AspenError(
        "bad_request",
        "Cannot watch: fromRevision needs a key, because revisions are per shard; " +
          "a prefix watch names one per shard with fromRevisions=shard:revision,...",
      );
    }
    const revision = queryInteger(query.fromRevision, "fromRevision", "watch", REVISION_RANGE);
    return new Map([[query.ids[0]!, revision]]);
  }
  if (query.fromRevisions === undefined) return new Map();
  if (query.isKey) {
    throw new AspenError(
      "bad_request",
      "Cannot watch: fromRevisions is for a prefix watch; a key watch takes fromRevision",
    );
  }
  return parseFromRevisions(query.fromRevisions, query.shardCount);
}

const REVISION_RANGE = { min: 1, max: Number.MAX_SAFE_INTEGER, defaultValue: 1 };

/** Parses `shard:revision,...`, at most one entry per shard of the cluster. */
function parseFromRevisions(text: string, shardCount: number): StartRevisions {
  const starts = new Map<number, number>();
  const entries = text.split(",");
  if (entries.length > shardCount) {
    throw badFromRevisions(
      text,
      `it has ${entries.length} entries but there are ${shardCount} shards`,
    );
  }
  for (const entry of entries) {
    const match = /^([0-9]{1,10}):([0-9]{1,16})$/.exec(entry);
    if (match === null) throw badFromRevisions(text, `"${entry}" is not shard:revision`);
    const shard = Number(match[1]);
    const revision = Number(match[2]);
    if (shard >= shardCount) {
      throw badFromRevisions(text, `shard ${shard} does not exist (shards 0 to ${shardCount - 1})`);
    }
    if (revision < 1 || !Number.isSafeInteger(revision)) {
      throw badFromRevisions(text, `the revision of shard ${shard} must be a positive integer`);
    }
    if (starts.has(shard)) throw badFromRevisions(text, `shard ${shard} is named twice`);
    starts.set(shard, revision);
  }
  return starts;
}

function badFromRevisions(text: string, detail: string): AspenError {
  return new AspenError(
    "bad_request",
    `Cannot watch: query parameter "fromRevisions" is "${text.slice(0, 200)}": ${detail}`,
    { parameter: "fromRevisions" },
  );
}

function subscribe(options: {
  ids: readonly number[];
  shards: ReadonlyMap<number, LocalShard>;
  filter: WatchFilter;
  starts: StartRevisions;
  isRefusalThrown: boolean;
}): LocalPart[] {
  const parts: LocalPart[] = [];
  try {
    for (const shard of options.ids) {
      const local = options.shards.get(shard);
      if (local === undefined) continue;
      const fromRevision = options.starts.get(shard);
      const subscribeOptions = fromRevision === undefined ? {} : { fromRevision };
      try {
        parts.push({ shard, watcher: local.stateMachine.watch(options.filter, subscribeOptions) });
      } catch (error) {
        if (options.isRefusalThrown || !(error instanceof AspenError)) throw error;
        if (error.code !== "compacted") throw error;
        parts.push({ shard, error });
      }
    }
  } catch (error) {
    for (const part of parts) if ("watcher" in part) part.watcher.cancel();
    throw error;
  }
  return parts;
}

async function pumpLocal(
  part: LocalPart,
  write: (item: RemoteWatchItem) => Promise<void>,
): Promise<void> {
  if ("error" in part) {
    await write(errorItem(part.error));
    return;
  }
  for await (const item of part.watcher) {
    if (item.type === "error") {
      await write(errorItem(item.error));
      return;
    }
    await write(item);
  }
}

function errorItem(error: AspenError): RemoteWatchItem {
  return { type: "error", code: error.code, message: error.message, details: error.details };
}

/** One SSE data line: an event, or a shard's final `error` event with the error's details. */
function itemJson(item: RemoteWatchItem, shard: number): string {
  if (item.type === "error") return errorEventJson(item, shard);
  return kvJsonText(eventJson(item, shard), "text");
}

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
