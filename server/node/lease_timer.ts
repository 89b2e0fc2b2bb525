/**
 * The timer a local shard runs beside its replica: a leader proposes the expiry of the leases
 * whose time ran out, and every replica logs (once) each snapshot it refuses to send.
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
  readonly logger: Logger;
}

/** Runs every LEASE_CHECK_INTERVAL_MS until closed. */
export class LeaseTimer {
  readonly #options: LeaseTimerOptions;
  readonly #timer: ReturnType<typeof setInterval>;
  /** The snapshot index whose refusal was logged, per replica, while it is refused. */
  readonly #refusalsLogged = new Map<number, number>();

  /** Starts the timer. */
  constructor(options: LeaseTimerOptions) {
    this.#options = options;
    this.#timer = setInterval(() => {
      this.#expireLeases();
      this.#noticeSnapshotRefusals();
    }, LEASE_CHECK_INTERVAL_MS);
  }

  /** Stops the timer. */
  close(): void {
    clearInterval(this.#timer);
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

  #expireLeases(): void {
    const ids = this.#options.lessor.expired(this.#options.nowMs());
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
