/**
 * Forwarded requests carry their caller's deadline, on a real 3-node cluster with one shard
 * (`aspen node --enable-test-faults`). A write sent to a follower is forwarded to the leader;
 * an injected delay on the follower's link to the leader holds the forwarded request past the
 * client's deadline. The client gets `timeout` (504), and the write must never be applied: the
 * follower does not send a request whose caller has given up (before this fix it was sent when
 * the delay ended and the leader applied it).
 *
 * "Never applied" is checked after a deterministic point, not after a sleep: frames on the
 * delayed link keep their order, so once the leader has seen the follower acknowledge an entry
 * written after the failed write, anything the follower sent before (the forwarded request)
 * has arrived; a last write through the leader then orders after it, and a read finds the key
 * absent. The same write without the delay succeeds (the normal path).
 */
import { equal, ok } from "node:assert/strict";
import { ChaosCluster } from "./chaos/cluster.ts";

/** The client API's deadline for every request (server/node/node.ts REQUEST_TIMEOUT_MS). */
const REQUEST_TIMEOUT_MS = 5_000;
/** Longer than the client's deadline: the forwarded request waits past it. */
const DELAY_MS = REQUEST_TIMEOUT_MS + 1_500;
/** How long the leader may take to see the follower's delayed acknowledgement. */
const CATCH_UP_TIMEOUT_MS = DELAY_MS + 20_000;
const CALL_TIMEOUT_MS = 15_000;

interface ShardStatusJson {
  readonly leader: number | null;
  readonly replicas: readonly { readonly node: number; readonly matchIndex: number }[];
}

async function shardStatus(chaos: ChaosCluster, via: number): Promise<ShardStatusJson | null> {
  const answer = await chaos.call(via, { method: "GET", path: "/v1/cluster/status" });
  const shards = answer.json?.shards as readonly ShardStatusJson[] | undefined;
  return answer.status === 200 ? shards?.[0] ?? null : null;
}

async function put(chaos: ChaosCluster, via: number, key: string) {
  return await chaos.call(via, {
    method: "PUT",
    path: `/v1/kv/${key}`,
    body: { value: key },
    timeoutMs: CALL_TIMEOUT_MS,
  });
}

/** Resolves once `leader` has seen `follower` hold the log up to `index`. */
async function untilMatched(
  chaos: ChaosCluster,
  nodes: { leader: number; follower: number },
  index: number,
): Promise<void> {
  const deadline = performance.now() + CATCH_UP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const status = await shardStatus(chaos, nodes.leader);
    equal(status?.leader, nodes.leader, "the leader did not change during the test");
    const match = status.replicas.find((replica) => replica.node === nodes.follower)?.matchIndex;
    if (match !== undefined && match >= index) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Node ${nodes.follower} never acknowledged index ${index} at the leader`);
}

Deno.test({
  name: "a forwarded write held past its deadline is answered timeout and never applied",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const chaos = await ChaosCluster.launch({ nodes: 3, shards: 1 });
    try {
      const leader = (await shardStatus(chaos, 1))?.leader ?? null;
      ok(leader !== null, "the shard has a leader");
      const follower = chaos.nodeIds.find((id) => id !== leader)!;
      const nodes = { leader, follower };
      equal((await put(chaos, follower, "normal")).status, 200, "a forwarded write works");

      await chaos.setFault(follower, leader, { dropProbability: 0, delayMs: DELAY_MS });
      const late = await put(chaos, follower, "late");
      equal(late.status, 504, JSON.stringify(late.json));
      equal((late.json?.error as { code?: string } | undefined)?.code, "timeout");

      const marker = await put(chaos, leader, "marker");
      equal(marker.status, 200);
      await untilMatched(chaos, nodes, marker.json?.revision as number);
      await chaos.clearFaults(follower);
      equal((await put(chaos, leader, "after")).status, 200);
      const read = await chaos.call(leader, { method: "GET", path: "/v1/kv/late" });
      equal(read.status, 404, `the timed-out write was applied: ${JSON.stringify(read.json)}`);
      equal((await put(chaos, follower, "healed")).status, 200, "forwarding works again");
    } finally {
      await chaos.destroy({ keepDir: false });
    }
  },
});
