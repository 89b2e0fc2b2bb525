/**
 * `/metrics` in the Prometheus text format: per local shard (leader flag, term, indexes,
 * proposals, apply latency, optimistic transactions, conflicts, longest loop turn), per node
 * (forwarded requests, retries), per peer (up, round-trip time) and HTTP latency histograms.
 */
import type { PeerTransportStats } from "../peer/mod.ts";
import type { RouterStats } from "./cluster_router.ts";
import { type LocalShard, percentile } from "./local_shard.ts";

/** Upper bounds of the HTTP latency histogram buckets, in seconds. */
export const HTTP_BUCKETS_SECONDS = [
  0.0005,
  0.001,
  0.002,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  1,
  5,
];

/** HTTP request latencies by route group, as histogram buckets. */
export class HttpLatency {
  readonly #series = new Map<string, { buckets: number[]; sum: number; count: number }>();

  /** Records one request of `route` (a route group such as "kv_put") that took `seconds`. */
  observe(route: string, seconds: number): void {
    let series = this.#series.get(route);
    if (series === undefined) {
      series = { buckets: HTTP_BUCKETS_SECONDS.map(() => 0), sum: 0, count: 0 };
      this.#series.set(route, series);
    }
    HTTP_BUCKETS_SECONDS.forEach((bound, i) => {
      if (seconds <= bound) series.buckets[i]!++;
    });
    series.sum += seconds;
    series.count++;
  }

  /** The histogram lines. */
  format(labels: string): string[] {
    const lines = [
      "# HELP aspen_http_request_duration_seconds HTTP request latency by route.",
      "# TYPE aspen_http_request_duration_seconds histogram",
    ];
    for (const [route, series] of this.#series) {
      const base = `${labels},route="${route}"`;
      HTTP_BUCKETS_SECONDS.forEach((bound, i) => {
        lines.push(
          `aspen_http_request_duration_seconds_bucket{${base},le="${bound}"} ${series.buckets[i]}`,
        );
      });
      lines.push(`aspen_http_request_duration_seconds_bucket{${base},le="+Inf"} ${series.count}`);
      lines.push(`aspen_http_request_duration_seconds_sum{${base}} ${series.sum}`);
      lines.push(`aspen_http_request_duration_seconds_count{${base}} ${series.count}`);
    }
    return lines;
  }
}

/** Everything the metrics page reads. */
export interface MetricsSources {
  readonly nodeId: number;
  readonly shards: ReadonlyMap<number, LocalShard>;
  readonly router: RouterStats;
  readonly peers: () => PeerTransportStats;
  readonly http: HttpLatency;
}

/** Renders the metrics page. */
export function formatMetrics(sources: MetricsSources): string {
  const node = `node="${sources.nodeId}"`;
  const lines: string[] = [];
  const gauge = (name: string, help: string, type = "gauge") => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  const perShard = (name: string, help: string, type: string, value: (s: LocalShard) => number) => {
    gauge(name, help, type);
    for (const [id, shard] of sources.shards) {
      lines.push(`${name}{${node},shard="${id}"} ${value(shard)}`);
    }
  };
  const status = new Map([...sources.shards].map(([id, shard]) => [id, shard.replica.status()]));
  const of = (shard: LocalShard) => status.get(shard.shard)!;
  perShard(
    "aspen_shard_leader",
    "1 when this node's replica leads the shard.",
    "gauge",
    (s) => of(s).role === "leader" ? 1 : 0,
  );
  perShard("aspen_shard_term", "Current Raft term.", "gauge", (s) => of(s).term);
  perShard("aspen_shard_commit_index", "Raft commit index.", "gauge", (s) => of(s).commit);
  perShard(
    "aspen_shard_applied_index",
    "Applied index.",
    "gauge",
    (s) => s.stateMachine.appliedIndex(),
  );
  perShard("aspen_shard_last_index", "Last log index.", "gauge", (s) => of(s).lastIndex);
  perShard(
    "aspen_shard_proposals_total",
    "Proposals accepted.",
    "counter",
    (s) => of(s).stats.proposals,
  );
  perShard(
    "aspen_shard_proposals_dropped_total",
    "Proposals refused.",
    "counter",
    (s) => of(s).stats.proposalsDropped,
  );
  perShard(
    "aspen_shard_optimistic_txns_total",
    "Optimistic transactions applied.",
    "counter",
    (s) => s.stateMachine.stats().optimisticTxns,
  );
  perShard(
    "aspen_shard_conflicts_total",
    "Optimistic transactions that conflicted.",
    "counter",
    (s) => s.stateMachine.stats().conflicts,
  );
  perShard(
    "aspen_shard_loop_turn_ms_max",
    "Longest driver turn (event loop stall) in ms.",
    "gauge",
    (s) => of(s).stats.turnMsMax,
  );
  gauge("aspen_shard_apply_latency_ms", "Apply time of recent entry batches, ms.", "summary");
  for (const [id, shard] of sources.shards) {
    const samples = of(shard).stats.applyMsRecent;
    for (const q of [0.5, 0.99]) {
      lines.push(
        `aspen_shard_apply_latency_ms{${node},shard="${id}",quantile="${q}"} ${
          percentile(samples, q)
        }`,
      );
    }
  }
  gauge("aspen_node_forwarded_requests_total", "Requests forwarded to another node.", "counter");
  lines.push(`aspen_node_forwarded_requests_total{${node}} ${sources.router.forwarded}`);
  gauge("aspen_node_route_retries_total", "Routing retries after leader changes.", "counter");
  lines.push(`aspen_node_route_retries_total{${node}} ${sources.router.retries}`);
  const peers = sources.peers().peers;
  gauge("aspen_peer_up", "1 when the peer connection is up.");
  for (const peer of peers) {
    lines.push(`aspen_peer_up{${node},peer="${peer.nodeId}"} ${peer.isUp ? 1 : 0}`);
  }
  gauge("aspen_peer_rtt_ms", "Smoothed round-trip time to the peer, ms.");
  for (const peer of peers) {
    if (peer.rttMsSmoothed !== null) {
      lines.push(`aspen_peer_rtt_ms{${node},peer="${peer.nodeId}"} ${peer.rttMsSmoothed}`);
    }
  }
  lines.push(...sources.http.format(node));
  return lines.join("\n") + "\n";
}
