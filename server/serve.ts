/**
 * Runs one node until asked to stop: starts the shards and peer channel, serves the HTTP API
 * (and the console), and on shutdown stops accepting, hands over leadership, flushes and closes.
 */
import { addressInUseError, AspenError } from "../shard/mod.ts";
import { parseHostPort } from "../transport/mod.ts";
import type { Config } from "./config.ts";
import {
  addDebugRoutes,
  addWatchRoute,
  type AppOptions,
  createApp,
  type ReplicaDebugState,
} from "./http/mod.ts";
import type { Logger } from "./log.ts";
import {
  admitNode,
  answerStanding,
  type AspenNode,
  ClusterStatus,
  decodeShardResponse,
  formatMetrics,
  HttpLatency,
  type LocalShard,
  memberStateOf,
  NODE_CHANNEL_SHARD,
  type NodeInfo,
  type NodeRuntime,
  removeNode,
  startNode,
} from "./node/mod.ts";
import type { Hono } from "hono";
import { CONSOLE_PATHS, consoleAsset } from "../ui/mod.ts";

export { TEST_FAULTS_FLAG } from "./http/mod.ts";

/** How long a node info request to a peer may take. */
export const NODE_INFO_TIMEOUT_MS = 500;

/**
 * Starts a node and serves it until `shutdown` aborts.
 *
 * @throws {AspenError} `bad_config` or `storage_corrupt` when the node cannot start.
 */
export async function serveNode(
  config: Config,
  runtime: NodeRuntime,
  shutdown: AbortSignal,
): Promise<void> {
  const node = await startNode(config, runtime);
  const logger = runtime.logger;
  const app = createNodeApp(node, runtime);
  const { hostname, port } = parseHostPort(config.node.httpListen, {
    what: "http_listen",
    isListen: true,
  });
  const stopServing = new AbortController();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname,
      port,
      signal: stopServing.signal,
      onListen: () => logger.info("Serving HTTP", { address: config.node.httpListen }),
    }, app.fetch);
  } catch (error) {
    await node.close();
    if (error instanceof Deno.errors.AddrInUse) {
      throw addressInUseError("serve HTTP", config.node.httpListen, error);
    }
    throw error;
  }
  let isRemoved = false;
  await new Promise<void>((resolve) => {
    if (shutdown.aborted) resolve();
    shutdown.addEventListener("abort", () => resolve(), { once: true });
    node.removed.then(() => {
      isRemoved = true;
      resolve();
    });
  });
  logger.info("Stopping", { node: config.node.id });
  stopServing.abort();
  await server.finished;
  await node.close();
  if (isRemoved) {
    throw new AspenError(
      "node_removed",
      `Node ${config.node.id} stopped: it was removed from the cluster; its data dir is ` +
        "marked and will not start again: wipe it and start a new node with a new id and --join",
      { node: config.node.id },
    );
  }
}

/**
 * `POST /v1/shards/{id}/transfer-leader`, answered once the transfer happened: `leader` is who
 * leads now (`to`, or whoever won the election it started); an abandoned transfer is an error.
 */
async function transferLeader(node: AspenNode, shard: number, to: number) {
  const moved = await node.service.run<{ leader: number }>(shard, { kind: "transferLeader", to });
  return { shard, leader: moved.leader };
}

/** The collector of `/v1/cluster/status` for a started node. */
function clusterStatus(node: AspenNode, runtime: NodeRuntime): ClusterStatus {
  const config = node.config;
  return new ClusterStatus({
    self: {
      id: config.node.id,
      peerAddress: config.node.peerListen,
      httpAddress: config.node.httpListen,
      version: runtime.version,
      startedAtMs: runtime.wallMs(),
    },
    members: node.members.map((id) => ({
      id,
      peerAddress: config.cluster.peers.find((peer) => peer.id === id)?.address ??
        config.node.peerListen,
    })),
    membersRecord: () => node.membership.current,
    placement: () => node.membership.placement,
    credentials: node.credentials,
    get shardCount() {
      return node.service.shardCount;
    },
    shardMap: () => node.shardMap.current,
    shardMove: () => node.mover.move(),
    router: node.router,
    shards: node.shards,
    wallMs: runtime.wallMs,
    nowMs: runtime.nowMs,
    isUp: (id) => node.transport.isPeerUp(id),
    askNodeInfo: async (id) =>
      decodeShardResponse<NodeInfo>(
        await node.transport.request(id, NODE_CHANNEL_SHARD, new Uint8Array(0), {
          deadlineMs: NODE_INFO_TIMEOUT_MS,
        }),
      ),
    alarms: () => node.alarms.list(),
    crossShardTxns: () => node.service.crossShard.counts(),
  });
}

/** What the membership routes call: remove or replace a node, admit a joining one. */
function memberRoutes(node: AspenNode): NonNullable<AppOptions["members"]> {
  const config = node.config;
  return {
    remove: (id, mode) =>
      removeNode(
        {
          refresh: () => node.membership.refresh(),
          update: (change) => node.membership.update(change),
          isUp: (other) => node.isNodeUp(other),
          replicationFactor: config.sharding.replicationFactor,
        },
        id,
        mode,
      ),
    join: (body) =>
      admitNode({
        credentials: node.credentials,
        update: (change) => node.membership.update(change),
        numShards: node.service.shardCount,
        replicationFactor: config.sharding.replicationFactor,
      }, body),
    standing: (id, body) =>
      answerStanding(body, id, {
        secret: node.credentials.secret,
        stateOf: (member) => memberStateOf(member, node.membership),
      }),
  };
}

/** Builds the HTTP app (API, watch, status, metrics) of a started node. */
export function createNodeApp(node: AspenNode, runtime: NodeRuntime): Hono {
  const config = node.config;
  const logger: Logger = runtime.logger;
  const latency = new HttpLatency();
  const status = clusterStatus(node, runtime);
  const tokens = node.tokens;
  // The debug routes check the role of the token again, synchronously, from what the node
  // knows (the request already passed the app's bearer check).
  const authenticate = tokens === null ? null : (token: string) => tokens.cachedRole(token);
  return createApp({
    nodeId: config.node.id,
    service: node.service,
    tokens,
    logger,
    status: () => status.collect(),
    transferLeader: (shard, to) => transferLeader(node, shard, to),
    members: memberRoutes(node),
    shardMoves: {
      add: (request) => node.mover.addShards(request),
      move: () => node.mover.move(),
      sizes: () => node.mover.shardSizes(),
    },
    tenants: {
      create: (request) => node.mover.createTenant(request),
      move: (request) => node.mover.moveTenant(request),
      list: () => node.mover.tenants(),
    },
    metrics: () =>
      Promise.resolve(formatMetrics({
        nodeId: config.node.id,
        shards: node.shards,
        router: node.router.stats,
        peers: () => node.transport.stats(),
        http: latency,
        alarms: node.alarms,
        crossShard: node.service.crossShard,
        wallMs: runtime.wallMs,
        loopStalls: node.loopStalls,
      })),
    observe: (route, seconds) => latency.observe(route, seconds),
    nowMs: runtime.nowMs,
    extend: (app) => {
      addWatchRoute(app, node.service, node.shards);
      addDebugRoutes(app, {
        nodeId: config.node.id,
        members: () => faultPeers(node),
        faults: node.transport.faults,
        replicas: ({ isHashed, shard }) => localDebugStates(node, { isHashed, shard }),
        campaign: (shard) => campaignLocal(node, shard),
        authenticate,
      });
      addConsoleRoutes(app);
    },
  });
}

/**
 * The nodes a test fault rule may name: the configured members and every member the members
 * record lists and has not removed (joined nodes), sorted.
 */
function faultPeers(node: AspenNode): number[] {
  const ids = new Set(node.members);
  for (const member of node.membership.current?.members ?? []) {
    if (member.state !== "removed") ids.add(member.id);
  }
  return [...ids].sort((a, b) => a - b);
}

/**
 * Makes this node's replica of `shard` campaign (`POST /v1/test/campaign`).
 *
 * @throws {AspenError} `unknown_shard` when the node hosts no replica of the shard.
 */
async function campaignLocal(node: AspenNode, shard: number): Promise<void> {
  const local = node.shards.get(shard);
  if (local === undefined) {
    throw new AspenError(
      "unknown_shard",
      `Cannot start a campaign: node ${node.config.node.id} hosts no replica of shard ${shard}`,
      { shard },
    );
  }
  await local.replica.campaign();
}

/**
 * The local replicas (of one shard, or all), one after another: hashing several state machines
 * at once would copy them all into memory in the same moment and hold the event loop longer.
 */
async function localDebugStates(
  node: AspenNode,
  options: { readonly isHashed: boolean; readonly shard: number | null },
): Promise<ReplicaDebugState[]> {
  const states: ReplicaDebugState[] = [];
  for (const local of node.shards.values()) {
    if (options.shard !== null && local.shard !== options.shard) continue;
    states.push(await replicaDebugState(local, options.isHashed));
  }
  return states;
}

/**
 * One local replica's indexes and, if asked, its state hash with the applied index the hash
 * was taken at (hashed in steps: StateMachine.stateHashInSteps()).
 */
async function replicaDebugState(
  shard: LocalShard,
  isHashed: boolean,
): Promise<ReplicaDebugState> {
  const status = shard.replica.status();
  const hashed = isHashed ? await shard.stateMachine.stateHashInSteps() : null;
  return {
    shard: shard.shard,
    role: status.role,
    term: status.term,
    leader: status.leader,
    commitIndex: status.commit,
    appliedIndex: hashed?.appliedIndex ?? shard.stateMachine.appliedIndex(),
    stateHash: hashed?.stateHash ?? null,
  };
}

/** Serves the web console's page and assets (built into the binary) at `/`. */
function addConsoleRoutes(app: Hono): void {
  for (const path of CONSOLE_PATHS) {
    app.get(path, () => {
      const asset = consoleAsset(path);
      if (asset === null) return new Response("Not found", { status: 404 });
      return new Response(asset.body, { headers: asset.headers });
    });
  }
}
