/**
 * `/v1/cluster/status`: nodes (from the peer channel and each node's own answer) and shards
 * (from each shard's leader, which alone knows every replica's progress), gathered in parallel
 * with short deadlines so that a down node or a leaderless shard shows as such instead of
 * stalling the answer.
 */
import { allShardIds } from "../../shard/mod.ts";
import type {
  ClusterStatus as ClusterStatusBody,
  CrossShardTxnCounts,
  LearnerStatus,
  MemberStatus,
  NodeStatus,
  ShardMap,
  ShardMoveStatus,
} from "../../api/mod.ts";
import type { ClusterCredentials } from "../auth.ts";
import type { Alarm } from "./alarms.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import type { LocalShard } from "./local_shard.ts";
import type { ShardStatusView } from "./shard_status_view.ts";
import { readShardMap } from "./shard_map.ts";
import type { MembersRecord } from "./members.ts";
import { placementDifferences } from "./placement_differences.ts";
import type { PlacementRecord } from "./placement_record.ts";

/** How long the status waits for any one node or shard. */
export const STATUS_PART_TIMEOUT_MS = 1_000;
/** The reserved shard id of node-level requests on the peer channel. */
export const NODE_CHANNEL_SHARD = 0xffff_ffff;

/** What a node says about itself. */
export interface NodeInfo {
  readonly id: number;
  readonly peerAddress: string;
  readonly httpAddress: string;
  readonly version: string;
  readonly startedAtMs: number;
  /** Its alarms when it answered; absent from nodes that predate alarms. */
  readonly alarms?: readonly Alarm[];
  /** Its cross-shard transaction counters; absent from nodes that predate them. */
  readonly crossShardTxns?: CrossShardTxnCounts;
  /** The shards it hosts a replica of; absent from nodes that predate membership changes. */
  readonly shards?: readonly number[];
}

/** What the status needs from the node. */
export interface StatusSources {
  readonly self: NodeInfo;
  /** The configured members: the node list until the members record is known. */
  readonly members: readonly { readonly id: number; readonly peerAddress: string }[];
  /** The members record as this node last read it (null: not yet). */
  readonly membersRecord?: () => MembersRecord | null;
  /** The placement record as this node last read it (null or absent: none). */
  readonly placement?: () => PlacementRecord | null;
  readonly credentials: ClusterCredentials;
  readonly shardCount: number;
  readonly router: ClusterRouter;
  readonly shards: ReadonlyMap<number, LocalShard>;
  readonly wallMs: () => number;
  /** Monotonic milliseconds, for deadlines. */
  readonly nowMs: () => number;
  /** Whether the peer connection to `node` is up. */
  readonly isUp: (node: number) => boolean;
  /** Asks `node` for its NodeInfo over the peer channel. */
  readonly askNodeInfo: (node: number) => Promise<NodeInfo>;
  /** This node's alarms now. */
  readonly alarms: () => readonly Alarm[];
  /** This node's cross-shard transaction counters now. */
  readonly crossShardTxns: () => CrossShardTxnCounts;
  /** The shard map this node routes by; absent: read from its replica of shard 0. */
  readonly shardMap?: () => { readonly epoch: number; readonly numShards: number };
  /** The shard move in progress or the last one (absent: none is shown). */
  readonly shardMove?: () => Promise<ShardMoveStatus | null>;
}

/** Builds the cluster status document of API.md (extended with uptime and stats). */
export class ClusterStatus {
  readonly #sources: StatusSources;
  /** The last answer of each node, shown (marked down) while it does not answer. */
  readonly #knownInfo = new Map<number, NodeInfo>();

  constructor(sources: StatusSources) {
    this.#sources = sources;
  }

  /** The whole status document. */
  async collect(): Promise<ClusterStatusBody> {
    const sources = this.#sources;
    const hosted = new Map<number, readonly number[]>();
    const [nodes, shards, shardMove] = await Promise.all([
      nodeStatuses(sources, this.#knownInfo, hosted),
      shardStatuses(sources),
      sources.shardMove?.().catch(() => null) ?? Promise.resolve(undefined),
    ]);
    const record = sources.membersRecord?.() ?? null;
    return {
      generatedAtMs: sources.wallMs(),
      clusterId: sources.credentials.clusterId,
      node: sources.self.id,
      nodes,
      shardMap: shardMapOf(sources),
      shards,
      ...(shardMove === undefined ? {} : { shardMove }),
      members: record === null ? null : memberStatuses(record, shards),
      learners: learnersOf(shards),
      differences: placementDifferences({
        shards,
        hosted,
        members: record,
        placement: sources.placement?.() ?? null,
      }),
    };
  }
}

/** The nodes' statuses; `hosted` gets the shards of each node that answered now. */
async function nodeStatuses(
  sources: StatusSources,
  knownInfo: Map<number, NodeInfo>,
  hosted: Map<number, readonly number[]>,
): Promise<NodeStatus[]> {
  const now = sources.wallMs();
  return await Promise.all(
    nodesOf(sources).map(async (member): Promise<NodeStatus> => {
      let info: NodeInfo | undefined = member.id === sources.self.id
        ? { ...sources.self, alarms: sources.alarms(), crossShardTxns: sources.crossShardTxns() }
        : undefined;
      let isUp = info !== undefined;
      if (info !== undefined) hosted.set(member.id, [...sources.shards.keys()]);
      if (info === undefined && sources.isUp(member.id)) {
        info = await sources.askNodeInfo(member.id).catch(() => undefined);
        if (info !== undefined) knownInfo.set(member.id, info);
        isUp = info !== undefined;
        if (info?.shards !== undefined) hosted.set(member.id, info.shards);
      }
      const shown = info ?? knownInfo.get(member.id);
      return {
        id: member.id,
        peerAddress: member.peerAddress,
        httpAddress: shown?.httpAddress ?? "",
        status: isUp ? "up" : "down",
        version: shown?.version ?? "",
        uptimeMs: isUp && shown !== undefined ? now - shown.startedAtMs : null,
        // Only a node that answered now can say: an old list would show alarms that cleared.
        alarms: isUp ? info?.alarms ?? null : null,
        crossShardTxns: isUp ? info?.crossShardTxns ?? null : null,
      };
    }),
  );
}

/** The nodes to show: the record's members that are not removed, else the configured ones. */
function nodesOf(
  sources: StatusSources,
): readonly { readonly id: number; readonly peerAddress: string }[] {
  const record = sources.membersRecord?.() ?? null;
  if (record === null) return sources.members;
  return record.members.filter((member) => member.state !== "removed");
}

/** Every member of the record with the replicas and leaderships the shards' answers show. */
export function memberStatuses(
  record: MembersRecord,
  shards: readonly ShardStatusView[],
): MemberStatus[] {
  return record.members.map((member) => ({
    id: member.id,
    peerAddress: member.peerAddress,
    httpAddress: member.httpAddress,
    state: member.state,
    replicas: shards.filter((shard) => shard.replicas.some((replica) => replica.node === member.id))
      .length,
    leaders: shards.filter((shard) => shard.leader === member.id).length,
  }));
}

/** The learners the shards' leaders report: replicas catching up before they vote. */
export function learnersOf(shards: readonly ShardStatusView[]): LearnerStatus[] {
  const learners: LearnerStatus[] = [];
  for (const shard of shards) {
    for (const replica of shard.replicas) {
      if (replica.role !== "learner") continue;
      learners.push({
        shard: shard.id,
        node: replica.node,
        matchIndex: replica.matchIndex,
        lag: replica.lag,
      });
    }
  }
  return learners;
}

async function shardStatuses(sources: StatusSources): Promise<ShardStatusView[]> {
  const ids = allShardIds(sources.shardCount);
  return await Promise.all(ids.map(async (shard) => {
    const deadline = sources.nowMs() + STATUS_PART_TIMEOUT_MS;
    // When no leader answers in time, this node's own view (or "unknown") is shown instead.
    const view = await sources.router.execute<ShardStatusView>(shard, { kind: "status" }, deadline)
      .catch(() => null);
    if (view !== null && view.leader !== null) return withDownReplicas(view, sources);
    // Looked up after the wait: the rebalancer may have dropped (and closed) the replica
    // meanwhile, and a closed replica's state machine must not be read.
    const local = sources.shards.get(shard);
    return local?.statusView() ?? unknownShard(shard, sources);
  }));
}

/** A leader marks a replica down when it has not heard from it; so does a dead peer link. */
function withDownReplicas(view: ShardStatusView, sources: StatusSources): ShardStatusView {
  return {
    ...view,
    replicas: view.replicas.map((replica) =>
      replica.node !== sources.self.id && !sources.isUp(replica.node) &&
        replica.node !== view.leader
        ? { ...replica, status: "down" as const }
        : replica
    ),
  };
}

function unknownShard(shard: number, sources: StatusSources): ShardStatusView {
  return {
    id: shard,
    leader: null,
    term: 0,
    commitIndex: 0,
    appliedIndex: 0,
    lastIndex: 0,
    replicas: sources.router.replicasOf(shard).map((node) => ({
      node,
      role: "follower" as const,
      matchIndex: 0,
      lag: 0,
      status: sources.isUp(node) ? "up" as const : "down" as const,
    })),
    committedReplicas: [...sources.router.replicasOf(shard)].sort((a, b) => a - b),
    stats: {
      proposalsPerSecond: 0,
      optimisticTxns: 0,
      conflicts: 0,
      applyBatchMsP99: null,
      applyLatencyP99Ms: null,
      turnMsMax: 0,
    },
  };
}

function shardMapOf(sources: StatusSources): ShardMap {
  const routed = sources.shardMap?.();
  if (routed !== undefined) return { epoch: routed.epoch, numShards: routed.numShards };
  const record = readShardMap(sources.shards.get(0));
  if (record !== null) return { epoch: record.epoch, numShards: record.numShards };
  return { epoch: 1, numShards: sources.shardCount };
}
