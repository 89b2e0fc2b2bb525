/**
 * Key-to-shard routing (`deno bench -A shard/router_bench.ts`): shardForKey() on the
 * benchmark's key shape (`bench/<n>`, 8 to 10 bytes) and on 64-byte keys, for 1 shard (the
 * shortcut), 4 shards (the dev cluster) and 1,024 (ROUTER_SHARDS_MAX, the longest jump loop).
 * Every request routes its key once, so this is a per-request cost. One iteration routes 1,024
 * keys: the cost per key is the time per iteration / 1,024.
 */
import { ROUTER_SHARDS_MAX, shardForKey } from "./router.ts";

const KEYS = Array.from({ length: 1_024 }, (_, i) => `bench/${String(i * 7919 % 10_000)}`);
const LONG_KEYS = KEYS.map((key) => key.padEnd(64, "x"));
let sink = 0;

for (const [label, keys] of [["bench/<n> keys", KEYS], ["64-byte keys", LONG_KEYS]] as const) {
  for (const shards of [1, 4, ROUTER_SHARDS_MAX]) {
    Deno.bench({
      name: `shardForKey, ${label}, ${shards} shard${shards === 1 ? "" : "s"}`,
      group: label,
      baseline: shards === 4,
      fn() {
        for (const key of keys) sink += shardForKey(key, shards);
      },
    });
  }
}

globalThis.addEventListener("unload", () => {
  // Keeps the results observable so the loop is not optimized away.
  if (sink < 0) console.error(sink);
});
