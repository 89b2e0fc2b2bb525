/**
 * ClusterRouter's follower reads, with a fake local replica and a fake leader: a linearizable
 * read on a follower asks the leader for a read index and runs only once the local replica has
 * applied it (a replica that lags must not answer); any failure of that path forwards the read
 * to the leader instead; serializable reads, writes and reads on the leader never ask for a
 * read index.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import {
  ClusterRouter,
  FOLLOWER_READ_LAG_ENTRIES_MAX,
  type RouterOptions,
} from "./cluster_router.ts";
import type { LocalShard } from "./local_shard.ts";
import { Logger } from "../log.ts";
import { decodeShardRequest, encodeShardResponse, type ShardRequest } from "./shard_request.ts";

interface Fake {
  readonly router: ClusterRouter;
  /** Kinds of requests the leader received, in order. */
  readonly atLeader: string[];
  /** Requests the local replica executed. */
  readonly local: ShardRequest[];
  applied: number;
  readIndex: number | AspenError;
  readonly release: () => void;
}

function fake(options: { leader: number; nodeId?: number }): Fake {
  const waiters: { index: number; resolve: () => void }[] = [];
  const state: Fake = {
    router: undefined as unknown as ClusterRouter,
    atLeader: [],
    local: [],
    applied: 0,
    readIndex: 0,
    release: () => {
      for (const waiter of waiters.splice(0)) {
        if (waiter.index <= state.applied) waiter.resolve();
        else waiters.push(waiter);
      }
    },
  };
  const shard = {
    shard: 0,
    replica: { leader: () => options.leader },
    stateMachine: { appliedIndex: () => state.applied },
    waitApplied: (index: number) => {
      if (state.applied >= index) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.push({ index, resolve });
      return promise;
    },
    execute: (request: ShardRequest) => {
      state.local.push(request);
      return Promise.resolve({ servedBy: "local", applied: state.applied });
    },
  } as unknown as LocalShard;
  const router = new ClusterRouter({
    nodeId: options.nodeId ?? 1,
    members: [1, 2, 3],
    replicationFactor: 3,
    local: new Map([[0, shard]]),
    peers: {
      isConnected: () => true,
      request: (_to, _shard, payload) => {
        const request = decodeShardRequest(payload);
        state.atLeader.push(request.kind);
        if (request.kind !== "readIndex") {
          return Promise.resolve(encodeShardResponse({ servedBy: "leader" }));
        }
        const answer = state.readIndex;
        if (answer instanceof AspenError) return Promise.reject(answer);
        return Promise.resolve(encodeShardResponse(answer));
      },
    },
    nowMs: () => performance.now(),
    logger: new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 }),
  });
  return Object.assign(state, { router });
}

const GET: ShardRequest = { kind: "get", key: "a", serializable: false };

Deno.test("ClusterRouter: a follower read waits until the read index is applied", async () => {
  const f = fake({ leader: 2 });
  f.applied = 5;
  f.readIndex = 9;
  let isDone = false;
  const read = f.router.execute(0, GET, performance.now() + 5_000).then((value) => {
    isDone = true;
    return value;
  });
  for (let i = 0; i < 10; i++) await Promise.resolve();
  deepEqual(f.atLeader, ["readIndex"]);
  equal(isDone, false, "a replica at 5 must not answer a read at read index 9");
  f.applied = 8;
  f.release();
  for (let i = 0; i < 10; i++) await Promise.resolve();
  equal(isDone, false, "still behind");
  f.applied = 9;
  f.release();
  deepEqual(await read, { servedBy: "local", applied: 9 });
  deepEqual(f.local, [{ ...GET, serializable: true }]);
  equal(f.router.stats.followerReads, 1);
});

Deno.test("ClusterRouter: a follower far behind the read index forwards the read", async () => {
  const far = fake({ leader: 2 });
  far.applied = 100;
  far.readIndex = 100 + FOLLOWER_READ_LAG_ENTRIES_MAX + 1;
  deepEqual(await far.router.execute(0, GET, performance.now() + 5_000), { servedBy: "leader" });
  deepEqual(far.atLeader, ["readIndex", "get"], "the read went to the leader, not waiting");
  equal(far.router.stats.followerReadFallbacks, 1);
  equal(far.local.length, 0);
  // At the bound the follower waits for its replica and serves the read itself.
  const near = fake({ leader: 2 });
  near.applied = 100;
  near.readIndex = 100 + FOLLOWER_READ_LAG_ENTRIES_MAX;
  const read = near.router.execute(0, GET, performance.now() + 5_000);
  for (let i = 0; i < 10; i++) await Promise.resolve();
  near.applied = near.readIndex;
  near.release();
  deepEqual(await read, { servedBy: "local", applied: near.readIndex });
  deepEqual(near.atLeader, ["readIndex"]);
});

Deno.test("ClusterRouter: a failed follower read is forwarded to the leader", async () => {
  const f = fake({ leader: 2 });
  f.readIndex = new AspenError("not_leader", "Not the leader", { leader: 3 });
  deepEqual(await f.router.execute(0, GET, performance.now() + 5_000), { servedBy: "leader" });
  deepEqual(f.atLeader, ["readIndex", "get"]);
  equal(f.router.stats.followerReadFallbacks, 1);
  equal(f.local.length, 0);
});

Deno.test("ClusterRouter: only linearizable reads on a follower ask for a read index", async () => {
  const follower = fake({ leader: 2 });
  await follower.router.execute(0, { ...GET, serializable: true }, performance.now() + 5_000);
  await follower.router.execute(0, { kind: "leaseInfo", id: 1 }, performance.now() + 5_000);
  deepEqual(follower.atLeader, ["leaseInfo"], "lease reads need the leader's lessor");
  const leader = fake({ leader: 1 });
  await leader.router.execute(0, GET, performance.now() + 5_000);
  deepEqual(leader.atLeader, [], "the leader reads locally");
  deepEqual(leader.local, [GET], "with its own ReadIndex");
});

/** A router at node 1 of members 1-3 hosting no replica, over the given peer channel. */
function remoteRouter(peers: RouterOptions["peers"]): ClusterRouter {
  return new ClusterRouter({
    nodeId: 1,
    members: [1, 2, 3],
    replicationFactor: 3,
    local: new Map(),
    peers,
    nowMs: () => performance.now(),
    logger: new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 }),
  });
}

Deno.test("ClusterRouter: a leader named by a replica is tried, listed or not", async () => {
  // Node 1's list of shard 0's replicas is stale (1, 2, 3): node 4 joined and leads it now.
  const asked: number[] = [];
  const router = remoteRouter({
    isConnected: () => true,
    request: (to) => {
      asked.push(to);
      if (to === 4) return Promise.resolve(encodeShardResponse({ servedBy: 4 }));
      const notLeader = new AspenError("not_leader", "not the leader (node 4 is)", {
        shard: 0,
        leader: 4,
      });
      return Promise.reject(notLeader);
    },
  });
  const answer = await router.execute<{ servedBy: number }>(
    0,
    { kind: "metaSwap", name: "members", expected: null, value: "{}" },
    performance.now() + 1_000,
  );
  deepEqual(answer, { servedBy: 4 });
  equal(asked.at(-1), 4);
  equal(router.leaderOf(0), 4, "the hint is kept for the next request");
});

/**
 * A router whose node 2 leads shard 0 and never answers (killed or paused), and whose node 3
 * answers every request; `down` is what the node's liveness says of each node.
 */
function silentLeader(): {
  router: ClusterRouter;
  asked: number[];
  down: Set<number>;
  /** Ends every request waiting at node 2 as the transport does at its deadline. */
  timeOut: () => void;
} {
  const asked: number[] = [];
  const down = new Set<number>();
  const waiting: ((error: Error) => void)[] = [];
  const router = remoteRouter({
    isConnected: (node) => !down.has(node),
    request: (to) => {
      asked.push(to);
      if (to === 3) return Promise.resolve(encodeShardResponse({ servedBy: 3 }));
      // Node 2 never answers.
      return new Promise<Uint8Array>((_resolve, reject) => waiting.push(reject));
    },
  });
  const timeOut = () => {
    for (const reject of waiting.splice(0)) {
      reject(new AspenError("timeout", "no response within the deadline"));
    }
  };
  return { router, asked, down, timeOut };
}

const PUT: ShardRequest = { kind: "metaSwap", name: "members", expected: null, value: "{}" };

Deno.test("ClusterRouter: a write in flight to a node that goes down fails now", async () => {
  const { router, asked, down, timeOut } = silentLeader();
  const deadline = performance.now() + 60_000;
  const write = router.execute(0, PUT, deadline).then(
    () => null,
    (error: unknown) => error,
  );
  const read = router.execute<{ servedBy: number }>(0, GET, deadline);
  await Promise.resolve();
  deepEqual(asked, [2, 2], "both went to the first replica");
  down.add(2);
  router.peerDown(2, 1_000);
  const error = await write;
  ok(error instanceof AspenError, `the write failed: ${error}`);
  equal(error.code, "shard_unavailable");
  equal(error.details.isNotSent, undefined, "sent: its outcome is unknown, it is not retried");
  match(error.message, /node 2 .*silent for 1000 ms.*outcome of a write is unknown/);
  deepEqual(await read, { servedBy: 3 }, "a read is retried on another replica");
  equal(router.stats.abandonedOnPeerDown, 2);
  // Once its connection is down nothing is sent there: a new write goes to the next replica.
  asked.length = 0;
  deepEqual(await router.execute(0, PUT, performance.now() + 60_000), { servedBy: 3 });
  deepEqual(asked, [3]);
  router.peerDown(2, 1_000);
  equal(router.stats.abandonedOnPeerDown, 2, "nothing was in flight there any more");
  timeOut(); // The transport's own deadline ends what waited there (nothing observes it now).
});

Deno.test("ClusterRouter: a request its deadline ended is not failed again", async () => {
  const { router, timeOut } = silentLeader();
  const write = router.execute(0, PUT, performance.now() + 60_000).catch((error) => error);
  await Promise.resolve();
  timeOut();
  const error = await write;
  ok(error instanceof AspenError && error.code === "timeout", `the deadline ended it: ${error}`);
  router.peerDown(2, 1_000);
  equal(router.stats.abandonedOnPeerDown, 0, "a request that ended is no longer in flight");
});
