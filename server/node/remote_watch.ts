/**
 * The serving side of a remote watch: a node that hosts no replica of a shard follows it by
 * asking a node that does for the shard's events over the peer channel.
 *
 * Two request kinds serve it. `watchStream` (a stream of pulls, {@linkcode RemoteWatchStreams})
 * answers as soon as an event is ready and keeps the watcher open between pulls; `watchPoll`
 * (one self-contained poll) is kept for nodes of older versions, which send only it, and is
 * what a newer node falls back to when a replica answers `watchStream` with `bad_request`.
 */
import { assert } from "../../raft/mod.ts";
import {
  AspenError,
  type ErrorDetails,
  type StateMachine,
  type Watcher,
  type WatchEvent,
  type WatchItem,
} from "../../shard/mod.ts";
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
  const from = request.fromRevision ?? stateMachine.deliverableRevision() + 1;
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

/** The most remote watch streams one shard replica serves at once. */
export const REMOTE_WATCH_STREAMS_MAX = 1_024;
/** The most events one answer of a remote watch stream carries. */
export const REMOTE_WATCH_BATCH_EVENTS_MAX = 1_000;
/** How long a remote watch stream lives without a pull before this replica drops it. */
export const REMOTE_WATCH_IDLE_MS = 30_000;
/** The longest a pull of a remote watch stream waits for a first event. */
export const REMOTE_WATCH_WAIT_MS_MAX = 10_000;

/**
 * Where a remote watch stands: the next event to deliver is the `skip`-th event (from 0) of
 * `revision` that matches the filter. The events of one revision come in a fixed order on
 * every replica (the order of the entry's operations), so a position read from one replica
 * means the same on any other: a stream resumed elsewhere loses and repeats nothing.
 */
export interface WatchPosition {
  readonly revision: number;
  readonly skip: number;
}

/** One answer of a remote watch stream: events (or a final error) and the position after. */
export interface WatchStreamBatch {
  readonly items: WatchPoll["items"];
  readonly position: WatchPosition;
}

/** A pull of a remote watch stream, as the shard executes it. */
export type WatchStreamPull = Extract<ShardRequest, { kind: "watchStream" }>;

interface StreamSession {
  readonly id: string;
  watcher: Watcher;
  position: WatchPosition;
  /** Events of `position.revision` still to drop (a watcher opened mid-revision). */
  skipLeft: number;
  /** A read of the watcher that a pull gave up waiting for. */
  pendingNext: Promise<WatchItem | null> | null;
  isBusy: boolean;
  idleTimer: ReturnType<typeof setTimeout> | null;
}

/**
 * The remote watch streams a shard replica serves. A watching node pulls: each pull names the
 * position it has delivered up to and is answered as soon as there is at least one event
 * (or after its wait, empty). The pull is the stream's credit: this replica never sends more
 * than one answer per pull, and between pulls it holds only its watcher's bounded buffer
 * (WATCH_BUFFER_EVENTS_MAX); a watcher that overflows it is reopened from the stream's
 * position, so a slow reader costs a replay from history, never a lost event.
 */
export class RemoteWatchStreams {
  readonly #stateMachine: StateMachine;
  readonly #sessions = new Map<string, StreamSession>();

  /** Streams of the shard whose state machine is `stateMachine`. */
  constructor(stateMachine: StateMachine) {
    this.#stateMachine = stateMachine;
  }

  /** How many streams are open. */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Answers one pull: the events from `request.position` (the next applied entry when null)
   * that are ready once a first one is, up to REMOTE_WATCH_BATCH_EVENTS_MAX.
   *
   * @throws {AspenError} `compacted` when the history no longer holds the position,
   * `limit_exceeded` past REMOTE_WATCH_STREAMS_MAX.
   */
  async pull(request: WatchStreamPull): Promise<WatchStreamBatch> {
    const session = this.#sessionFor(request);
    session.isBusy = true;
    try {
      return await this.#collect(session, Math.min(request.waitMs, REMOTE_WATCH_WAIT_MS_MAX));
    } finally {
      session.isBusy = false;
      if (this.#sessions.get(session.id) === session) this.#armIdle(session);
    }
  }

  /** Ends a stream (its watching client went away); a pull in flight answers at once. */
  cancel(id: string): void {
    const session = this.#sessions.get(id);
    if (session !== undefined) this.#drop(session);
  }

  /** Ends every stream (the shard closes). */
  close(): void {
    for (const session of [...this.#sessions.values()]) this.#drop(session);
    assert(this.#sessions.size === 0, "RemoteWatchStreams.close: every stream has ended");
  }

  /**
   * The session to serve a pull from: the open one when it stands exactly at the pull's
   * position and no other pull holds it; otherwise a new one opened at that position (the
   * caller retried, or resumed here after another replica served it).
   */
  #sessionFor(request: WatchStreamPull): StreamSession {
    const open = this.#sessions.get(request.streamId);
    if (open !== undefined) {
      const isSame = request.position !== null &&
        open.position.revision === request.position.revision &&
        open.position.skip === request.position.skip;
      if (isSame && !open.isBusy) {
        if (open.idleTimer !== null) clearTimeout(open.idleTimer);
        open.idleTimer = null;
        return open;
      }
      this.#drop(open);
    }
    if (this.#sessions.size >= REMOTE_WATCH_STREAMS_MAX) {
      throw new AspenError(
        "limit_exceeded",
        `Cannot open a remote watch stream: ${this.#sessions.size} are open, the limit`,
        { limit: REMOTE_WATCH_STREAMS_MAX, name: "REMOTE_WATCH_STREAMS_MAX" },
      );
    }
    const position = request.position ??
      { revision: this.#stateMachine.deliverableRevision() + 1, skip: 0 };
    const session: StreamSession = {
      id: request.streamId,
      watcher: this.#stateMachine.watch(request.filter, { fromRevision: position.revision }),
      position,
      skipLeft: position.skip,
      pendingNext: null,
      isBusy: false,
      idleTimer: null,
    };
    this.#sessions.set(session.id, session);
    return session;
  }

  async #collect(session: StreamSession, waitMs: number): Promise<WatchStreamBatch> {
    const items: WatchPoll["items"][number][] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), waitMs);
    });
    try {
      while (items.length < REMOTE_WATCH_BATCH_EVENTS_MAX) {
        // After the first event, take only what is ready now: answer without waiting more.
        const isReady = session.watcher.bufferedEvents > 0;
        if (items.length > 0 && !isReady) break;
        // A read left pending by a pull that timed out is the next pull's to take over: a
        // watcher takes one pending read at a time.
        session.pendingNext ??= session.watcher.next();
        const item = await Promise.race([session.pendingNext, timeout]);
        if (item === TIMED_OUT) break;
        session.pendingNext = null;
        if (item === null) break;
        if (item.type === "error") {
          if (this.#reopenAfter(session, item.error)) continue;
          items.push(errorItem(item.error));
          this.#drop(session);
          break;
        }
        if (this.#isSkipped(session, item)) continue;
        items.push(item);
        session.position = advance(session.position, item.revision);
      }
      return { items, position: session.position };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the events a reopened watcher repeats (those of the position's revision before it). */
  #isSkipped(session: StreamSession, event: WatchEvent): boolean {
    if (session.skipLeft === 0) return false;
    if (event.revision !== session.position.revision) {
      session.skipLeft = 0;
      return false;
    }
    session.skipLeft -= 1;
    return true;
  }

  /** Reopens a watcher that fell behind its buffer, at the stream's position; true if done. */
  #reopenAfter(session: StreamSession, error: AspenError): boolean {
    const isSlow = error.code === "watch_cancelled" && error.details.reason === "slow_watcher";
    if (!isSlow) return false;
    session.watcher.cancel();
    session.watcher = this.#stateMachine.watch(session.watcher.filter, {
      fromRevision: session.position.revision,
    });
    session.skipLeft = session.position.skip;
    session.pendingNext = null;
    return true;
  }

  #armIdle(session: StreamSession): void {
    assert(session.idleTimer === null, "RemoteWatchStreams: one idle timer per stream");
    session.idleTimer = setTimeout(() => this.#drop(session), REMOTE_WATCH_IDLE_MS);
  }

  #drop(session: StreamSession): void {
    if (session.idleTimer !== null) clearTimeout(session.idleTimer);
    session.idleTimer = null;
    session.watcher.cancel();
    if (this.#sessions.get(session.id) === session) this.#sessions.delete(session.id);
  }
}

const TIMED_OUT = Symbol("timed out");

/** The position after delivering an event of `revision`. */
function advance(position: WatchPosition, revision: number): WatchPosition {
  assert(revision >= position.revision, "a remote watch only moves forward");
  if (revision === position.revision) return { revision, skip: position.skip + 1 };
  return { revision, skip: 1 };
}

function errorItem(error: AspenError): WatchPoll["items"][number] {
  return { type: "error", code: error.code, message: error.message, details: error.details };
}
