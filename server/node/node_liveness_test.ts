/**
 * NodeLiveness and tickNode: heartbeats every NODE_HEARTBEAT_TICKS whatever the shard count, a
 * silent peer reported once per silence (also when the timer runs several ticks at once), and
 * only the replicas the report concerns are told; a run visits only the shards that may be
 * awake (counting visits of fake replicas), and every shard each ALL_SHARDS_PASS_RUNS runs.
 */
import { deepStrictEqual, equal } from "node:assert/strict";
import {
  ALL_SHARDS_PASS_RUNS,
  IDLE_TICKS_PER_RUN,
  NODE_DOWN_TICKS,
  NODE_HEARTBEAT_TICKS,
  NodeLiveness,
  tickNode,
} from "./node_liveness.ts";

class FakeReplica {
  ticks = 0;
  visits = 0;
  reports: number[] = [];
  constructor(public quiesced: boolean) {}
  tickNow(): void {
    this.visits++;
    if (!this.quiesced) this.ticks++;
  }
  reportLeaderDown(leader: number): void {
    this.reports.push(leader);
  }
  isQuiesced(): boolean {
    return this.quiesced;
  }
  isAsleep(): boolean {
    return this.quiesced;
  }
}

/** `count` shards, shard 0 awake and the rest quiesced, all in the awake set at first. */
function nodeShards(
  count: number,
): { all: Map<number, { replica: FakeReplica }>; awake: Set<number> } {
  const all = new Map(
    Array.from({ length: count }, (_, i) => [i, { replica: new FakeReplica(i > 0) }]),
  );
  return { all, awake: new Set(all.keys()) };
}

Deno.test("NodeLiveness: a silent peer is reported once per silence", () => {
  const liveness = new NodeLiveness([2, 3]);
  const down: number[][] = [];
  for (let tick = 1; tick <= NODE_DOWN_TICKS * 3; tick++) {
    if (tick % 2 === 0) liveness.heard(3);
    const { wentDown } = liveness.tick();
    if (wentDown.length > 0) down.push([tick, ...wentDown]);
  }
  deepStrictEqual(down, [[NODE_DOWN_TICKS, 2]], "peer 2 once; peer 3 was heard");
  equal(liveness.isDown(2), true);
  liveness.heard(2);
  equal(liveness.isDown(2), false);
  for (let tick = 1; tick < NODE_DOWN_TICKS; tick++) {
    liveness.heard(3);
    equal(liveness.tick().wentDown.length, 0);
  }
  liveness.heard(3);
  deepStrictEqual(liveness.tick().wentDown, [2], "a new silence is reported again");
});

Deno.test("NodeLiveness: down listeners hear of each silence once, as tick() reports it", () => {
  const liveness = new NodeLiveness([2, 3]);
  const heard: number[] = [];
  liveness.onPeerDown((peer) => heard.push(peer));
  for (let tick = 0; tick < 3 * NODE_DOWN_TICKS; tick++) {
    if (tick < 2 * NODE_DOWN_TICKS) liveness.heard(3);
    if (tick === NODE_DOWN_TICKS + 1) liveness.heard(2);
    liveness.tick();
  }
  deepStrictEqual(heard, [2, 2, 3], "node 2 twice (heard in between), node 3 once");
});

Deno.test("NodeLiveness: runs of several ticks count the same silence and heartbeats", () => {
  const liveness = new NodeLiveness([2]);
  let beats = 0;
  let reported = 0;
  for (let run = 0; run < (NODE_DOWN_TICKS * 2) / IDLE_TICKS_PER_RUN; run++) {
    const result = liveness.tick(IDLE_TICKS_PER_RUN);
    if (result.isHeartbeatDue) beats++;
    reported += result.wentDown.length;
  }
  equal(beats, (NODE_DOWN_TICKS * 2) / NODE_HEARTBEAT_TICKS);
  equal(reported, 1);
});

Deno.test("tickNode: heartbeats are per peer, not per shard; reports reach every replica", () => {
  const liveness = new NodeLiveness([2, 3]);
  const shards = nodeShards(64);
  const sent: number[] = [];
  let isAwake = false;
  for (let tick = 0; tick < NODE_DOWN_TICKS; tick++) {
    liveness.heard(3);
    isAwake = tickNode(liveness, shards, (peer) => sent.push(peer));
  }
  equal(isAwake, true, "shard 0 is awake");
  equal(sent.length, 2 * (NODE_DOWN_TICKS / NODE_HEARTBEAT_TICKS), "two peers, not 64 shards");
  equal(shards.all.get(0)!.replica.ticks, NODE_DOWN_TICKS);
  equal(shards.all.get(1)!.replica.ticks, 0, "a quiesced replica does not tick");
  for (const shard of shards.all.values()) deepStrictEqual(shard.replica.reports, [2]);
  shards.all.get(0)!.replica.quiesced = true;
  equal(tickNode(liveness, shards, () => {}), false, "all asleep: the timer may slow down");
});

Deno.test("tickNode visits only the shards that may be awake, and all of them now and then", () => {
  const liveness = new NodeLiveness([2]);
  const shards = nodeShards(64);
  liveness.heard(2);
  tickNode(liveness, shards, () => {});
  deepStrictEqual([...shards.awake], [0], "the first run drops the 63 asleep");
  const quiet = shards.all.get(5)!.replica;
  const visitsBefore = quiet.visits;
  for (let run = 2; run < ALL_SHARDS_PASS_RUNS - 1; run++) {
    liveness.heard(2);
    tickNode(liveness, shards, () => {});
  }
  equal(quiet.visits, visitsBefore, "an asleep shard costs the timer nothing");
  quiet.quiesced = false;
  shards.awake.add(5); // What the replica's wake report (ReplicaOptions.onAwake) does.
  liveness.heard(2);
  tickNode(liveness, shards, () => {});
  equal(quiet.ticks, 1, "a reported wake ticks at the next run");
  const unreported = shards.all.get(9)!.replica;
  unreported.quiesced = false;
  liveness.heard(2);
  tickNode(liveness, shards, () => {});
  equal(unreported.ticks, 1, "run ALL_SHARDS_PASS_RUNS looks at every shard");
  equal(unreported.visits, 2, "visited at runs 1 and ALL_SHARDS_PASS_RUNS only");
});
