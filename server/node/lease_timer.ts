/**
 * The timer a local shard runs beside its replica: a leader proposes the expiry of the leases
 * whose time ran out (those with keys on other shards by a cross-shard transaction), and every
 * awake replica logs (once) each snapshot it refuses to send.
 *
 * It runs on the node's {@linkcode DueSchedule}, armed for the lessor's next due time
 * (Lessor.nextDueMs: the earliest lease deadline, or a retry) and, while the replica is awake,
 * every REFUSAL_CHECK_INTERVAL_MS. A follower, a leader without leases and a quiesced replica
 * are not armed at all, so an idle node does no lease work per shard. The shard re-arms it when
 * a deadline may have come earlier: a lease granted, leadership gained, a snapshot installed,
 * the replica awake again ({@linkcode LeaseTimer.reschedule}, {@linkcode LeaseTimer.noteAwake}).
 * A keep-alive only moves a deadline later: the timer then fires at the old one, finds nothing
 * due and arms for the new one.
 */
import {
  type ApplyResult,
  encodeCommand,
  type Lessor,
  type ShardReplica,
} from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import type { DueJob, DueSchedule } from "./due_schedule.ts";
import { snapshotRefusals } from "./replica_view.ts";

/** How often an awake replica looks for snapshots it refuses to send. */
export const REFUSAL_CHECK_INTERVAL_MS = 500;
/**
 * The shortest wait between two runs of one shard's timer: a leader with more expired leases
 * than one `leaseExpire` names (LEASE_EXPIRE_IDS_MAX) proposes the rest this much later.
 */
export const LEASE_RECHECK_MS_MIN = 50;

/** What the lease timer works on. */
export interface LeaseTimerOptions {
  readonly shard: number;
  readonly replica: () => ShardReplica<ApplyResult>;
  readonly lessor: Lessor;
  /** The lessor's clock, whole milliseconds (the schedule's clock, floored). */
  readonly nowMs: () => number;
  /** The other shards holding keys of lease `id` of this shard (the local state machine). */
  readonly holdersOf: (id: number) => readonly number[];
  /** The node's schedule, shared by every local shard's timer. */
  readonly schedule: DueSchedule;
  readonly logger: Logger;
}

/**
 * Expires lease `id` of this shard by a cross-shard transaction (KvService.expireLease): the
 * lease holds keys on other shards too.
 */
export type CrossShardExpiry = (id: number) => Promise<void>;

/** Runs when a lease is due or the replica is awake (see the module doc) until closed. */
export class LeaseTimer implements DueJob {
  readonly #options: LeaseTimerOptions;
  /** The leases whose cross-shard expiry is running. */
  readonly #expiring = new Set<number>();
  #crossShardExpiry: CrossShardExpiry | null = null;
  /** The snapshot index whose refusal was logged, per replica, while it is refused. */
  readonly #refusalsLogged = new Map<number, number>();
  /** When the next refusal check is due; null while the replica sleeps. */
  #refusalDueMs: number | null = null;
  #isClosed = false;

  /** Arms the timer: the replica starts awake. */
  constructor(options: LeaseTimerOptions) {
    this.#options = options;
    this.noteAwake();
  }

  /**
   * The replica finished a turn awake: refusal checks run again, every
   * REFUSAL_CHECK_INTERVAL_MS until it sleeps. Cheap when they already do (every turn calls it).
   */
  noteAwake(): void {
    if (this.#refusalDueMs !== null || this.#isClosed) return;
    this.#refusalDueMs = this.#options.nowMs() + REFUSAL_CHECK_INTERVAL_MS;
    this.reschedule();
  }

  /** Arms the timer for what is due next (after a grant, a leadership change, a restore). */
  reschedule(): void {
    if (this.#isClosed) return;
    this.#arm(-Infinity);
  }

  /** The schedule's call: expires what is due, checks refusals while awake, re-arms. */
  run(): void {
    if (this.#isClosed) return;
    const nowMs = this.#options.nowMs();
    this.#expireLeases(nowMs);
    if (this.#refusalDueMs !== null && this.#refusalDueMs <= nowMs) {
      // A quiesced replica sends no snapshot: its followers have every entry.
      if (this.#options.replica().isQuiesced()) this.#refusalDueMs = null;
      else {
        this.#noticeSnapshotRefusals();
        this.#refusalDueMs = nowMs + REFUSAL_CHECK_INTERVAL_MS;
      }
    }
    this.#arm(nowMs + LEASE_RECHECK_MS_MIN);
  }

  /**
   * Arms the timer for the earlier of the lessor's next due time (no sooner than
   * `leaseNotBeforeMs`) and the next refusal check; disarms it when neither is due.
   */
  #arm(leaseNotBeforeMs: number): void {
    const leaseDueMs = this.#options.lessor.nextDueMs();
    const lease = leaseDueMs === null ? Infinity : Math.max(leaseDueMs, leaseNotBeforeMs);
    const dueMs = Math.min(lease, this.#refusalDueMs ?? Infinity);
    this.#options.schedule.arm(this, dueMs === Infinity ? null : dueMs);
  }

  /**
   * Sets how leases with keys on other shards expire (the node builds it after its shards).
   * Until then they wait: the lessor offers them again every LEASE_EXPIRE_RETRY_MS.
   */
  useCrossShardExpiry(expire: CrossShardExpiry): void {
    this.#crossShardExpiry = expire;
  }

  /** Stops the timer. */
  close(): void {
    this.#isClosed = true;
    this.#options.schedule.disarm(this);
  }

  /**
   * Logs an error once per refused snapshot: a replica that needs a snapshot over the limit
   * stays behind until a smaller one exists (the status and /metrics show it meanwhile).
   */
  #noticeSnapshotRefusals(): void {
    const refusals = snapshotRefusals(this.#options.replica().status());
    const logged = this.#refusalsLogged;
    for (const node of [...logged.keys()]) {
      if (!refusals.some((refusal) => refusal.node === node)) logged.delete(node);
    }
    for (const refusal of refusals) {
      if (logged.get(refusal.node) === refusal.index) continue;
      logged.set(refusal.node, refusal.index);
      this.#options.logger.error("Cannot send a snapshot: it is larger than the snapshot limit", {
        shard: this.#options.shard,
        replica: refusal.node,
        index: refusal.index,
        bytes: refusal.bytes,
        limit: refusal.limit,
      });
    }
  }

  #expireAcrossShards(id: number): void {
    const expire = this.#crossShardExpiry;
    if (expire === null || this.#expiring.has(id)) return;
    this.#expiring.add(id);
    expire(id).catch((error: unknown) => {
      this.#options.logger.warn("Cannot expire a lease with keys on other shards yet", {
        shard: this.#options.shard,
        lease: id,
        reason: error instanceof Error ? error.message : String(error),
      });
    }).finally(() => this.#expiring.delete(id));
  }

  #expireLeases(nowMs: number): void {
    const expired = this.#options.lessor.expired(nowMs);
    // A lease with keys on other shards expires by a transaction over them all, retried (by
    // the lessor) until it commits: its keys stay meanwhile, so no reader sees half of them.
    const spanning = expired.filter((id) => this.#options.holdersOf(id).length > 0);
    for (const id of spanning) this.#expireAcrossShards(id);
    const ids = expired.filter((id) => !spanning.includes(id));
    if (ids.length === 0) return;
    const replica = this.#options.replica();
    replica.propose(encodeCommand({ type: "leaseExpire", ids })).catch((error: unknown) => {
      this.#options.logger.warn("Cannot expire leases yet", {
        shard: this.#options.shard,
        reason: error instanceof Error ? error.message : String(error),
      });
    });
  }
}
