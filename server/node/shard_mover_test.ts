/**
 * The mover's part of placement (issue 14): after a shard move the node opens its replicas of
 * the new shards, as placement decides, and never a replica of a configured shard that its
 * `local_shards` leaves out; a move records the voters its placer chose (issue 15), and every
 * node opens its replica from them. The mover runs one check over fakes: a router that answers
 * nothing (no move record), a shard map of six shards, and an opener that records the shards.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import type { LocalShard } from "./local_shard.ts";
import { hostsShard } from "./placement.ts";
import { ShardMapView } from "./shard_map.ts";
import { newReplicaVoters, type NewShardPlacer, ShardMover } from "./shard_mover.ts";
import { SHARD_MOVE_META, type ShardMove } from "./shard_move.ts";
import type { ShardRequest } from "./shard_request.ts";

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

Deno.test("newReplicaVoters() opens from the move's voters before the flip only", async (t) => {
  const base = {
    shard: 3,
    placed: null,
    members: MEMBERS,
    replicationFactor: 2,
    localShards: null,
    configuredCount: 3,
  };
  const targetVoters = [{ shard: 3, voters: [4, 2] }];
  const cases: {
    name: string;
    node: number;
    move: { phase: ShardMove["phase"]; targetVoters?: typeof targetVoters } | null;
    placed?: number[] | null;
    voters: number[] | null;
  }[] = [
    { name: "recorded, a voter", node: 4, move: { phase: "copy", targetVoters }, voters: [4, 2] },
    { name: "recorded, not a voter", node: 1, move: { phase: "copy", targetVoters }, voters: null },
    {
      name: "recorded, hand-off",
      node: 2,
      move: { phase: "handoff", targetVoters },
      voters: [4, 2],
    },
    {
      name: "recorded, after the flip",
      node: 2,
      move: { phase: "cleanup", targetVoters },
      voters: null,
    },
    { name: "recorded, done", node: 4, move: { phase: "done", targetVoters }, voters: null },
    {
      name: "recorded, placed elsewhere since",
      node: 4,
      move: { phase: "delta", targetVoters },
      placed: [2, 5],
      voters: null,
    },
    {
      name: "recorded and placed",
      node: 4,
      move: { phase: "delta", targetVoters },
      placed: [2, 4],
      voters: [4, 2],
    },
    // A record without voters (an older node wrote it): the static placement, as before.
    { name: "unrecorded, static", node: 1, move: { phase: "copy" }, voters: [1, 2] },
    { name: "unrecorded, not static", node: 3, move: { phase: "copy" }, voters: null },
    { name: "no record", node: 1, move: null, voters: [1, 2] },
    { name: "unrecorded, placed", node: 1, move: { phase: "copy" }, placed: [1, 2], voters: null },
  ];
  for (const item of cases) {
    await t.step(item.name, () => {
      const voters = newReplicaVoters({
        ...base,
        node: item.node,
        move: item.move,
        placed: item.placed ?? null,
      });
      deepEqual(voters, item.voters);
    });
  }
});

/** A shard 0 that keeps meta records in a map, reached through a fake router. */
function metaRouter(meta: Map<string, string>, log: string[]): ClusterRouter {
  return {
    nodeId: 1,
    execute: (_shard: number, request: ShardRequest) => {
      if (request.kind === "metaRead") {
        return Promise.resolve({ value: meta.get(request.name) ?? null });
      }
      if (request.kind === "metaSwap") {
        const isSwapped = (meta.get(request.name) ?? null) === request.expected;
        if (isSwapped && request.value !== null) meta.set(request.name, request.value);
        log.push(`swap ${request.name}`);
        return Promise.resolve({ isSwapped, value: meta.get(request.name) ?? null });
      }
      if (request.kind === "moveSize") return Promise.resolve({ bySize: {} });
      return Promise.reject(new Error(`unexpected ${request.kind}`));
    },
  } as unknown as ClusterRouter;
}

function moverWith(router: ClusterRouter, placer: NewShardPlacer): ShardMover {
  const configured = { epoch: 1, numShards: 2, members: MEMBERS, replicationFactor: 3 };
  return new ShardMover({
    nodeId: 1,
    members: MEMBERS,
    replicationFactor: 3,
    localShards: null,
    configuredCount: 2,
    shards: new Map(),
    router,
    view: new ShardMapView({
      initial: configured,
      read: () => Promise.resolve(null),
      nowMs: () => 0,
    }),
    openShard: () => Promise.reject(new Error("no opens in this test")),
    placer,
    maxShards: 1_024,
    logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: () => 0 }),
    nowMs: () => 0,
    wallMs: () => 0,
  });
}

Deno.test("addShards() records the voters: placement record first, then the move", async () => {
  const meta = new Map<string, string>();
  const log: string[] = [];
  const placed = [{ shard: 2, voters: [4, 1, 3] }, { shard: 3, voters: [2, 3, 4] }];
  const asked: number[][] = [];
  const mover = moverWith(metaRouter(meta, log), {
    place: (shards) => {
      asked.push([...shards]);
      return Promise.resolve(placed);
    },
    record: () => {
      log.push("record placement");
      return Promise.resolve();
    },
    forget: () => Promise.reject(new Error("must not forget")),
  });
  const answer = await mover.addShards({ count: 2, dryRun: false });
  mover.close();
  equal(answer.toCount, 4);
  deepEqual(asked, [[2, 3]]);
  deepEqual(log, ["record placement", `swap ${SHARD_MOVE_META}`]);
  const move = JSON.parse(meta.get(SHARD_MOVE_META)!) as ShardMove;
  deepEqual(move.targetVoters, placed);
});

Deno.test("addShards() refuses, dry run too, what the placer refuses", async () => {
  for (const dryRun of [true, false]) {
    const meta = new Map<string, string>();
    const log: string[] = [];
    const mover = moverWith(metaRouter(meta, log), {
      place: () =>
        Promise.reject(new AspenError("insufficient_capacity", "2 active member(s) are up")),
      record: () => Promise.reject(new Error("must not record")),
      forget: () => Promise.reject(new Error("must not forget")),
    });
    await rejects(mover.addShards({ count: 1, dryRun }), (error: unknown) => {
      ok(error instanceof AspenError);
      equal(error.code, "insufficient_capacity");
      return true;
    });
    mover.close();
    deepEqual(log, []);
    equal(meta.size, 0);
  }
});

Deno.test("addShards() without a placement (no members record) keeps the static one", async () => {
  const meta = new Map<string, string>();
  const mover = moverWith(metaRouter(meta, []), {
    place: () => Promise.resolve(null),
    record: () => Promise.reject(new Error("must not record")),
    forget: () => Promise.reject(new Error("must not forget")),
  });
  await mover.addShards({ count: 1, dryRun: false });
  mover.close();
  const move = JSON.parse(meta.get(SHARD_MOVE_META)!) as ShardMove;
  equal(move.targetVoters, undefined);
});

Deno.test("recordedVotersOf() gives a running move's voters to routing, none after", async () => {
  const targetVoters = [{ shard: 2, voters: [4, 1, 3] }];
  for (const phase of ["copy", "done"] as const) {
    const record = JSON.stringify({ phase, fromCount: 2, toCount: 3, sources: [], targetVoters });
    const zero = {
      stateMachine: { getMeta: (name: string) => name === SHARD_MOVE_META ? record : null },
      replica: { status: () => ({ role: "follower" }) },
      close: () => {},
    } as unknown as LocalShard;
    const configured = { epoch: 1, numShards: 2, members: MEMBERS, replicationFactor: 3 };
    const mover = new ShardMover({
      nodeId: 2,
      members: MEMBERS,
      replicationFactor: 3,
      localShards: null,
      configuredCount: 2,
      shards: new Map([[0, zero]]),
      router: metaRouter(new Map(), []),
      view: new ShardMapView({
        initial: configured,
        read: () => Promise.resolve(null),
        nowMs: () => 0,
      }),
      // Node 2 is no voter of shard 2: it opens nothing.
      openShard: () => Promise.reject(new Error("no opens in this test")),
      maxShards: 1_024,
      logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: () => 0 }),
      nowMs: () => 0,
      wallMs: () => 0,
    });
    equal(mover.recordedVotersOf(2), null, "nothing before the first check");
    await mover.check();
    mover.close();
    deepEqual(mover.recordedVotersOf(2), phase === "copy" ? [4, 1, 3] : null);
    equal(mover.recordedVotersOf(1), null);
  }
});

Deno.test("addShards() that loses the move record's race forgets its placement", async () => {
  const meta = new Map<string, string>();
  const log: string[] = [];
  const inner = metaRouter(meta, log);
  // Another move's record lands between this one's read and its swap.
  const router = {
    nodeId: 1,
    execute: (shard: number, request: ShardRequest) => {
      if (request.kind === "metaSwap" && request.name === SHARD_MOVE_META) {
        meta.set(SHARD_MOVE_META, "another move");
      }
      return inner.execute(shard, request, 0);
    },
  } as unknown as ClusterRouter;
  const placed = [{ shard: 2, voters: [1, 2, 3] }];
  const mover = moverWith(router, {
    place: () => Promise.resolve(placed),
    record: () => Promise.resolve(void log.push("record placement")),
    forget: (forgotten) => {
      deepEqual(forgotten, placed);
      log.push("forget placement");
      return Promise.resolve();
    },
  });
  await rejects(mover.addShards({ count: 1, dryRun: false }), (error: unknown) => {
    ok(error instanceof AspenError);
    equal(error.code, "move_in_progress");
    return true;
  });
  mover.close();
  deepEqual(log, ["record placement", `swap ${SHARD_MOVE_META}`, "forget placement"]);
});
