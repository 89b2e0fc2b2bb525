/**
 * @module
 * The node runtime: local shard replicas, the cluster router that forwards to shard leaders,
 * the KV service behind the HTTP API, and the node that wires them to the peer transport.
 *
 * Allowed dependencies: the rest of server/ (config, log, auth), transport/ (the peer channel),
 * shard/ and raft/ through their mod.ts.
 *
 * @example
 * ```ts
 * import { startNode } from "./mod.ts";
 * declare const config: Parameters<typeof startNode>[0];
 * declare const runtime: Parameters<typeof startNode>[1];
 * const node = await startNode(config, runtime);
 * await node.close();
 * ```
 */
export {
  type Alarm,
  ALARM_TYPES,
  type AlarmType,
  DISK_CHECK_INTERVAL_MS,
  DISK_RECHECK_ON_WRITE_MS,
  type DiskSpace,
  NodeAlarms,
} from "./alarms.ts";
export { ClusterRouter, type PeerChannel, type RouterStats } from "./cluster_router.ts";
export {
  ClusterStatus,
  NODE_CHANNEL_SHARD,
  type NodeInfo,
  STATUS_PART_TIMEOUT_MS,
  type StatusSources,
} from "./cluster_status.ts";
export {
  formatMetrics,
  HTTP_BUCKETS_SECONDS,
  HttpLatency,
  type MetricsSources,
} from "./metrics.ts";
export {
  DELETE_RANGE_ROUNDS_MAX,
  KvService,
  mergePages,
  PUSH_ROUNDS_MAX,
  type RangeQuery,
} from "./kv_service.ts";
export { apiKv, apiLeaseError, apiLeaseId, apiTxnOpResult, LEASE_SHARD_SPAN } from "./lease_ids.ts";
export { LocalShard } from "./local_shard.ts";
export { removeNode } from "./node_removal.ts";
export { admitNode } from "./node_admission.ts";
export {
  answerProof,
  answerStanding,
  KNOWN_MEMBERS_FILE,
  memberStateOf,
  questionProof,
} from "./standing.ts";
export {
  REMOTE_WATCH_BATCH_EVENTS_MAX,
  REMOTE_WATCH_STREAMS_MAX,
  WATCH_POLL_EVENTS_MAX,
  type WatchPoll,
  type WatchPosition,
  type WatchStreamBatch,
} from "./remote_watch.ts";
export { type ShardStatusView } from "./shard_status_view.ts";
export {
  type AspenNode,
  ELECTION_TICKS,
  HEARTBEAT_TICKS,
  type NodeRuntime,
  REQUEST_TIMEOUT_MS,
  startNode,
  TICK_MS,
} from "./node.ts";
export { replicasOf, shardsOf } from "./placement.ts";
export {
  checkedTxnId,
  decodeShardRequest,
  decodeShardResponse,
  READ_INTENTS_MAX,
  type ReadIntent,
  type ShardRequest,
} from "./shard_request.ts";
export {
  CROSS_SHARD_COMMIT_BUCKETS_SECONDS,
  CROSS_SHARD_OUTCOMES,
  type CrossShardOutcome,
  CrossShardStats,
} from "./cross_shard_stats.ts";
export { RouterTxnTransport } from "./txn_transport.ts";
export {
  type CreatedToken,
  TOKEN_CHANGE_ATTEMPTS_MAX,
  type TokenRecordStore,
  TokenRegistry,
  type TokenRegistryOptions,
  TOKENS_MISS_REFRESH_MS_MIN,
  TOKENS_READ_TIMEOUT_MS,
  TOKENS_REFRESH_MS,
  TOKENS_RETRY_MS,
  TOKENS_STALE_MS_MAX,
  type TokenVerdict,
} from "./token_registry.ts";
export { META_SWAPS_WAITING_MAX } from "./meta_swaps.ts";
export { NODE_HEARTBEAT_TICKS } from "./node_liveness.ts";
export { META_WATCH_RETRY_MS } from "./meta_watch.ts";
