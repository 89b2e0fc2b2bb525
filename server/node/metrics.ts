/**
 * `/metrics` in the Prometheus text format: per local shard (leader flag, term, indexes,
 * proposals, apply latency, optimistic transactions, conflicts, intents held, longest loop
 * turn, storage stalls), per node (alarms, free disk space, forwarded requests, retries,
 * cross-shard transactions by outcome and their commit latency), per peer (up, round-trip
 * time) and HTTP latency histograms.
 */
import type { PeerTransportStats } from "../../transport/mod.ts";
import { type Alarm, ALARM_TYPES, type DiskSpace } from "./alarms.ts";
import type { RouterStats } from "./cluster_router.ts";
import type { CrossShardStats } from "./cross_shard_stats.ts";
import { type ReplicaStatus, TXN_LIST_LIMIT_MAX } from "../../shard/mod.ts";
import type { LocalShard } from "./local_shard.ts";
import type { LoopStalls } from "./loop_stalls.ts";
import { percentile } from "./shard_status_view.ts";
import { snapshotRefusals } from "./replica_view.ts";

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
  readonly alarms: { list(): readonly Alarm[]; space(): DiskSpace };
  /** The cross-shard transactions this node coordinated. */
  readonly crossShard: Pick<CrossShardStats, "format">;
  /** Wall-clock milliseconds (transaction deadlines are wall-clock). */
  readonly wallMs: () => number;
  /** How long the node's event loop was held (loop_stalls.ts). */
  readonly loopStalls: Pick<LoopStalls, "format">;
}

/** Renders the metrics page. */
export function formatMetrics(sources: MetricsSources): string {
  const node = `node="${sources.nodeId}"`;
  const lines: string[] = [];
  alarmLines(sources, node, lines);
  shardLines(sources, node, lines);
  nodeLines(sources, node, lines);
  lines.push(...sources.loopStalls.format(node));
  lines.push(...sources.crossShard.format(node));
  lines.push(...sources.http.format(node));
  return lines.join("\n") + "\n";
}

/** One gauge per alarm type (0 or 1), and the disk space behind the node's own alarm. */
function alarmLines(sources: MetricsSources, node: string, lines: string[]): void {
  const raised = new Set(sources.alarms.list().map((alarm) => alarm.type));
  header(
    lines,
    "aspen_alarm",
    "1 while the node has an alarm of this type (details in /v1/cluster/status).",
    "gauge",
  );
  for (const type of ALARM_TYPES) {
    lines.push(`aspen_alarm{${node},type="${type}"} ${raised.has(type) ? 1 : 0}`);
  }
  const space = sources.alarms.space();
  header(lines, "aspen_disk_free_bytes", "Free bytes on the data folder's disk.", "gauge");
  if (space.freeBytes !== null) lines.push(`aspen_disk_free_bytes{${node}} ${space.freeBytes}`);
  header(
    lines,
    "aspen_disk_reserve_bytes",
    "Free bytes kept on the data disk: below them, writes but deletes are refused.",
    "gauge",
  );
  lines.push(`aspen_disk_reserve_bytes{${node}} ${space.reserveBytes}`);
}

function header(lines: string[], name: string, help: string, type: string): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

/** One per-shard series: name, help, type and the value for a local replica. */
type ShardSeries = [string, string, string, (id: number, shard: LocalShard) => number];

/** Per-shard series: one line per local replica. */
function shardLines(sources: MetricsSources, node: string, lines: string[]): void {
  const status = new Map([...sources.shards].map(([id, shard]) => [id, shard.replica.status()]));
  const series = [...raftSeries(status), ...workSeries(status), overdueSeries(sources.wallMs())];
  for (const [name, help, type, value] of series) {
    header(lines, name, help, type);
    for (const [id, shard] of sources.shards) {
      lines.push(`${name}{${node},shard="${id}"} ${value(id, shard)}`);
    }
  }
  applyLatencyLines(status, node, lines);
}

/** The Raft state and proposals of each replica. */
function raftSeries(status: ReadonlyMap<number, ReplicaStatus>): ShardSeries[] {
  return [
    [
      "aspen_shard_leader",
      "1 when this node's replica leads the shard.",
      "gauge",
      (id) => status.get(id)!.role === "leader" ? 1 : 0,
    ],
    [
      "aspen_shard_quiesced",
      "1 while the replica's group is quiesced: no ticks, no heartbeats (raft/quiesce.ts).",
      "gauge",
      (id) => status.get(id)!.quiesced ? 1 : 0,
    ],
    [
      "aspen_shard_leader_down_wakes_total",
      "Times this quiesced follower woke because its leader's node went quiet.",
      "counter",
      (id) => status.get(id)!.stats.leaderDownWakes,
    ],
    [
      "aspen_shard_commit_notices_total",
      "Turns in which this leader sent followers the commit index alone (no append carried it).",
      "counter",
      (id) => status.get(id)!.stats.commitNotices,
    ],
    [
      "aspen_shard_held_proposals_total",
      "Proposals this leader held for the next one to share their round (resolves after replies).",
      "counter",
      (id) => status.get(id)!.stats.heldProposals,
    ],
    [
      "aspen_shard_held_proposals_alone_total",
      "Held proposals proposed alone: no other proposal came within PROPOSAL_HOLD_MS.",
      "counter",
      (id) => status.get(id)!.stats.heldProposalsAlone,
    ],
    ["aspen_shard_term", "Current Raft term.", "gauge", (id) => status.get(id)!.term],
    ["aspen_shard_commit_index", "Raft commit index.", "gauge", (id) => status.get(id)!.commit],
    [
      "aspen_shard_applied_index",
      "Applied index.",
      "gauge",
      (_, shard) => shard.stateMachine.appliedIndex(),
    ],
    ["aspen_shard_last_index", "Last log index.", "gauge", (id) => status.get(id)!.lastIndex],
    [
      "aspen_shard_proposals_total",
      "Proposals accepted.",
      "counter",
      (id) => status.get(id)!.stats.proposals,
    ],
    [
      "aspen_shard_proposals_dropped_total",
      "Proposals refused.",
      "counter",
      (id) => status.get(id)!.stats.proposalsDropped,
    ],
    [
      "aspen_shard_snapshots_too_large",
      "Replicas this leader cannot catch up: the snapshot they need is over the snapshot limit.",
      "gauge",
      (id) => snapshotRefusals(status.get(id)!).length,
    ],
  ];
}

/** The Raft log's writes of each replica: transactions, fsyncs and their time. */
function logSeries(status: ReadonlyMap<number, ReplicaStatus>): ShardSeries[] {
  return [
    [
      "aspen_shard_log_syncs_total",
      "Raft log writes that were fsynced.",
      "counter",
      (id) => status.get(id)!.stats.logSyncs,
    ],
    [
      "aspen_shard_log_writes_total",
      "Raft log write transactions (a Ready that moves only the commit index writes none).",
      "counter",
      (id) => status.get(id)!.stats.logWrites,
    ],
    [
      "aspen_shard_log_write_seconds_total",
      "Time spent writing the Raft log: commits, plus waiting for deferred fsyncs (off-thread).",
      "counter",
      (id) => status.get(id)!.stats.logWriteMs / 1000,
    ],
  ];
}

/** The work each replica did: turns, log writes, applies (what BENCHMARKS.md is read by). */
function workSeries(status: ReadonlyMap<number, ReplicaStatus>): ShardSeries[] {
  return [
    [
      "aspen_shard_turns_total",
      "Driver turns run.",
      "counter",
      (id) => status.get(id)!.stats.turns,
    ],
    [
      "aspen_shard_ready_rounds_total",
      "Raft Ready rounds handled (one log write and its sends each).",
      "counter",
      (id) => status.get(id)!.stats.readyRounds,
    ],
    ...logSeries(status),
    [
      "aspen_shard_apply_seconds_total",
      "Time spent applying committed entries to the state machine.",
      "counter",
      (id) => status.get(id)!.stats.applyMs / 1000,
    ],
    [
      "aspen_shard_applied_entries_total",
      "Log entries applied to the state machine.",
      "counter",
      (id) => status.get(id)!.stats.applied,
    ],
    [
      "aspen_shard_optimistic_txns_total",
      "Optimistic transactions applied.",
      "counter",
      (_, s) => s.stateMachine.stats().optimisticTxns,
    ],
    [
      "aspen_shard_conflicts_total",
      "Optimistic transactions that conflicted.",
      "counter",
      (_, s) => s.stateMachine.stats().conflicts,
    ],
    [
      "aspen_intents",
      "Keys locked by intents of cross-shard transactions not yet resolved on this replica.",
      "gauge",
      (_, s) => s.stateMachine.intentCount(),
    ],
    [
      "aspen_shard_loop_turn_ms_max",
      "Longest driver turn (event loop stall), ms.",
      "gauge",
      (id) => status.get(id)!.stats.turnMsMax,
    ],
    ...storageSeries(status),
  ];
}

/**
 * Cross-shard transactions whose record this replica holds (it is their home), still pending
 * past their deadline: their coordinator stopped and no pusher or intent sweep finished them
 * yet. Counted among the oldest TXN_LIST_LIMIT_MAX pending records (the most it reads).
 */
function overdueSeries(nowWallMs: number): ShardSeries {
  return [
    "aspen_txns_overdue",
    "Pending cross-shard transactions homed on this replica and past their deadline.",
    "gauge",
    (_, shard) =>
      shard.stateMachine.txnRecords("pending", TXN_LIST_LIMIT_MAX)
        .filter((record) => record.deadlineMs < nowWallMs).length,
  ];
}

/** Storage failures of each replica: a stall now, and failed attempts so far. */
function storageSeries(status: ReadonlyMap<number, ReplicaStatus>): ShardSeries[] {
  return [
    [
      "aspen_shard_storage_stalled",
      "1 while the replica holds a write that failed on storage and retries it.",
      "gauge",
      (id) => status.get(id)!.stall === null ? 0 : 1,
    ],
    [
      "aspen_shard_storage_failures_total",
      "Log writes, restores and applies that failed on storage (each retry counts).",
      "counter",
      (id) => status.get(id)!.stats.storageFailures,
    ],
    [
      "aspen_shard_snapshot_failures_total",
      "Snapshots and log compactions that failed on storage (or whose worker failed).",
      "counter",
      (id) => status.get(id)!.stats.snapshotFailures,
    ],
    [
      "aspen_shard_snapshots_created_total",
      "Snapshots this replica took and stored in its log.",
      "counter",
      (id) => status.get(id)!.stats.snapshotsCreated,
    ],
    [
      "aspen_shard_snapshots_restored_total",
      "Snapshots this replica installed from its leader.",
      "counter",
      (id) => status.get(id)!.stats.snapshotsRestored,
    ],
    [
      "aspen_shard_snapshots_staged_total",
      "Snapshots from the leader whose files were written off the event loop before install.",
      "counter",
      (id) => status.get(id)!.stats.snapshotsStaged,
    ],
  ];
}

function applyLatencyLines(
  status: ReadonlyMap<number, ReplicaStatus>,
  node: string,
  lines: string[],
): void {
  header(
    lines,
    "aspen_shard_apply_latency_ms",
    "Apply time of recent entry batches, ms.",
    "summary",
  );
  for (const id of status.keys()) {
    const samples = status.get(id)!.stats.applyMsRecent;
    for (const q of [0.5, 0.99]) {
      lines.push(
        `aspen_shard_apply_latency_ms{${node},shard="${id}",quantile="${q}"} ${
          percentile(samples, q)
        }`,
      );
    }
  }
}

/** How many local replicas sleep (raft/quiesce.ts). */
function quiescedLines(sources: MetricsSources, node: string, lines: string[]): void {
  header(
    lines,
    "aspen_shards_quiesced",
    "Local replicas whose group is quiesced (they cost no ticks or heartbeats).",
    "gauge",
  );
  let quiesced = 0;
  for (const shard of sources.shards.values()) if (shard.replica.isQuiesced()) quiesced++;
  lines.push(`aspen_shards_quiesced{${node}} ${quiesced}`);
}

/** Node and peer series. */
function nodeLines(sources: MetricsSources, node: string, lines: string[]): void {
  quiescedLines(sources, node, lines);
  routerLines(sources.router, node, lines);
  const peers = sources.peers().peers;
  header(lines, "aspen_peer_up", "1 when the peer connection is up.", "gauge");
  for (const peer of peers) {
    lines.push(`aspen_peer_up{${node},peer="${peer.nodeId}"} ${peer.isUp ? 1 : 0}`);
  }
  const peerCounters: [string, string, (peer: (typeof peers)[number]) => number][] = [
    ["aspen_peer_messages_sent_total", "Raft messages sent to the peer.", (p) => p.messagesOut],
    ["aspen_peer_frames_sent_total", "Frames sent to the peer.", (p) => p.framesOut],
    [
      "aspen_peer_stream_writes_total",
      "Stream writes to the peer (frames of one burst share one).",
      (p) => p.streamWrites,
    ],
    ["aspen_peer_bytes_sent_total", "Bytes sent to the peer.", (p) => p.bytesOut],
    ["aspen_peer_frames_received_total", "Frames received from the peer.", (p) => p.framesIn],
    [
      "aspen_peer_requests_shed_total",
      "Requests from the peer shed unrun because it was not reading its answers.",
      (p) => p.requestsShed,
    ],
    [
      "aspen_peer_answers_dropped_total",
      "Responses, error frames and pongs dropped because the peer was not reading them.",
      (p) => p.answersDropped,
    ],
  ];
  for (const [name, help, value] of peerCounters) {
    header(lines, name, help, "counter");
    for (const peer of peers) lines.push(`${name}{${node},peer="${peer.nodeId}"} ${value(peer)}`);
  }
  header(lines, "aspen_peer_rtt_ms", "Smoothed round-trip time to the peer, ms.", "gauge");
  for (const peer of peers) {
    if (peer.rttMsSmoothed !== null) {
      lines.push(`aspen_peer_rtt_ms{${node},peer="${peer.nodeId}"} ${peer.rttMsSmoothed}`);
    }
  }
}

/** The router's series (forwarding, retries, follower reads, abandoned requests). */
function routerLines(router: RouterStats, node: string, lines: string[]): void {
  header(
    lines,
    "aspen_node_forwarded_requests_total",
    "Requests forwarded to a leader.",
    "counter",
  );
  lines.push(`aspen_node_forwarded_requests_total{${node}} ${router.forwarded}`);
  header(
    lines,
    "aspen_node_route_retries_total",
    "Routing retries after leader changes.",
    "counter",
  );
  lines.push(`aspen_node_route_retries_total{${node}} ${router.retries}`);
  header(
    lines,
    "aspen_node_requests_abandoned_total",
    "Forwarded requests failed in flight because their node went down (silent).",
    "counter",
  );
  lines.push(
    `aspen_node_requests_abandoned_total{${node}} ${router.abandonedOnPeerDown}`,
  );
  header(
    lines,
    "aspen_node_follower_reads_total",
    "Linearizable reads served by a local follower after a read index from the leader.",
    "counter",
  );
  lines.push(`aspen_node_follower_reads_total{${node}} ${router.followerReads}`);
  header(
    lines,
    "aspen_node_follower_read_fallbacks_total",
    "Follower reads that failed and were forwarded to the leader instead.",
    "counter",
  );
  lines.push(
    `aspen_node_follower_read_fallbacks_total{${node}} ${router.followerReadFallbacks}`,
  );
}
