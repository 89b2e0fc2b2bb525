/**
 * Every limit and period of the console, named (STYLE §6). The console bounds what it keeps in
 * memory (history, events, pages) so that a long-open tab stays small.
 */
import { assert } from "./assert.ts";

/** How often the console asks its node for `/v1/cluster/status`. */
export const POLL_INTERVAL_MS = 1_000;
/** How long one API request may take before the console gives up on it. */
export const REQUEST_TIMEOUT_MS = 3_000;
/** Failed polls in a row after which the data on screen is marked stale. */
export const STALE_AFTER_FAILURES = 2;
/** Status snapshots kept for the charts: five minutes at one per second. */
export const HISTORY_SAMPLES_MAX = 300;
/** The time span the charts show. */
export const CHART_WINDOW_MS = 5 * 60_000;
/** Lines drawn per chart; with more shards, the busiest ones are drawn. */
export const CHART_SERIES_MAX = 8;
/** Snapshots (one per second) over which the rates in tables and cards are averaged. */
export const RATE_WINDOW_SAMPLES = 5;
/** Events kept in the feed; older ones are dropped. */
export const EVENTS_MAX = 200;
/** Events shown on the overview; the whole feed is on its own page. */
export const EVENTS_OVERVIEW_MAX = 12;
/** Keys per page in the key browser. */
export const SCAN_PAGE_KEYS = 25;
/** Pages of cursors kept for "Previous" in the key browser. */
export const SCAN_PAGES_MAX = 1_000;
/** Characters of a value shown in the key list before it is cut. */
export const VALUE_PREVIEW_CHARS = 80;
/** The lag, in entries, that fills a lag bar when no replica lags more. */
export const LAG_BAR_FULL_ENTRIES_MIN = 100;
/** Nodes and shards a status may list; more is refused as malformed. */
export const STATUS_NODES_MAX = 1_024;
/** Shards a status may list (the config allows 1 to 1024). */
export const STATUS_SHARDS_MAX = 1_024;
/** Replicas one shard may list (the replication factor is 1 to 7, plus learners). */
export const STATUS_REPLICAS_MAX = 16;
/** Members a status may list (removed ones stay in the record). */
export const STATUS_MEMBERS_MAX = 1_024;
/** Learners a status may list: at most one per replica of every shard. */
export const STATUS_LEARNERS_MAX: number = STATUS_SHARDS_MAX * STATUS_REPLICAS_MAX;
/** Alarms one node may list: its own, and one per shard it hosts. */
export const STATUS_ALARMS_MAX: number = 1 + STATUS_SHARDS_MAX;
/**
 * Transactions the Transactions view lists (oldest pending, or latest decided); the server
 * allows up to 100 (TXN_LIST_LIMIT_MAX).
 */
export const TXN_LIST_SHOWN = 20;
/** Alarms the banner lists; it counts the others. */
export const ALARMS_SHOWN_MAX = 6;

assert(REQUEST_TIMEOUT_MS > POLL_INTERVAL_MS, "a request may outlive one poll period");
assert(STALE_AFTER_FAILURES >= 1, "stale needs at least one failure");
assert(
  HISTORY_SAMPLES_MAX * POLL_INTERVAL_MS >= CHART_WINDOW_MS,
  "the history covers the chart window",
);
assert(RATE_WINDOW_SAMPLES < HISTORY_SAMPLES_MAX, "the rate window fits in the history");
assert(EVENTS_OVERVIEW_MAX <= EVENTS_MAX, "the overview shows a part of the feed");
/** The most tenants a `GET /v1/tenants` answer may list (the server's TENANTS_MAX). */
export const TENANTS_LISTED_MAX = 1_000;
