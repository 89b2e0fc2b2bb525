/**
 * The watch hub: per-shard subscriptions to changes of a key or a prefix.
 *
 * A watcher reads the shard's bounded history through a cursor, so replay and live streaming
 * are the same code path:
 *
 * ```text
 *   subscribe(fromRevision) ──► replaying ──(a read reaches the head)──► live
 *        │                        │  paced by the consumer:        │  filled after every apply;
 *        │                        │  reads a page when its         │  a full buffer cancels it
 *        ▼                        ▼  buffer is empty               ▼  (slow watcher)
 *   `compacted` error       `compacted` error if history      `watch_cancelled`, then closed
 *                           was dropped under the cursor
 * ```
 *
 * The head is the source's deliverable revision: the applied index, but while a cross-shard
 * transaction holds a revision it reserved and has not resolved yet, the one below it (its
 * events are written at that older revision when it resolves, and must not reach a watcher
 * after newer ones). A watcher that resumes from a revision goes through the same cursor.
 *
 * Memory is bounded: at most `watchersMax` watchers, each buffering at most `bufferEventsMax`
 * events and `bufferBytesMax` bytes (plus one event, so that a single large event can pass).
 */

import { assert } from "../raft/mod.ts";
import { validateCount } from "./command.ts";
import { AspenError } from "./errors.ts";
import { validateKey } from "./key_value.ts";
import {
  WATCH_BUFFER_BYTES_MAX,
  WATCH_BUFFER_EVENTS_MAX,
  WATCH_EVENT_BYTES_MAX,
  WATCHERS_MAX,
} from "./limits.ts";
import {
  type EventCursor,
  type HistorySource,
  SEQ_END,
  type WatchEvent,
  type WatchFilter,
} from "./watch_event.ts";

/** Bounds of a hub; each is at most its named limit. */
export interface WatchHubOptions {
  /** Events buffered per watcher, at most WATCH_BUFFER_EVENTS_MAX. */
  readonly bufferEventsMax: number;
  /** Bytes buffered per watcher, at most WATCH_BUFFER_BYTES_MAX. */
  readonly bufferBytesMax: number;
  /** Watchers per shard, at most WATCHERS_MAX. */
  readonly watchersMax: number;
}

/** The default bounds: the named limits. */
export const WATCH_HUB_DEFAULTS: WatchHubOptions = {
  bufferEventsMax: WATCH_BUFFER_EVENTS_MAX,
  bufferBytesMax: WATCH_BUFFER_BYTES_MAX,
  watchersMax: WATCHERS_MAX,
};

/** What a watcher yields: an event, or a final error after which it is closed. */
export type WatchItem = WatchEvent | { readonly type: "error"; readonly error: AspenError };

/** Options of one subscription. */
export interface SubscribeOptions {
  /**
   * The first revision to deliver; by default the one after the deliverable revision (the
   * next one applied, unless a cross-shard commit holds an older one).
   */
  readonly fromRevision?: number;
}

/** The subscriptions of one shard. */
export class WatchHub {
  readonly #source: HistorySource;
  readonly #options: WatchHubOptions;
  readonly #watchers = new Set<Watcher>();
  #nextId = 1;
  #isClosed = false;

  /** A hub reading `source`, with the given bounds. */
  constructor(source: HistorySource, options: WatchHubOptions = WATCH_HUB_DEFAULTS) {
    validateCount(options.bufferEventsMax, { min: 1, action: "watch", field: "bufferEventsMax" });
    validateCount(options.bufferBytesMax, { min: 1, action: "watch", field: "bufferBytesMax" });
    validateCount(options.watchersMax, { min: 1, action: "watch", field: "watchersMax" });
    assert(options.bufferEventsMax <= WATCH_BUFFER_EVENTS_MAX, "WatchHub: buffer events bound");
    assert(options.bufferBytesMax <= WATCH_BUFFER_BYTES_MAX, "WatchHub: buffer bytes bound");
    assert(options.watchersMax <= WATCHERS_MAX, "WatchHub: watchers bound");
    this.#source = source;
    this.#options = options;
  }

  /** How many watchers are open. */
  get size(): number {
    return this.#watchers.size;
  }

  /**
   * Starts watching `filter` from `options.fromRevision` (default: the next revision).
   *
   * @throws {AspenError} `compacted` (details: `oldestRevision`) when that revision is no longer
   * in the history, `limit_exceeded` past `watchersMax`, `bad_request` for a bad filter.
   */
  subscribe(filter: WatchFilter, options: SubscribeOptions = {}): Watcher {
    if (this.#isClosed) throw cancelled("shard_closed", "the shard is closed", 0);
    validateFilter(filter);
    // "From now" starts after the deliverable revision: a cross-shard commit that reserved an
    // older revision may still be committing, and its events must reach this watcher.
    const fromRevision = options.fromRevision ?? this.#source.deliverableRevision() + 1;
    validateCount(fromRevision, { min: 1, action: "watch", field: "fromRevision" });
    const compacted = this.#source.compactedRevision();
    if (fromRevision <= compacted) throw compactedError(fromRevision, compacted);
    if (this.#watchers.size >= this.#options.watchersMax) {
      throw new AspenError(
        "limit_exceeded",
        `Cannot watch: the shard already has ${this.#watchers.size} watchers, the limit`,
        { limit: this.#options.watchersMax, name: "WATCHERS_MAX" },
      );
    }
    const watcher = new Watcher({
      id: this.#nextId++,
      filter,
      fromRevision,
      source: this.#source,
      options: this.#options,
      onClose: (closed) => this.#watchers.delete(closed),
    });
    this.#watchers.add(watcher);
    watcher.pull();
    return watcher;
  }

  /** Tells every watcher that entries were applied (or a snapshot restored). */
  notify(): void {
    assert(!this.#isClosed, "WatchHub.notify: the hub is open");
    for (const watcher of [...this.#watchers]) watcher.onApplied();
  }

  /** Ends every watcher with `watch_cancelled` (reason `shard_closed`); no new subscriptions. */
  close(): void {
    this.#isClosed = true;
    for (const watcher of [...this.#watchers]) {
      watcher.end(cancelled("shard_closed", "the shard closed", watcher.resumeRevision()));
    }
    assert(this.#watchers.size === 0, "WatchHub.close: every watcher has left");
  }
}

interface WatcherLink {
  readonly id: number;
  readonly filter: WatchFilter;
  readonly fromRevision: number;
  readonly source: HistorySource;
  readonly options: WatchHubOptions;
  readonly onClose: (watcher: Watcher) => void;
}

/**
 * One subscription. Read it with `next()` or `for await`; leaving a `for await` loop early
 * cancels it.
 */
export class Watcher implements AsyncIterable<WatchItem> {
  /** Unique within its hub. */
  readonly id: number;
  /** The keys it follows. */
  readonly filter: WatchFilter;
  readonly #link: WatcherLink;
  #cursor: EventCursor;
  #isLive = false;
  #buffer: WatchEvent[] = [];
  #bufferSizes: number[] = [];
  #bufferBytes = 0;
  #final: WatchItem | null = null;
  #isDone = false;
  #waiter: ((item: WatchItem | null) => void) | null = null;

  /** Created by {@linkcode WatchHub.subscribe} only. */
  constructor(link: WatcherLink) {
    this.id = link.id;
    this.filter = link.filter;
    this.#link = link;
    this.#cursor = { revision: link.fromRevision - 1, seq: SEQ_END };
  }

  /** Whether the watcher has caught up with the history and streams live. */
  get isLive(): boolean {
    return this.#isLive;
  }

  /** How many events are buffered. */
  get bufferedEvents(): number {
    return this.#buffer.length;
  }

  /**
   * The next item: an event, a final error, or null once the watcher is closed.
   * At most one call may be pending at a time.
   */
  next(): Promise<WatchItem | null> {
    assert(this.#waiter === null, "Watcher.next: one pending call at a time");
    const item = this.#take();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Stops the watcher; a pending `next()` resolves to null. */
  cancel(): void {
    this.#final = null;
    this.#buffer = [];
    this.#bufferSizes = [];
    this.#bufferBytes = 0;
    this.#close();
    this.#isDone = true;
    this.#wake();
  }

  /** Yields items until the watcher closes; leaving the loop early cancels the watcher. */
  async *[Symbol.asyncIterator](): AsyncGenerator<WatchItem, void, undefined> {
    try {
      for (let item = await this.next(); item !== null; item = await this.next()) yield item;
    } finally {
      this.cancel();
    }
  }

  /** The first revision this watcher may not have fully delivered. */
  resumeRevision(): number {
    return this.#cursor.seq === SEQ_END ? this.#cursor.revision + 1 : this.#cursor.revision;
  }

  /** Hub only: entries were applied. Live watchers fill now; replaying ones when waited on. */
  onApplied(): void {
    if (this.#isLive || this.#waiter !== null) this.pull();
    this.#wake();
  }

  /** Hub only: ends the watcher with a final error, delivered after the buffered events. */
  end(error: AspenError): void {
    assert(this.#final === null, "Watcher.end: a watcher ends once");
    this.#final = { type: "error", error };
    this.#close();
    this.#wake();
  }

  /** Hub only: reads what the history holds for this watcher, as far as the buffer allows. */
  pull(): void {
    if (this.#final !== null || this.#isDone) return;
    const { source, options } = this.#link;
    const head = source.deliverableRevision();
    assert(head <= source.appliedIndex(), "Watcher.pull: nothing past the applied index");
    const compacted = source.compactedRevision();
    if (compacted >= this.resumeRevision()) {
      return this.end(compactedError(this.resumeRevision(), compacted));
    }
    const roomEvents = Math.max(0, options.bufferEventsMax - this.#buffer.length);
    const roomBytes = Math.max(0, options.bufferBytesMax - this.#bufferBytes);
    const page = source.readEvents({
      after: this.#cursor,
      untilRevision: head,
      filter: this.filter,
      limit: roomBytes > 0 ? roomEvents : 0,
      bytesMax: roomBytes,
    });
    for (const { event, seq, bytes } of page.events) {
      assert(bytes <= WATCH_EVENT_BYTES_MAX, "Watcher.pull: events are bounded");
      const isForward = event.revision > this.#cursor.revision ||
        (event.revision === this.#cursor.revision && seq > this.#cursor.seq);
      assert(isForward, "Watcher.pull: the cursor only moves forward");
      this.#buffer.push(event);
      this.#bufferSizes.push(bytes);
      this.#bufferBytes += bytes;
      this.#cursor = { revision: event.revision, seq };
    }
    if (page.isComplete) {
      if (this.#cursor.revision <= head) this.#cursor = { revision: head, seq: SEQ_END };
      this.#isLive = true;
    } else if (this.#isLive) {
      this.end(slowWatcherError(options, this.resumeRevision()));
    }
  }

  #take(): WatchItem | null | undefined {
    if (this.#buffer.length === 0 && this.#final === null && !this.#isDone) this.pull();
    const event = this.#buffer.shift();
    if (event !== undefined) {
      this.#bufferBytes -= this.#bufferSizes.shift() ?? 0;
      assert(this.#bufferBytes >= 0, "Watcher: buffered bytes stay non-negative");
      return event;
    }
    if (this.#final !== null) {
      const final = this.#final;
      this.#final = null;
      this.#isDone = true;
      return final;
    }
    if (this.#isDone) return null;
    return undefined;
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === null) return;
    const item = this.#take();
    if (item === undefined) return;
    this.#waiter = null;
    waiter(item);
  }

  #close(): void {
    this.#link.onClose(this);
  }
}

function validateFilter(filter: WatchFilter): void {
  if ("key" in filter) return validateKey(filter.key, "watch");
  if (typeof filter.prefix !== "string") {
    throw new AspenError("bad_request", "Cannot watch: the prefix is not a string");
  }
  if (filter.prefix !== "") validateKey(filter.prefix, "watch prefix");
}

function compactedError(fromRevision: number, compacted: number): AspenError {
  return new AspenError(
    "compacted",
    `Cannot watch from revision ${fromRevision}: history before revision ${compacted + 1} ` +
      "was compacted",
    { oldestRevision: compacted + 1, compactRevision: compacted, fromRevision },
  );
}

function slowWatcherError(options: WatchHubOptions, resumeRevision: number): AspenError {
  return cancelled(
    "slow_watcher",
    `the watcher fell behind by more than ${options.bufferEventsMax} events or ` +
      `${options.bufferBytesMax} bytes (WATCH_BUFFER_EVENTS_MAX, WATCH_BUFFER_BYTES_MAX); ` +
      `watch again from revision ${resumeRevision}`,
    resumeRevision,
  );
}

function cancelled(reason: string, detail: string, resumeRevision: number): AspenError {
  return new AspenError("watch_cancelled", `Watch cancelled: ${detail}`, {
    reason,
    resumeRevision,
  });
}
