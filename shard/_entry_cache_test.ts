/**
 * EntryCache against a model: a seeded random sequence of appends (at the end, over a
 * conflicting suffix, after a gap), compactions and clears, where every term and slice the
 * cache answers must equal the model log's, every range of the last written run must be
 * answered, and the cache must stay within its bounds. Plus the byte rule of slice().
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { type Entry, type LogIndex, SeededPrng, type Term } from "../raft/mod.ts";
import { ENTRY_CACHE_BYTES_MAX, ENTRY_CACHE_ENTRIES_MAX, EntryCache } from "./_entry_cache.ts";

function entry(index: number, term: number, bytes = 8): Entry {
  return {
    index: index as LogIndex,
    term: term as Term,
    type: "normal",
    data: new Uint8Array(bytes),
  };
}

Deno.test("EntryCache answers like the log it shadows", () => {
  const prng = new SeededPrng(7);
  const model: Entry[] = []; // model[index], indexes from 1
  let last = 0;
  let compacted = 0;
  let runStart = 1;
  const cache = new EntryCache();
  for (let step = 0; step < 3_000; step++) {
    const choice = prng.nextInt(100);
    if (choice < 80) {
      // Usually at the end; sometimes over a suffix; rarely after a gap (a new run).
      const roll = prng.nextInt(20);
      const first = roll === 0
        ? last + 2 + prng.nextInt(5)
        : roll < 4
        ? Math.max(compacted + 1, last - prng.nextInt(10))
        : last + 1;
      const count = 1 + prng.nextInt(roll === 5 ? 3_000 : 40);
      const term = 1 + Math.floor(step / 100);
      const written = Array.from({ length: count }, (_, i) => entry(first + i, term));
      model.length = first;
      for (const item of written) model[item.index] = item;
      if (first !== last + 1) runStart = first;
      last = first + count - 1;
      cache.append(written);
    } else if (choice < 95) {
      compacted = Math.min(last, compacted + prng.nextInt(50));
      cache.dropThrough(compacted);
    } else {
      cache.clear();
      runStart = last + 1;
    }
    ok(cache.size <= ENTRY_CACHE_ENTRIES_MAX, "the cache is bounded");
    for (let probe = 0; probe < 5; probe++) {
      const low = Math.max(compacted + 1, last - prng.nextInt(200));
      const high = Math.min(last + 1, low + prng.nextInt(50));
      if (low > high) continue;
      const slice = cache.slice(low as LogIndex, high as LogIndex, Number.MAX_SAFE_INTEGER);
      if (slice !== null) deepStrictEqual(slice, model.slice(low, high));
      const term = cache.term(low);
      if (term !== null) equal(term, model[low]?.term);
      const isRecent = low > Math.max(compacted, runStart, last - ENTRY_CACHE_ENTRIES_MAX / 2);
      if (isRecent && low < high) ok(slice !== null, `recent range [${low}, ${high}) is cached`);
    }
  }
});

Deno.test("EntryCache.slice keeps the storage's byte rule and its bound", () => {
  const cache = new EntryCache();
  cache.append([entry(1, 1, 100), entry(2, 1, 100), entry(3, 1, 100)]);
  deepStrictEqual(cache.slice(1 as LogIndex, 4 as LogIndex, 250)?.map((e) => e.index), [1, 2]);
  deepStrictEqual(cache.slice(1 as LogIndex, 4 as LogIndex, 10)?.map((e) => e.index), [1]);
  equal(cache.slice(1 as LogIndex, 5 as LogIndex, 1_000), null, "past the end");
  const big = new EntryCache();
  const size = Math.floor(ENTRY_CACHE_BYTES_MAX / 4) + 1;
  big.append(Array.from({ length: 8 }, (_, i) => entry(i + 1, 1, size)));
  ok(big.size < 8 && big.size >= 1, `bytes bound the cache (${big.size} kept)`);
  equal(big.term(8), 1, "the newest entry is always kept");
  equal(big.term(1), null);
});
