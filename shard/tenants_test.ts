/**
 * Tenant placement (shard/tenants.ts) and its ownership on a shard's state machine: keys under
 * a tenant's prefix go to the tenant's shard, names are checked, and a tenant move fences,
 * hands off and cleans up like a shard move, with a stale driver's step refused by its stage.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import type { ApplyResult } from "./apply_result.ts";
import { applyResultError } from "./apply_result.ts";
import type { Command } from "./command.ts";
import { decodeCommand, encodeCommand } from "./command_codec.ts";
import {
  MOVE_STAGES_PER_EPOCH,
  type Ownership,
  ownsKey,
  rangeOwner,
  servesRange,
} from "./ownership.ts";
import { shardForKey } from "./router.ts";
import { StateMachine } from "./state_machine.ts";
import {
  placeKey,
  TENANT_NAME_LENGTH_MAX,
  tenantOfKey,
  TENANTS_MAX,
  validateTenantName,
  validateTenantShards,
} from "./tenants.ts";

Deno.test("placeKey() puts a tenant's keys on its shard and every other key by hash", async (t) => {
  const tenants = { acme: 3, "acme-eu": 1 };
  const cases: [string, string, number][] = [
    ["a key under the prefix", "acme/orders/1", 3],
    ["a name that starts another name", "acme-eu/x", 1],
    ["the bare name (no '/')", "acme", shardForKey("acme", 4)],
    ["an unknown tenant's prefix", "zeta/x", shardForKey("zeta/x", 4)],
    ["a longer first segment", "acmex/1", shardForKey("acmex/1", 4)],
    ["a leading '/'", "/acme/1", shardForKey("/acme/1", 4)],
    ["a prototype name", "constructor/1", shardForKey("constructor/1", 4)],
  ];
  for (const [name, key, shard] of cases) {
    await t.step(name, () => equal(placeKey(key, 4, tenants), shard));
  }
  equal(placeKey("acme/1", 4), shardForKey("acme/1", 4), "no tenants: hash");
  equal(tenantOfKey("acme/1", tenants), "acme");
  equal(tenantOfKey("acme", tenants), null);
});

Deno.test("validateTenantName() refuses empty, long, '/' and odd names", async (t) => {
  const bad: [string, unknown][] = [
    ["empty", ""],
    ["not a string", 7],
    ["a slash", "a/b"],
    ["a space", "a b"],
    ["a NUL", "a\u0000"],
    ["a dot", "."],
    ["two dots", ".."],
    ["too long", "x".repeat(TENANT_NAME_LENGTH_MAX + 1)],
  ];
  for (const [name, value] of bad) {
    await t.step(name, () => throws(() => validateTenantName(value, "create a tenant")));
  }
  validateTenantName("x".repeat(TENANT_NAME_LENGTH_MAX), "create a tenant");
  validateTenantName("Acme_1.eu-west", "create a tenant");
});

Deno.test("validateTenantShards() checks shards against the count and TENANTS_MAX", () => {
  deepEqual(validateTenantShards({ a: 0, b: 2 }, 3), { a: 0, b: 2 });
  throws(() => validateTenantShards({ a: 3 }, 3), /not one of 0 to 2/);
  throws(() => validateTenantShards({ a: -1 }, 3));
  throws(() => validateTenantShards([], 3));
  const many = Object.fromEntries(
    Array.from({ length: TENANTS_MAX + 1 }, (_, i) => [`t${i}`, 0]),
  );
  throws(() => validateTenantShards(many, 1), /TENANTS_MAX/);
});

class Shard {
  readonly sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  index = 0;

  run(command: Command): ApplyResult {
    this.index++;
    const [result] = this.sm.apply([{ index: this.index, data: encodeCommand(command) }]);
    return result!;
  }

  code(command: Command): string | null {
    return applyResultError(this.run(command))?.code ?? null;
  }
}

function put(key: string, value = "v"): Command {
  return { type: "put", key, value, lease: 0, prevKv: false };
}

const STAGE = 5 * MOVE_STAGES_PER_EPOCH;
const BEFORE = {};
const AFTER = { acme: 1 };
/** Shard 0 (source) and 1 (target) of 2, moving tenant "acme" from hash to shard 1. */
const SOURCE_FENCED: Ownership = {
  shard: 0,
  readCount: 2,
  writeCount: 2,
  isActive: true,
  isSettled: true,
  copyPass: 0,
  readTenants: BEFORE,
  writeTenants: AFTER,
  stage: STAGE + 1,
};
const SOURCE_HANDED_OFF: Ownership = {
  ...SOURCE_FENCED,
  readTenants: AFTER,
  isSettled: false,
  stage: STAGE + 3,
};
const TARGET_FILLING: Ownership = {
  shard: 1,
  readCount: 2,
  writeCount: 2,
  isActive: true,
  isSettled: false,
  copyPass: 1,
  readTenants: BEFORE,
  writeTenants: BEFORE,
  stage: STAGE,
};
const TARGET_HANDED_OFF: Ownership = {
  ...TARGET_FILLING,
  readTenants: AFTER,
  writeTenants: AFTER,
  isSettled: true,
  copyPass: 0,
  stage: STAGE + 3,
};

Deno.test("ownership with tenants round-trips through the codec; without, as before", () => {
  for (const ownership of [SOURCE_FENCED, TARGET_HANDED_OFF]) {
    deepEqual(decodeCommand(encodeCommand({ type: "ownership", ownership })), {
      type: "ownership",
      ownership,
    });
  }
  const plain = { ...TARGET_FILLING };
  delete (plain as { readTenants?: unknown }).readTenants;
  delete (plain as { writeTenants?: unknown }).writeTenants;
  delete (plain as { stage?: unknown }).stage;
  deepEqual(decodeCommand(encodeCommand({ type: "ownership", ownership: plain })), {
    type: "ownership",
    ownership: plain,
  });
});

Deno.test("ownsKey() follows the record's tenants for reads and writes", () => {
  const tenantKey = "acme/1";
  const hashedHere = ["k1", "k2", "k3", "k4", "k5"].find((key) => shardForKey(key, 2) === 0)!;
  const hashedThere = ["acme/1", "acme/2", "acme/3"].find((key) => shardForKey(key, 2) === 0)!;
  equal(ownsKey(SOURCE_FENCED, hashedThere, "read"), true, "read by hash while fenced");
  equal(ownsKey(SOURCE_FENCED, hashedThere, "write"), false, "written on the tenant's shard");
  equal(ownsKey(SOURCE_FENCED, hashedHere, "write"), true);
  equal(ownsKey(TARGET_FILLING, tenantKey, "read"), shardForKey(tenantKey, 2) === 1);
  equal(ownsKey(TARGET_HANDED_OFF, tenantKey, "read"), true);
  equal(ownsKey(TARGET_HANDED_OFF, tenantKey, "write"), true);
  equal(ownsKey({ ...TARGET_HANDED_OFF, shard: 0 }, tenantKey, "write"), false);
});

Deno.test("a tenant move on the state machines: fence, import, hand-off, clean-up", () => {
  const source = new Shard();
  const target = new Shard();
  const tenantKeys = Array.from({ length: 30 }, (_, i) => `acme/${i}`)
    .filter((key) => shardForKey(key, 2) === 0);
  const others = Array.from({ length: 30 }, (_, i) => `other/${i}`)
    .filter((key) => shardForKey(key, 2) === 0);
  ok(tenantKeys.length > 3 && others.length > 3);
  for (const key of [...tenantKeys, ...others]) source.run(put(key));
  target.run(put("mine"));
  equal(target.code({ type: "ownership", ownership: TARGET_FILLING }), null);
  // The target serves its own keys meanwhile, refuses the tenant's and range reads.
  equal(target.code(put("mine", "again")), null);
  equal(target.code(put(tenantKeys[0]!)), "wrong_shard");
  equal(target.code({ type: "deleteRange", range: { prefix: "m" } }), "wrong_shard");
  const kvs = tenantKeys.map((key) => {
    const kv = source.sm.get(key)!;
    return {
      key,
      value: kv.value,
      version: kv.version,
      createRevision: kv.createRevision,
      lease: 0,
    };
  });
  equal(target.code({ type: "import", pass: 1, kvs, deletes: [] }), null);
  equal(target.code({ type: "import", pass: 2, kvs, deletes: [] }), "bad_request");
  // Range reads go on meanwhile, leaving out the copied keys the target does not own yet.
  equal(servesRange(target.sm.ownership(), 2), true);
  const everything = { range: { prefix: "" }, owner: rangeOwner(target.sm.ownership()) };
  deepEqual(target.sm.range(everything).kvs.map((kv) => kv.key), ["mine"]);
  equal(target.sm.range({ ...everything, countOnly: true }).count, 1);
  equal(target.sm.range({ ...everything, limit: 1 }).more, false);
  equal(source.code({ type: "ownership", ownership: SOURCE_FENCED }), null);
  equal(source.code(put(tenantKeys[0]!, "late")), "wrong_shard", "the tenant's keys fenced");
  equal(source.code(put(others[0]!, "fine")), null);
  equal(source.code({ type: "ownership", ownership: SOURCE_HANDED_OFF }), null);
  equal(target.code({ type: "ownership", ownership: TARGET_HANDED_OFF }), null);
  const handedOff = { range: { prefix: "" }, owner: rangeOwner(target.sm.ownership()) };
  equal(target.sm.range(handedOff).count, tenantKeys.length + 1, "the tenant's keys are its own");
  // The source holds keys it gave away: a plan made before the flip (same count, the tenant on
  // the source) is refused; one made under the flipped map gets the keys it still owns.
  const moveEpoch = Math.floor(STAGE / MOVE_STAGES_PER_EPOCH);
  // The target reads by the flipped map from its hand-off on: a plan made before the flip would
  // find the tenant's keys on the source too (read before its hand-off), so it is refused.
  equal(servesRange(target.sm.ownership(), 2, moveEpoch), false, "the target: a plan before");
  equal(servesRange(target.sm.ownership(), 2, moveEpoch + 1), true, "the target: a plan after");
  equal(servesRange(source.sm.ownership(), 2), false, "a plan without an epoch");
  equal(servesRange(source.sm.ownership(), 2, moveEpoch), false, "a plan before the flip");
  equal(servesRange(source.sm.ownership(), 2, moveEpoch + 1), true, "a plan after the flip");
  const sourceKeys = source.sm.range({
    range: { prefix: "" },
    owner: rangeOwner(source.sm.ownership()),
  }).kvs.map((kv) => kv.key);
  deepEqual(sourceKeys.filter((key) => tenantKeys.includes(key)), [], "none of the tenant's");
  equal(target.code(put(tenantKeys[0]!, "new")), null);
  equal(target.sm.get(tenantKeys[0]!)?.version, 2, "the version went on from the copy");
  equal(target.code({ type: "import", pass: 1, kvs, deletes: [] }), "bad_request");
  equal(target.code({ type: "ownership", ownership: TARGET_FILLING }), "bad_request", "stale");
  equal(source.code({ type: "ownership", ownership: SOURCE_FENCED }), "bad_request", "stale");
  while (source.sm.ownership()?.isSettled !== true) source.run({ type: "dropMoved", limit: 4 });
  for (const key of tenantKeys) equal(source.sm.get(key), null);
  for (const key of others) ok(source.sm.get(key) !== null);
  equal(source.code({ type: "ownership", ownership: SOURCE_HANDED_OFF }), "bad_request");
  const next = { ...SOURCE_HANDED_OFF, isSettled: true, stage: STAGE + MOVE_STAGES_PER_EPOCH };
  equal(source.code({ type: "ownership", ownership: next }), null, "a later move goes on");
});

Deno.test("an import takes a lease of the shard itself (a tenant back home)", () => {
  const home = new Shard();
  const granted = home.run({ type: "leaseGrant", ttlSeconds: 60 });
  equal(granted.type, "leaseGrant");
  const lease = granted.type === "leaseGrant" ? granted.lease.id : 0;
  equal(home.code({ type: "ownership", ownership: TARGET_FILLING }), null);
  const kv = { key: "acme/1", value: "x", version: 3, createRevision: 9 };
  equal(home.code({ type: "import", pass: 1, kvs: [{ ...kv, lease }], deletes: [] }), null);
  equal(home.sm.get("acme/1")?.lease, lease);
  deepEqual(home.sm.lease(lease)?.keys, ["acme/1"]);
  const unknown = { ...kv, key: "acme/2", lease: lease + 1_000 };
  equal(home.code({ type: "import", pass: 1, kvs: [unknown], deletes: [] }), "bad_request");
});
