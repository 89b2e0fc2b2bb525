/**
 * The node's part in shard moves (shard_move.ts): starts one (`POST /v1/shards`), reports it,
 * opens this node's replicas of new shards when a move (or the shard map) names them, and
 * drives the move while this node leads shard 0. Every node checks every MOVER_CHECK_MS while a
 * move runs, and otherwise when shard 0's meta records change (meta_watch.ts) and at least every
 * MOVER_IDLE_CHECK_MS.
 *
 * New shards are new Raft groups. The node that starts the move places them on the members as
 * they are then (rebalancer.ts `placeNewShards`: active members that are up, least loaded
 * first), lists them in the placement record (routing), and writes their voters into the move
 * record, so that every node opens its replica with the same voters when it sees the move,
 * after a restart too; until then its peers' messages for the shard are refused, and Raft
 * sends them again. A move record without voters (written by an older node) falls back to the
 * static placement (placement.ts), as at startup.
 */
import {
  type AddShardsResponse,
  leaseIdParts,
  type ShardMoveStatus,
  type ShardSizesResponse,
  type TenantMoveResponse,
  type TenantsResponse,
} from "../../api/mod.ts";
import {
  allShardIds,
  apiIdOfForeignLease,
  AspenError,
  type Command,
  DROP_MOVED_KEYS_MAX,
  foreignLeaseId,
  IMPORT_KEYS_MAX,
  isForeignLease,
  type KeyValue,
  type Ownership,
  REQUEST_BYTES_MAX,
  sameTenants,
  type TenantShards,
} from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import { apiLeaseId } from "./lease_ids.ts";
import type { LocalShard } from "./local_shard.ts";
import type { MetaSwapResult } from "./meta_swaps.ts";
import { hostsShard, replicasOf } from "./placement.ts";
import type { NewShardVoters } from "./rebalancer.ts";
import { SHARD_MAP_META, type ShardMap, type ShardMapView } from "./shard_map.ts";
import {
  driveMove,
  MOVE_PAGE_KEYS,
  MOVE_PHASES,
  type MoveOps,
  planMove,
  recordedVoters,
  SHARD_MOVE_META,
  type ShardMove,
  targetsOf,
} from "./shard_move.ts";
import type { ShardRequest } from "./shard_request.ts";
import {
  leastLoadedShard,
  planTenantMove,
  TENANT_CREATE_POLL_MS,
  TENANT_CREATE_WAIT_MS,
  tenantList,
} from "./tenant_move.ts";

/** How often every node looks at the move record while a move runs. */
export const MOVER_CHECK_MS = 500;
/**
 * How often every node looks at the move record while no move runs, whatever the meta stamps
 * say: the bound on a new move reaching a node that hears no stamp of it.
 */
export const MOVER_IDLE_CHECK_MS = 5_000;
/** The deadline of each request a move makes. */
export const MOVE_REQUEST_TIMEOUT_MS = 10_000;
/** The pause after a driver failed before it tries again. */
export const MOVE_RETRY_PAUSE_MS = 1_000;
/** The most bytes of one import command (half a request, for the encoding's overhead). */
export const IMPORT_BYTES_MAX = REQUEST_BYTES_MAX / 2;

/** What the mover needs. */
export interface ShardMoverOptions {
  readonly nodeId: number;
  readonly members: readonly number[];
  readonly replicationFactor: number;
  /**
   * The shards this node's configuration lists (`local_shards`), or null, and how many shards
   * the configuration counts: see {@linkcode hostsShard}.
   */
  readonly localShards: readonly number[] | null;
  readonly configuredCount: number;
  /** This node's replicas; the mover adds the new shards it opens. */
  readonly shards: Map<number, LocalShard>;
  readonly router: ClusterRouter;
  readonly view: ShardMapView;
  /** Opens this node's replica of `shard` (new storage: bootstrapped with `voters`). */
  readonly openShard: (shard: number, voters: readonly number[]) => Promise<LocalShard>;
  /**
   * The nodes the placement record lists for `shard`, or null when it does not list it: see
   * {@linkcode newReplicaVoters}. Absent: none listed.
   */
  readonly placementOf?: (shard: number) => readonly number[] | null;
  /**
   * Places new shards on the current members and lists them in the placement record. Absent,
   * or null from `place` (no members record yet): the static placement.
   */
  readonly placer?: NewShardPlacer;
  /** The most shards a cluster may have. */
  readonly maxShards: number;
  readonly logger: Logger;
  readonly nowMs: () => number;
  readonly wallMs: () => number;
}

/** Where a shard move's new shards go (node.ts wires it to the members record). */
export interface NewShardPlacer {
  /**
   * The voters of `shards` on the members as they are now, or null when the cluster has no
   * members record yet.
   *
   * @throws {AspenError} `insufficient_capacity` when too few active members are up.
   */
  place(shards: readonly number[]): Promise<readonly NewShardVoters[] | null>;
  /** Lists `placed` in the placement record (before the move record names them). */
  record(placed: readonly NewShardVoters[]): Promise<void>;
  /** Takes `placed` out of the placement record again where it still lists them as placed. */
  forget(placed: readonly NewShardVoters[]): Promise<void>;
}

/** The phases in which a new shard's replica is opened from the voters its move recorded. */
const RECORDED_VOTERS_PHASES_END = MOVE_PHASES.indexOf("flip");

/**
 * The voters with which `node` bootstraps its replica of new shard `shard`, or null when it
 * opens none:
 * - the move recorded voters for the shard: `node` opens its replica when it is one of them
 *   (and the placement record, when it lists the shard, still lists `node`), and only before
 *   the flip: from the flip on, the rebalance driver sees the shard and owns its replicas (it
 *   hosts an empty one on a voter that never opened it), so a replica it removed is never
 *   bootstrapped again from the move's list;
 * - otherwise, when the placement record lists the shard: none (its replicas may have moved
 *   off the static placement, and a replica bootstrapped from it would disagree with the
 *   group);
 * - otherwise (a record written by an older node): the static placement, as at startup.
 */
export function newReplicaVoters(options: {
  readonly node: number;
  readonly shard: number;
  readonly move: Pick<ShardMove, "targetVoters" | "phase"> | null;
  readonly placed: readonly number[] | null;
  readonly members: readonly number[];
  readonly replicationFactor: number;
  readonly localShards: readonly number[] | null;
  readonly configuredCount: number;
}): readonly number[] | null {
  const { node, shard, move, placed, members, replicationFactor } = options;
  const recorded = recordedVoters(move, shard);
  if (recorded !== null) {
    const isBeforeFlip = MOVE_PHASES.indexOf(move!.phase) < RECORDED_VOTERS_PHASES_END;
    const isListed = placed === null || placed.includes(node);
    return isBeforeFlip && isListed && recorded.includes(node) ? recorded : null;
  }
  if (placed !== null) return null;
  const { localShards, configuredCount } = options;
  const placement = { members, node, shard, replicationFactor };
  if (!hostsShard({ ...placement, localShards, configuredCount })) return null;
  return replicasOf(members, shard, replicationFactor);
}

/** Runs this node's part of shard moves. */
export class ShardMover {
  readonly #options: ShardMoverOptions;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #isDriving = false;
  #checking: Promise<boolean> | null = null;
  /** Whether the last check saw a move that is not done. */
  #isMoveActive = false;
  #isClosed = false;
  #retryAtMs = 0;
  /** The move record as the last check saw it (null: none, or unread). */
  #lastMove: ShardMove | null = null;
  /** When this node's driver fenced the sources (`nowMs`), until it saw the flip; else null. */
  #fencedAtMs: number | null = null;

  /**
   * The shard count when the node started: the shards below it were opened at start (or are
   * hosted on the rebalance driver's demand); the mover opens only shards a move adds.
   */
  readonly #startCount: number;

  constructor(options: ShardMoverOptions) {
    this.#options = options;
    this.#startCount = options.view.numShards;
  }

  start(): void {
    this.#timer = setTimeout(() => void this.#periodicCheck(), MOVER_CHECK_MS);
  }

  close(): void {
    this.#isClosed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * Looks at the move record now, in a check that starts after this call (the meta watch calls
   * it when shard 0's meta records changed); resolves true when the record was read.
   */
  async check(): Promise<boolean> {
    await this.#checking;
    return await this.#check();
  }

  async #periodicCheck(): Promise<void> {
    this.#timer = null;
    await this.#check();
    if (this.#isClosed) return;
    const waitMs = this.#isMoveActive ? MOVER_CHECK_MS : MOVER_IDLE_CHECK_MS;
    this.#timer = setTimeout(() => void this.#periodicCheck(), waitMs);
  }

  /**
   * Starts a move adding `count` shards, or measures it (`dryRun`).
   *
   * @throws {AspenError} `bad_request`, `move_in_progress`.
   */
  async addShards(request: { count: number; dryRun: boolean }): Promise<AddShardsResponse> {
    await this.#options.view.refresh();
    const map = this.#options.view.current;
    const current = await this.#readMove();
    const planned = planMove(map, current.move, {
      toCount: map.numShards + request.count,
      maxShards: this.#options.maxShards,
      wallMs: this.#options.wallMs(),
    });
    // Placed before the dry run answers, so that it refuses what the move would refuse.
    const placed = await this.#options.placer?.place(targetsOf(planned)) ?? null;
    const move: ShardMove = placed === null ? planned : { ...planned, targetVoters: placed };
    if (request.dryRun) {
      const sources = await Promise.all(
        allShardIds(map.numShards).map(async (shard) => {
          const sizes = await this.#sizes(shard, move.toCount, map.tenants);
          let keys = 0;
          let bytes = 0;
          for (const [target, size] of sizes) {
            if (target === shard) continue;
            keys += size.keys;
            bytes += size.bytes;
          }
          return { shard, keys, bytes };
        }),
      );
      return {
        dryRun: true,
        fromCount: move.fromCount,
        toCount: move.toCount,
        sources,
        move: null,
      };
    }
    // The placement record first: a node that sees the move record finds the new shards
    // listed, so an older node never bootstraps one from the static placement.
    if (placed !== null) await this.#options.placer?.record(placed);
    const swapped = await this.#swapMove(current.text, move);
    if (!swapped.isSwapped) {
      // No shard of ours will exist: its entries must not hide another move's shards.
      if (placed !== null) {
        await this.#options.placer?.forget(placed).catch((error: unknown) =>
          this.#options.logger.warn("Cannot take unused shards out of the placement record", {
            reason: describe(error),
          })
        );
      }
      throw new AspenError("move_in_progress", "Cannot add shards: another move just started");
    }
    void this.check();
    return {
      dryRun: false,
      fromCount: move.fromCount,
      toCount: move.toCount,
      sources: [],
      move: moveStatus(move),
    };
  }

  /**
   * Creates tenant `name` on shard `to` (null: the shard with the fewest keys) by a tenant
   * move, and waits up to TENANT_CREATE_WAIT_MS for it; `isDone` is false when it still runs.
   *
   * @throws {AspenError} `bad_request`, `tenant_exists`, `move_in_progress`, `limit_exceeded`.
   */
  async createTenant(
    request: { name: string; to: number | null },
  ): Promise<{ answer: TenantMoveResponse; isDone: boolean }> {
    const to = request.to ?? leastLoadedShard((await this.shardSizes()).shards);
    const started = await this.moveTenant({ name: request.name, to, isNew: true });
    const deadline = this.#options.nowMs() + TENANT_CREATE_WAIT_MS;
    while (this.#options.nowMs() < deadline && !this.#isClosed) {
      const { move } = await this.#readMove();
      const isOurs = move?.tenant?.name === request.name && move.tenant.isNew;
      if (isOurs && move.phase === "done") {
        this.#options.view.adopt(await this.#readMap());
        return { answer: { ...started, move: moveStatus(move) }, isDone: true };
      }
      if (!isOurs) break;
      await new Promise((resolve) => setTimeout(resolve, TENANT_CREATE_POLL_MS));
    }
    return { answer: started, isDone: false };
  }

  /**
   * Starts a tenant move: tenant `name` to shard `to` (created by it when `isNew`).
   *
   * @throws {AspenError} `bad_request`, `tenant_exists`, `tenant_not_found`,
   * `move_in_progress`, `limit_exceeded`.
   */
  async moveTenant(
    request: { name: string; to: number; isNew: boolean },
  ): Promise<TenantMoveResponse> {
    // The move record first, then the map: a move that was done when its record was read has
    // flipped the map before, so the plan starts from the map that move left.
    const current = await this.#readMove();
    const map = await this.#readMap();
    this.#options.view.adopt(map);
    const move = planTenantMove(map, current.move, { ...request, wallMs: this.#options.wallMs() });
    const swapped = await this.#swapMove(current.text, move);
    if (!swapped.isSwapped) {
      throw new AspenError(
        "move_in_progress",
        `Cannot move tenant "${request.name}": another move just started`,
      );
    }
    void this.check();
    return { name: request.name, shard: request.to, move: moveStatus(move) };
  }

  /** Every tenant with its shard, keys and bytes, under the map in force. */
  async tenants(): Promise<TenantsResponse> {
    const map = await this.#readMap();
    this.#options.view.adopt(map);
    const byShard = new Map<number, string[]>();
    for (const [name, shard] of Object.entries(map.tenants ?? {})) {
      byShard.set(shard, [...byShard.get(shard) ?? [], name]);
    }
    const sizes = new Map<string, { keys: number; bytes: number }>();
    await Promise.all([...byShard].map(async ([shard, names]) => {
      const answer = await this.#run<{ byTenant: Record<string, { keys: number; bytes: number }> }>(
        shard,
        { kind: "moveSize", count: map.numShards, sizeOf: names },
      );
      for (const name of names) {
        const size = answer.byTenant[name];
        if (size !== undefined) sizes.set(name, size);
      }
    }));
    return { epoch: map.epoch, tenants: tenantList(map, sizes) };
  }

  /**
   * The voters the running move recorded for new shard `shard` as this node last saw them, or
   * null: routing falls back on them while this node's copy of the placement record, which
   * lists them too, has not caught up yet (the driver reaches the new shards at once).
   */
  recordedVotersOf(shard: number): readonly number[] | null {
    const move = this.#lastMove;
    if (move === null || move.phase === "done") return null;
    return recordedVoters(move, shard);
  }

  /** The move in progress, or the last one (done), or null. */
  async move(): Promise<ShardMoveStatus | null> {
    const { move } = await this.#readMove();
    return move === null ? null : moveStatus(move);
  }

  /** Each shard's keys and bytes, under the map in force. */
  async shardSizes(): Promise<ShardSizesResponse> {
    await this.#options.view.refresh().catch(() => {});
    const map = this.#options.view.current;
    const shards = await Promise.all(
      allShardIds(map.numShards).map(async (id) => {
        const sizes = await this.#sizes(id, map.numShards);
        let keys = 0;
        let bytes = 0;
        for (const size of sizes.values()) {
          keys += size.keys;
          bytes += size.bytes;
        }
        return { id, keys, bytes };
      }),
    );
    return { epoch: map.epoch, numShards: map.numShards, shards };
  }

  /** One check (one at a time: a call during a check shares it); true when it read the record. */
  #check(): Promise<boolean> {
    if (this.#isClosed) return Promise.resolve(false);
    this.#checking ??= this.#checkOnce().finally(() => this.#checking = null);
    return this.#checking;
  }

  async #checkOnce(): Promise<boolean> {
    try {
      const local = this.#localMove();
      let isRead = true;
      let move = local.move;
      if (!local.isHosted) {
        // Without the record, the shards of the map in force are still opened.
        move = await this.#readMove().then((read) => read.move, (error: unknown) => {
          this.#options.logger.debug("Cannot read the shard move", { reason: describe(error) });
          isRead = false;
          return null;
        });
      }
      if (isRead) this.#lastMove = move;
      const active = move !== null && move.phase !== "done" ? move.toCount : 0;
      this.#isMoveActive = active > 0;
      await this.#openShards(Math.max(this.#options.view.numShards, active), move);
      const isDue = this.#options.nowMs() >= this.#retryAtMs;
      if (active > 0 && this.#isLeaderOfZero() && !this.#isDriving && isDue) this.#drive();
      return isRead;
    } catch (error) {
      this.#options.logger.warn("Cannot check the shard move", { reason: describe(error) });
      return false;
    }
  }

  /** The record from this node's replica of shard 0 (may lag), if it hosts one. */
  #localMove(): { isHosted: boolean; move: ShardMove | null } {
    const shardZero = this.#options.shards.get(0);
    if (shardZero === undefined) return { isHosted: false, move: null };
    const text = shardZero.stateMachine.getMeta(SHARD_MOVE_META);
    return { isHosted: true, move: text === null ? null : JSON.parse(text) as ShardMove };
  }

  #isLeaderOfZero(): boolean {
    return this.#options.shards.get(0)?.replica.status().role === "leader";
  }

  /**
   * Opens this node's replicas of shards below `count` that it hosts and does not have yet
   * (`move`: the move record as last read, null when none or unread).
   */
  async #openShards(count: number, move: ShardMove | null): Promise<void> {
    const { members, replicationFactor, nodeId, shards } = this.#options;
    const { localShards, configuredCount } = this.#options;
    for (let shard = this.#startCount; shard < count; shard++) {
      if (shards.has(shard)) continue;
      const voters = newReplicaVoters({
        node: nodeId,
        shard,
        move,
        placed: this.#options.placementOf?.(shard) ?? null,
        members,
        replicationFactor,
        localShards,
        configuredCount,
      });
      if (voters === null) continue;
      const opened = await this.#options.openShard(shard, voters);
      if (this.#isClosed) {
        opened.close();
        return;
      }
      shards.set(shard, opened);
      this.#options.logger.info("Opened a new shard's replica", {
        shard,
        voters: voters.join(","),
      });
    }
  }

  #drive(): void {
    this.#isDriving = true;
    driveMove(this.#ops())
      .then((move) => {
        if (move?.phase === "done") {
          this.#options.logger.info("Shard move done", { numShards: move.toCount });
        }
      })
      .catch((error: unknown) => {
        this.#retryAtMs = this.#options.nowMs() + MOVE_RETRY_PAUSE_MS;
        this.#options.logger.warn("The shard move stopped; it resumes", {
          reason: describe(error),
        });
      })
      .finally(() => this.#isDriving = false);
  }

  #run<T>(shard: number, request: ShardRequest): Promise<T> {
    const deadline = this.#options.nowMs() + MOVE_REQUEST_TIMEOUT_MS;
    return this.#options.router.execute<T>(shard, request, deadline);
  }

  async #readMove(): Promise<{ text: string | null; move: ShardMove | null }> {
    const read = await this.#run<{ value: string | null }>(0, {
      kind: "metaRead",
      name: SHARD_MOVE_META,
    });
    return { text: read.value, move: read.value === null ? null : JSON.parse(read.value) };
  }

  #swapMove(expected: string | null, move: ShardMove): Promise<MetaSwapResult> {
    return this.#run<MetaSwapResult>(0, {
      kind: "metaSwap",
      name: SHARD_MOVE_META,
      expected,
      value: JSON.stringify(move),
    });
  }

  /** The shard map record, read linearizably from shard 0 (the view's when absent). */
  async #readMap(): Promise<ShardMap> {
    const read = await this.#run<{ value: string | null }>(0, {
      kind: "metaRead",
      name: SHARD_MAP_META,
    });
    return read.value === null ? this.#options.view.current : JSON.parse(read.value) as ShardMap;
  }

  async #sizes(
    shard: number,
    count: number,
    tenants?: TenantShards,
  ): Promise<Map<number, { keys: number; bytes: number }>> {
    const answer = await this.#run<{ bySize: Record<string, { keys: number; bytes: number }> }>(
      shard,
      { kind: "moveSize", count, ...(tenants === undefined ? {} : { tenants }) },
    );
    return new Map(Object.entries(answer.bySize).map(([key, size]) => [Number(key), size]));
  }

  async #propose(shard: number, command: Command): Promise<unknown> {
    const result = await this.#run<{ type: string; code?: string; message?: string }>(
      shard,
      { kind: "propose", command },
    );
    if (result.type === "locked") {
      // A cross-shard transaction holds what the step needs: the driver tries again later.
      throw new AspenError("conflict", `Shard ${shard} has a move step's key locked; retry`, {
        shard,
      });
    }
    if (result.type === "error") {
      throw new AspenError(
        "shard_unavailable",
        `Shard ${shard} refused a move step: ${result.message ?? result.code ?? "?"}`,
        { shard },
      );
    }
    return result;
  }

  #ops(): MoveOps {
    return {
      read: () => this.#readMove(),
      swap: async (expected, move) => {
        const isSwapped = (await this.#swapMove(expected, move)).isSwapped;
        if (isSwapped) this.#noteFence(move);
        return isSwapped;
      },
      setOwnership: async (ownership: Ownership) => {
        await this.#propose(ownership.shard, { type: "ownership", ownership });
      },
      intentsElsewhere: async (shard, count, tenants) =>
        (await this.#smallMoveAnswer(shard, count, tenants)).intents,
      sizes: (shard, count, tenants) => this.#sizes(shard, count, tenants),
      scan: (shard, query) =>
        this.#run(shard, { kind: "moveScan", ...query, limit: MOVE_PAGE_KEYS }),
      appliedIndex: async (shard) => (await this.#smallMoveAnswer(shard, 1)).appliedIndex,
      importKeys: (source, target, change) => this.#importKeys(source, target, change),
      foreignLeases: async (shard) => (await this.#smallMoveAnswer(shard, 1)).foreignLeases,
      addLeaseHolder: async (standIn, holder) => {
        const parts = leaseIdParts(apiIdOfForeignLease(standIn));
        if (parts === null) return;
        await this.#propose(parts.shard, {
          type: "leaseHolderAdd",
          id: parts.grantIndex,
          holder,
        });
      },
      dropMoved: async (shard) => {
        const result = await this.#propose(shard, {
          type: "dropMoved",
          limit: DROP_MOVED_KEYS_MAX,
        }) as { deleted: number };
        return result.deleted;
      },
      flip: (fromCount, toCount, tenants) => this.#flip(fromCount, toCount, tenants),
      preferLeader: (shard, node) => this.#preferLeader(shard, node),
      isLeader: () => this.#isLeaderOfZero() && !this.#isClosed,
      wallMs: this.#options.wallMs,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    };
  }

  /**
   * Hands `shard`'s leadership to `node` unless it leads already; a failure (the node is slow
   * to open its replica, say) is logged and the move goes on: the rebalancer evens leaderships
   * out later.
   */
  async #preferLeader(shard: number, node: number): Promise<void> {
    try {
      const status = await this.#run<{ leader: number | null }>(shard, { kind: "status" });
      if (status.leader === node) return;
      await this.#run(shard, { kind: "transferLeader", to: node });
      this.#options.logger.info("Handed a new shard's leadership to its preferred leader", {
        shard,
        node,
      });
    } catch (error) {
      this.#options.logger.warn("Cannot hand a new shard's leadership to its preferred leader", {
        shard,
        node,
        reason: describe(error),
      });
    }
  }

  /**
   * Logs how long writes to moving keys waited: from the record's fence phase to its clean-up
   * (the flip done), when this node's driver ran both.
   */
  #noteFence(move: ShardMove): void {
    if (move.phase === "fence") this.#fencedAtMs = this.#options.nowMs();
    if (move.phase !== "cleanup" || this.#fencedAtMs === null) return;
    const fenceMs = Math.round(this.#options.nowMs() - this.#fencedAtMs);
    this.#fencedAtMs = null;
    this.#options.logger.info("Shard map flipped; moving keys were fenced", {
      fenceMs,
      fromCount: move.fromCount,
      toCount: move.toCount,
    });
  }

  /**
   * A shard's intents on keys that are not its own among `count`, its foreign leases and its
   * applied index, without the sizes (a hash of every key): the fence polls it.
   */
  #smallMoveAnswer(shard: number, count: number, tenants?: TenantShards) {
    return this.#run<{ intents: number; foreignLeases: number[]; appliedIndex: number }>(shard, {
      kind: "moveSize",
      count,
      sizes: false,
      ...(tenants === undefined ? {} : { tenants }),
    });
  }

  /** Imports in commands of at most IMPORT_KEYS_MAX keys and IMPORT_BYTES_MAX bytes. */
  async #importKeys(
    source: number,
    target: number,
    change: { pass: number; kvs: readonly KeyValue[]; deletes: readonly string[] },
  ): Promise<void> {
    let kvs: KeyValue[] = [];
    let bytes = 0;
    const flush = async (deletes: readonly string[]) => {
      const imported = kvs.map((kv) => ({
        key: kv.key,
        value: kv.value,
        version: kv.version,
        createRevision: kv.createRevision,
        lease: importedLease(kv.lease, source, target),
      }));
      await this.#propose(target, { type: "import", pass: change.pass, kvs: imported, deletes });
      kvs = [];
      bytes = 0;
    };
    for (const kv of change.kvs) {
      const size = kv.key.length * 3 + kv.value.length * 3 + 64;
      if (kvs.length > 0 && (kvs.length >= IMPORT_KEYS_MAX || bytes + size > IMPORT_BYTES_MAX)) {
        await flush([]);
      }
      kvs.push(kv);
      bytes += size;
    }
    const deletes = [...change.deletes];
    while (kvs.length > 0 || deletes.length > 0) {
      await flush(deletes.splice(0, IMPORT_KEYS_MAX - kvs.length));
    }
  }

  /**
   * Writes the shard map with `toCount` shards (or `tenants` placed, for a tenant move), once
   * (compare-and-swap on the record).
   */
  async #flip(fromCount: number, toCount: number, tenants?: TenantShards): Promise<void> {
    const read = await this.#run<{ value: string | null }>(0, {
      kind: "metaRead",
      name: SHARD_MAP_META,
    });
    const current = read.value === null ? this.#options.view.current : JSON.parse(read.value);
    const map = current as ShardMap;
    if (tenants !== undefined) return await this.#flipTenants(map, read.value, tenants);
    if (map.numShards >= toCount) return;
    if (map.numShards !== fromCount) {
      throw new AspenError(
        "bad_request",
        `Cannot flip the shard map: it has ${map.numShards} shards, not ${fromCount}`,
      );
    }
    const next: ShardMap = { ...map, epoch: map.epoch + 1, numShards: toCount };
    const swapped = await this.#run<MetaSwapResult>(0, {
      kind: "metaSwap",
      name: SHARD_MAP_META,
      expected: read.value,
      value: JSON.stringify(next),
    });
    if (!swapped.isSwapped) throw new AspenError("conflict", "The shard map changed meanwhile");
    this.#options.view.adopt(next);
  }

  /** The tenant move's flip: the map with `tenants` placed, under the next epoch. */
  async #flipTenants(map: ShardMap, text: string | null, tenants: TenantShards): Promise<void> {
    if (sameTenants(map.tenants, tenants)) return;
    const next: ShardMap = { ...map, epoch: map.epoch + 1, tenants };
    const swapped = await this.#run<MetaSwapResult>(0, {
      kind: "metaSwap",
      name: SHARD_MAP_META,
      expected: text,
      value: JSON.stringify(next),
    });
    if (!swapped.isSwapped) throw new AspenError("conflict", "The shard map changed meanwhile");
    this.#options.view.adopt(next);
  }
}

/** The API shape of a move record. */
export function moveStatus(move: ShardMove): ShardMoveStatus {
  return {
    fromCount: move.fromCount,
    toCount: move.toCount,
    phase: move.phase,
    startedAtMs: move.startedAtMs,
    updatedAtMs: move.updatedAtMs,
    sources: move.sources.map((source) => ({
      shard: source.shard,
      keysTotal: source.keysTotal,
      bytesTotal: source.bytesTotal,
      keysCopied: source.keysCopied,
      bytesCopied: source.bytesCopied,
    })),
    ...(move.tenant === undefined ? {} : { tenant: move.tenant }),
  };
}

/**
 * The lease id under which `target` stores a key of `source` attached to `lease` (as `source`
 * stores it): a lease of the source becomes a foreign lease; a foreign lease stays one, unless
 * `target` is its home (a tenant moving back to the shard of its keys' lease), where it is the
 * home's own lease again.
 */
export function importedLease(lease: number, source: number, target: number): number {
  if (lease === 0) return 0;
  if (!isForeignLease(lease)) return foreignLeaseId(apiLeaseId(lease, source));
  const parts = leaseIdParts(apiIdOfForeignLease(lease));
  return parts !== null && parts.shard === target ? parts.grantIndex : lease;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
