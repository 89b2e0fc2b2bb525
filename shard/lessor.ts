/**
 * The lessor: lease deadlines, kept by the leader of a shard.
 *
 * Lease expiry is a decision of the leader, applied through the log: the leader asks
 * {@linkcode Lessor.expired} which leases ran out and proposes a `leaseExpire` command; every
 * replica (the leader included) deletes the lease and its keys only when that entry applies.
 * Followers track which leases exist but never expire one on their own clock. A new leader
 * gives every lease its full TTL again ({@linkcode Lessor.onBecomeLeader}), so no lease
 * expires because of a failover; the cost is that a lease may outlive its TTL by up to one TTL
 * per failover. Keep-alives are not replicated, for the same reason etcd's are not.
 *
 * The lessor is pure: the caller passes the time as a number of milliseconds.
 *
 * ```text
 *   follower ──onBecomeLeader(now): deadlines = now + ttl──► leader
 *      ▲                                                      │ keepAlive(id, now)
 *      └────────────────onBecomeFollower()────────────────────┘ expired(now) → ids to propose
 * ```
 */

import { assert } from "../raft/mod.ts";
import type { ApplyResult, LeaseGrant } from "./apply_result.ts";
import { LEASE_EXPIRE_IDS_MAX, LEASE_EXPIRE_RETRY_MS, LEASES_MAX } from "./limits.ts";

/** The answer to a keep-alive. */
export type KeepAliveResult =
  | { readonly type: "ok"; readonly lease: LeaseGrant; readonly remainingMs: number }
  | { readonly type: "not_leader" }
  /** The lease does not exist, or its deadline passed and its expiry is on the way. */
  | { readonly type: "not_found" };

interface TrackedLease {
  readonly ttlSeconds: number;
  deadlineMs: number;
  /** When the leader last returned this lease from `expired()`; null if never. */
  expiryProposedAtMs: number | null;
}

const MS_PER_SECOND = 1000;

/** Lease deadlines of one shard. */
export class Lessor {
  readonly #leases = new Map<number, TrackedLease>();
  #isLeader = false;

  /** Whether this replica currently keeps deadlines as the leader. */
  get isLeader(): boolean {
    return this.#isLeader;
  }

  /** How many leases are tracked. */
  get size(): number {
    return this.#leases.size;
  }

  /** Replaces the tracked leases (at startup and after a snapshot restore). */
  load(leases: readonly LeaseGrant[], nowMs: number): void {
    assertTime(nowMs);
    assert(leases.length <= LEASES_MAX, "Lessor.load: at most LEASES_MAX leases");
    this.#leases.clear();
    for (const lease of leases) this.onGranted(lease, nowMs);
  }

  /** A grant was applied: the lease lives for its TTL from now. */
  onGranted(lease: LeaseGrant, nowMs: number): void {
    assertTime(nowMs);
    assert(lease.id >= 1 && lease.ttlSeconds >= 1, "Lessor.onGranted: a valid lease");
    assert(!this.#leases.has(lease.id), "Lessor.onGranted: lease ids are never reused");
    assert(this.#leases.size < LEASES_MAX, "Lessor.onGranted: at most LEASES_MAX leases");
    this.#leases.set(lease.id, {
      ttlSeconds: lease.ttlSeconds,
      deadlineMs: nowMs + lease.ttlSeconds * MS_PER_SECOND,
      expiryProposedAtMs: null,
    });
  }

  /** A revoke or an expiry was applied: forget the lease. */
  onRemoved(id: number): void {
    this.#leases.delete(id);
  }

  /** Feeds one apply result: grants start tracking, revokes and expiries stop it. */
  observe(result: ApplyResult, nowMs: number): void {
    if (result.type === "leaseGrant") this.onGranted(result.lease, nowMs);
    if (result.type === "leaseRevoke") this.onRemoved(result.id);
    if (result.type === "leaseExpire") { for (const id of result.expired) this.onRemoved(id); }
    if (result.type === "txnResolved") {
      for (const id of result.revokedLeases ?? []) this.onRemoved(id);
    }
  }

  /** This replica became leader: every lease gets its full TTL from now. */
  onBecomeLeader(nowMs: number): void {
    assertTime(nowMs);
    this.#isLeader = true;
    for (const lease of this.#leases.values()) {
      lease.deadlineMs = nowMs + lease.ttlSeconds * MS_PER_SECOND;
      lease.expiryProposedAtMs = null;
    }
  }

  /** This replica is no longer leader: it stops deciding expiries. */
  onBecomeFollower(): void {
    this.#isLeader = false;
  }

  /** Extends lease `id` by its TTL from now (leader only). */
  keepAlive(id: number, nowMs: number): KeepAliveResult {
    assertTime(nowMs);
    if (!this.#isLeader) return { type: "not_leader" };
    const lease = this.#leases.get(id);
    if (lease === undefined || lease.deadlineMs <= nowMs) return { type: "not_found" };
    lease.deadlineMs = nowMs + lease.ttlSeconds * MS_PER_SECOND;
    lease.expiryProposedAtMs = null;
    const remainingMs = lease.deadlineMs - nowMs;
    return { type: "ok", lease: { id, ttlSeconds: lease.ttlSeconds }, remainingMs };
  }

  /** Milliseconds left on lease `id` as this replica sees it, or null when unknown. */
  remainingMs(id: number, nowMs: number): number | null {
    assertTime(nowMs);
    const lease = this.#leases.get(id);
    if (lease === undefined) return null;
    return Math.max(0, lease.deadlineMs - nowMs);
  }

  /**
   * When {@linkcode Lessor.expired} will next return a lease unless a keep-alive or a removal
   * comes first: the earliest deadline, or for a lease already returned the end of its retry
   * wait. Null on a follower and without leases: nothing will expire here. The node arms one
   * timer for this instead of asking every shard's lessor on a fixed interval.
   */
  nextDueMs(): number | null {
    if (!this.#isLeader) return null;
    let dueMs: number | null = null;
    for (const lease of this.#leases.values()) {
      const proposedAt = lease.expiryProposedAtMs;
      const leaseDueMs = proposedAt === null
        ? lease.deadlineMs
        : Math.max(lease.deadlineMs, proposedAt + LEASE_EXPIRE_RETRY_MS);
      if (dueMs === null || leaseDueMs < dueMs) dueMs = leaseDueMs;
    }
    if (dueMs !== null) assert(Number.isSafeInteger(dueMs), "Lessor.nextDueMs: whole ms");
    return dueMs;
  }

  /**
   * The leases whose deadline passed, for the leader to propose as one `leaseExpire`: at most
   * LEASE_EXPIRE_IDS_MAX, most overdue first. A lease returned once is returned again only
   * after LEASE_EXPIRE_RETRY_MS (in case the proposal was lost). Followers get none.
   */
  expired(nowMs: number): number[] {
    assertTime(nowMs);
    if (!this.#isLeader) return [];
    const due: [number, number][] = [];
    for (const [id, lease] of this.#leases) {
      if (lease.deadlineMs > nowMs) continue;
      const proposedAt = lease.expiryProposedAtMs;
      if (proposedAt !== null && nowMs - proposedAt < LEASE_EXPIRE_RETRY_MS) continue;
      due.push([lease.deadlineMs, id]);
    }
    due.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const ids = due.slice(0, LEASE_EXPIRE_IDS_MAX).map(([, id]) => id);
    for (const id of ids) {
      const lease = this.#leases.get(id);
      assert(lease !== undefined, "Lessor.expired: a due lease is tracked");
      lease.expiryProposedAtMs = nowMs;
    }
    return ids;
  }
}

function assertTime(nowMs: number): void {
  assert(Number.isSafeInteger(nowMs) && nowMs >= 0, "Lessor: time is a non-negative integer");
}
