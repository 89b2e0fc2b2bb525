/**
 * `deno run -A --unstable-net bench/reshard.ts [--mib N] [--value-bytes B]`: the cost of
 * `aspen shard add` (issue 14). Starts 3 nodes with 2 shards, loads N MiB of values, then runs
 * a put workload (bench/admin_action.ts: PUT_CLIENTS clients, 256-byte values) throughout:
 * WINDOW_MS before the move, during it (`POST /v1/shards` with `{"count": 1}` until the move is
 * done) and WINDOW_MS after. Prints the move's time, the bytes it moved (keys plus values), the
 * time per GiB, and the put throughput and p99 of each window. Every process shares the
 * machine's CPU.
 */
import type { ShardMovesResponse } from "../api/mod.ts";
import { LocalCluster } from "../cli/mod.ts";
import { loadSizeArgs, measureAroundAction, print, sleep } from "./admin_action.ts";

const ROOT = new URL("../", import.meta.url).pathname;

const size = loadSizeArgs("bench/reshard.ts");
const dir = await Deno.makeTempDir({ prefix: "aspen-reshard-bench-" });
const cluster = await LocalCluster.launch({
  dir,
  nodes: 3,
  shards: 2,
  selfCommand: [Deno.execPath(), "run", "-A", "--unstable-net", `${ROOT}main.ts`],
  randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
  logLevel: "warn",
  onLine: () => {},
});
await measureAroundAction({
  cluster,
  dir,
  size,
  // Adds one shard and waits for the move to be done; the bytes it moved (keys plus values).
  action: async (client) => {
    await client.request({ method: "POST", path: "/v1/shards", body: { count: 1 } });
    for (;;) {
      const { move } = await client.request<ShardMovesResponse>({
        method: "GET",
        path: "/v1/shards/moves",
      });
      if (move?.phase === "done") {
        return move.sources.reduce((sum, source) => sum + source.bytesTotal, 0);
      }
      await sleep(100);
    }
  },
  report: ({ result: moved, actionMs }) => {
    const gib = moved / 1024 ** 3;
    print(
      `shard add 2 -> 3: ${(actionMs / 1000).toFixed(1)} s for ` +
        `${(moved / 1024 ** 2).toFixed(1)} MiB moved: ` +
        `${(actionMs / 1000 / gib).toFixed(0)} s per GiB`,
    );
    return Promise.resolve();
  },
});
