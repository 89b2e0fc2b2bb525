/**
 * The watching side of a remote watch: follows a shard this node does not host through a
 * replica that does, over the peer channel, and writes its events to an SSE stream.
 *
 * ```text
 *   watchStream pull(position) ──► replica answers once an event is ready ──► write events
 *        ▲                                                                      │
 *        └──────────────── next pull, after the writes are done ◄───────────────┘
 * ```
 *
 * Each pull carries the position delivered so far (revision, and events of that revision
 * already written), so a pull that fails, a replica that dies and a leader that moves cost a
 * retry from that position on whichever replica answers next: no event is lost and none is
 * written twice. The next pull leaves only after the client took the last answer, so a slow
 * HTTP client slows the replica down instead of filling a buffer (back-pressure). When the
 * client goes away the stream is cancelled on the replica (`watchCancel`).
 *
 * Compatibility: a replica on a node that predates `watchStream` answers `bad_request`; the
 * pump then polls it with `watchPoll` (answers within REMOTE_POLL_WAIT_MS), still from its
 * position, dropping the events of the position's revision that it wrote already.
 */
import { AspenError, type ErrorCode, type WatchEvent, type WatchFilter } from "../../shard/mod.ts";
import type { KvService, WatchPoll, WatchPosition, WatchStreamBatch } from "../node/mod.ts";

/** How long one pull of a remote watch stream waits for a first event. */
export const REMOTE_STREAM_WAIT_MS = 5_000;
/** How long one poll of a remote shard waits for events (nodes without `watchStream`). */
export const REMOTE_POLL_WAIT_MS = 1_000;
/** Time allowed, beyond the wait, for a pull's answer to come back. */
export const REMOTE_ANSWER_MARGIN_MS = 3_000;
/** The pause before asking a remote shard again after a failure. */
export const REMOTE_RETRY_MS = 500;
/** The longest a cancellation of a remote stream may take; it is not waited for. */
export const REMOTE_CANCEL_TIMEOUT_MS = 1_000;

/**
 * Errors after which a remote watch asks again: the replica asked was unreachable, busy, slow,
 * closing or not the one to ask, and a later pull (of it or another replica) can succeed. Any
 * other error (`limit_exceeded`, `compacted`, `bad_request`, ...) would come back on every
 * pull: it ends the shard's part of the stream with an error event, as it does for a local
 * watch.
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

/** What a remote pump writes: an event, or a final error of its shard. */
export type RemoteWatchItem = WatchPoll["items"][number];

/** What following one remote shard needs. */
export interface RemotePumpOptions {
  readonly service: KvService;
  readonly shard: number;
  readonly filter: WatchFilter;
  /** The first revision to deliver; absent: from the next entry the replica applies. */
  readonly fromRevision: number | undefined;
  /** Unique among this node's streams. */
  readonly streamId: string;
  readonly signal: AbortSignal;
  /** Writes one item; resolves once the client's stream took it. */
  readonly write: (item: RemoteWatchItem) => Promise<void>;
}

/** Follows a remote shard until the signal aborts or a final error is written. */
export async function pumpRemote(options: RemotePumpOptions): Promise<void> {
  const state: PumpState = {
    position: options.fromRevision === undefined
      ? null
      : { revision: options.fromRevision, skip: 0 },
    isStreamed: true,
  };
  // Cancelled as soon as the client leaves: the replica then answers the pull in flight at
  // once instead of at the end of its wait, and holds no watcher for the stream any more.
  const onAbort = () => {
    if (state.isStreamed) cancelStream(options);
  };
  options.signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (!options.signal.aborted) {
      const items = await pullOnce(options, state);
      if (items === null) {
        await abortableSleep(REMOTE_RETRY_MS, options.signal);
        continue;
      }
      for (const item of items) {
        await options.write(item);
        if (item.type === "error") return;
      }
    }
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
}

interface PumpState {
  position: WatchPosition | null;
  /** False once a replica answered `watchStream` with `bad_request` (an older node). */
  isStreamed: boolean;
}

/**
 * One pull (or poll): the items to write, with `state.position` moved past them, or null
 * after an error that a retry can cure.
 */
async function pullOnce(
  options: RemotePumpOptions,
  state: PumpState,
): Promise<RemoteWatchItem[] | null> {
  try {
    if (state.isStreamed) return await pullStream(options, state);
    return await pullPoll(options, state);
  } catch (error) {
    if (!(error instanceof AspenError)) throw error;
    if (state.isStreamed && isUnknownKind(error)) {
      state.isStreamed = false;
      return [];
    }
    if (REMOTE_RETRY_CODES.has(error.code)) return null;
    return [{ type: "error", code: error.code, message: error.message, details: error.details }];
  }
}

async function pullStream(options: RemotePumpOptions, state: PumpState) {
  const batch = await options.service.run<WatchStreamBatch>(options.shard, {
    kind: "watchStream",
    filter: options.filter,
    streamId: options.streamId,
    position: state.position,
    waitMs: REMOTE_STREAM_WAIT_MS,
  }, REMOTE_STREAM_WAIT_MS + REMOTE_ANSWER_MARGIN_MS);
  state.position = batch.position;
  return [...batch.items];
}

/** A poll of a node without `watchStream`, from the position, minus what was written. */
async function pullPoll(options: RemotePumpOptions, state: PumpState) {
  const start = state.position;
  const poll = await options.service.run<WatchPoll>(options.shard, {
    kind: "watchPoll",
    filter: options.filter,
    fromRevision: start?.revision ?? null,
    waitMs: REMOTE_POLL_WAIT_MS,
  }, REMOTE_POLL_WAIT_MS + REMOTE_ANSWER_MARGIN_MS);
  let skipLeft = start?.skip ?? 0;
  let position: WatchPosition = start ?? { revision: poll.nextRevision, skip: 0 };
  const items: RemoteWatchItem[] = [];
  for (const item of poll.items) {
    if (item.type === "error") {
      items.push(item);
      break;
    }
    if (skipLeft > 0 && item.revision === position.revision) {
      skipLeft -= 1;
      continue;
    }
    skipLeft = 0;
    items.push(item);
    position = advance(position, item);
  }
  if (items.length === 0 && position.skip === 0) {
    position = { revision: Math.max(position.revision, poll.nextRevision), skip: 0 };
  }
  state.position = position;
  return items;
}

function advance(position: WatchPosition, event: WatchEvent): WatchPosition {
  if (event.revision === position.revision) {
    return { revision: event.revision, skip: position.skip + 1 };
  }
  return { revision: event.revision, skip: 1 };
}

/** True for the answer of a node that does not know the `watchStream` request kind. */
function isUnknownKind(error: AspenError): boolean {
  return error.code === "bad_request" && error.message.includes('of kind "watchStream"');
}

/** Tells the replica serving the stream to drop it; not awaited, failures only logged away. */
function cancelStream(options: RemotePumpOptions): void {
  options.service.run(options.shard, {
    kind: "watchCancel",
    streamId: options.streamId,
  }, REMOTE_CANCEL_TIMEOUT_MS).catch((error: unknown) => {
    // The replica drops an abandoned stream after REMOTE_WATCH_IDLE_MS anyway.
    if (!(error instanceof AspenError)) throw error;
  });
}

/** Waits `ms`, or less when `signal` aborts (resolves either way; at once if aborted). */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
