/**
 * Key-to-shard routing: jump consistent hash (Lamping and Veach, 2014) over the 64-bit FNV-1a
 * hash of the key's UTF-8 bytes.
 *
 * Jump hash needs no table and moves the fewest keys when the shard count grows: going from n
 * to n + 1 shards moves about 1/(n + 1) of the keys, all of them into the new shard, which is
 * what online resharding wants. FNV-1a is computed on two 32-bit halves so that the hot path
 * allocates no BigInt per byte; only the jump loop (about ln(n) rounds) uses BigInt.
 */
import { assert } from "../raft/mod.ts";

/** The most shards jump hash is used with here; the configuration allows no more. */
export const ROUTER_SHARDS_MAX = 1_024;

const FNV_OFFSET_HIGH = 0xcbf29ce4;
const FNV_OFFSET_LOW = 0x84222325;
const FNV_PRIME_LOW = 0x1b3; // The 64-bit prime is 2^40 + 0x1b3.
const TWO_POW_32 = 4_294_967_296;
const encoder = new TextEncoder();

/** The shard that owns `key` when the keyspace has `shardCount` shards. */
export function shardForKey(key: string, shardCount: number): number {
  assert(Number.isSafeInteger(shardCount), "shard count must be an integer");
  assert(shardCount >= 1 && shardCount <= ROUTER_SHARDS_MAX, "shard count out of range");
  if (shardCount === 1) return 0;
  const shard = jumpHash(fnv1a64(encoder.encode(key)), shardCount);
  assert(shard >= 0 && shard < shardCount, "jump hash out of range");
  return shard;
}

/**
 * Every shard id of a keyspace split into `shardCount` shards, in order: 0 to shardCount - 1.
 * The one place that spells out the id range, for fan-out over all shards (status, watches,
 * cross-shard requests).
 */
export function allShardIds(shardCount: number): number[] {
  assert(Number.isSafeInteger(shardCount), "shard count must be an integer");
  assert(shardCount >= 1 && shardCount <= ROUTER_SHARDS_MAX, "shard count out of range");
  const ids = Array.from({ length: shardCount }, (_, shard) => shard);
  assert(ids.length === shardCount, "one id per shard");
  return ids;
}

/** 64-bit FNV-1a of `bytes`, as an unsigned BigInt. */
export function fnv1a64(bytes: Uint8Array): bigint {
  let high = FNV_OFFSET_HIGH;
  let low = FNV_OFFSET_LOW;
  for (let i = 0; i < bytes.length; i++) {
    const mixed = (low ^ bytes[i]!) >>> 0;
    const product = mixed * FNV_PRIME_LOW; // Below 2^41: exact in a double.
    const carry = Math.floor(product / TWO_POW_32);
    low = product % TWO_POW_32;
    high = (Math.imul(high, FNV_PRIME_LOW) + (mixed << 8) + carry) >>> 0;
  }
  return (BigInt(high) << 32n) | BigInt(low);
}

const MASK_64 = (1n << 64n) - 1n;
const JUMP_MULTIPLIER = 2862933555777941757n;

/** Jump consistent hash: maps a 64-bit key to a bucket in [0, buckets). */
export function jumpHash(key: bigint, buckets: number): number {
  assert(key >= 0n && key <= MASK_64, "jump hash key must be an unsigned 64-bit integer");
  assert(Number.isSafeInteger(buckets) && buckets >= 1, "jump hash needs at least one bucket");
  let state = key;
  let bucket = -1;
  let next = 0;
  while (next < buckets) {
    bucket = next;
    state = (state * JUMP_MULTIPLIER + 1n) & MASK_64;
    next = Math.floor((bucket + 1) * (2 ** 31 / (Number(state >> 33n) + 1)));
  }
  return bucket;
}
