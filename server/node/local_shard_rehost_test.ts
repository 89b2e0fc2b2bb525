/**
 * A replica hosted again after its previous incarnation was dropped starts empty, and a leader
 * of an older term may still hold progress that counts on the dropped log: its heartbeat's
 * commit index would lie past the empty log (a Raft assertion, "a heartbeat commit is within
 * our match", crashed nodes under the membership nemesis). Opened with a term floor at the
 * drop's term, the empty replica refuses that leader as stale and still follows a current one.
 */
import { equal } from "node:assert/strict";
import { type LogIndex, replicaId, SeededPrng, type Term } from "../../raft/mod.ts";
import { Logger } from "../log.ts";
import { LocalShard } from "./local_shard.ts";

const quiet = new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now });

async function openEmpty(dir: string, termFloor: number): Promise<LocalShard> {
  return await LocalShard.open({
    shard: 3,
    nodeId: 1,
    dir,
    voters: [],
    termFloor,
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
    logger: quiet,
  });
}

function heartbeat(term: number, commit: number) {
  return {
    type: "heartbeat" as const,
    from: replicaId(2),
    to: replicaId(1),
    term: term as Term,
    commit: commit as LogIndex,
    round: 1,
    quiesce: false,
  };
}

Deno.test({
  name: "an empty replica opened at a term floor refuses an older leader's stale heartbeat",
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aspen-rehost-" });
    try {
      const shard = await openEmpty(`${dir}/shard-3`, 6);
      try {
        equal(shard.replica.status().term, 6);
        // A deposed leader of term 4 whose progress says this replica holds index 50.
        shard.replica.deliver(heartbeat(4, 50));
        await new Promise((resolve) => setTimeout(resolve, 20));
        equal(shard.replica.status().term, 6, "the stale leader does not lower the term");
        equal(shard.replica.status().leader, null, "nor is it followed");
        // The current leader (term 6, fresh progress: commit 0 for this replica) is followed.
        shard.replica.deliver(heartbeat(6, 0));
        await new Promise((resolve) => setTimeout(resolve, 20));
        equal(shard.replica.status().leader, 2);
      } finally {
        shard.close();
      }
      // The floor is durable: reopened without one, the replica keeps its term.
      const reopened = await openEmpty(`${dir}/shard-3`, 0);
      try {
        equal(reopened.replica.status().term, 6);
      } finally {
        reopened.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
