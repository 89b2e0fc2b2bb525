/**
 * Reads a `/v1/cluster/status` body into a checked {@linkcode ClusterStatus}. The console trusts
 * nothing that arrives over the network: a malformed status is refused with a message that names
 * the field, so that the screen never shows half-read numbers. Fields that the console added to
 * the contract (uptime, apply latency, generation time) become null when an older server leaves
 * them out, and a leader of 0 means "no leader".
 */
import type {
  ClusterStatus,
  NodeStatus,
  ReplicaRole,
  ReplicaStatus,
  ShardStats,
  ShardStatus,
  UpDown,
} from "../../server/api_types.ts";
import { STATUS_NODES_MAX, STATUS_REPLICAS_MAX, STATUS_SHARDS_MAX } from "./limits.ts";

/** A status body that does not follow the contract. */
export class StatusFormatError extends Error {
  override readonly name = "StatusFormatError";
}

type Fields = Readonly<Record<string, unknown>>;

/**
 * Checks `body` against the status contract and returns it normalised.
 *
 * @throws {StatusFormatError} naming the first field that is missing or of the wrong kind.
 */
export function parseClusterStatus(body: unknown): ClusterStatus {
  const fields = object(body, "status");
  const shardMap = object(fields.shardMap, "shardMap");
  return {
    clusterId: text(fields.clusterId, "clusterId"),
    node: count(fields.node, "node"),
    generatedAtMs: optionalNumber(fields.generatedAtMs, "generatedAtMs"),
    nodes: list(fields.nodes, "nodes", STATUS_NODES_MAX).map(parseNode),
    shardMap: {
      epoch: count(shardMap.epoch, "shardMap.epoch"),
      numShards: count(shardMap.numShards, "shardMap.numShards"),
    },
    shards: list(fields.shards, "shards", STATUS_SHARDS_MAX).map(parseShard),
  };
}

function parseNode(value: unknown, i: number): NodeStatus {
  const where = `nodes[${i}]`;
  const fields = object(value, where);
  return {
    id: count(fields.id, `${where}.id`),
    peerAddress: text(fields.peerAddress, `${where}.peerAddress`),
    httpAddress: text(fields.httpAddress, `${where}.httpAddress`),
    status: upDown(fields.status, `${where}.status`),
    version: text(fields.version, `${where}.version`),
    uptimeMs: optionalNumber(fields.uptimeMs, `${where}.uptimeMs`),
  };
}

function parseShard(value: unknown, i: number): ShardStatus {
  const where = `shards[${i}]`;
  const fields = object(value, where);
  const leader = fields.leader === null || fields.leader === undefined
    ? 0
    : count(fields.leader, `${where}.leader`);
  const replicas = list(fields.replicas, `${where}.replicas`, STATUS_REPLICAS_MAX);
  return {
    id: count(fields.id, `${where}.id`),
    leader: leader === 0 ? null : leader,
    term: count(fields.term, `${where}.term`),
    commitIndex: count(fields.commitIndex, `${where}.commitIndex`),
    appliedIndex: count(fields.appliedIndex, `${where}.appliedIndex`),
    lastIndex: count(fields.lastIndex, `${where}.lastIndex`),
    replicas: replicas.map((replica, r) => parseReplica(replica, `${where}.replicas[${r}]`)),
    stats: parseStats(fields.stats, `${where}.stats`),
  };
}

function parseReplica(value: unknown, where: string): ReplicaStatus {
  const fields = object(value, where);
  return {
    node: count(fields.node, `${where}.node`),
    role: role(fields.role, `${where}.role`),
    matchIndex: count(fields.matchIndex, `${where}.matchIndex`),
    lag: count(fields.lag, `${where}.lag`),
    status: upDown(fields.status, `${where}.status`),
  };
}

function parseStats(value: unknown, where: string): ShardStats {
  const fields = object(value, where);
  return {
    proposalsPerSecond: number(fields.proposalsPerSecond, `${where}.proposalsPerSecond`),
    optimisticTxns: count(fields.optimisticTxns, `${where}.optimisticTxns`),
    conflicts: count(fields.conflicts, `${where}.conflicts`),
    applyLatencyP99Ms: optionalNumber(fields.applyLatencyP99Ms, `${where}.applyLatencyP99Ms`),
  };
}

function object(value: unknown, where: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new StatusFormatError(`Cannot read cluster status: ${where} is not an object`);
  }
  return value as Fields;
}

function list(value: unknown, where: string, lengthMax: number): readonly unknown[] {
  if (!Array.isArray(value)) {
    throw new StatusFormatError(`Cannot read cluster status: ${where} is not a list`);
  }
  if (value.length > lengthMax) {
    throw new StatusFormatError(
      `Cannot read cluster status: ${where} has ${value.length} items ` +
        `but the limit is ${lengthMax}`,
    );
  }
  return value;
}

function text(value: unknown, where: string): string {
  if (typeof value !== "string") {
    throw new StatusFormatError(`Cannot read cluster status: ${where} is not a string`);
  }
  return value;
}

function number(value: unknown, where: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new StatusFormatError(
      `Cannot read cluster status: ${where} is ${JSON.stringify(value)} ` +
        "but must be a non-negative number",
    );
  }
  return value;
}

function optionalNumber(value: unknown, where: string): number | null {
  return value === null || value === undefined ? null : number(value, where);
}

function count(value: unknown, where: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new StatusFormatError(
      `Cannot read cluster status: ${where} is ${JSON.stringify(value)} ` +
        "but must be a non-negative integer",
    );
  }
  return value;
}

function upDown(value: unknown, where: string): UpDown {
  if (value === "up" || value === "down") return value;
  throw new StatusFormatError(
    `Cannot read cluster status: ${where} is ${JSON.stringify(value)} but must be "up" or "down"`,
  );
}

const ROLES: readonly ReplicaRole[] = ["leader", "follower", "learner", "candidate"];

function role(value: unknown, where: string): ReplicaRole {
  const found = ROLES.find((candidate) => candidate === value);
  if (found !== undefined) return found;
  throw new StatusFormatError(
    `Cannot read cluster status: ${where} is ${JSON.stringify(value)} but must be a Raft role`,
  );
}
