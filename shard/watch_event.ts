/**
 * Watch events and the history interface the watch hub reads them through.
 *
 * Each change to a key produces one event, numbered by its entry's revision and a sequence
 * number within that entry. The state machine keeps recent events in a bounded history table;
 * the hub never holds more than its watchers' bounded buffers.
 */

import type { KeyRange, KeyValue } from "./key_value.ts";

/** A change to one key. A delete's `kv` has the key, an empty value and version 0. */
export interface WatchEvent {
  /** `put` for a write, `delete` for a removal. */
  readonly type: "put" | "delete";
  /** The key after the change. */
  readonly kv: KeyValue;
  /** The key's state before the change; null when it was created. */
  readonly prevKv: KeyValue | null;
  /** The revision (log index) of the entry that made the change. */
  readonly revision: number;
}

/** Which keys a watcher follows: one key, or every key with a prefix. */
export type WatchFilter = { readonly key: string } | { readonly prefix: string };

/** A position in the history: after event `seq` of revision `revision`. */
export interface EventCursor {
  /** The revision of the last event consumed. */
  readonly revision: number;
  /** The last sequence number consumed in `revision`; SEQ_END when all of it is. */
  readonly seq: number;
}

/** The `seq` of a cursor that has consumed every event of its revision. */
export const SEQ_END = Number.MAX_SAFE_INTEGER;

/** An event with its position and size, as the history returns it. */
export interface HistoryEvent {
  /** The change. */
  readonly event: WatchEvent;
  /** Its position within its revision, from 0. */
  readonly seq: number;
  /** Its size as counted by the history and the watch buffers. */
  readonly bytes: number;
}

/** One read of the history. */
export interface HistoryQuery {
  /** Return events strictly after this cursor. */
  readonly after: EventCursor;
  /** Return events of revisions up to and including this one. */
  readonly untilRevision: number;
  /** Only events of these keys. */
  readonly filter: WatchFilter;
  /** The most events to return (may be 0). */
  readonly limit: number;
  /** The most event bytes to return; one event is returned even when it alone exceeds this. */
  readonly bytesMax: number;
}

/** What a history read found. */
export interface HistoryPage {
  /** The events, in revision and sequence order. */
  readonly events: readonly HistoryEvent[];
  /** True when no matching event up to `untilRevision` was left out. */
  readonly isComplete: boolean;
}

/** Where the watch hub reads events from (the state machine, or a fake in tests). */
export interface HistorySource {
  /** The revision of the last applied entry. */
  appliedIndex(): number;
  /**
   * The newest revision whose events are all written: the applied index, or, while a
   * cross-shard transaction's writes are reserved at an older revision and not yet resolved,
   * the revision just below the oldest such one. Watchers deliver no event past it, so events
   * reach them in revision order (the resolved-ts of TiKV's change data capture).
   */
  deliverableRevision(): number;
  /** Every event of this revision and older is gone; 0 when nothing was compacted. */
  compactedRevision(): number;
  /** Reads one bounded page of events. */
  readEvents(query: HistoryQuery): HistoryPage;
}

/** The key range a filter covers. */
export function filterRange(filter: WatchFilter): KeyRange {
  if ("key" in filter) return { start: filter.key, end: filter.key + "\u0000" };
  return { prefix: filter.prefix };
}
