/**
 * Cross-shard leases on the shard side: the lease steps of txnPrepare (attach on the lease's
 * home, revoke on the home and on every shard holding keys of it) applied to real state
 * machines in memory. Checked: what a prepare locks and refuses, what the commit-resolve does
 * (holders recorded on the home, stand-in leases on the other shards, every key of a revoked
 * lease deleted with the lease), that the single-shard lease commands meet the lease's lock,
 * and that a lease with keys on other shards neither revokes nor expires on its shard alone.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { type ApplyResult, applyResultError } from "./apply_result.ts";
import type { Command, TxnLeaseStep, TxnOp, TxnPrepareCommand } from "./command.ts";
import { encodeCommand } from "./command_codec.ts";
import { foreignLeaseId, leaseLockKey } from "./foreign_lease.ts";
import { LEASE_SHARDS_MAX } from "./limits.ts";
import { StateMachine } from "./state_machine.ts";

/** A state machine with a log index counter. */
class Shard {
  readonly sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  index = 0;

  run(command: Command): ApplyResult {
    this.index++;
    const [result] = this.sm.apply([{ index: this.index, data: encodeCommand(command) }]);
    return result!;
  }

  /** Prepares, decides (on the home) and resolves `txnId` with `outcome`. */
  finish(txnId: string, outcome: "commit" | "abort"): ApplyResult {
    const branch = outcome === "commit" ? "success" : null;
    this.run({ type: "txnDecide", txnId, outcome, branch, reason: "" });
    return this.run({ type: "txnResolve", txnId, outcome, branch });
  }
}

/** The API id of lease 1 of shard 0 (grant index 1, shard 0): 1 * 1024 + 0. */
const API_ID = 1024;

function prepare(
  txnId: string,
  shard: number,
  fields: { success?: TxnOp[]; leases: TxnLeaseStep[] },
): TxnPrepareCommand {
  return {
    type: "txnPrepare",
    txnId,
    shard,
    home: shard,
    participants: [shard],
    deadlineMs: 5_000,
    compare: [],
    reads: [],
    success: fields.success ?? [],
    failure: [],
    leases: fields.leases,
  };
}

function put(key: string, lease: number): Command {
  return { type: "put", key, value: "v", lease, prevKv: false };
}

function homeWithLease(): Shard {
  const home = new Shard();
  const granted = home.run({ type: "leaseGrant", ttlSeconds: 60 });
  equal(granted.type, "leaseGrant");
  home.run(put("h", 1));
  return home;
}

Deno.test("an attach step locks the lease on its home and records the holder at commit", () => {
  const home = homeWithLease();
  const attach: TxnLeaseStep = { action: "attach", id: 1, holder: 2, key: "k" };
  const prepared = home.run(prepare("t1", 0, { leases: [attach] }));
  deepEqual(prepared, {
    type: "txnPrepared",
    revision: 3,
    ok: true,
    compareSucceeded: true,
    conflict: null,
    reservedRevision: 3,
    results: { success: [], failure: [] },
  });
  deepEqual(home.sm.intentOf(leaseLockKey(1)), { txnId: "t1", home: 0 });
  // While locked, nothing else attaches to the lease or revokes it on this shard.
  for (const command of [put("x", 1), { type: "leaseRevoke", id: 1 } as const]) {
    equal(home.run(command).type, "locked");
  }
  deepEqual(home.sm.leaseHolders(1), []);
  equal(home.finish("t1", "commit").type, "txnResolved");
  deepEqual(home.sm.leaseHolders(1), [2]);
  equal(home.sm.intentCount(), 0);
  // Its keys on shard 2 would stay behind: the shard alone neither revokes nor expires it.
  const revoke = home.run({ type: "leaseRevoke", id: 1 });
  equal(applyResultError(revoke)?.code, "conflict");
  ok(applyResultError(revoke)?.message.includes("shards 2 hold keys"));
  deepEqual(home.run({ type: "leaseExpire", ids: [1] }), {
    type: "leaseExpire",
    revision: home.index,
    expired: [],
    deleted: 0,
  });
  equal(home.sm.lease(1)?.keys.length, 1);
  // Puts of the lease's own shard go on as before.
  equal(home.run(put("y", 1)).type, "put");
});

Deno.test("an attach step of a lease that does not exist fails and locks nothing", () => {
  const home = new Shard();
  const result = home.run(
    prepare("t1", 0, { leases: [{ action: "attach", id: 7, holder: 2, key: "k" }] }),
  );
  const error = applyResultError(result);
  equal(error?.code, "lease_not_found");
  ok(error?.message.includes('"k"'));
  equal(home.sm.intentCount(), 0);
  equal(home.sm.txnRecord("t1"), null);
});

Deno.test("an aborted attach records no holder and releases the lease", () => {
  const home = homeWithLease();
  home.run(prepare("t1", 0, { leases: [{ action: "attach", id: 1, holder: 3, key: "k" }] }));
  home.finish("t1", "abort");
  deepEqual(home.sm.leaseHolders(1), []);
  equal(home.sm.intentCount(), 0);
  equal(home.run({ type: "leaseRevoke", id: 1 }).type, "leaseRevoke");
});

Deno.test("a lease holds keys on at most LEASE_SHARDS_MAX shards, its home included", () => {
  const home = homeWithLease();
  for (let shard = 1; shard < LEASE_SHARDS_MAX; shard++) {
    const txnId = `t${shard}`;
    const step: TxnLeaseStep = { action: "attach", id: 1, holder: shard, key: "k" };
    equal(home.run(prepare(txnId, 0, { leases: [step] })).type, "txnPrepared");
    home.finish(txnId, "commit");
  }
  equal(home.sm.leaseHolders(1).length, LEASE_SHARDS_MAX - 1);
  const again = { action: "attach", id: 1, holder: 3, key: "k" } as const;
  equal(home.run(prepare("again", 0, { leases: [again] })).type, "txnPrepared");
  home.finish("again", "commit");
  const extra = { action: "attach", id: 1, holder: LEASE_SHARDS_MAX, key: "k" } as const;
  const error = applyResultError(home.run(prepare("extra", 0, { leases: [extra] })));
  equal(error?.code, "limit_exceeded");
  ok(error?.message.includes("LEASE_SHARDS_MAX"));
});

Deno.test("a key of another shard's lease is stored under a stand-in lease", () => {
  const holder = new Shard();
  const standIn = foreignLeaseId(API_ID);
  const success: TxnOp[] = [{ type: "put", key: "k", value: "v", lease: standIn, prevKv: false }];
  equal(holder.run(prepare("t1", 2, { success, leases: [] })).type, "txnPrepared");
  holder.finish("t1", "commit");
  equal(holder.sm.get("k")?.lease, standIn);
  deepEqual(holder.sm.lease(standIn), { id: standIn, ttlSeconds: 0, keys: ["k"] });
  // The lessor never sees a stand-in, and it does not count against LEASES_MAX.
  deepEqual(holder.sm.leases(), []);
});

Deno.test("a revoke step deletes every key of the lease and the lease, on each shard", () => {
  const home = homeWithLease();
  home.run(prepare("a", 0, { leases: [{ action: "attach", id: 1, holder: 2, key: "k" }] }));
  home.finish("a", "commit");
  const holder = new Shard();
  const standIn = foreignLeaseId(API_ID);
  const success: TxnOp[] = ["k", "l"].map((key) => ({
    type: "put",
    key,
    value: "v",
    lease: standIn,
    prevKv: false,
  }));
  holder.run(prepare("a", 2, { success, leases: [] }));
  holder.finish("a", "commit");

  // A revocation that misses a shard holding keys of the lease is refused on the home.
  const missing = home.run(
    prepare("r0", 0, { leases: [{ action: "revoke", id: 1, holders: [] }] }),
  );
  equal(applyResultError(missing)?.code, "conflict");
  equal(home.sm.intentCount(), 0);

  const onHome = home.run(
    prepare("r", 0, { leases: [{ action: "revoke", id: 1, holders: [2] }] }),
  );
  equal(onHome.type, "txnPrepared");
  const onHolder = holder.run(
    prepare("r", 2, { leases: [{ action: "revoke", id: standIn, holders: [] }] }),
  );
  equal(onHolder.type, "txnPrepared");
  // Every key of the lease is locked: readers push, so none sees the keys go one by one.
  deepEqual(holder.sm.intentOf("k"), { txnId: "r", home: 2 });
  deepEqual(holder.sm.intentOf("l"), { txnId: "r", home: 2 });
  deepEqual(home.sm.intentOf("h"), { txnId: "r", home: 0 });
  equal(holder.run({ type: "delete", key: "k", prevKv: false }).type, "locked");

  const resolvedHome = home.finish("r", "commit");
  deepEqual(resolvedHome, {
    type: "txnResolved",
    revision: home.index,
    outcome: "commit",
    results: [],
    revokedLeases: [1],
  });
  equal(home.sm.lease(1), null);
  equal(home.sm.get("h"), null);
  deepEqual(home.sm.leaseHolders(1), []);
  const resolvedHolder = holder.finish("r", "commit");
  equal(resolvedHolder.type === "txnResolved" && resolvedHolder.revokedLeases?.[0], standIn);
  deepEqual(holder.sm.range({ range: { prefix: "" } }).kvs, []);
  equal(holder.sm.lease(standIn), null);
  equal(holder.sm.intentCount() + home.sm.intentCount(), 0);
  // Revoking it again names a lease that is gone.
  const again = home.run(prepare("r2", 0, { leases: [{ action: "revoke", id: 1, holders: [] }] }));
  equal(applyResultError(again)?.code, "lease_not_found");
});

Deno.test("a revoke step meets the intents of another txn on the lease's keys", () => {
  const home = homeWithLease();
  home.run(prepare("w", 0, { success: [{ type: "delete", key: "h", prevKv: false }], leases: [] }));
  const result = home.run(
    prepare("r", 0, { leases: [{ action: "revoke", id: 1, holders: [] }] }),
  );
  deepEqual(result, {
    type: "txnPrepared",
    revision: home.index,
    ok: false,
    reason: "locked",
    key: "h",
    holder: { txnId: "w", home: 0 },
  });
});

Deno.test("a prepare's put names its shard's lease only when it exists", () => {
  const holder = new Shard();
  const standIn = foreignLeaseId(API_ID);
  const success: TxnOp[] = [{ type: "put", key: "k", value: "v", lease: 1, prevKv: false }];
  const missing = holder.run(
    prepare("t", 0, { success, leases: [{ action: "attach", id: 1, holder: 0, key: "k" }] }),
  );
  equal(applyResultError(missing)?.code, "lease_not_found");
  const foreign: TxnOp[] = [{ type: "put", key: "k", value: "v", lease: standIn, prevKv: false }];
  equal(holder.run(prepare("u", 2, { success: foreign, leases: [] })).type, "txnPrepared");
});

Deno.test("a revocation in progress holds off every attach to the lease until it resolves", () => {
  const home = homeWithLease();
  home.run(prepare("r", 0, { leases: [{ action: "revoke", id: 1, holders: [] }] }));
  const attach = { action: "attach", id: 1, holder: 2, key: "k" } as const;
  deepEqual(home.run(prepare("a", 0, { leases: [attach] })), {
    type: "txnPrepared",
    revision: home.index,
    ok: false,
    reason: "locked",
    key: leaseLockKey(1),
    holder: { txnId: "r", home: 0 },
  });
  equal(home.run(put("x", 1)).type, "locked");
  home.finish("r", "commit");
  // Once the revocation committed, the same attach finds no lease.
  equal(applyResultError(home.run(prepare("a", 0, { leases: [attach] })))?.code, "lease_not_found");
  equal(applyResultError(home.run(put("x", 1)))?.code, "lease_not_found");
});
