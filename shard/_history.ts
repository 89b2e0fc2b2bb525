/**
 * The bounded watch history table: compaction and reads (private to shard/).
 *
 * Events are written by {@linkcode KvStore} in the same transaction as the change they
 * describe. After each entry the apply loop calls {@linkcode History.compact}; when the history
 * holds more than its event or byte limit, whole revisions are dropped from the oldest until it
 * is back under KEPT_AFTER_COMPACTION of both limits (hysteresis keeps compaction rare). Compaction
 * runs per entry, never per batch, so replicas with the same log keep the same history.
 */

import { assert } from "../raft/mod.ts";
import { decodeKey, encodeKey, keyRangeBounds, type KeyValue } from "./key_value.ts";
import { boundsWhere, bytesOf, integer, type KvStore, valueOfColumn } from "./_kv_store.ts";
import {
  filterRange,
  type HistoryEvent,
  type HistoryPage,
  type HistoryQuery,
  SEQ_END,
} from "./watch_event.ts";

/**
 * The share of its limits a history is trimmed to once it passes one. Three quarters deleted a
 * quarter of a full history (12,500 events) in one apply, holding a loaded node's event loop
 * 50-160 ms; a sixteenth at a time costs as much per event and a quarter as much at once.
 */
const KEPT_AFTER_COMPACTION = 15 / 16;

/** The size and compaction point of the history, kept in memory by the state machine. */
export interface HistoryCounters {
  events: number;
  bytes: number;
  compactedRevision: number;
}

/** Retention limits of one history. */
export interface HistoryLimits {
  readonly eventsMax: number;
  readonly bytesMax: number;
}

const EVENT_PUT = 1;

/** Compaction and reads of the history table. */
export class History {
  readonly #store: KvStore;
  readonly #limits: HistoryLimits;

  constructor(store: KvStore, limits: HistoryLimits) {
    assert(limits.eventsMax >= 1, "History: eventsMax is positive");
    assert(limits.bytesMax >= 1, "History: bytesMax is positive");
    this.#store = store;
    this.#limits = limits;
  }

  /** Counts the events and bytes the table holds (at open and after a restore). */
  measure(compactedRevision: number): HistoryCounters {
    const sql = "SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS bytes FROM history";
    const row = this.#store.statement(sql).get();
    return { events: integer(row?.n), bytes: integer(row?.bytes), compactedRevision };
  }

  /** Drops the oldest revisions when a limit is exceeded; updates `counters` in place. */
  compact(counters: HistoryCounters): void {
    const isOver = counters.events > this.#limits.eventsMax ||
      counters.bytes > this.#limits.bytesMax;
    if (!isOver) return;
    const eventsTarget = Math.floor(this.#limits.eventsMax * KEPT_AFTER_COMPACTION);
    const bytesTarget = Math.floor(this.#limits.bytesMax * KEPT_AFTER_COMPACTION);
    const sql = "SELECT revision, COUNT(*) AS n, SUM(bytes) AS bytes FROM history " +
      "GROUP BY revision ORDER BY revision";
    let events = counters.events;
    let bytes = counters.bytes;
    let cutoff = counters.compactedRevision;
    for (const row of this.#store.statement(sql).iterate()) {
      if (events <= eventsTarget && bytes <= bytesTarget) break;
      // A cross-shard commit writes its events at the revision its prepare reserved, which
      // compaction may have passed already: those rows are dropped without moving back.
      cutoff = Math.max(cutoff, integer(row.revision));
      events -= integer(row.n);
      bytes -= integer(row.bytes);
    }
    assert(events >= 0 && bytes >= 0, "History.compact: counters stay non-negative");
    assert(events < counters.events, "History.compact: compaction drops events");
    assert(cutoff >= counters.compactedRevision, "History.compact: compaction never moves back");
    const deleted = this.#store.statement("DELETE FROM history WHERE revision <= ?").run(cutoff);
    assert(deleted.changes === counters.events - events, "History.compact: counts agree");
    counters.events = events;
    counters.bytes = bytes;
    counters.compactedRevision = cutoff;
  }

  /**
   * Drops the whole history through `revision`, the newest one: its entry was too big for
   * the history and wrote no events.
   */
  dropThrough(counters: HistoryCounters, revision: number): void {
    assert(revision > counters.compactedRevision, "History.dropThrough: moves forward");
    this.#store.statement("DELETE FROM history WHERE revision <= ?").run(revision);
    const left = this.measure(revision);
    assert(left.events === 0, "History.dropThrough: no event is newer than the entry");
    counters.events = 0;
    counters.bytes = 0;
    counters.compactedRevision = revision;
  }

  /**
   * Whether any of `keys` has an event after `revision` (the caller checks that the history
   * still reaches back that far). Scans the events after `revision`, few when it is recent.
   */
  hasEventAfter(keys: readonly string[], revision: number): boolean {
    const sql = "SELECT 1 AS hit FROM history WHERE revision > ? AND key = ? LIMIT 1";
    const statement = this.#store.statement(sql);
    return keys.some((key) => statement.get(revision, encodeKey(key)) !== undefined);
  }

  /** Reads matching events after a cursor, bounded by count and bytes. */
  read(query: HistoryQuery): HistoryPage {
    assert(query.limit >= 0 && query.bytesMax >= 0, "History.read: bounds are counts");
    const where = boundsWhere(keyRangeBounds(filterRange(query.filter)));
    const sql = "SELECT * FROM history WHERE (revision, seq) > (?, ?) AND revision <= ? AND " +
      `${where.sql} ORDER BY revision, seq LIMIT ?`;
    const seq = Math.min(query.after.seq, SEQ_END);
    const rows = this.#store.statement(sql).iterate(
      query.after.revision,
      seq,
      query.untilRevision,
      ...where.params,
      query.limit + 1,
    );
    const events: HistoryEvent[] = [];
    let bytes = 0;
    let isComplete = true;
    for (const row of rows) {
      const size = integer(row.bytes);
      const isFull = events.length === query.limit ||
        (events.length > 0 && bytes + size > query.bytesMax);
      if (isFull) {
        isComplete = false;
        break;
      }
      const event = eventFromRow(row);
      assert(event.revision <= query.untilRevision, "History.read: no event past the bound");
      events.push({ event, seq: integer(row.seq), bytes: size });
      bytes += size;
    }
    return { events, isComplete };
  }
}

function eventFromRow(row: Record<string, unknown>): HistoryEvent["event"] {
  const revision = integer(row.revision);
  const key = decodeKey(bytesOf(row.key));
  const prevKv: KeyValue | null = row.prev_version === null ? null : {
    key,
    value: valueOfColumn(row.prev_value),
    version: integer(row.prev_version),
    createRevision: integer(row.prev_create_revision),
    modRevision: integer(row.prev_mod_revision),
    lease: integer(row.prev_lease),
  };
  if (integer(row.type) === EVENT_PUT) {
    const kv: KeyValue = {
      key,
      value: valueOfColumn(row.value),
      version: integer(row.version),
      createRevision: integer(row.create_revision),
      modRevision: revision,
      lease: integer(row.lease),
    };
    return { type: "put", kv, prevKv, revision };
  }
  assert(prevKv !== null, "History: a delete event carries the deleted kv");
  const kv = { key, value: "", version: 0, createRevision: 0, modRevision: revision, lease: 0 };
  return { type: "delete", kv, prevKv, revision };
}
