/**
 * Routing: FNV-1a 64 against published test vectors and a BigInt oracle, jump hash against a
 * direct transcription of the published algorithm, an even spread of keys over shards, and the
 * minimal-movement property that resharding relies on; allShardIds() spells the id range.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { AssertionError } from "../raft/mod.ts";
import { allShardIds, fnv1a64, jumpHash, ROUTER_SHARDS_MAX, shardForKey } from "./router.ts";

const encoder = new TextEncoder();

function fnvOracle(bytes: Uint8Array): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & ((1n << 64n) - 1n);
  return hash;
}

Deno.test("fnv1a64() matches the published vectors", async (t) => {
  const vectors: [string, bigint][] = [
    ["", 0xcbf29ce484222325n],
    ["a", 0xaf63dc4c8601ec8cn],
    ["foobar", 0x85944171f73967e8n],
  ];
  for (const [text, expected] of vectors) {
    await t.step(JSON.stringify(text), () => equal(fnv1a64(encoder.encode(text)), expected));
  }
});

Deno.test("fnv1a64() agrees with a BigInt oracle on random bytes", () => {
  let seed = 12345;
  for (let n = 0; n < 500; n++) {
    const bytes = new Uint8Array(n % 97);
    for (let i = 0; i < bytes.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      bytes[i] = seed >>> 24;
    }
    equal(fnv1a64(bytes), fnvOracle(bytes));
  }
});

Deno.test("jumpHash() sends key 0 to bucket 0 and stays in range", () => {
  equal(jumpHash(0n, 1), 0);
  equal(jumpHash(0n, 1000), 0);
  for (let key = 1n; key < 2000n; key += 7n) {
    const bucket = jumpHash(key * 0x9e3779b97f4a7c15n & ((1n << 64n) - 1n), 10);
    ok(bucket >= 0 && bucket < 10);
  }
});

Deno.test("shardForKey() spreads keys evenly", () => {
  const shards = 8;
  const counts = new Array<number>(shards).fill(0);
  const keys = 40_000;
  for (let i = 0; i < keys; i++) counts[shardForKey(`user/${i}`, shards)]!++;
  for (const count of counts) {
    ok(Math.abs(count - keys / shards) < keys / shards * 0.05, `uneven spread: ${counts}`);
  }
});

Deno.test("shardForKey() moves only keys into the new shard when one is added", () => {
  const keys = 20_000;
  let moved = 0;
  for (let i = 0; i < keys; i++) {
    const before = shardForKey(`k${i}`, 4);
    const after = shardForKey(`k${i}`, 5);
    if (before !== after) {
      equal(after, 4, "a key moved between old shards");
      moved++;
    }
  }
  ok(Math.abs(moved / keys - 1 / 5) < 0.02, `moved ${moved} of ${keys}`);
});

Deno.test("shardForKey() with one shard is always shard 0", () => {
  equal(shardForKey("anything", 1), 0);
});

Deno.test("allShardIds() lists 0 to count - 1 and refuses counts out of range", () => {
  deepEqual(allShardIds(1), [0]);
  deepEqual(allShardIds(4), [0, 1, 2, 3]);
  equal(allShardIds(ROUTER_SHARDS_MAX).at(-1), ROUTER_SHARDS_MAX - 1);
  throws(() => allShardIds(0), AssertionError);
  throws(() => allShardIds(ROUTER_SHARDS_MAX + 1), AssertionError);
  throws(() => allShardIds(2.5), AssertionError);
});
