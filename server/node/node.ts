/**
 * One Aspen node: the shared resources (config, data dir, credentials, QUIC peer transport,
 * HTTP server) and one replica per local shard, wired together and torn down in order.
 *
 * ```text
 *   HTTP (Hono) ──▶ KvService ──▶ ClusterRouter ──┬─▶ LocalShard (leader here)
 *                                                 └─▶ PeerTransport.request ─▶ peer's LocalShard
 *   LocalShard.replica ──send──▶ PeerTransport.send ──▶ peer ──▶ replica.deliver
 * ```
 */
import {
  assert,
  decodeMessage,
  encodeMessage,
  ENTRY_BYTES_MAX,
  type Message,
  MESSAGE_BYTES_MAX,
  type ReplicaId,
  SeededPrng,
} from "../../raft/mod.ts";
import { AspenError, REQUEST_BYTES_MAX, storageFailureKind } from "../../shard/mod.ts";
import {
  type ClusterCredentials,
  createCredentials,
  formatCredentials,
  parseCredentials,
} from "../auth.ts";
import { type Config, shardCount, SHARDS_MAX } from "../config.ts";
import type { Logger } from "../log.ts";
import {
  createClusterCa,
  loadOrCreatePeerIdentity,
  parseHostPort,
  PEER_PAYLOAD_BYTES_MAX,
  PeerTransport,
  type RefusedPeers,
} from "../../transport/mod.ts";
import { NodeAlarms } from "./alarms.ts";
import { ClusterRouter } from "./cluster_router.ts";
import { ForwardedRequests } from "./forwarded_requests.ts";
import { NODE_CHANNEL_SHARD, type NodeInfo } from "./cluster_status.ts";
import type { CrossShardStats } from "./cross_shard_stats.ts";
import { KvService } from "./kv_service.ts";
import { apiLeaseId } from "./lease_ids.ts";
import { IntentShards, IntentSweeper } from "./intent_sweeper.ts";
import { DueSchedule } from "./due_schedule.ts";
import { TxnCoordinator } from "./txn_coordinator.ts";
import { RouterTxnTransport } from "./txn_transport.ts";
import { readRefusedPeers } from "../refused_peers_file.ts";
import { LocalShard } from "./local_shard.ts";
import { decodeMetaStamp, encodeMetaStamp, MetaWatch } from "./meta_watch.ts";
import { IDLE_TICKS_PER_RUN, NODE_DOWN_TICKS, NodeLiveness, tickNode } from "./node_liveness.ts";
import { LoopStalls } from "./loop_stalls.ts";
import { replicasOf, shardsOf } from "./placement.ts";
import {
  maintainShardMap,
  readShardMap,
  SHARD_MAP_META,
  type ShardMap,
  type ShardMapKeeper,
  ShardMapView,
} from "./shard_map.ts";
import { type NewShardPlacer, ShardMover } from "./shard_mover.ts";
import type { Membership } from "./membership.ts";
import { decodeNodeRequest } from "./node_requests.ts";
import { readHostedShards, type ReplicaHost, shardDirsOf } from "./replica_host.ts";
import { checkNotRemoved } from "./removed_marker.ts";
import { joinedState } from "./join.ts";
import { checkStandingAtStart } from "./standing.ts";
import {
  createNewShardPlacer,
  type NodeRequestSlot,
  startMembershipRuntime,
} from "./membership_wiring.ts";
import { decodeShardRequest, encodeShardResponse } from "./shard_request.ts";
import { TokenRegistry, TOKENS_READ_TIMEOUT_MS } from "./token_registry.ts";
import { TOKENS_META } from "../runtime_tokens.ts";

// A client request (at most REQUEST_BYTES_MAX) becomes one Raft entry, and every Raft message
// must fit one peer frame: the limits of the three layers must agree.
assert(ENTRY_BYTES_MAX >= REQUEST_BYTES_MAX + 64 * 1024, "a whole request fits one entry");
assert(MESSAGE_BYTES_MAX <= PEER_PAYLOAD_BYTES_MAX, "a Raft message fits one peer frame");

/** Milliseconds per Raft tick. */
export const TICK_MS = 50;
/** Ticks without a leader before a follower campaigns (0.5 s to 1 s with jitter). */
export const ELECTION_TICKS = 10;
/** Ticks between heartbeats. */
export const HEARTBEAT_TICKS = 2;
/** The deadline of every client request. */
export const REQUEST_TIMEOUT_MS = 5_000;

/**
 * A node heartbeat (node_liveness.ts) of a node without a replica of shard 0: its arrival is
 * the message. A node with one adds its meta stamp (meta_watch.ts).
 */
const NODE_HEARTBEAT = new Uint8Array(0);

/** What a node needs from its process. */
export interface NodeRuntime {
  readonly logger: Logger;
  /** Monotonic milliseconds. */
  readonly nowMs: () => number;
  readonly randomBytes: (count: number) => Uint8Array;
  readonly version: string;
  /** A seed for election jitter (from a secure source in production). */
  readonly seed: number;
  /** Wall-clock milliseconds, for uptime. */
  readonly wallMs: () => number;
  /**
   * Test only: lets the peer transport drop or delay traffic on request (the fault tests'
   * `PUT /v1/test/faults`). Only `aspen node --enable-test-faults` sets it; absent is false.
   */
  readonly isFaultInjectionEnabled?: boolean;
  /**
   * Test only: applied entries between snapshots, lowered so that fault tests exercise log
   * compaction and snapshot installs (`aspen node --test-snapshot-interval-entries`).
   * Absent: SNAPSHOT_INTERVAL_ENTRIES.
   */
  readonly snapshotIntervalEntries?: number;
}

/** A started node. */
export interface AspenNode {
  readonly config: Config;
  readonly credentials: ClusterCredentials;
  readonly shards: ReadonlyMap<number, LocalShard>;
  readonly router: ClusterRouter;
  readonly service: KvService;
  readonly transport: PeerTransport;
  readonly members: readonly number[];
  /** The shard map this node routes by (shard_map.ts). */
  readonly shardMap: ShardMapView;
  /** Its part in shard moves (shard_mover.ts). */
  readonly mover: ShardMover;
  /** Its storage alarms (a disk below the reserve, stalled replicas). */
  readonly alarms: NodeAlarms;
  /** How long its event loop was held (loop_stalls.ts). */
  readonly loopStalls: LoopStalls;
  /** The client tokens (bootstrap and runtime); null when authentication is off. */
  readonly tokens: TokenRegistry | null;
  /** The members record as this node last read it (membership.ts). */
  readonly membership: Membership;
  /** The replicas it hosts, opened and dropped on the rebalance driver's demand. */
  readonly replicaHost: ReplicaHost;
  /** Resolves when the cluster told this node that it was removed: it must stop. */
  readonly removed: Promise<void>;
  /** Whether node `id` is up: this node, or a peer with a link and heard within a second. */
  isNodeUp(id: number): boolean;
  /** Stops the node: leadership handed over, files flushed and closed. */
  close(): Promise<void>;
}

/**
 * Starts a node from a validated config.
 *
 * @throws {AspenError} `bad_config` for missing credentials or an inconsistent membership,
 * `storage_corrupt` for damaged files.
 */
export async function startNode(given: Config, runtime: NodeRuntime): Promise<AspenNode> {
  const parts = await openLocalParts(given, runtime);
  const config = parts.config;
  const { credentials, members, shards, alarms, liveness, crossShard, transport } = parts;
  const { metaWatch, metaRefresh, hosting } = parts;
  alarms.start();
  const ticked = { shards: { all: shards, awake: hosting.awake }, transport, liveness, metaWatch };
  const ticker = startTicker(ticked, config, runtime);
  const placement = { of: (_shard: number): readonly number[] | null => null };
  const hostSlot: { host: ReplicaHost | null } = { host: null };
  const placerSlot: { placer: NewShardPlacer | null } = { placer: null };
  // Routing follows the placement record, and a running move's recorded voters of its new
  // shards until this node's copy of the record lists them.
  const moverSlot: { mover: ShardMover | null } = { mover: null };
  const router = createRouter(config, { members, shards, transport, liveness }, runtime, {
    of: (shard: number) => placement.of(shard) ?? moverSlot.mover?.recordedVotersOf(shard) ?? null,
  });
  const { shardMap, shardMapKeeper } = startShardMap({ router, shards, parts }, runtime);
  const { service, sweeper } = createService(config, { router, shards, shardMap, parts }, runtime);
  const mover = createMover(
    config,
    { members, shards, router, shardMap, service, placement, placerSlot },
    moverOpener(config, { ...hosting, members, hostSlot }, runtime),
    runtime,
  );
  moverSlot.mover = mover;
  mover.start();
  crossShard.stats = service.crossShard;
  sweeper.start();
  const tokens = config.auth.enabled ? createTokenRegistry(credentials, service, runtime) : null;
  tokens?.start();
  const membership = await startMembershipRuntime(config, {
    ...parts,
    router,
    service,
    openShard: (shard, voters, termFloor) =>
      openShard(config, shard, voters, hosting, runtime, termFloor),
  }, runtime);
  placement.of = (shard) => membership.membership.placementOf(shard);
  hostSlot.host = membership.replicaHost;
  const isNodeUp = (id: number) =>
    id === config.node.id || (transport.isPeerUp(id) && !liveness.isDown(id));
  const placed = { router, service, members, isUp: isNodeUp, membership: membership.membership };
  placerSlot.placer = createNewShardPlacer(config, placed, runtime);
  metaRefresh.run = () => refreshMeta([tokens, shardMapKeeper, mover, membership.membership]);
  logStarted(config, shards, members, runtime);
  return {
    config,
    credentials,
    shards,
    router,
    service,
    transport,
    members,
    shardMap,
    mover,
    alarms,
    loopStalls: ticker.stalls,
    tokens,
    membership: membership.membership,
    replicaHost: membership.replicaHost,
    removed: membership.removed,
    isNodeUp,
    close: () =>
      closeStartedNode(
        { membership, ticker, metaWatch, shardMapKeeper, mover, sweeper, alarms, tokens },
        { config, shards, transport, logger: runtime.logger },
      ),
  };
}

/** Stops a started node's parts, in order, then its replicas and transport. */
async function closeStartedNode(
  parts: {
    readonly membership: { close(): void };
    readonly ticker: { stop(): void };
    readonly metaWatch: { close(): void };
    readonly shardMapKeeper: { stop(): void };
    readonly mover: { close(): void };
    readonly sweeper: { close(): Promise<void> };
    readonly alarms: { close(): void };
    readonly tokens: { close(): Promise<void> } | null;
  },
  node: {
    readonly config: Config;
    readonly shards: Map<number, LocalShard>;
    readonly transport: PeerTransport;
    readonly logger: Logger;
  },
): Promise<void> {
  parts.membership.close();
  parts.ticker.stop();
  parts.metaWatch.close();
  parts.shardMapKeeper.stop();
  parts.mover.close();
  await parts.sweeper.close();
  parts.alarms.close();
  await parts.tokens?.close();
  return await closeNode(node.config, node.shards, node.transport, node.logger);
}

/** Opens this node's replicas of `ids`; on a failure closes what it opened and the transport. */
async function openLocalShards(
  ids: readonly number[],
  node: {
    readonly shards: Map<number, LocalShard>;
    readonly transport: PeerTransport;
    readonly open: (shard: number) => Promise<LocalShard>;
    /** The error to throw for `error` (the free space added for a full disk). */
    readonly onError: (error: unknown) => unknown;
  },
): Promise<void> {
  try {
    for (const shard of ids) node.shards.set(shard, await node.open(shard));
  } catch (error) {
    for (const shard of node.shards.values()) shard.close();
    await node.transport.close();
    throw node.onError(error);
  }
}

/** Runs `late.run`, set once the node is built; until then a refresh fails (and is retried). */
function refreshLate(late: { readonly run: (() => Promise<boolean>) | null }): Promise<boolean> {
  return late.run?.() ?? Promise.resolve(false);
}

/**
 * The meta watch's refresh (meta_watch.ts): the runtime tokens (when authentication is on), the
 * shard map, the move record and the members record (with the placement record), each read
 * after this call; true when all were read.
 */
async function refreshMeta(
  owners: readonly [TokenRegistry | null, ShardMapKeeper, ShardMover, Membership],
): Promise<boolean> {
  const [tokens, shardMapKeeper, mover, membership] = owners;
  const reads = await Promise.all([
    tokens === null ? true : tokens.refreshAfterChange(),
    shardMapKeeper.check(),
    mover.check(),
    membership.checkAfterChange(),
  ]);
  return reads.every((isRead) => isRead);
}

/**
 * The parts a node builds before it serves: credentials, the peer channel and the local
 * replicas (closed again when one fails to open).
 */
async function openLocalParts(given: Config, runtime: NodeRuntime) {
  await Deno.mkdir(given.node.dataDir, { recursive: true });
  await checkNotRemoved(given.node.dataDir, given.node.id);
  const joined = await joinedState(given, runtime.logger);
  // A joined node's peers are the members it joined (they include it): the static list.
  const config = joined === null
    ? given
    : { ...given, cluster: { ...given.cluster, peers: joined.members } };
  const credentials = await loadCredentials(config, runtime);
  // Before any replica is opened: a node removed while it was down stops here, untouched.
  await checkStandingAtStart({
    nodeId: config.node.id,
    dataDir: config.node.dataDir,
    secret: credentials.secret,
    joinUrl: config.cluster.join,
    logger: runtime.logger,
    wallMs: runtime.wallMs,
    randomBytes: runtime.randomBytes,
  });
  const members = membersOf(config);
  const hostedIds = await readHostedShards(config.node.dataDir, SHARDS_MAX);
  const onDisk = await shardDirsOf(config.node.dataDir, SHARDS_MAX);
  const listed = hostedIds ?? localShardIds(config, members, shardCount(config));
  const localIds = [...new Set([...listed, ...onDisk])].sort((a, b) => a - b);
  const shards = new Map<number, LocalShard>();
  const awake = new Set<number>(); // The shards that may be awake (NodeShards).
  const alarms = createAlarms(config, { shards, awake }, runtime);
  const liveness = new NodeLiveness(members.filter((member) => member !== config.node.id));
  const crossShard = { stats: null as CrossShardStats | null };
  const refusedFile = config.cluster.refusedPeersFile;
  const refusedFromFile = refusedFile === null ? {} : await readRefusedPeers(refusedFile);
  const nodeRequests: NodeRequestSlot = { handle: null };
  // What the meta watch re-reads is built after the transport that feeds it stamps.
  const metaRefresh = { run: null as (() => Promise<boolean>) | null };
  const metaWatch = new MetaWatch({
    refresh: () => refreshLate(metaRefresh),
    nowMs: runtime.nowMs,
  });
  const hosted = { shards, alarms, liveness, crossShard, refusedFromFile, nodeRequests, metaWatch };
  const transport = await startTransport(config, credentials, hosted, runtime);
  const hosting = shardHosting({ transport, alarms, awake }, runtime);
  const rf = config.sharding.replicationFactor;
  const open = (shard: number) =>
    openShard(config, shard, replicasOf(members, shard, rf), hosting, runtime);
  const onError = (error: unknown) => withFreeSpace(error, config, alarms);
  await openLocalShards(localIds, { shards, transport, open, onError });
  return {
    hosting,
    metaWatch,
    metaRefresh,
    config,
    isJoined: joined !== null,
    credentials,
    members,
    shards,
    alarms,
    liveness,
    crossShard,
    refusedFromFile,
    nodeRequests,
    transport,
  };
}

/**
 * The node's one timer: it ticks every replica (quiesced ones return at once), runs the node
 * heartbeats (node_liveness.ts) with this node's meta stamp (meta_watch.ts), which it also
 * notes in the meta watch, then flushes the peer channel once, so that every message of the
 * tick bound for a peer leaves in one frame. While every replica sleeps it runs every
 * IDLE_TICKS_PER_RUN ticks instead of every tick. It also notes how late it ran: the node's
 * event-loop stalls (loop_stalls.ts), a long one logged. Returns its stop function and those.
 */
function startTicker(
  parts: {
    readonly shards: { readonly all: ReadonlyMap<number, LocalShard>; readonly awake: Set<number> };
    readonly transport: PeerTransport;
    readonly liveness: NodeLiveness;
    readonly metaWatch: MetaWatch;
  },
  config: Config,
  runtime: NodeRuntime,
): { stop(): void; readonly stalls: LoopStalls } {
  const { shards, transport, liveness, metaWatch } = parts;
  const stalls = new LoopStalls((lateMs) =>
    runtime.logger.warn("The event loop was held: every shard of this node waited", {
      node: config.node.id,
      ms: Math.round(lateMs),
    })
  );
  // Drawn at start: a restarted node's meta stamps start over (see MetaStamp).
  const drawn = runtime.randomBytes(4);
  const incarnation = new DataView(drawn.buffer, drawn.byteOffset, 4).getUint32(0);
  let ticks = 1;
  let timer: ReturnType<typeof setTimeout>;
  let dueMs = runtime.nowMs() + TICK_MS;
  const run = () => {
    stalls.note(runtime.nowMs() - dueMs);
    const shardZero = shards.all.get(0);
    const stamp = shardZero === undefined
      ? null
      : { incarnation, version: shardZero.stateMachine.metaVersion() };
    if (stamp !== null) metaWatch.note(config.node.id, stamp);
    const heartbeat = stamp === null ? NODE_HEARTBEAT : encodeMetaStamp(stamp);
    const isAwake = tickNode(liveness, shards, (peer) => {
      transport.send(peer, NODE_CHANNEL_SHARD, heartbeat);
    }, ticks);
    transport.flush();
    ticks = isAwake ? 1 : IDLE_TICKS_PER_RUN;
    dueMs = runtime.nowMs() + ticks * TICK_MS;
    timer = setTimeout(run, ticks * TICK_MS);
  };
  timer = setTimeout(run, TICK_MS);
  return { stop: () => clearTimeout(timer), stalls };
}

function logStarted(
  config: Config,
  shards: ReadonlyMap<number, LocalShard>,
  members: readonly number[],
  runtime: NodeRuntime,
): void {
  const started = { shards: [...shards.keys()].join(","), members: members.join(",") };
  runtime.logger.info("Node started", { node: config.node.id, ...started });
}

/**
 * The KV service, with the coordinator of the cross-shard transactions this node runs, and the
 * sweeper that pushes the intents of transactions nobody finished on the shards it leads (its
 * close also awaits the coordinator's resolves that follow replies).
 */
function createService(
  config: Config,
  cluster: {
    readonly router: ClusterRouter;
    readonly shards: ReadonlyMap<number, LocalShard>;
    readonly shardMap: ShardMapView;
    /** The node's parts: the shards that may hold intents. */
    readonly parts: { readonly hosting: { readonly intents: IntentShards } };
  },
  runtime: NodeRuntime,
): { service: KvService; sweeper: Pick<IntentSweeper, "start" | "close"> } {
  const shardMap = cluster.shardMap;
  const coordinator = new TxnCoordinator({
    nodeId: config.node.id,
    // A getter: a shard move changes the count while the node runs.
    get shardCount() {
      return shardMap.numShards;
    },
    get tenants() {
      return shardMap.tenants;
    },
    transport: new RouterTxnTransport(cluster.router),
    nowMs: runtime.nowMs,
    wallMs: runtime.wallMs,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    onResolveLaterError: (txnId, error) =>
      runtime.logger.warn("Cannot resolve a committed cross-shard txn after its reply", {
        txnId,
        error: error instanceof Error ? error.message : String(error),
      }),
  });
  const service = new KvService({
    router: cluster.router,
    get shardCount() {
      return shardMap.numShards;
    },
    get tenants() {
      return shardMap.tenants;
    },
    get mapEpoch() {
      return shardMap.current.epoch;
    },
    refreshShardMap: () => shardMap.refresh(),
    nowMs: runtime.nowMs,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    coordinator,
  });
  // A lease with keys on other shards expires by a cross-shard transaction of the service.
  for (const shard of cluster.shards.values()) {
    shard.useCrossShardExpiry((id) => service.expireLease(apiLeaseId(id, shard.shard)));
  }
  const sweeper = new IntentSweeper({
    nodeId: config.node.id,
    shards: cluster.shards,
    candidates: cluster.parts.hosting.intents,
    push: (shard, key, holder, deadlineMs) => coordinator.push(shard, key, holder, deadlineMs),
    nowMs: runtime.nowMs,
    logger: runtime.logger,
  });
  // Closing also waits for the resolves that follow replies (they end, or fail and are logged)
  // while the shards still run.
  const close = async () => {
    await sweeper.close();
    await coordinator.settled();
  };
  return { service, sweeper: { start: () => sweeper.start(), close } };
}

/**
 * How the mover opens a new shard's replica, bootstrapped with the voters the mover gives (its
 * move's recorded voters, or the static placement for a record without them): through the
 * replica host once it exists, so that the rebalancer's opens and the mover's never open one
 * shard twice.
 */
function moverOpener(
  config: Config,
  node: ShardHosting & {
    readonly members: readonly number[];
    readonly hostSlot: { readonly host: ReplicaHost | null };
  },
  runtime: NodeRuntime,
): (shard: number, voters: readonly number[]) => Promise<LocalShard> {
  return async (shard, voters) => {
    const host = node.hostSlot.host;
    if (host !== null) return await host.openFor(shard, voters);
    return await openShard(config, shard, voters, node, runtime);
  };
}

/** The node's part in shard moves; a new shard's leases expire through `cluster.service`. */
function createMover(
  config: Config,
  cluster: {
    readonly members: readonly number[];
    readonly shards: Map<number, LocalShard>;
    readonly router: ClusterRouter;
    readonly shardMap: ShardMapView;
    readonly service: KvService;
    readonly placement: { readonly of: (shard: number) => readonly number[] | null };
    /** Set once the members record's runtime exists; the static placement until then. */
    readonly placerSlot: { readonly placer: NewShardPlacer | null };
  },
  open: (shard: number, voters: readonly number[]) => Promise<LocalShard>,
  runtime: NodeRuntime,
): ShardMover {
  return new ShardMover({
    nodeId: config.node.id,
    members: cluster.members,
    replicationFactor: config.sharding.replicationFactor,
    localShards: config.sharding.localShards,
    configuredCount: shardCount(config),
    shards: cluster.shards,
    router: cluster.router,
    view: cluster.shardMap,
    openShard: async (shard, voters) => {
      const opened = await open(shard, voters);
      opened.useCrossShardExpiry((id) => cluster.service.expireLease(apiLeaseId(id, shard)));
      return opened;
    },
    placementOf: (shard) => cluster.placement.of(shard),
    placer: {
      place: async (shards) => await cluster.placerSlot.placer?.place(shards) ?? null,
      record: async (placed) => await cluster.placerSlot.placer?.record(placed),
      forget: async (placed) => await cluster.placerSlot.placer?.forget(placed),
    },
    maxShards: SHARDS_MAX,
    logger: runtime.logger,
    nowMs: runtime.nowMs,
    wallMs: runtime.wallMs,
  });
}

/** The shard map's view and its upkeep (shard_map.ts); a joined node's list is not checked. */
function startShardMap(
  node: {
    readonly router: ClusterRouter;
    readonly shards: ReadonlyMap<number, LocalShard>;
    readonly parts: {
      readonly config: Config;
      readonly members: readonly number[];
      readonly isJoined: boolean;
    };
  },
  runtime: NodeRuntime,
): { shardMap: ShardMapView; shardMapKeeper: ShardMapKeeper } {
  const { config, members } = node.parts;
  const initialMap: ShardMap = {
    epoch: 1,
    numShards: shardCount(config),
    members,
    replicationFactor: config.sharding.replicationFactor,
  };
  const shardMap = createShardMapView(initialMap, node.router, node.shards, runtime);
  const shardMapKeeper = maintainShardMap({
    expected: initialMap,
    shards: node.shards,
    logger: runtime.logger,
    view: shardMap,
    isConfigChecked: !node.parts.isJoined,
  });
  return { shardMap, shardMapKeeper };
}

/** The shard map the node routes by, read from shard 0 (its local replica first). */
function createShardMapView(
  initial: ShardMap,
  router: ClusterRouter,
  shards: ReadonlyMap<number, LocalShard>,
  runtime: NodeRuntime,
): ShardMapView {
  const view = new ShardMapView({
    initial,
    read: async () => {
      const request = { kind: "metaRead", name: SHARD_MAP_META } as const;
      const deadline = runtime.nowMs() + REQUEST_TIMEOUT_MS;
      const read = await router.execute<{ value: string | null }>(0, request, deadline);
      return read.value === null ? null : JSON.parse(read.value);
    },
    nowMs: runtime.nowMs,
  });
  view.adopt(readShardMap(shards.get(0)));
  return view;
}

/** The node's tokens, with the runtime token record read and swapped in shard 0's meta. */
function createTokenRegistry(
  credentials: ClusterCredentials,
  service: KvService,
  runtime: NodeRuntime,
): TokenRegistry {
  return new TokenRegistry({
    credentials,
    store: {
      read: async () => {
        const request = { kind: "metaRead", name: TOKENS_META } as const;
        const read = await service.run<{ value: string | null }>(
          0,
          request,
          TOKENS_READ_TIMEOUT_MS,
        );
        return read.value;
      },
      swap: (expected, value) =>
        service.run(0, { kind: "metaSwap", name: TOKENS_META, expected, value }),
    },
    nowMs: runtime.nowMs,
    wallMs: runtime.wallMs,
    randomBytes: runtime.randomBytes,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    logger: runtime.logger,
  });
}

/** What every local replica reports into or runs on, node-level (see openShard). */
function shardHosting(
  node: Pick<ShardHosting, "transport" | "alarms" | "awake">,
  runtime: NodeRuntime,
): ShardHosting {
  const leaseSchedule = new DueSchedule(runtime.nowMs);
  return { ...node, leaseSchedule, intents: new IntentShards(), leadership: { count: 0 } };
}

function createAlarms(
  config: Config,
  node: {
    readonly shards: ReadonlyMap<number, LocalShard>;
    /** The node timer's shards that may be awake: the only ones the periodic check visits. */
    readonly awake: ReadonlySet<number>;
  },
  runtime: NodeRuntime,
): NodeAlarms {
  return new NodeAlarms({
    nodeId: config.node.id,
    dataDir: config.node.dataDir,
    reserveBytes: config.node.diskReserveMib * 1024 * 1024,
    shards: node.shards,
    awake: node.awake,
    nowMs: runtime.nowMs,
    wallMs: runtime.wallMs,
    logger: runtime.logger,
  });
}

/**
 * A shard that cannot be opened for lack of space (SQLite reports the -shm file it cannot map
 * on a full disk as an I/O error): the error, with the free space of the data disk added, so
 * that the operator knows what to do. Any other error is returned as it is.
 */
function withFreeSpace(error: unknown, config: Config, alarms: NodeAlarms): unknown {
  if (!(error instanceof AspenError) || storageFailureKind(error) === null) return error;
  alarms.check();
  const free = alarms.space().freeBytes;
  if (free === null) return error;
  const mib = (free / (1024 * 1024)).toFixed(1);
  return new AspenError(
    error.code,
    `${error.message}; the data disk of "${config.node.dataDir}" has ${mib} MiB free: free ` +
      "space on it (or fix the disk) and start the node again",
    error.details,
    { cause: error },
  );
}

/**
 * The router; `placement.of` is set once the members record's runtime exists. A killed or
 * cut-off peer's connection stays up until the QUIC idle timeout (5 s); the liveness's down
 * report (1 s of silence) fails the requests in flight there instead.
 * New requests are not refused on liveness alone: a peer that restarted on the same address is
 * silent to its lower-numbered peers until their old connection times out and they dial it
 * again, and refusing it meanwhile made a shard whose leadership moved there unreachable (CI).
 */
function createRouter(
  config: Config,
  parts: {
    readonly members: readonly number[];
    readonly shards: ReadonlyMap<number, LocalShard>;
    readonly transport: PeerTransport;
    readonly liveness: NodeLiveness;
  },
  runtime: NodeRuntime,
  placement: { of: (shard: number) => readonly number[] | null },
): ClusterRouter {
  const { members, shards, transport, liveness } = parts;
  const router = new ClusterRouter({
    nodeId: config.node.id,
    members,
    replicationFactor: config.sharding.replicationFactor,
    placementOf: (shard) => placement.of(shard),
    local: shards,
    peers: {
      request: (to, shard, payload, options) => transport.request(to, shard, payload, options),
      isConnected: (node) => transport.isPeerUp(node),
    },
    nowMs: runtime.nowMs,
    logger: runtime.logger,
  });
  liveness.onPeerDown((peer) => router.peerDown(peer, NODE_DOWN_TICKS * TICK_MS));
  return router;
}

async function loadCredentials(config: Config, runtime: NodeRuntime): Promise<ClusterCredentials> {
  const path = config.cluster.credentialsFile ?? `${config.node.dataDir}/cluster.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const others = config.cluster.peers.filter((peer) => peer.id !== config.node.id);
    if (others.length > 0) {
      throw new AspenError(
        "bad_config",
        `Cannot start node ${config.node.id}: no cluster credentials at "${path}"; run ` +
          `'aspen cluster init --out ${path}' once and give that file to every node`,
      );
    }
    const created = await createCredentials(runtime.randomBytes, createClusterCa);
    await Deno.writeTextFile(path, formatCredentials(created.credentials), { mode: 0o600 });
    runtime.logger.warn("Created cluster credentials for a single-node cluster", {
      path,
      rootToken: created.rootToken,
      readToken: created.readToken,
      note: "the tokens are shown once",
    });
    return created.credentials;
  }
  return parseCredentials(path, text);
}

/** The cluster's member ids: the peers list, or this node alone. */
function membersOf(config: Config): number[] {
  const peers = config.cluster.peers;
  if (peers.length === 0) return [config.node.id];
  if (!peers.some((peer) => peer.id === config.node.id)) {
    throw new AspenError(
      "bad_config",
      `Cannot start node ${config.node.id}: the peers list does not include it; list every ` +
        `member, this node too (${config.node.id}=${config.node.peerListen})`,
    );
  }
  return peers.map((peer) => peer.id).sort((a, b) => a - b);
}

function localShardIds(config: Config, members: readonly number[], count: number): number[] {
  const rf = config.sharding.replicationFactor;
  const placed = shardsOf(members, config.node.id, count, rf);
  const wanted = config.sharding.localShards;
  if (wanted === null) return placed;
  for (const shard of wanted) {
    if (!placed.includes(shard)) {
      throw new AspenError(
        "bad_config",
        `Cannot host shard ${shard} on node ${config.node.id}: placement puts it on nodes ` +
          `${replicasOf(members, shard, rf).join(", ")}`,
      );
    }
  }
  return [...wanted].sort((a, b) => a - b);
}

async function startTransport(
  config: Config,
  credentials: ClusterCredentials,
  hosted: {
    readonly shards: ReadonlyMap<number, LocalShard>;
    readonly alarms: NodeAlarms;
    readonly liveness: NodeLiveness;
    /**
     * The transport answers other nodes' status questions before the service exists: it reads
     * the service's cross-shard counters through this slot, empty until the service is built.
     */
    readonly crossShard: { readonly stats: CrossShardStats | null };
    /** The refused peers of `[cluster] refused_peers_file` (empty without one). */
    readonly refusedFromFile: RefusedPeers;
    /** Answers node requests other than info; empty until the node is built. */
    readonly nodeRequests: NodeRequestSlot;
    /** Takes the meta stamps on the peers' node heartbeats. */
    readonly metaWatch: MetaWatch;
  },
  runtime: NodeRuntime,
): Promise<PeerTransport> {
  const shards = hosted.shards;
  const self: NodeInfo = {
    id: config.node.id,
    peerAddress: config.node.peerListen,
    httpAddress: config.node.httpListen,
    version: runtime.version,
    startedAtMs: runtime.wallMs(),
  };
  const identity = await loadOrCreatePeerIdentity({
    directory: config.node.dataDir,
    nodeId: config.node.id,
    listenHost: parseHostPort(config.node.peerListen, { what: "peer_listen", isListen: true })
      .hostname,
    ca: { keyPem: credentials.caKeyPem, certificatePem: credentials.caCertificatePem },
  });
  runtime.logger.info("Peer identity loaded", {
    certificate: identity.fingerprint,
    caKey: credentials.caKeyPem === null ? "absent" : "present",
  });
  const peers = new Map(
    config.cluster.peers.filter((peer) => peer.id !== config.node.id).map((peer) => [
      peer.id,
      { address: peer.address },
    ]),
  );
  const logger = runtime.logger.child({ component: "peer" });
  const forwarded = new ForwardedRequests(runtime.nowMs);
  return await PeerTransport.start({
    nodeId: config.node.id,
    listen: config.node.peerListen,
    identity,
    refusedPeers: hosted.refusedFromFile,
    clusterSecret: credentials.secret,
    trust: { caCertificatePem: credentials.caCertificatePem },
    peers,
    handlers: {
      hostsShard: (shard) => shard === NODE_CHANNEL_SHARD || shards.has(shard),
      // A peer that connects anew may have restarted: quiesced leaders with a replica there
      // wake for a heartbeat round, so that replica learns who leads (a learner never asks).
      onPeerStateChange: (nodeId, isUp) => {
        if (!isUp) return;
        for (const shard of shards.values()) shard.replica.reportPeerBack(nodeId as ReplicaId);
      },
      onRaftMessage: (from, shard, payload) => {
        hosted.liveness.heard(from);
        if (shard !== NODE_CHANNEL_SHARD) return deliverRaft(shards, shard, payload, logger);
        const stamp = decodeMetaStamp(payload);
        if (stamp !== null) hosted.metaWatch.note(from, stamp);
      },
      onRequest: async (_from, shard, payload, { deadlineMs }) => {
        if (shard === NODE_CHANNEL_SHARD) {
          const request = decodeNodeRequest(payload);
          if (request.kind !== "info") {
            const handle = hosted.nodeRequests.handle;
            if (handle === null) {
              throw new AspenError("shard_unavailable", "Cannot serve node requests yet");
            }
            return encodeShardResponse(await handle(request));
          }
          const crossShardTxns = hosted.crossShard.stats?.counts();
          const base = { ...self, alarms: hosted.alarms.list(), shards: [...shards.keys()] };
          const info: NodeInfo = crossShardTxns === undefined ? base : { ...base, crossShardTxns };
          return encodeShardResponse(info);
        }
        const local = shards.get(shard);
        if (local === undefined) {
          throw new AspenError("unknown_shard", `Shard ${shard} is not hosted here`, { shard });
        }
        const request = decodeShardRequest(payload);
        return encodeShardResponse(await forwarded.execute(local, request, deadlineMs));
      },
    },
    logger: {
      info: (message, fields) => logger.info(message, fields),
      warn: (message, fields) => logger.warn(message, fields),
      error: (message, fields) => logger.error(message, fields),
    },
    faults: { enabled: runtime.isFaultInjectionEnabled === true },
  });
}

function deliverRaft(
  shards: ReadonlyMap<number, LocalShard>,
  shard: number,
  payload: Uint8Array,
  logger: Logger,
): void {
  const decoded = decodeMessage(payload);
  if (!decoded.ok) {
    logger.warn("Dropped an undecodable Raft message", { shard, reason: decoded.error });
    return;
  }
  shards.get(shard)?.replica.deliver(decoded.message);
}

/** What a node's replicas report into or run on, shared by all of them (see openShard). */
interface ShardHosting {
  readonly transport: PeerTransport;
  readonly alarms: NodeAlarms;
  /** The node timer's shards that may be awake (NodeShards); a new replica starts in it. */
  readonly awake: Set<number>;
  /** One timer for every replica's lease timer (LeaseTimer). */
  readonly leaseSchedule: DueSchedule;
  /** The shards that may hold intents, the only ones the intent sweeper visits. */
  readonly intents: IntentShards;
  /** The changes of the local replicas' leaders (the rebalance driver's watch key). */
  readonly leadership: { count: number };
}

async function openShard(
  config: Config,
  shard: number,
  voters: readonly number[],
  node: ShardHosting,
  runtime: NodeRuntime,
  termFloor = 0,
): Promise<LocalShard> {
  const transport = node.transport;
  const local = await LocalShard.open({
    shard,
    nodeId: config.node.id,
    dir: `${config.node.dataDir}/shard-${shard}`,
    voters,
    termFloor,
    raft: {
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      prng: new SeededPrng(runtime.seed + shard),
      preVote: true,
      checkQuorum: true,
      leaseReads: true,
      // The next append carries a new commit index, or the replica tells it after
      // COMMIT_NOTICE_DELAY_MS: a lone write costs 4 peer messages, not 8.
      deferCommitNotices: true,
      // A lease also ends by the monotonic clock, which runs on while a node is paused.
      leaseClock: { nowMs: runtime.nowMs, tickMs: TICK_MS },
    },
    // The node ticks every replica from one timer (see startNode), so replicas have none.
    tickMs: 0,
    ...(runtime.snapshotIntervalEntries === undefined
      ? {}
      : { snapshotIntervalEntries: runtime.snapshotIntervalEntries }),
    send: (messages: readonly Message[]) => {
      for (const message of messages) transport.send(message.to, shard, encodeMessage(message));
    },
    nowMs: runtime.nowMs,
    isPeerUp: (id) => transport.isPeerUp(id),
    refuseWrite: (command) => node.alarms.refusal(shard, command),
    onAwake: () => node.awake.add(shard),
    onLeaderChange: () => node.leadership.count++,
    leaseSchedule: node.leaseSchedule,
    onIntents: () => node.intents.note(shard),
    logger: runtime.logger.child({ shard }),
  });
  // No timer runs before the caller adds it to the node's shards: this continues in microtasks.
  node.awake.add(shard);
  return local;
}

async function closeNode(
  config: Config,
  shards: ReadonlyMap<number, LocalShard>,
  transport: PeerTransport,
  logger: Logger,
): Promise<void> {
  for (const shard of shards.values()) shard.handOverLeadership();
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const shard of shards.values()) shard.close();
  await transport.close();
  logger.info("Node stopped", { node: config.node.id });
}
