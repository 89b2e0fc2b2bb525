/**
 * The serving side of a remote watch: a node that hosts no replica of a shard follows it by
 * asking a node that does for the shard's events over the peer channel.
 */
import type { ErrorDetails, StateMachine, WatchEvent } from "../../shard/mod.ts";
import type { ShardRequest } from "./shard_request.ts";

/** The most events one remote watch poll returns. */
export const WATCH_POLL_EVENTS_MAX = 1_000;
/** The longest a remote watch poll waits for events. */
export const WATCH_POLL_WAIT_MS_MAX = 2_000;

/** One poll of a remote watch: events (or a final error) and where to continue. */
export interface WatchPoll {
  readonly items: readonly (
    | WatchEvent
    | { type: "error"; code: string; message: string; details: ErrorDetails }
  )[];
  readonly nextRevision: number;
}

/**
 * Serves one poll of a watch for a node that hosts no replica of this shard: the events
 * from `fromRevision` that arrive within `waitMs` (at most WATCH_POLL_EVENTS_MAX), and the
 * revision to ask for next. A final error (compacted, cancelled) ends the list.
 */
export async function serveWatchPoll(
  stateMachine: StateMachine,
  request: Extract<ShardRequest, { kind: "watchPoll" }>,
): Promise<WatchPoll> {
  const from = request.fromRevision ?? stateMachine.appliedIndex() + 1;
  const watcher = stateMachine.watch(request.filter, { fromRevision: from });
  const items: WatchPoll["items"][number][] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), Math.min(request.waitMs, WATCH_POLL_WAIT_MS_MAX));
  });
  try {
    while (items.length < WATCH_POLL_EVENTS_MAX) {
      const item = await Promise.race([watcher.next(), timeout]);
      if (item === null) break;
      if (item.type === "error") {
        items.push({
          type: "error",
          code: item.error.code,
          message: item.error.message,
          details: item.error.details,
        });
        break;
      }
      items.push(item);
    }
    return { items, nextRevision: watcher.resumeRevision() };
  } finally {
    clearTimeout(timer);
    watcher.cancel();
  }
}
