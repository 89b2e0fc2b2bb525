/**
 * The timer a local shard runs beside its replica: a leader proposes the expiry of the leases
 * whose time ran out (those with keys on other shards by a cross-shard transaction), and every
 * replica logs (once) each snapshot it refuses to send.
 */
import {
  type ApplyResult,
  encodeCommand,
  type Lessor,
  type ShardReplica,
} from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import { snapshotRefusals } from "./replica_view.ts";

/** How often a leader looks for expired leases (and for snapshots it refuses to send). */
export const LEASE_CHECK_INTERVAL_MS = 500;

/** What the lease timer works on. */
export interface LeaseTimerOptions {
  readonly shard: number;
  readonly replica: () => ShardReplica<ApplyResult>;
  readonly lessor: Lessor;
  /** The lessor's clock, whole milliseconds. */
  readonly nowMs: () => number;
  /** The other shards holding keys of lease `id` of this shard (the local state machine). */
  readonly holdersOf: (id: number) => readonly number[];
  readonly logger: Logger;
}

/**
 * Expires lease `id` of this shard by a cross-shard transaction (KvService.expireLease): the
 * lease holds keys on other shards too.
 */
export type CrossShardExpiry = (id: number) => Promise<void>;

/**
 * One interval for every lease timer of the process: a timer per shard woke the event loop
 * 2 x shards times a second on an idle node; this wakes it twice, whatever the shard count.
 */
class SharedInterval {
  readonly #checks = new Set<() => void>();
  #timer: ReturnType<typeof setInterval> | null = null;

  add(check: () => void): void {
    this.#checks.add(check);
    this.#timer ??= setInterval(() => {
      for (const each of this.#checks) each();
    }, LEASE_CHECK_INTERVAL_MS);
  }

  delete(check: () => void): void {
    this.#checks.delete(check);
    if (this.#checks.size > 0 || this.#timer === null) return;
    clearInterval(this.#timer);
    this.#timer = null;
  }
}

const SHARED_INTERVAL = new SharedInterval();

/** Runs every LEASE_CHECK_INTERVAL_MS until closed. */
export class LeaseTimer {
  readonly #options: LeaseTimerOptions;
  readonly #check: () => void;
  /** The leases whose cross-shard expiry is running. */
  readonly #expiring = new Set<number>();
  #crossShardExpiry: CrossShardExpiry | null = null;
  /** The snapshot index whose refusal was logged, per replica, while it is refused. */
  readonly #refusalsLogged = new Map<number, number>();

  /** Starts the timer. */
  constructor(options: LeaseTimerOptions) {
    this.#options = options;
    this.#check = () => {
      this.#expireLeases();
      // A quiesced replica sends no snapshot: its followers have every entry.
      if (!this.#options.replica().isQuiesced()) this.#noticeSnapshotRefusals();
    };
    SHARED_INTERVAL.add(this.#check);
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
    SHARED_INTERVAL.delete(this.#check);
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

  #expireLeases(): void {
    const expired = this.#options.lessor.expired(this.#options.nowMs());
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
