/**
 * Node-to-node liveness for quiesced shards (raft/quiesce.ts). A quiesced group sends nothing,
 * so a follower cannot tell a quiet leader from a dead one; instead every node sends each peer
 * one small heartbeat on the peer channel every NODE_HEARTBEAT_TICKS, whatever its number of
 * shards, and counts any frame from a peer (a heartbeat or a Raft message) as a sign of life.
 * A peer unheard for NODE_DOWN_TICKS is down: once per such silence, every local replica that
 * is a quiesced follower of that peer's replica wakes and campaigns (ShardReplica's
 * reportLeaderDown). Counted in ticks of the node's timer, so tests drive it without a clock.
 */

/** Ticks between two node heartbeats to each peer (four within NODE_DOWN_TICKS). */
export const NODE_HEARTBEAT_TICKS = 5;
/**
 * Ticks without a word from a peer before it counts as down: two election timeouts' worth of
 * ticks at the default 10 (a paused or busy node must not wake every quiesced group at once).
 */
export const NODE_DOWN_TICKS = 20;
/**
 * Ticks between two runs of the node's timer while every local replica is quiesced: it then
 * only keeps the node heartbeats and the silence count, which need no finer clock. A replica
 * that wakes ticks again within this long (its first tick is late, never early).
 */
export const IDLE_TICKS_PER_RUN = NODE_HEARTBEAT_TICKS;

/** The silence of each peer, in ticks. */
export class NodeLiveness {
  readonly #silentTicks = new Map<number, number>();
  readonly #downTicks: number;
  readonly #downListeners: ((peer: number) => void)[] = [];
  #ticks = 0;
  #runs = 0;

  constructor(peers: readonly number[], downTicks = NODE_DOWN_TICKS) {
    for (const peer of peers) this.#silentTicks.set(peer, 0);
    this.#downTicks = downTicks;
  }

  /** Starts watching `peer` (a member that joined while this node ran); counts it as heard. */
  watch(peer: number): void {
    if (!this.#silentTicks.has(peer)) this.#silentTicks.set(peer, 0);
  }

  /** Stops watching `peer` (a removed member). */
  forget(peer: number): void {
    this.#silentTicks.delete(peer);
  }

  /** A frame from `peer` arrived: it is alive. */
  heard(peer: number): void {
    if (this.#silentTicks.has(peer)) this.#silentTicks.set(peer, 0);
  }

  /** Calls `listener` with each peer that goes down, once per silence, from tick(). */
  onPeerDown(listener: (peer: number) => void): void {
    this.#downListeners.push(listener);
  }

  /** Whether `peer` is silent past NODE_DOWN_TICKS. */
  isDown(peer: number): boolean {
    return (this.#silentTicks.get(peer) ?? 0) >= this.#downTicks;
  }

  /**
   * `ticks` ticks of the node's timer passed: returns whether heartbeats are due now, and the
   * peers that just crossed the silence bound (reported once per silence).
   */
  tick(ticks = 1): {
    readonly isHeartbeatDue: boolean;
    readonly wentDown: readonly number[];
    /** Whether this run is one of every ALL_SHARDS_PASS_RUNS (see tickNode). */
    readonly isAllShardsPassDue: boolean;
  } {
    const before = this.#ticks;
    this.#ticks += ticks;
    this.#runs++;
    const wentDown: number[] = [];
    for (const [peer, silent] of this.#silentTicks) {
      this.#silentTicks.set(peer, silent + ticks);
      if (silent < this.#downTicks && silent + ticks >= this.#downTicks) wentDown.push(peer);
    }
    for (const peer of wentDown) for (const listener of this.#downListeners) listener(peer);
    const isHeartbeatDue = Math.floor(this.#ticks / NODE_HEARTBEAT_TICKS) >
      Math.floor(before / NODE_HEARTBEAT_TICKS);
    const isAllShardsPassDue = this.#runs % ALL_SHARDS_PASS_RUNS === 0;
    return { isHeartbeatDue, wentDown, isAllShardsPassDue };
  }

  /** The peers watched. */
  get peers(): readonly number[] {
    return [...this.#silentTicks.keys()];
  }
}

/**
 * Runs of the node's timer between two passes over every local shard, whatever the wake
 * reports say (see {@linkcode NodeShards}): a guard, so that a replica whose wake went
 * unreported still ticks within this many runs (5 s while the node is idle).
 */
export const ALL_SHARDS_PASS_RUNS = 20;

/** What one node tick drives of a local shard. */
export interface TickedShard {
  readonly replica: {
    tickNow(): void;
    reportLeaderDown(leader: number): void;
    isQuiesced(): boolean;
    isAsleep(): boolean;
  };
}

/**
 * The local shards as the node's timer sees them: all of them, and the ids of those that may be
 * awake. A replica reports each turn that leaves it awake (ReplicaOptions.onAwake) and the node
 * adds it to `awake`; tickNode ticks only those and drops the ones it finds asleep, so a timer
 * run of an idle node costs nothing per quiesced shard.
 */
export interface NodeShards {
  readonly all: ReadonlyMap<number, TickedShard>;
  /** Invariant: holds every shard that is not asleep (more is harmless). */
  readonly awake: Set<number>;
}

/**
 * One run of the node's timer, `ticks` ticks after the last: ticks every replica that may be
 * awake (a quiesced one returns at once), wakes the quiesced followers of peers that just went
 * down, and sends the node heartbeats when due. Every ALL_SHARDS_PASS_RUNS runs it looks at
 * every shard. Returns whether any replica is awake (then the timer runs every tick; while all
 * sleep, every IDLE_TICKS_PER_RUN ticks).
 */
export function tickNode(
  liveness: NodeLiveness,
  shards: NodeShards,
  sendHeartbeat: (peer: number) => void,
  ticks = 1,
): boolean {
  const { isHeartbeatDue, wentDown, isAllShardsPassDue } = liveness.tick(ticks);
  if (wentDown.length > 0 || isAllShardsPassDue) {
    for (const [id, shard] of shards.all) {
      for (const peer of wentDown) shard.replica.reportLeaderDown(peer);
      shards.awake.add(id);
    }
  }
  let isAwake = false;
  for (const id of shards.awake) {
    const shard = shards.all.get(id);
    if (shard === undefined) {
      shards.awake.delete(id); // Closed and removed since it woke.
      continue;
    }
    shard.replica.tickNow();
    if (!shard.replica.isQuiesced()) isAwake = true;
    if (shard.replica.isAsleep()) shards.awake.delete(id);
  }
  if (isHeartbeatDue) { for (const peer of liveness.peers) sendHeartbeat(peer); }
  return isAwake;
}
