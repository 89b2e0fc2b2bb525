/**
 * LocalShard reports each change of its replica's role, term or known leader to
 * `onLeaderChange` (the node counts them: the rebalance driver's watch key moves with them, so
 * a new leader somewhere leads to a pass without the key visiting every shard): a one-voter
 * shard ticked until it leads reports at least its election.
 */
import { ok } from "node:assert/strict";
import { SeededPrng } from "../../raft/mod.ts";
import { Logger } from "../log.ts";
import { LocalShard } from "./local_shard.ts";

const quiet = new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now });

Deno.test({
  name: "LocalShard calls onLeaderChange when its replica becomes leader",
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aspen-leader-change-" });
    let changes = 0;
    const shard = await LocalShard.open({
      shard: 1,
      nodeId: 1,
      dir: `${dir}/shard-1`,
      voters: [1],
      raft: {
        electionTicks: 10,
        heartbeatTicks: 2,
        prng: new SeededPrng(1),
        preVote: true,
        checkQuorum: true,
        leaseReads: false,
      },
      tickMs: 0,
      send: () => {},
      nowMs: () => performance.now(),
      isPeerUp: () => true,
      onLeaderChange: () => changes++,
      logger: quiet,
    });
    try {
      // Bounded by rounds, not time: a loaded machine (CI) may need many rounds of 5 ms.
      for (let i = 0; i < 2_000 && shard.replica.status().role !== "leader"; i++) {
        shard.replica.tickNow();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      ok(shard.replica.status().role === "leader", "the one voter elected itself");
      ok(changes >= 1, `reported ${changes} changes`);
    } finally {
      shard.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
