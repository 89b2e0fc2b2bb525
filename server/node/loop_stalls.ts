/**
 * How long the node's event loop was held: the node's one timer (node.ts `startTicker`) notes,
 * at each run, how late it ran past its due time. Everything of a node shares that loop (every
 * shard's turns, the peer channel, HTTP), so a late timer is a node-wide stall: one longer than
 * the election timeout lets followers elsewhere start elections against this node's leaders.
 * `/metrics` shows the longest stall and counts the stalls over each of STALL_THRESHOLDS_MS; a
 * stall of at least STALL_WARN_MS is logged with its length.
 */

/** The stall lengths `/metrics` counts the stalls over, in milliseconds. */
export const STALL_THRESHOLDS_MS = [100, 500] as const;

/** A stall at least this long (the shortest election timeout, 10 ticks of 50 ms) is logged. */
export const STALL_WARN_MS = 500;

/** What the node's timer learned of its lateness. */
export class LoopStalls {
  /** The longest stall seen, in milliseconds. */
  maxMs = 0;
  /** Stalls over each threshold of STALL_THRESHOLDS_MS, in its order. */
  readonly over: number[] = STALL_THRESHOLDS_MS.map(() => 0);
  readonly #warn: (lateMs: number) => void;

  constructor(warn: (lateMs: number) => void) {
    this.#warn = warn;
  }

  /** Notes that the timer ran `lateMs` after it was due (a negative lateness counts as none). */
  note(lateMs: number): void {
    if (lateMs <= 0) return;
    this.maxMs = Math.max(this.maxMs, lateMs);
    STALL_THRESHOLDS_MS.forEach((threshold, i) => {
      if (lateMs >= threshold) this.over[i]!++;
    });
    if (lateMs >= STALL_WARN_MS) this.#warn(lateMs);
  }

  /** The metric lines for `/metrics`. */
  format(node: string): string[] {
    const lines = [
      "# HELP aspen_node_event_loop_stall_ms_max The longest the node's event loop was held " +
      "past its timer's due time, in milliseconds.",
      "# TYPE aspen_node_event_loop_stall_ms_max gauge",
      `aspen_node_event_loop_stall_ms_max{${node}} ${Math.round(this.maxMs)}`,
      "# HELP aspen_node_event_loop_stalls_total Stalls of the node's event loop of at least " +
      "over_ms milliseconds.",
      "# TYPE aspen_node_event_loop_stalls_total counter",
    ];
    STALL_THRESHOLDS_MS.forEach((threshold, i) => {
      lines.push(
        `aspen_node_event_loop_stalls_total{${node},over_ms="${threshold}"} ${this.over[i]}`,
      );
    });
    return lines;
  }
}
