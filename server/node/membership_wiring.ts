/**
 * The membership runtime of a node, wired from its parts: the members record's view
 * (membership.ts), the replicas hosted on demand (replica_host.ts), the node requests of the
 * peer channel (node_requests.ts) and the rebalance driver on shard 0's leader
 * (rebalance_driver.ts). Split from node.ts, which builds the parts.
 */
import { type Config, SHARDS_MAX } from "../config.ts";
import type { PeerTransport, RefusedPeers } from "../../transport/mod.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import type { KvService } from "./kv_service.ts";
import { apiLeaseId } from "./lease_ids.ts";
import type { LocalShard } from "./local_shard.ts";
import { MEMBERS_REQUEST_TIMEOUT_MS, Membership } from "./membership.ts";
import type { Logger } from "../log.ts";
import type { NodeLiveness } from "./node_liveness.ts";
import { ReplicaHost } from "./replica_host.ts";
import { writeRemovedMarker } from "./removed_marker.ts";
import {
  askWhetherRemoved,
  readKnownMembers,
  saveKnownMembers,
  STANDING_RECHECK_MS,
} from "./standing.ts";
import type { ClusterCredentials } from "../auth.ts";
import { assert } from "../../raft/mod.ts";
import { allShardIds, AspenError } from "../../shard/mod.ts";
import { NODE_CHANNEL_SHARD, type NodeInfo, STATUS_PART_TIMEOUT_MS } from "./cluster_status.ts";
import { encodeNodeRequest, type MembersRecordAnswer, type NodeRequest } from "./node_requests.ts";
import { formatPlacement } from "./placement_record.ts";
import { type DriverCluster, RebalanceDriver, type ShardObservation } from "./rebalance_driver.ts";
import { placeNewShards, type ShardView } from "./rebalancer.ts";
import { replicasOf } from "./placement.ts";
import type { NewShardPlacer } from "./shard_mover.ts";
import { decodeShardResponse, type ShardRequest } from "./shard_request.ts";
import type { ShardStatusView } from "./shard_status_view.ts";

/** How long a node request of the driver (host, drop, removed) may take. */
export const NODE_REQUEST_TIMEOUT_MS = 5_000;
/** How long one membership change or leadership transfer of the driver may take. */
export const REBALANCE_STEP_TIMEOUT_MS = 10_000;

/** The part of the node's runtime (node.ts) the membership runtime uses. */
export interface MembershipRuntime {
  readonly logger: Logger;
  /** Monotonic milliseconds. */
  readonly nowMs: () => number;
  /** Wall-clock milliseconds. */
  readonly wallMs: () => number;
  /** Cryptographically secure random bytes (standing questions' nonces). */
  readonly randomBytes: (count: number) => Uint8Array;
}

/** Where the transport finds the node's handler of node requests once it exists. */
export interface NodeRequestSlot {
  handle: ((request: Exclude<NodeRequest, { kind: "info" }>) => Promise<unknown>) | null;
}

/** The replicas this node hosts on the rebalance driver's demand (replica_host.ts). */
export function createReplicaHost(
  config: Config,
  node: {
    readonly shards: Map<number, LocalShard>;
    readonly service: KvService;
    /** Opens a replica of `shard` with these initial voters (node.ts). */
    readonly openShard: (
      shard: number,
      voters: readonly number[],
      termFloor?: number,
    ) => Promise<LocalShard>;
  },
  runtime: MembershipRuntime,
): ReplicaHost {
  return new ReplicaHost({
    shards: node.shards,
    dataDir: config.node.dataDir,
    shardsMax: SHARDS_MAX,
    open: async (shard, voters, termFloor) => {
      const opened = await node.openShard(shard, voters, termFloor);
      opened.useCrossShardExpiry((id) => node.service.expireLease(apiLeaseId(id, shard)));
      return opened;
    },
    logger: runtime.logger.child({ component: "replicas" }),
  });
}

/**
 * Serves a node request of the rebalance driver: host or drop a replica, or learn that this
 * node was removed (it writes the mark, then `onRemoved` stops it).
 */
export async function handleNodeRequest(
  request: Exclude<NodeRequest, { kind: "info" }>,
  node: {
    readonly config: Config;
    readonly replicaHost: ReplicaHost;
    readonly shards: ReadonlyMap<number, LocalShard>;
    readonly runtime: MembershipRuntime;
    readonly onRemoved: () => void;
    /** The records as this node read them last (null before the membership view exists). */
    readonly records: () => MembersRecordAnswer;
  },
): Promise<unknown> {
  if (request.kind === "hostReplica") {
    return await node.replicaHost.host(request.shard, request.term);
  }
  if (request.kind === "dropReplica") {
    return await node.replicaHost.drop(request.shard, request.term);
  }
  if (request.kind === "leaderViews") return { views: leaderViews(node.shards) };
  if (request.kind === "membersRecord") return node.records();
  assert(request.kind === "removed", "handleNodeRequest: every kind is handled");
  const { config, runtime } = node;
  await writeRemovedMarker(config.node.dataDir, {
    nodeId: config.node.id,
    removedAtMs: runtime.wallMs(),
  });
  runtime.logger.error("This node was removed from the cluster: stopping", {
    node: config.node.id,
  });
  node.onRemoved();
  return { node: config.node.id, isRemoved: true };
}

/**
 * The node's view of the members record: read and swapped in shard 0's meta, applied to the
 * peer channel (new members' addresses, removed members refused beside the refused-peers
 * file's entries).
 */
export function createMembership(
  config: Config,
  node: {
    readonly router: ClusterRouter;
    readonly shards: ReadonlyMap<number, LocalShard>;
    readonly transport: PeerTransport;
    readonly liveness: NodeLiveness;
    readonly replicaHost: ReplicaHost;
    readonly refusedFromFile: RefusedPeers;
    /** The record as this node saved it last (known-members.json), or null. */
    readonly savedMembers: string | null;
  },
  runtime: MembershipRuntime,
): Membership {
  const { router, shards, transport, liveness } = node;
  const deadline = () => runtime.nowMs() + MEMBERS_REQUEST_TIMEOUT_MS;
  return new Membership({
    self: {
      id: config.node.id,
      peerAddress: config.node.peerListen,
      httpAddress: config.node.httpListen,
    },
    peers: config.cluster.peers,
    store: {
      readLocal: (name) => shards.get(0)?.stateMachine.getMeta(name) ?? null,
      isShardZeroLeader: () => shards.get(0)?.replica.leader() === config.node.id,
      read: async (name) => {
        const request = { kind: "metaRead", name } as const;
        return (await router.execute<{ value: string | null }>(0, request, deadline())).value;
      },
      swap: (name, expected, value) =>
        router.execute(0, { kind: "metaSwap", name, expected, value }, deadline()),
      askPeers: async (ids) => {
        const request = encodeNodeRequest({ kind: "membersRecord" });
        const asked = ids.filter((id) => transport.isPeerUp(id)).map(async (id) => {
          const bytes = await transport.request(id, NODE_CHANNEL_SHARD, request, {
            deadlineMs: MEMBERS_REQUEST_TIMEOUT_MS,
          });
          return checkRecordsAnswer(decodeShardResponse<unknown>(bytes));
        });
        const answers = await Promise.allSettled(asked);
        return answers.flatMap((answer) =>
          answer.status === "fulfilled" && answer.value !== null ? [answer.value] : []
        );
      },
    },
    effects: {
      setPeerAddress: (id, address) => {
        transport.setPeer(id, { address });
        liveness.watch(id);
      },
      refuse: (ids) => {
        const fromFile = node.refusedFromFile;
        transport.setRefusedPeers({
          ...fromFile,
          nodeIds: [...new Set([...(fromFile.nodeIds ?? []), ...ids])],
        });
        for (const id of ids) {
          transport.removePeer(id);
          liveness.forget(id);
        }
      },
      checked: () => node.replicaHost.saveIfChanged(),
      saveRecord: (text) => saveKnownMembers(config.node.dataDir, text),
    },
    logger: runtime.logger.child({ component: "membership" }),
    saved: node.savedMembers,
  });
}

/** A peer's `membersRecord` answer, or null when it is not one (an older or confused peer). */
function checkRecordsAnswer(value: unknown): MembersRecordAnswer | null {
  if (typeof value !== "object" || value === null) return null;
  const { members, placement } = value as Record<string, unknown>;
  const isText = (field: unknown) => field === null || typeof field === "string";
  if (!isText(members) || !isText(placement)) return null;
  return { members: members as string | null, placement: placement as string | null };
}

/** What the membership runtime is built from. */
export interface MembershipParts {
  readonly credentials: ClusterCredentials;
  readonly shards: Map<number, LocalShard>;
  readonly router: ClusterRouter;
  readonly service: KvService;
  readonly transport: PeerTransport;
  readonly liveness: NodeLiveness;
  readonly refusedFromFile: RefusedPeers;
  readonly nodeRequests: NodeRequestSlot;
  /** Counts the changes of a local replica's role, term or known leader (the driver's key). */
  readonly hosting: { readonly leadership: LeadershipChanges };
  /** Opens a replica of `shard` with these initial voters (node.ts). */
  readonly openShard: (
    shard: number,
    voters: readonly number[],
    termFloor?: number,
  ) => Promise<LocalShard>;
}

/**
 * Builds and starts the membership runtime: the replica host (its list saved now), the node
 * requests' handler, the members record's view and the rebalance driver.
 */
export async function startMembershipRuntime(
  config: Config,
  parts: MembershipParts,
  runtime: MembershipRuntime,
): Promise<{
  readonly replicaHost: ReplicaHost;
  readonly membership: Membership;
  readonly driver: RebalanceDriver;
  readonly removed: Promise<void>;
  readonly close: () => void;
}> {
  const replicaHost = createReplicaHost(config, parts, runtime);
  await replicaHost.saveIfChanged();
  const removal = Promise.withResolvers<void>();
  // Node requests may come before the view exists (while the saved record is read).
  let view: Membership | null = null;
  parts.nodeRequests.handle = (request) =>
    handleNodeRequest(request, {
      config,
      replicaHost,
      shards: parts.shards,
      runtime,
      onRemoved: removal.resolve,
      records: () => ({
        members: view?.currentText ?? null,
        placement: view?.placementText ?? null,
      }),
    });
  const savedMembers = await readKnownMembers(config.node.dataDir);
  const membership = createMembership(config, { ...parts, replicaHost, savedMembers }, runtime);
  view = membership;
  const driver = createRebalanceDriver(config, { ...parts, replicaHost, membership }, runtime);
  membership.start();
  driver.start();
  const stopRecheck = startStandingRecheck(config, { ...parts, membership }, runtime, () => {
    removal.resolve();
  });
  return {
    replicaHost,
    membership,
    driver,
    removed: removal.promise,
    close: () => {
      stopRecheck();
      driver.close();
      membership.close();
    },
  };
}

/**
 * Every STANDING_RECHECK_MS, while this node reaches none of the members its last read of the
 * record lists (its static peers before any read), asks them over HTTP whether it was removed
 * (standing.ts): a node that started while they were down would otherwise run on, refused by
 * all of them and told nothing. On a proven removal it writes the mark and `onRemoved` stops it.
 *
 * @returns a function that stops the checks.
 */
function startStandingRecheck(
  config: Config,
  node: Pick<MembershipParts, "credentials" | "transport"> & { readonly membership: Membership },
  runtime: MembershipRuntime,
  onRemoved: () => void,
): () => void {
  const self = config.node.id;
  let isRunning = false;
  let isStopped = false;
  const recheck = async () => {
    // The members its last read lists, or its static peers before any read.
    const record = node.membership.current;
    const others =
      (record === null
        ? config.cluster.peers.map((peer) => peer.id)
        : record.members.filter((member) => member.state !== "removed").map((member) => member.id))
        .filter((id) => id !== self);
    if (others.length === 0 || others.some((id) => node.transport.isPeerUp(id))) return;
    const removedBy = await askWhetherRemoved({
      nodeId: self,
      dataDir: config.node.dataDir,
      secret: node.credentials.secret,
      joinUrl: config.cluster.join,
      logger: runtime.logger,
      wallMs: runtime.wallMs,
      randomBytes: runtime.randomBytes,
    });
    if (removedBy === null || isStopped) return;
    await writeRemovedMarker(config.node.dataDir, { nodeId: self, removedAtMs: runtime.wallMs() });
    runtime.logger.error(
      "This node was removed from the cluster while it was down: stopping; wipe its data dir " +
        "and start a new node with a new id and --join",
      { node: self, answeredBy: removedBy },
    );
    onRemoved();
  };
  const timer = setInterval(() => {
    if (isRunning) return;
    isRunning = true;
    recheck().catch((error: unknown) => {
      runtime.logger.warn("Cannot ask the members whether this node was removed", {
        reason: error instanceof Error ? error.message : String(error),
      });
    }).finally(() => isRunning = false);
  }, STANDING_RECHECK_MS);
  return () => {
    isStopped = true;
    clearInterval(timer);
  };
}

/** The rebalance driver, acting through this node's router, transport and replica host. */
function createRebalanceDriver(
  config: Config,
  node: MembershipParts & { readonly replicaHost: ReplicaHost; readonly membership: Membership },
  runtime: MembershipRuntime,
): RebalanceDriver {
  const { router, transport, replicaHost, membership } = node;
  const self = config.node.id;
  const ask = async <T>(to: number, request: Exclude<NodeRequest, { kind: "info" }>) => {
    if (to === self) return await handleLocally(request, node) as T;
    const bytes = await transport.request(to, NODE_CHANNEL_SHARD, encodeNodeRequest(request), {
      deadlineMs: NODE_REQUEST_TIMEOUT_MS,
    });
    return decodeShardResponse<T>(bytes);
  };
  // A link can look up for a while after its peer died: its silence says more.
  const isUp = (id: number) => id === self || (transport.isPeerUp(id) && !node.liveness.isDown(id));
  const step = <T>(shard: number, request: ShardRequest) =>
    router.execute<T>(shard, request, runtime.nowMs() + REBALANCE_STEP_TIMEOUT_MS);
  const cluster: DriverCluster = {
    isLeader: () => node.shards.get(0)?.replica.leader() === self,
    watchKey: () => watchKey(node, isUp),
    replicationFactor: config.sharding.replicationFactor,
    readMembers: () => membership.refresh(),
    updateMembers: (change) => membership.update(change),
    observeShards: () =>
      observeShards(router, node.service.shardCount, runtime, () => {
        // One request per member that is up, this node included; a silent one's shards are
        // asked one by one.
        const ids = (membership.current?.members ?? [])
          .filter((member) => member.state !== "removed" && isUp(member.id))
          .map((member) => member.id);
        return Promise.all(
          [...new Set([self, ...ids])].map((id) =>
            ask<{ views: ShardStatusView[] }>(id, { kind: "leaderViews" })
              .then((answer) => answer.views, () => null)
          ),
        );
      }),
    isUp,
    hostedShards: async (id) => {
      if (id === self) return replicaHost.hosted();
      const bytes = await transport.request(id, NODE_CHANNEL_SHARD, new Uint8Array(0), {
        deadlineMs: NODE_REQUEST_TIMEOUT_MS,
      }).catch(() => null);
      return bytes === null ? null : decodeShardResponse<NodeInfo>(bytes).shards ?? null;
    },
    hostReplica: async (id, shard, term) =>
      void await ask(id, { kind: "hostReplica", shard, term }),
    dropReplica: async (id, shard, term) =>
      void await ask(id, { kind: "dropReplica", shard, term }),
    changeMembership: async (shard, change, id) =>
      void await step(shard, { kind: "confChange", change, node: id }),
    transferLeader: async (shard, to) => void await step(shard, { kind: "transferLeader", to }),
    notifyRemoved: async (id) => void await ask(id, { kind: "removed" }),
    readPlacement: () => membership.placement,
    writePlacement: (placement) => membership.writePlacement(formatPlacement(placement)),
  };
  return new RebalanceDriver(
    cluster,
    runtime.logger.child({ component: "rebalance" }),
    runtime.nowMs,
  );
}

/**
 * The changes of the local replicas' leaders, counted: a replica reports every change of its
 * role, term or known leader (LocalShardOptions.onLeaderChange), so the count moves whenever
 * the leader some local replica knows of does.
 */
export interface LeadershipChanges {
  readonly count: number;
}

/**
 * The driver's watch key (DriverCluster.watchKey): the members record's version as this node
 * last read it (the meta watch re-reads it when shard 0's meta records change), which of its
 * members are up, the shard count, how many replicas this node hosts and how often their
 * leaders changed (a new term's leader; a replica hosted learns its leader, one dropped leaves
 * the count of replicas). Nothing is read or sent, and no shard is visited: the key costs the
 * same whatever the shard count.
 */
export function watchKey(
  node: {
    readonly membership: Pick<Membership, "current">;
    readonly shards: ReadonlyMap<number, unknown>;
    readonly service: Pick<KvService, "shardCount">;
    readonly hosting: { readonly leadership: LeadershipChanges };
  },
  isUp: (id: number) => boolean,
): string {
  const record = node.membership.current;
  const members = (record?.members ?? []).map((member) =>
    `${member.id}${member.state[0]}${isUp(member.id) ? "+" : "-"}`
  );
  return `${record?.version ?? 0}|${members.join(",")}|${node.service.shardCount}|` +
    `${node.shards.size}|${node.hosting.leadership.count}`;
}

/**
 * Where a shard move's new shards go (shard_mover.ts): `placeNewShards` over the members
 * record, the peer links and every shard's configuration as its leader reports it (a shard
 * without a leader's answer counts where the placement record, or else the static placement,
 * puts it); the choice is then listed in the placement record.
 */
export function createNewShardPlacer(
  config: Config,
  node: {
    readonly router: ClusterRouter;
    readonly service: KvService;
    readonly membership: Membership;
    /** The static members (placement.ts), for shards nobody answered for. */
    readonly members: readonly number[];
    readonly isUp: (id: number) => boolean;
  },
  runtime: MembershipRuntime,
): NewShardPlacer {
  const { router, service, membership } = node;
  const rf = config.sharding.replicationFactor;
  return {
    place: async (shards) => {
      const record = await membership.refresh();
      if (record === null) return null;
      const observed = await observeShards(router, service.shardCount, runtime);
      const views = observed.map((shard): ShardView => {
        if (shard.leader !== null) {
          const learners = shard.learners.map((learner) => learner.node);
          return { ...shard, learners, caughtUpLearners: [] };
        }
        const voters = membership.placementOf(shard.shard) ??
          replicasOf(node.members, shard.shard, rf);
        return { shard: shard.shard, voters, learners: [], caughtUpLearners: [], leader: null };
      });
      const placement = placeNewShards({
        members: record.members.map((member) => ({
          id: member.id,
          state: member.state,
          isUp: node.isUp(member.id),
        })),
        replicationFactor: rf,
        shards: views,
        newShards: shards,
      });
      if (!placement.isPlaced) {
        throw new AspenError(
          "insufficient_capacity",
          `Cannot add shards: ${placement.message}; bring the down members back or add a ` +
            "node first (GET /v1/cluster/members)",
          { available: placement.available, needed: placement.needed },
        );
      }
      return placement.shards;
    },
    record: (placed) =>
      membership.updatePlacement((current) => {
        const next = new Map(current);
        for (const item of placed) next.set(item.shard, [...item.voters].sort((a, b) => a - b));
        return next;
      }),
    forget: (placed) =>
      membership.updatePlacement((current) => {
        const next = new Map(current);
        for (const item of placed) {
          const voters = [...item.voters].sort((a, b) => a - b).join(",");
          if (next.get(item.shard)?.join(",") === voters) next.delete(item.shard);
        }
        return next;
      }),
  };
}

/** A node request this node sends itself (the driver runs on a node that may host too). */
async function handleLocally(
  request: Exclude<NodeRequest, { kind: "info" }>,
  node: { readonly replicaHost: ReplicaHost; readonly shards: ReadonlyMap<number, LocalShard> },
): Promise<unknown> {
  const replicaHost = node.replicaHost;
  if (request.kind === "hostReplica") return await replicaHost.host(request.shard, request.term);
  if (request.kind === "dropReplica") return await replicaHost.drop(request.shard, request.term);
  if (request.kind === "leaderViews") return { views: leaderViews(node.shards) };
  // The driver never removes the node it runs on: shard 0's leader is moved away first.
  throw new AspenError("conflict", "Cannot remove the node that runs the rebalance driver");
}

/**
 * The status views of the local replicas that lead now (NodeRequest `leaderViews`), as the
 * `status` shard request answers each. The cheap `leader()` test first: a node leads about a
 * third of its replicas.
 */
export function leaderViews(shards: ReadonlyMap<number, LocalShard>): ShardStatusView[] {
  const views: ShardStatusView[] = [];
  for (const local of shards.values()) {
    if (local.replica.leader() === null) continue;
    if (local.replica.status().role !== "leader") continue;
    views.push(local.statusView());
  }
  return views;
}

/**
 * Every shard's configuration from its leader's status (leader null when none answered).
 * `batches`, when given, asks each node once for the views of the shards it leads (null for a
 * node that did not answer); the shards no batch covered are asked one by one, as they all are
 * without it. Of two views of one shard (a deposed leader that does not know yet), the later
 * term's wins.
 */
export async function observeShards(
  router: Pick<ClusterRouter, "execute">,
  count: number,
  runtime: Pick<MembershipRuntime, "nowMs">,
  batches?: () => Promise<readonly (readonly ShardStatusView[] | null)[]>,
): Promise<ShardObservation[]> {
  const deadline = runtime.nowMs() + STATUS_PART_TIMEOUT_MS;
  const batched = new Map<number, ShardStatusView>();
  for (const views of batches === undefined ? [] : await batches()) {
    for (const view of views ?? []) {
      const known = batched.get(view.id);
      if (view.id < count && (known === undefined || known.term < view.term)) {
        batched.set(view.id, view);
      }
    }
  }
  return await Promise.all(
    allShardIds(count).map(async (shard): Promise<ShardObservation> => {
      const view = batched.get(shard) ??
        await router.execute<ShardStatusView>(shard, { kind: "status" }, deadline)
          .catch(() => null);
      if (view === null || view.leader === null) {
        return { shard, leader: null, term: 0, voters: [], learners: [], committedReplicas: [] };
      }
      return {
        shard,
        leader: view.leader,
        term: view.term,
        voters: view.replicas.filter((replica) => replica.role !== "learner")
          .map((replica) => replica.node),
        learners: view.replicas.filter((replica) => replica.role === "learner")
          .map(({ node, lag, matchIndex }) => ({ node, lag, matchIndex })),
        // A node before the field: its latest configuration, so nothing it lists is dropped.
        committedReplicas: view.committedReplicas ??
          view.replicas.map((replica) => replica.node),
      };
    }),
  );
}
