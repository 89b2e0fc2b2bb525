/**
 * The mover's part of placement (issue 14): after a shard move the node opens its replicas of
 * the new shards, as placement decides, and never a replica of a configured shard that its
 * `local_shards` leaves out. The mover runs one check over fakes: a router that answers
 * nothing (no move record), a shard map of six shards, and an opener that records the shards.
 */
import { deepEqual, equal } from "node:assert/strict";
import { Logger } from "../log.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import type { LocalShard } from "./local_shard.ts";
import { hostsShard } from "./placement.ts";
import { ShardMapView } from "./shard_map.ts";
import { ShardMover } from "./shard_mover.ts";

const MEMBERS = [1, 2, 3];

/** The shards node 1 opens on one check, configured with `localShards` over three shards. */
async function openedAfterCheck(localShards: readonly number[] | null): Promise<number[]> {
  const opened: number[] = [];
  const shards = new Map<number, LocalShard>();
  for (const shard of localShards ?? [0, 2]) shards.set(shard, fakeShard());
  // The node starts with the configured map; a shard add since then (read later) made six.
  const configured = { epoch: 1, numShards: 3, members: MEMBERS, replicationFactor: 2 };
  const view = new ShardMapView({
    initial: configured,
    read: () => Promise.resolve(null),
    nowMs: () => 0,
  });
  const router = {
    nodeId: 1,
    execute: () => Promise.reject(new Error("no cluster in this test")),
  } as unknown as ClusterRouter;
  const mover = new ShardMover({
    nodeId: 1,
    members: MEMBERS,
    replicationFactor: 2,
    localShards,
    configuredCount: 3,
    shards,
    router,
    view,
    openShard: (shard) => {
      opened.push(shard);
      return Promise.resolve(fakeShard());
    },
    maxShards: 1_024,
    logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: () => 0 }),
    nowMs: () => 0,
    wallMs: () => 0,
  });
  view.adopt({ ...configured, epoch: 2, numShards: 6 });
  await mover.check();
  mover.close();
  return opened;
}

function fakeShard(): LocalShard {
  return {
    stateMachine: { getMeta: () => null },
    replica: { status: () => ({ role: "follower" }) },
    close: () => {},
  } as unknown as LocalShard;
}

Deno.test("with local_shards a node opens the new shards placed on it, no other", async () => {
  // Factor 2 over nodes 1-3: shard 2 is placed on 3 and 1, shards 3 and 5 on 1 and 2, 3 and 1.
  deepEqual(await openedAfterCheck([0]), [3, 5]);
  // Without local_shards, placement alone: node 1 has shards 0 and 2 open already.
  deepEqual(await openedAfterCheck(null), [3, 5]);
});

Deno.test("hostsShard() follows placement except for configured shards left out", async (t) => {
  const cases = [
    { name: "configured, listed", shard: 0, localShards: [0], hosts: true },
    { name: "configured, placed, not listed", shard: 2, localShards: [0], hosts: false },
    { name: "configured, no list", shard: 2, localShards: null, hosts: true },
    { name: "configured, not placed", shard: 1, localShards: null, hosts: false },
    { name: "added, placed", shard: 3, localShards: [0], hosts: true },
    { name: "added, not placed", shard: 4, localShards: [0], hosts: false },
  ];
  for (const item of cases) {
    await t.step(item.name, () => {
      const hosts = hostsShard({
        members: MEMBERS,
        node: 1,
        shard: item.shard,
        replicationFactor: 2,
        localShards: item.localShards,
        configuredCount: 3,
      });
      equal(hosts, item.hosts);
    });
  }
});
