/**
 * Reads a `/v1/cluster/status` body into a checked {@linkcode ClusterStatus}. Fields added to
 * the contract (uptime, apply latency, generation time, alarms) become null when an older
 * server leaves them out, and a leader of 0 means "no leader".
 */
import type {
  Alarm,
  AlarmType,
  ClusterStatus,
  CrossShardTxnCounts,
  LearnerStatus,
  MemberState,
  MemberStatus,
  NodeStatus,
  ReplicaRole,
  ReplicaStatus,
  ShardMovePhase,
  ShardMoveStatus,
  ShardStats,
  ShardStatus,
  UpDown,
} from "../../api/mod.ts";
import { JsonReader } from "./json_read.ts";
import {
  STATUS_ALARMS_MAX,
  STATUS_LEARNERS_MAX,
  STATUS_MEMBERS_MAX,
  STATUS_NODES_MAX,
  STATUS_REPLICAS_MAX,
  STATUS_SHARDS_MAX,
} from "./limits.ts";

const read: JsonReader = new JsonReader("cluster status");
const UP_DOWN: readonly UpDown[] = ["up", "down"];
const ROLES: readonly ReplicaRole[] = ["leader", "follower", "learner", "candidate"];
const ALARM_TYPES: readonly AlarmType[] = ["no_space", "storage_error"];
const MEMBER_STATES: readonly MemberState[] = ["joining", "active", "draining", "removed"];

/**
 * Checks `body` against the status contract and returns it normalised.
 *
 * @throws {JsonFormatError} naming the first field that is missing or of the wrong kind.
 */
export function parseClusterStatus(body: unknown): ClusterStatus {
  const fields = read.object(body, "status");
  const shardMap = read.object(fields.shardMap, "shardMap");
  return {
    clusterId: read.text(fields.clusterId, "clusterId"),
    node: read.count(fields.node, "node"),
    generatedAtMs: read.optionalNumber(fields.generatedAtMs, "generatedAtMs"),
    nodes: read.list(fields.nodes, "nodes", STATUS_NODES_MAX).map(parseNode),
    shardMap: {
      epoch: read.count(shardMap.epoch, "shardMap.epoch"),
      numShards: read.count(shardMap.numShards, "shardMap.numShards"),
    },
    shards: read.list(fields.shards, "shards", STATUS_SHARDS_MAX).map(parseShard),
    ...parseShardMove(fields.shardMove),
    ...parseMembers(fields.members),
    ...(fields.learners === undefined ? {} : { learners: parseLearners(fields.learners) }),
  };
}

/**
 * The members record: absent from servers that predate membership changes (left out here
 * too), null while the answering node does not know the record.
 */
function parseMembers(value: unknown): { members?: readonly MemberStatus[] | null } {
  if (value === undefined) return {};
  if (value === null) return { members: null };
  const members = read.list(value, "members", STATUS_MEMBERS_MAX);
  return {
    members: members.map((member, i) => {
      const where = `members[${i}]`;
      const fields = read.object(member, where);
      return {
        id: read.count(fields.id, `${where}.id`),
        peerAddress: read.text(fields.peerAddress, `${where}.peerAddress`),
        httpAddress: read.text(fields.httpAddress, `${where}.httpAddress`),
        state: read.choice(fields.state, `${where}.state`, MEMBER_STATES),
        replicas: read.count(fields.replicas, `${where}.replicas`),
        leaders: read.count(fields.leaders, `${where}.leaders`),
      };
    }),
  };
}

/** The learners catching up (replicas in motion). */
function parseLearners(value: unknown): LearnerStatus[] {
  return read.list(value, "learners", STATUS_LEARNERS_MAX).map((learner, i) => {
    const where = `learners[${i}]`;
    const fields = read.object(learner, where);
    return {
      shard: read.count(fields.shard, `${where}.shard`),
      node: read.count(fields.node, `${where}.node`),
      matchIndex: read.count(fields.matchIndex, `${where}.matchIndex`),
      lag: read.count(fields.lag, `${where}.lag`),
    };
  });
}

const MOVE_PHASES: readonly ShardMovePhase[] = [
  "copy",
  "fence",
  "delta",
  "handoff",
  "flip",
  "cleanup",
  "done",
];

/**
 * The shard move: absent from servers that predate moves (left out here too), null when the
 * cluster never moved or shard 0 did not answer.
 */
function parseShardMove(value: unknown): { shardMove?: ShardMoveStatus | null } {
  if (value === undefined) return {};
  if (value === null) return { shardMove: null };
  const fields = read.object(value, "shardMove");
  const sources = read.list(fields.sources, "shardMove.sources", STATUS_SHARDS_MAX);
  return {
    shardMove: {
      fromCount: read.count(fields.fromCount, "shardMove.fromCount"),
      toCount: read.count(fields.toCount, "shardMove.toCount"),
      phase: read.choice(fields.phase, "shardMove.phase", MOVE_PHASES),
      startedAtMs: read.count(fields.startedAtMs, "shardMove.startedAtMs"),
      updatedAtMs: read.count(fields.updatedAtMs, "shardMove.updatedAtMs"),
      sources: sources.map((source, i) => {
        const where = `shardMove.sources[${i}]`;
        const item = read.object(source, where);
        return {
          shard: read.count(item.shard, `${where}.shard`),
          keysTotal: read.count(item.keysTotal, `${where}.keysTotal`),
          bytesTotal: read.count(item.bytesTotal, `${where}.bytesTotal`),
          keysCopied: read.count(item.keysCopied, `${where}.keysCopied`),
          bytesCopied: read.count(item.bytesCopied, `${where}.bytesCopied`),
        };
      }),
    },
  };
}

function parseNode(value: unknown, i: number): NodeStatus {
  const where = `nodes[${i}]`;
  const fields = read.object(value, where);
  return {
    id: read.count(fields.id, `${where}.id`),
    peerAddress: read.text(fields.peerAddress, `${where}.peerAddress`),
    httpAddress: read.text(fields.httpAddress, `${where}.httpAddress`),
    status: read.choice(fields.status, `${where}.status`, UP_DOWN),
    version: read.text(fields.version, `${where}.version`),
    uptimeMs: read.optionalNumber(fields.uptimeMs, `${where}.uptimeMs`),
    alarms: parseAlarms(fields.alarms, `${where}.alarms`),
    ...parseCrossShard(fields.crossShardTxns, `${where}.crossShardTxns`),
  };
}

/**
 * A node's cross-shard counters: absent from servers that predate them (left out here too, so
 * the view can tell "not reported" from "unknown"), null for a node that is down.
 */
function parseCrossShard(
  value: unknown,
  where: string,
): { crossShardTxns?: CrossShardTxnCounts | null } {
  if (value === undefined) return {};
  if (value === null) return { crossShardTxns: null };
  const fields = read.object(value, where);
  return {
    crossShardTxns: {
      committed: read.count(fields.committed, `${where}.committed`),
      conflict: read.count(fields.conflict, `${where}.conflict`),
      timeout: read.count(fields.timeout, `${where}.timeout`),
      error: read.count(fields.error, `${where}.error`),
    },
  };
}

/** A node's alarms; null when it did not say (it is down, or predates alarms). */
function parseAlarms(value: unknown, where: string): Alarm[] | null {
  if (value === null || value === undefined) return null;
  return read.list(value, where, STATUS_ALARMS_MAX).map((item, i) => {
    const at = `${where}[${i}]`;
    const fields = read.object(item, at);
    const alarm = {
      type: read.choice(fields.type, `${at}.type`, ALARM_TYPES),
      sinceMs: read.number(fields.sinceMs, `${at}.sinceMs`),
      message: read.text(fields.message, `${at}.message`),
    };
    if (fields.shard === undefined) return alarm;
    return { ...alarm, shard: read.count(fields.shard, `${at}.shard`) };
  });
}

function parseShard(value: unknown, i: number): ShardStatus {
  const where = `shards[${i}]`;
  const fields = read.object(value, where);
  const leader = fields.leader === null || fields.leader === undefined
    ? 0
    : read.count(fields.leader, `${where}.leader`);
  const replicas = read.list(fields.replicas, `${where}.replicas`, STATUS_REPLICAS_MAX);
  const parsedReplicas = replicas.map((replica, r) =>
    parseReplica(replica, `${where}.replicas[${r}]`)
  );
  return {
    id: read.count(fields.id, `${where}.id`),
    leader: leader === 0 ? null : leader,
    term: read.count(fields.term, `${where}.term`),
    commitIndex: read.count(fields.commitIndex, `${where}.commitIndex`),
    appliedIndex: read.count(fields.appliedIndex, `${where}.appliedIndex`),
    lastIndex: read.count(fields.lastIndex, `${where}.lastIndex`),
    replicas: parsedReplicas,
    // Absent from servers before it was added: the latest configuration is the best guess.
    committedReplicas: fields.committedReplicas === undefined
      ? parsedReplicas.map((replica) => replica.node).sort((a, b) => a - b)
      : read.list(fields.committedReplicas, `${where}.committedReplicas`, STATUS_REPLICAS_MAX)
        .map((node, n) => read.count(node, `${where}.committedReplicas[${n}]`)),
    stats: parseStats(fields.stats, `${where}.stats`),
  };
}

function parseReplica(value: unknown, where: string): ReplicaStatus {
  const fields = read.object(value, where);
  return {
    node: read.count(fields.node, `${where}.node`),
    role: read.choice(fields.role, `${where}.role`, ROLES),
    matchIndex: read.count(fields.matchIndex, `${where}.matchIndex`),
    lag: read.count(fields.lag, `${where}.lag`),
    status: read.choice(fields.status, `${where}.status`, UP_DOWN),
  };
}

function parseStats(value: unknown, where: string): ShardStats {
  const fields = read.object(value, where);
  return {
    proposalsPerSecond: read.number(fields.proposalsPerSecond, `${where}.proposalsPerSecond`),
    optimisticTxns: read.count(fields.optimisticTxns, `${where}.optimisticTxns`),
    conflicts: read.count(fields.conflicts, `${where}.conflicts`),
    applyBatchMsP99: read.optionalNumber(fields.applyBatchMsP99, `${where}.applyBatchMsP99`),
    applyLatencyP99Ms: read.optionalNumber(
      fields.applyLatencyP99Ms,
      `${where}.applyLatencyP99Ms`,
    ),
    // Older servers do not send it; the console shows none of it, so 0 stands in.
    turnMsMax: fields.turnMsMax === undefined
      ? 0
      : read.number(fields.turnMsMax, `${where}.turnMsMax`),
    // Absent from servers that predate the Transactions view: the view shows "—".
    ...(fields.intents === undefined
      ? {}
      : { intents: read.count(fields.intents, `${where}.intents`) }),
  };
}
