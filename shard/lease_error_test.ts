/**
 * Tests of lease errors built from facts: every kind of fault becomes an error whose details
 * give the same fault back (also after the error is rebuilt from code, message and details, as
 * the peer channel does), so that a layer naming leases differently can restate it; errors that
 * are not about one lease give no fault.
 */

import assert from "node:assert/strict";
import { AspenError } from "./errors.ts";
import { leaseError, type LeaseFault, leaseFaultOf } from "./lease_error.ts";
import { LEASE_KEYS_MAX } from "./limits.ts";

const FAULTS: readonly [LeaseFault, RegExp][] = [
  [{ code: "lease_not_found", action: "revoke", lease: 7 }, /^Cannot revoke lease 7: /],
  [{ code: "lease_not_found", action: "keepAlive", lease: 7 }, /^Cannot keep lease 7 alive: /],
  [{ code: "lease_not_found", action: "read", lease: 7 }, /^Cannot read lease 7: /],
  [
    { code: "lease_not_found", action: "attach", lease: 7, key: "k" },
    /^Cannot put key "k": lease 7 does not exist$/,
  ],
  [
    { code: "lease_not_found", action: "compare", lease: 7, key: "k" },
    /^Cannot compare key "k" with lease 7: /,
  ],
  [
    { code: "limit_exceeded", action: "attach", lease: 7, key: "k", keyCount: LEASE_KEYS_MAX },
    new RegExp(`^Cannot put key "k": lease 7 already holds ${LEASE_KEYS_MAX} keys, the limit$`),
  ],
];

Deno.test("leaseError() puts every fact in its details, read back as the fault", async (t) => {
  for (const [fault, message] of FAULTS) {
    await t.step(`${fault.code} ${fault.action}`, () => {
      const error = leaseError(fault);
      assert.equal(error.code, fault.code);
      assert.match(error.message, message);
      assert.equal(error.details.lease, 7);
      assert.deepEqual(leaseFaultOf(error), fault);
      const carried = new AspenError(error.code, error.message, { ...error.details });
      assert.deepEqual(leaseFaultOf(carried), fault, "details survive the peer channel");
      const restated = leaseError({ ...fault, lease: 7 * 1024 + 3 });
      assert.match(restated.message, new RegExp(`lease ${7 * 1024 + 3}\\b`));
      assert.doesNotMatch(restated.message, /lease 7\b/);
    });
  }
});

Deno.test("leaseError() past the key limit names the limit", () => {
  const error = leaseError({
    code: "limit_exceeded",
    action: "attach",
    lease: 3,
    key: "k",
    keyCount: LEASE_KEYS_MAX,
  });
  assert.equal(error.details.limit, LEASE_KEYS_MAX);
  assert.equal(error.details.name, "LEASE_KEYS_MAX");
});

Deno.test("leaseFaultOf() gives null for errors that are not about one lease", async (t) => {
  const cases: [string, AspenError][] = [
    ["another code", new AspenError("bad_request", "x", { action: "revoke", lease: 7 })],
    ["no lease detail", new AspenError("lease_not_found", "Cannot find lease 7: no such lease")],
    [
      "a lease that is not a number",
      new AspenError("lease_not_found", "x", {
        action: "revoke",
        lease: "7",
      }),
    ],
    ["an unknown action", new AspenError("lease_not_found", "x", { action: "steal", lease: 7 })],
    [
      "attach without its key",
      new AspenError("lease_not_found", "x", {
        action: "attach",
        lease: 7,
      }),
    ],
    [
      "a limit without the key count",
      new AspenError("limit_exceeded", "x", {
        action: "attach",
        lease: 7,
        key: "k",
      }),
    ],
    ["a limit on revoke", new AspenError("limit_exceeded", "x", { action: "revoke", lease: 7 })],
    [
      "the key limit of a range delete",
      new AspenError("limit_exceeded", "x", {
        limit: 1000,
        name: "DELETE_RANGE_KEYS_MAX",
      }),
    ],
  ];
  for (const [name, error] of cases) {
    await t.step(name, () => assert.equal(leaseFaultOf(error), null));
  }
});
