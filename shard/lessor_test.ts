/**
 * Tests of the Lessor with an injected clock (plain numbers of ms): followers never expire a
 * lease; the leader reports a lease once its TTL passed, keep-alive pushes the deadline, a new
 * leader gives every lease its full TTL again (no expiry caused by a failover), reports are
 * bounded and retried after LEASE_EXPIRE_RETRY_MS; and, end to end with a StateMachine, an
 * expiry proposed by the leader deletes the lease's keys on apply.
 */

import assert from "node:assert/strict";
import { Lessor } from "./lessor.ts";
import { LEASE_EXPIRE_IDS_MAX, LEASE_EXPIRE_RETRY_MS } from "./limits.ts";
import { StateMachine } from "./state_machine.ts";
import { encodeCommand } from "./command_codec.ts";
import type { Command } from "./command.ts";

const SECOND = 1000;

function leader(nowMs = 0): Lessor {
  const lessor = new Lessor();
  lessor.onBecomeLeader(nowMs);
  return lessor;
}

Deno.test("Lessor.expired() is empty on a follower, whatever the time", () => {
  const lessor = new Lessor();
  lessor.onGranted({ id: 1, ttlSeconds: 1 }, 0);
  assert.deepEqual(lessor.expired(1_000_000), []);
  assert.deepEqual(lessor.keepAlive(1, 10), { type: "not_leader" });
});

Deno.test("Lessor.expired() reports a lease once its TTL has passed", () => {
  const lessor = leader();
  lessor.onGranted({ id: 7, ttlSeconds: 10 }, 0);
  assert.deepEqual(lessor.expired(10 * SECOND - 1), []);
  assert.equal(lessor.remainingMs(7, 4 * SECOND), 6 * SECOND);
  assert.deepEqual(lessor.expired(10 * SECOND), [7]);
});

Deno.test("Lessor.keepAlive() extends the deadline by the full TTL", () => {
  const lessor = leader();
  lessor.onGranted({ id: 7, ttlSeconds: 10 }, 0);
  const result = lessor.keepAlive(7, 9 * SECOND);
  assert.deepEqual(result, {
    type: "ok",
    lease: { id: 7, ttlSeconds: 10 },
    remainingMs: 10 * SECOND,
  });
  assert.deepEqual(lessor.expired(18 * SECOND), []);
  assert.deepEqual(lessor.expired(19 * SECOND), [7]);
  assert.deepEqual(lessor.keepAlive(7, 20 * SECOND), { type: "not_found" }, "too late");
  assert.deepEqual(lessor.keepAlive(8, 0), { type: "not_found" });
});

Deno.test("Lessor.onBecomeLeader() gives every lease its full TTL again", () => {
  const lessor = new Lessor();
  lessor.load([{ id: 1, ttlSeconds: 10 }, { id: 2, ttlSeconds: 60 }], 0);
  // The old leader would have expired lease 1 at 10 s; this replica takes over at 9.5 s.
  lessor.onBecomeLeader(9_500);
  assert.deepEqual(lessor.expired(19_499), []);
  assert.deepEqual(lessor.expired(19_500), [1]);
  assert.equal(lessor.remainingMs(2, 9_500), 60 * SECOND);
  lessor.onBecomeFollower();
  assert.deepEqual(lessor.expired(1_000_000), []);
});

Deno.test("Lessor.expired() is bounded, most overdue first, and retried later", () => {
  const lessor = leader();
  const count = LEASE_EXPIRE_IDS_MAX + 10;
  for (let id = 1; id <= count; id++) lessor.onGranted({ id, ttlSeconds: 1 }, count - id);
  const first = lessor.expired(100 * SECOND);
  assert.equal(first.length, LEASE_EXPIRE_IDS_MAX);
  assert.equal(first[0], count, "the lease granted earliest is the most overdue");
  const second = lessor.expired(100 * SECOND);
  assert.equal(second.length, 10, "the rest, not the ones already reported");
  assert.deepEqual(lessor.expired(100 * SECOND + LEASE_EXPIRE_RETRY_MS - 1), []);
  const retried = lessor.expired(100 * SECOND + LEASE_EXPIRE_RETRY_MS);
  assert.deepEqual(retried, first, "an unapplied expiry is proposed again");
});

Deno.test("Lessor.nextDueMs() is when expired() next reports a lease", () => {
  const lessor = new Lessor();
  lessor.onGranted({ id: 1, ttlSeconds: 10 }, 0);
  assert.equal(lessor.nextDueMs(), null, "a follower expires nothing");
  lessor.onBecomeLeader(1_000);
  assert.equal(lessor.nextDueMs(), 11_000);
  lessor.onGranted({ id: 2, ttlSeconds: 5 }, 2_000);
  assert.equal(lessor.nextDueMs(), 7_000, "the earliest deadline");
  lessor.keepAlive(2, 6_500);
  assert.equal(lessor.nextDueMs(), 11_000, "a keep-alive moves it later");
  assert.deepEqual(lessor.expired(10_999), [], "nothing due before it");
  assert.deepEqual(lessor.expired(11_000), [1]);
  assert.equal(lessor.nextDueMs(), 11_500, "lease 2's deadline");
  lessor.onRemoved(2);
  assert.equal(lessor.nextDueMs(), 11_000 + LEASE_EXPIRE_RETRY_MS, "lease 1's retry");
  assert.deepEqual(lessor.expired(11_000 + LEASE_EXPIRE_RETRY_MS - 1), []);
  assert.deepEqual(lessor.expired(11_000 + LEASE_EXPIRE_RETRY_MS), [1]);
  lessor.onRemoved(1);
  assert.equal(lessor.nextDueMs(), null, "no lease left");
  lessor.onGranted({ id: 3, ttlSeconds: 1 }, 20_000);
  lessor.onBecomeFollower();
  assert.equal(lessor.nextDueMs(), null);
});

Deno.test("Lessor.observe() follows grants, revokes, expiries and cross-shard revocations", () => {
  const lessor = leader();
  lessor.observe({ type: "leaseGrant", revision: 3, lease: { id: 3, ttlSeconds: 5 } }, 0);
  lessor.observe({ type: "leaseGrant", revision: 4, lease: { id: 4, ttlSeconds: 5 } }, 0);
  lessor.observe({ type: "leaseGrant", revision: 5, lease: { id: 5, ttlSeconds: 5 } }, 0);
  assert.equal(lessor.size, 3);
  lessor.observe({ type: "leaseRevoke", revision: 6, id: 3, deleted: 0 }, 0);
  lessor.observe({ type: "leaseExpire", revision: 7, expired: [4], deleted: 0 }, 0);
  assert.equal(lessor.size, 1);
  assert.equal(lessor.remainingMs(3, 0), null);
  // A cross-shard revocation or expiry removes the lease in its commit-resolve.
  const resolved = { type: "txnResolved", revision: 8, outcome: "commit", results: [] } as const;
  lessor.observe(resolved, 0);
  assert.equal(lessor.size, 1, "a resolve that removed no lease changes nothing");
  lessor.observe({ ...resolved, revision: 9, revokedLeases: [5] }, 0);
  assert.equal(lessor.size, 0);
});

Deno.test("a leader's expiry, applied through the log, deletes the lease's keys", () => {
  const sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  const lessor = leader();
  let index = 0;
  const apply = (command: Command, nowMs: number) => {
    const results = sm.apply([{ index: ++index, data: encodeCommand(command) }]);
    for (const result of results) lessor.observe(result, nowMs);
    return results[0];
  };
  apply({ type: "leaseGrant", ttlSeconds: 5 }, 0);
  apply({ type: "put", key: "session", value: "x", lease: 1, prevKv: false }, 0);
  assert.deepEqual(lessor.expired(4 * SECOND), []);
  const ids = lessor.expired(5 * SECOND);
  assert.deepEqual(ids, [1]);
  assert.ok(sm.get("session") !== null, "nothing expires before the entry applies");
  const result = apply({ type: "leaseExpire", ids }, 5 * SECOND);
  assert.deepEqual(result, { type: "leaseExpire", revision: 3, expired: [1], deleted: 1 });
  assert.equal(sm.get("session"), null);
  assert.equal(sm.lease(1), null);
  assert.equal(lessor.size, 0);
  sm.close();
});
