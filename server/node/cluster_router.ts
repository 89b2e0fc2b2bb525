/**
 * Routes a shard request to the replica that can serve it: this node's replica when it leads
 * the shard (or the read may be served locally), else the shard's leader over the peer
 * channel, retrying on leader changes until the request's deadline.
 *
 * A linearizable read of keys on a shard this node hosts as a follower is served here after
 * a read index from the leader (see follower_reads.ts); if that fails it is forwarded instead.
 *
 * Retry rules keep writes exactly-once: a request is retried elsewhere only when it certainly
 * did not run (`not_leader`, `unknown_shard`, or no connection to the target at all). A write
 * whose answer was lost or late is reported as `timeout` or `shard_unavailable`, outcome unknown,
 * and never sent twice. Reads are idempotent and may be retried on any failure.
 *
 * When the node's liveness counts a node as down (node_liveness.ts: no frame from it for
 * NODE_DOWN_TICKS), the requests in flight there fail at once (`peerDown`): a leader killed
 * under load does not hold every write sent to it for the whole request deadline (5 s) while the
 * others elect a new leader within one or two election timeouts. Those writes answer
 * `shard_unavailable`, outcome unknown, about a second after the node fell silent; the reads are
 * retried on another replica.
 */
import { AspenError } from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import { DeadlineTimer } from "./deadline_timer.ts";
import { FollowerReads } from "./follower_reads.ts";
import type { LocalShard } from "./local_shard.ts";
import { replicasOf } from "./placement.ts";
import {
  decodeShardResponse,
  encodeShardRequest,
  isFollowerReadable,
  isIdempotent,
  isSerializable,
  type ShardRequest,
} from "./shard_request.ts";

/** How long to wait before retrying when no leader is known (an election is under way). */
export const NO_LEADER_BACKOFF_MS = 50;
/** The longest one forwarded attempt of an idempotent request may take before a retry. */
export const FORWARD_ATTEMPT_MS_MAX = 2_000;
/** The most attempts one request makes. */
export const ROUTE_ATTEMPTS_MAX = 64;
/**
 * Entries a follower's replica may have left to apply up to the leader's read index and still
 * serve a linearizable read itself; a replica further behind (one catching up after a restart)
 * forwards the read to the leader instead of holding it until the catch-up reaches the index
 * (a restarted follower's first reads waited 1.5-2.5 s). A loaded follower is a few dozen
 * entries behind; applying 1,000 takes a replica 45-85 ms.
 */
export const FOLLOWER_READ_LAG_ENTRIES_MAX = 1_000;

/** The part of the peer transport the router uses. */
export interface PeerChannel {
  request(
    toNode: number,
    shard: number,
    payload: Uint8Array,
    options: { readonly deadlineMs: number },
  ): Promise<Uint8Array>;
  /** Whether an authenticated connection to `node` is up right now. */
  isConnected(node: number): boolean;
}

/** What the router needs to know about the cluster. */
export interface RouterOptions {
  readonly nodeId: number;
  readonly members: readonly number[];
  readonly replicationFactor: number;
  /**
   * The nodes holding `shard`'s replicas as the placement record says (placement_record.ts),
   * or null for the static placement. Absent: static placement only.
   */
  readonly placementOf?: (shard: number) => readonly number[] | null;
  readonly local: ReadonlyMap<number, LocalShard>;
  readonly peers: PeerChannel;
  readonly nowMs: () => number;
  readonly logger: Logger;
}

/** Counters for `/metrics`. */
export interface RouterStats {
  forwarded: number;
  retries: number;
  /** Linearizable reads served by a local follower after a read index from the leader. */
  followerReads: number;
  /** Follower reads that failed and were forwarded to the leader instead. */
  followerReadFallbacks: number;
  /** Forwarded requests failed in flight because their node went down (`peerDown`). */
  abandonedOnPeerDown: number;
}

/** A forwarded request in flight, failed by `peerDown` when its node goes down first. */
interface InFlight {
  readonly shard: number;
  readonly fail: (error: AspenError) => void;
}

const READ_INDEX_REQUEST = encodeShardRequest({ kind: "readIndex" });

/** Sends shard requests to whichever replica can serve them. */
export class ClusterRouter {
  readonly stats: RouterStats = {
    forwarded: 0,
    retries: 0,
    followerReads: 0,
    followerReadFallbacks: 0,
    abandonedOnPeerDown: 0,
  };
  readonly #options: RouterOptions;
  /** Forwarded requests in flight, by the node they went to. */
  readonly #inFlight = new Map<number, Set<InFlight>>();
  readonly #leaderHints = new Map<number, number>();
  readonly #followerReads: FollowerReads;
  readonly #deadlines: DeadlineTimer;

  constructor(options: RouterOptions) {
    this.#options = options;
    this.#deadlines = new DeadlineTimer(options.nowMs);
    this.#followerReads = new FollowerReads({
      askReadIndex: async (leader, shard, timeoutMs) => {
        const bytes = await this.#request(leader, shard, READ_INDEX_REQUEST, timeoutMs);
        return checkReadIndex(decodeShardResponse<unknown>(bytes), leader, shard);
      },
    });
  }

  /** This node's id. */
  get nodeId(): number {
    return this.#options.nodeId;
  }

  /** The nodes that host `shard`. */
  replicasOf(shard: number): number[] {
    const placed = this.#options.placementOf?.(shard) ?? null;
    if (placed !== null && placed.length > 0) return [...placed];
    return replicasOf(this.#options.members, shard, this.#options.replicationFactor);
  }

  /** The node believed to lead `shard`, or null. */
  leaderOf(shard: number): number | null {
    const local = this.#options.local.get(shard);
    const known = local?.replica.leader() ?? null;
    return known ?? this.#leaderHints.get(shard) ?? null;
  }

  /**
   * Runs `request` on the right replica of `shard` before `deadlineAtMs`.
   *
   * @throws {AspenError} the request's own error, `timeout`, or `shard_unavailable`.
   */
  async execute<T>(shard: number, request: ShardRequest, deadlineAtMs: number): Promise<T> {
    const local = this.#options.local.get(shard);
    if (local !== undefined && isSerializable(request)) return await local.execute(request) as T;
    if (local !== undefined && isFollowerReadable(request)) {
      const served = await this.#readOnFollower(local, request, deadlineAtMs);
      if (served !== null) return served.value as T;
    }
    const replicas = this.replicasOf(shard);
    let target = this.leaderOf(shard) ?? replicas[0]!;
    let lastError: AspenError | null = null;
    for (let attempt = 0; attempt < ROUTE_ATTEMPTS_MAX; attempt++) {
      const remainingMs = deadlineAtMs - this.#options.nowMs();
      if (remainingMs <= 0) break;
      if (attempt > 0) this.stats.retries++;
      try {
        return await this.#attempt<T>(shard, target, request, remainingMs);
      } catch (error) {
        if (!(error instanceof AspenError)) throw error;
        lastError = error;
        const next = this.#nextTarget(shard, target, replicas, request, error);
        if (next === null) throw error;
        if (next.waitMs > 0) await sleep(Math.min(next.waitMs, remainingMs));
        target = next.target;
      }
    }
    throw new AspenError(
      lastError?.code === "timeout" ? "timeout" : "shard_unavailable",
      `Cannot reach a leader of shard ${shard} in time` +
        (lastError === null ? "" : `: ${lastError.message}`),
      { shard },
    );
  }

  /**
   * Serves a linearizable read on this node's follower replica, or returns null when it
   * should be forwarded: this replica leads (the normal path is local then), no leader is
   * known or connected, the replica has more than FOLLOWER_READ_LAG_ENTRIES_MAX entries to
   * apply, or the follower read failed (counted; the forward retries it).
   */
  async #readOnFollower(
    local: LocalShard,
    request: Extract<ShardRequest, { kind: "get" | "range" }>,
    deadlineAtMs: number,
  ): Promise<{ value: unknown } | null> {
    const leader = local.replica.leader();
    if (leader === null || leader === this.#options.nodeId) return null;
    if (!this.#options.peers.isConnected(leader)) return null;
    const remainingMs = deadlineAtMs - this.#options.nowMs();
    if (remainingMs <= 0) return null;
    const read = async () => {
      const index = await this.#followerReads.readIndex(local.shard, leader);
      const behind = index - local.stateMachine.appliedIndex();
      if (behind > FOLLOWER_READ_LAG_ENTRIES_MAX) {
        throw new AspenError(
          "shard_unavailable",
          `Shard ${local.shard}'s replica here has ${behind} entries to apply before it can ` +
            `serve the read (more than ${FOLLOWER_READ_LAG_ENTRIES_MAX})`,
          { shard: local.shard },
        );
      }
      await local.waitApplied(index);
      return await local.execute({ ...request, serializable: true });
    };
    try {
      const value = await this.#withDeadline(
        read(),
        Math.min(remainingMs, FORWARD_ATTEMPT_MS_MAX),
        local.shard,
      );
      this.stats.followerReads++;
      return { value };
    } catch (error) {
      if (!(error instanceof AspenError)) throw error;
      this.stats.followerReadFallbacks++;
      return null;
    }
  }

  async #attempt<T>(
    shard: number,
    target: number,
    request: ShardRequest,
    remainingMs: number,
  ): Promise<T> {
    if (target === this.#options.nodeId) {
      const local = this.#options.local.get(shard);
      if (local === undefined) {
        throw new AspenError("unknown_shard", `Shard ${shard} is not hosted here`, { shard });
      }
      return await this.#withDeadline(local.execute(request), remainingMs, shard) as T;
    }
    if (!this.#options.peers.isConnected(target)) {
      throw new AspenError("shard_unavailable", `Cannot reach node ${target}: not connected`, {
        shard,
        node: target,
        isNotSent: true,
      });
    }
    const deadlineMs = Math.ceil(
      isIdempotent(request) ? Math.min(remainingMs, FORWARD_ATTEMPT_MS_MAX) : remainingMs,
    );
    this.stats.forwarded++;
    const payload = encodeShardRequest(request);
    const bytes = await this.#request(target, shard, payload, Math.max(1, deadlineMs));
    this.#leaderHints.set(shard, target);
    return decodeShardResponse<T>(bytes);
  }

  /**
   * Node `node` went down (no frame from it for NODE_DOWN_TICKS): every request in flight there
   * fails now with `shard_unavailable`, outcome unknown, instead of waiting out its deadline.
   * The node's liveness calls this once per silence.
   */
  peerDown(node: number, silentMs: number): void {
    const inFlight = this.#inFlight.get(node);
    if (inFlight === undefined) return;
    this.#inFlight.delete(node);
    for (const request of inFlight) {
      this.stats.abandonedOnPeerDown++;
      request.fail(
        new AspenError(
          "shard_unavailable",
          `Cannot get an answer from node ${node} for shard ${request.shard}: the node has ` +
            `been silent for ${silentMs} ms (down); the outcome of a write is unknown`,
          { shard: request.shard, node },
        ),
      );
    }
  }

  /** A request to `target` over the peer channel, failed early by `peerDown`. */
  #request(
    target: number,
    shard: number,
    payload: Uint8Array,
    deadlineMs: number,
  ): Promise<Uint8Array> {
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    let inFlight = this.#inFlight.get(target);
    if (inFlight === undefined) {
      inFlight = new Set();
      this.#inFlight.set(target, inFlight);
    }
    const request: InFlight = { shard, fail: reject };
    inFlight.add(request);
    // Settling twice is harmless: whichever comes first (the answer or the failure) counts.
    this.#options.peers.request(target, shard, payload, { deadlineMs }).then(resolve, reject)
      .finally(() => {
        inFlight.delete(request);
        if (inFlight.size === 0 && this.#inFlight.get(target) === inFlight) {
          this.#inFlight.delete(target);
        }
      });
    return promise;
  }

  /** `promise`, or a `timeout` error once `ms` have passed (one shared timer for all). */
  #withDeadline<T>(promise: Promise<T>, ms: number, shard: number): Promise<T> {
    return this.#deadlines.race(
      promise,
      this.#options.nowMs() + ms,
      () => new AspenError("timeout", `Shard ${shard} did not answer in time`, { shard }),
    );
  }

  /** Where to try next after `error`, or null when the error must reach the client. */
  #nextTarget(
    shard: number,
    target: number,
    replicas: readonly number[],
    request: ShardRequest,
    error: AspenError,
  ): { target: number; waitMs: number } | null {
    const following = replicas[(replicas.indexOf(target) + 1) % replicas.length] ?? target;
    if (error.code === "not_leader") {
      const hint = error.details.leader;
      // Followed even when this node's replica list lacks it: the list may be stale (a member
      // that joined while this node was down leads now), the replica that named it is not.
      if (typeof hint === "number" && Number.isSafeInteger(hint) && hint !== target) {
        this.#leaderHints.set(shard, hint);
        return { target: hint, waitMs: 0 };
      }
      this.#leaderHints.delete(shard);
      return { target: following, waitMs: NO_LEADER_BACKOFF_MS };
    }
    if (error.code === "unknown_shard") return { target: following, waitMs: 0 };
    if (error.code === "proposal_dropped") {
      // Dropped proposals were never applied (see ShardReplica): retrying is safe.
      return { target: this.leaderOf(shard) ?? following, waitMs: NO_LEADER_BACKOFF_MS };
    }
    const isNotSent = error.details.isNotSent === true;
    const isTransient = error.code === "shard_unavailable" || error.code === "timeout";
    if (isTransient && (isNotSent || isIdempotent(request))) {
      this.#leaderHints.delete(shard);
      return { target: following, waitMs: isNotSent ? NO_LEADER_BACKOFF_MS : 0 };
    }
    return null;
  }
}

function checkReadIndex(value: unknown, leader: number, shard: number): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  throw new AspenError(
    "shard_unavailable",
    `Cannot read shard ${shard} on a follower: node ${leader} answered a read index of ` +
      `${JSON.stringify(value)}`,
    { shard },
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
