/**
 * The lease-id encoding of the contract: an id carries its shard in the low bits, and
 * leaseIdParts() undoes apiLeaseId() for every valid id while refusing ids no grant could make.
 */
import { deepEqual, equal } from "node:assert/strict";
import { apiLeaseId, LEASE_SHARD_SPAN, leaseIdParts } from "./lease_id.ts";

Deno.test("leaseIdParts() undoes apiLeaseId() and refuses impossible ids", async (t) => {
  equal(apiLeaseId(5, 3), 5 * LEASE_SHARD_SPAN + 3);
  const cases: { name: string; id: number; want: ReturnType<typeof leaseIdParts> }[] = [
    { name: "a lease of shard 3", id: apiLeaseId(5, 3), want: { shard: 3, grantIndex: 5 } },
    { name: "the last shard", id: apiLeaseId(1, 1023), want: { shard: 1023, grantIndex: 1 } },
    { name: "grant index 0 (no grant has it)", id: 7, want: null },
    { name: "zero", id: 0, want: null },
    { name: "negative", id: -1025, want: null },
    { name: "a fraction", id: 1024.5, want: null },
    { name: "past the safe integers", id: 2 ** 53, want: null },
  ];
  for (const item of cases) {
    await t.step(item.name, () => deepEqual(leaseIdParts(item.id), item.want));
  }
});
