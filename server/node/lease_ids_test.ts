/**
 * Tests of the API's lease ids: every txn op result shape that carries a kv gives its lease
 * the API id (and leaves "no lease" at 0), and a shard's lease error is restated with the API
 * id in its details and its message, while other errors pass unchanged.
 */

import assert from "node:assert/strict";
import {
  AspenError,
  foreignLeaseId,
  type KeyValue,
  LEASE_KEYS_MAX,
  leaseError,
  type TxnOpResult,
} from "../../shard/mod.ts";
import {
  apiKv,
  apiLeaseError,
  apiLeaseId,
  apiLeaseOf,
  apiTxnOpResult,
  LEASE_SHARD_SPAN,
} from "./lease_ids.ts";

const SHARD = 3;
const LOCAL = 5;
const API = LOCAL * LEASE_SHARD_SPAN + SHARD;

function kv(key: string, lease: number): KeyValue {
  return { key, value: "v", version: 1, createRevision: 2, modRevision: 2, lease };
}

Deno.test("apiLeaseId() puts the shard in the low bits", () => {
  assert.equal(apiLeaseId(LOCAL, SHARD), API);
  assert.deepEqual(apiKv(kv("a", LOCAL), SHARD), kv("a", API));
  assert.deepEqual(apiKv(kv("a", 0), SHARD), kv("a", 0), "no lease stays 0");
});

Deno.test("a key of another shard's lease names it by the lease's API id on any shard", () => {
  const standIn = foreignLeaseId(API);
  for (const shard of [0, 1, SHARD]) {
    assert.equal(apiLeaseOf(standIn, shard), API);
    assert.deepEqual(apiKv(kv("a", standIn), shard), kv("a", API));
  }
  const error = leaseError({
    code: "limit_exceeded",
    action: "attach",
    lease: standIn,
    key: "a",
    keyCount: LEASE_KEYS_MAX,
  });
  const restated = apiLeaseError(error, 1);
  assert.equal(restated.details.lease, API);
  assert.ok(restated.message.includes(`lease ${API} `), restated.message);
});

Deno.test("apiTxnOpResult() gives API lease ids to every kv a result carries", async (t) => {
  const cases: [string, TxnOpResult, TxnOpResult][] = [
    [
      "put with prevKv",
      { type: "put", version: 2, prevKv: kv("a", LOCAL) },
      { type: "put", version: 2, prevKv: kv("a", API) },
    ],
    ["put without prevKv", { type: "put", version: 1, prevKv: null }, {
      type: "put",
      version: 1,
      prevKv: null,
    }],
    [
      "delete with prevKv",
      { type: "delete", deleted: 1, prevKv: kv("a", LOCAL) },
      { type: "delete", deleted: 1, prevKv: kv("a", API) },
    ],
    ["get", { type: "get", kv: kv("a", LOCAL) }, { type: "get", kv: kv("a", API) }],
    ["get of a key without a lease", { type: "get", kv: kv("a", 0) }, {
      type: "get",
      kv: kv("a", 0),
    }],
    ["get of an absent key", { type: "get", kv: null }, { type: "get", kv: null }],
    [
      "range",
      { type: "range", kvs: [kv("a", LOCAL), kv("b", 0)], count: 2, more: true, next: "b" },
      { type: "range", kvs: [kv("a", API), kv("b", 0)], count: 2, more: true, next: "b" },
    ],
  ];
  for (const [name, result, expected] of cases) {
    await t.step(name, () => assert.deepEqual(apiTxnOpResult(result, SHARD), expected));
  }
});

Deno.test("apiLeaseError() restates a shard's lease error with the API id", async (t) => {
  const faults = [
    leaseError({ code: "lease_not_found", action: "revoke", lease: LOCAL }),
    leaseError({ code: "lease_not_found", action: "keepAlive", lease: LOCAL }),
    leaseError({ code: "lease_not_found", action: "read", lease: LOCAL }),
    leaseError({ code: "lease_not_found", action: "attach", lease: LOCAL, key: "k" }),
    leaseError({
      code: "limit_exceeded",
      action: "attach",
      lease: LOCAL,
      key: "k",
      keyCount: LEASE_KEYS_MAX,
    }),
  ];
  for (const local of faults) {
    await t.step(`${local.code} ${local.details.action}`, () => {
      // As the peer channel hands it over: code, message and details only.
      const carried = new AspenError(local.code, local.message, local.details);
      const error = apiLeaseError(carried, SHARD);
      assert.equal(error.code, local.code);
      assert.deepEqual(error.details, { ...local.details, lease: API });
      assert.equal(error.message, local.message.replace(`lease ${LOCAL}`, `lease ${API}`));
      assert.doesNotMatch(error.message, new RegExp(`lease ${LOCAL}\\b`));
    });
  }
});

Deno.test("apiLeaseError() leaves errors that name no lease as they are", () => {
  const others = [
    new AspenError("key_not_found", 'Cannot get key "lease 5": it does not exist'),
    new AspenError("limit_exceeded", "Cannot grant lease: 5 leases", { limit: 5, name: "X" }),
    new AspenError("lease_not_found", "Cannot find lease 5: no such lease"),
  ];
  for (const error of others) assert.equal(apiLeaseError(error, SHARD), error);
});
