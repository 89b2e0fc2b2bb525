/**
 * Counters of the cross-shard transactions a node coordinated, for `/metrics`: how each one
 * ended (`aspen_cross_shard_transactions_total{outcome}`) and how long the committed ones took
 * from request to reply (`aspen_cross_shard_commit_seconds`, a histogram).
 */
import type { CrossShardTxnCounts } from "../../api/mod.ts";
import { AspenError } from "../../shard/mod.ts";

/** How a cross-shard transaction ended, as the metric's `outcome` label. */
export const CROSS_SHARD_OUTCOMES = ["committed", "conflict", "timeout", "error"] as const;

/** One of {@linkcode CROSS_SHARD_OUTCOMES}. */
export type CrossShardOutcome = typeof CROSS_SHARD_OUTCOMES[number];

/** Upper bounds of the commit-latency histogram buckets, in seconds. */
export const CROSS_SHARD_COMMIT_BUCKETS_SECONDS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/** The outcome an error of a cross-shard transaction stands for. */
export function outcomeOfError(error: unknown): CrossShardOutcome {
  if (!(error instanceof AspenError)) return "error";
  if (error.code === "conflict") return "conflict";
  return error.code === "timeout" ? "timeout" : "error";
}

/** The node's cross-shard transaction counters. */
export class CrossShardStats {
  readonly #outcomes = new Map<CrossShardOutcome, number>(
    CROSS_SHARD_OUTCOMES.map((outcome) => [outcome, 0]),
  );
  readonly #buckets = CROSS_SHARD_COMMIT_BUCKETS_SECONDS.map(() => 0);
  #commitSecondsSum = 0;
  #commits = 0;

  /** Counts one transaction; a committed one's latency goes into the histogram. */
  record(outcome: CrossShardOutcome, seconds: number): void {
    this.#outcomes.set(outcome, (this.#outcomes.get(outcome) ?? 0) + 1);
    if (outcome !== "committed") return;
    CROSS_SHARD_COMMIT_BUCKETS_SECONDS.forEach((bound, i) => {
      if (seconds <= bound) this.#buckets[i]!++;
    });
    this.#commitSecondsSum += seconds;
    this.#commits++;
  }

  /** How many ended with `outcome`. */
  count(outcome: CrossShardOutcome): number {
    return this.#outcomes.get(outcome) ?? 0;
  }

  /** Every outcome's count, for `/v1/cluster/status` (the console's Transactions view). */
  counts(): CrossShardTxnCounts {
    return {
      committed: this.count("committed"),
      conflict: this.count("conflict"),
      timeout: this.count("timeout"),
      error: this.count("error"),
    };
  }

  /** The Prometheus lines, with `labels` (the node's) on every series. */
  format(labels: string): string[] {
    const total = "aspen_cross_shard_transactions_total";
    const seconds = "aspen_cross_shard_commit_seconds";
    const lines = [
      `# HELP ${total} Cross-shard transactions this node coordinated, by how they ended.`,
      `# TYPE ${total} counter`,
      ...CROSS_SHARD_OUTCOMES.map((outcome) =>
        `${total}{${labels},outcome="${outcome}"} ${this.count(outcome)}`
      ),
      `# HELP ${seconds} Latency of committed cross-shard transactions, request to reply.`,
      `# TYPE ${seconds} histogram`,
    ];
    CROSS_SHARD_COMMIT_BUCKETS_SECONDS.forEach((bound, i) => {
      lines.push(`${seconds}_bucket{${labels},le="${bound}"} ${this.#buckets[i]}`);
    });
    lines.push(`${seconds}_bucket{${labels},le="+Inf"} ${this.#commits}`);
    lines.push(`${seconds}_sum{${labels}} ${this.#commitSecondsSum}`);
    lines.push(`${seconds}_count{${labels}} ${this.#commits}`);
    return lines;
  }
}
