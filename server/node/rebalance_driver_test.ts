/**
 * The rebalance driver over a fake cluster (shard configurations, hosted replicas, peer links
 * and the members record in memory) that can crash the driver at any one of its effects: for
 * each scenario (drain a node, grow onto a joining node, rebuild a dead node's replicas) the
 * run is repeated with a crash at effect 1, 2, 3, ... until a run needs no crash, and a fresh
 * driver (no memory) takes over after each crash. After every effect the fake checks the
 * safety rules: a voter's node holds its replica (or is down), a removal leaves a majority of
 * live voters, the leader is never removed, a configured replica is never dropped. At the end
 * every shard has rf voters on active nodes, no learner, no orphan replica, the members reach
 * their final states and the placement record matches the configurations.
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { Logger } from "../log.ts";
import {
  memberOf,
  type MembersRecord,
  seedMembers,
  withJoiningMember,
  withMemberState,
} from "./members.ts";
import { replicasOf } from "./placement.ts";
import type { PlacementRecord } from "./placement_record.ts";
import {
  type DriverCluster,
  REBALANCE_IDLE_PASS_MS,
  REBALANCE_PASS_MS,
  RebalanceDriver,
  type ShardObservation,
} from "./rebalance_driver.ts";
import type { MembershipChangeType } from "./shard_request.ts";

const quiet = new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 });

/** Thrown by the fake at the chosen effect: the driver "crashes" there. */
class Crash extends Error {}

interface FakeShard {
  voters: Set<number>;
  learners: Map<number, number>;
  leader: number;
  term: number;
}

class FakeCluster implements DriverCluster {
  readonly replicationFactor: number;
  record: MembersRecord;
  readonly shards = new Map<number, FakeShard>();
  readonly hosting = new Map<number, Set<number>>();
  readonly up = new Set<number>();
  readonly notified = new Set<number>();
  placement: PlacementRecord = new Map();
  /**
   * Per shard, nodes the committed configuration still lists although the latest (appended)
   * one has removed them: a removal not yet committed, which a new leader may undo.
   */
  readonly uncommitted = new Map<number, Set<number>>();
  effects = 0;
  crashAt: number | null = null;
  isCrashed = false;
  leads = true;
  observations = 0;

  constructor(options: { nodes: number[]; shards: number; rf: number }) {
    this.replicationFactor = options.rf;
    const peers = options.nodes.map((id) => ({ id, address: `h:${id}` }));
    this.record = seedMembers(peers, { id: options.nodes[0]!, httpAddress: "" });
    for (const node of options.nodes) {
      this.hosting.set(node, new Set());
      this.up.add(node);
    }
    for (let shard = 0; shard < options.shards; shard++) {
      const voters = replicasOf(options.nodes, shard, options.rf);
      for (const node of voters) this.hosting.get(node)!.add(shard);
      const state = { voters: new Set(voters), learners: new Map(), leader: voters[0]!, term: 1 };
      this.shards.set(shard, state);
    }
  }

  addNode(id: number, isUp: boolean): void {
    this.hosting.set(id, new Set());
    if (isUp) this.up.add(id);
  }

  #effect(): void {
    // A crashed driver does nothing more, even if it caught the crash (a skipped drop).
    if (this.isCrashed) throw new Crash("the driver is down");
    this.effects++;
    if (this.crashAt === this.effects) {
      this.isCrashed = true;
      throw new Crash(`crash at effect ${this.effects}`);
    }
  }

  isLeader(): boolean {
    return this.leads;
  }

  watchKey(): string {
    const leaders = [...this.shards].map(([shard, state]) => `${shard}:${state.leader}`);
    return `${this.record.version}|${[...this.up].sort()}|${leaders}`;
  }

  readMembers(): Promise<MembersRecord | null> {
    return Promise.resolve(this.record);
  }

  updateMembers(change: (record: MembersRecord) => MembersRecord): Promise<MembersRecord> {
    this.#effect();
    this.record = change(this.record);
    return Promise.resolve(this.record);
  }

  observeShards(): Promise<readonly ShardObservation[]> {
    this.observations++;
    const observed: ShardObservation[] = [];
    for (const [shard, state] of this.shards) {
      // Between two passes a learner whose node holds the replica catches up.
      const learners = [...state.learners].map(([node, lag]) => ({
        node,
        lag,
        matchIndex: Math.max(0, 1_000 - lag),
      }));
      for (const [node] of state.learners) {
        if (this.up.has(node) && this.hosting.get(node)?.has(shard)) state.learners.set(node, 0);
      }
      // A dead leader's group elects another leader when a majority of its voters is up.
      const live = [...state.voters].filter((voter) => this.up.has(voter)).sort((a, b) => a - b);
      const isElectable = live.length >= Math.floor(state.voters.size / 2) + 1;
      if (!this.up.has(state.leader) && isElectable) {
        state.leader = live[0]!;
        state.term++;
      }
      const isLeaderUp = this.up.has(state.leader);
      observed.push({
        shard,
        leader: isLeaderUp ? state.leader : null,
        term: isLeaderUp ? state.term : 0,
        voters: isLeaderUp ? [...state.voters].sort((a, b) => a - b) : [],
        learners: isLeaderUp ? learners : [],
        committedReplicas: isLeaderUp
          ? [
            ...new Set([
              ...state.voters,
              ...state.learners.keys(),
              ...this.uncommitted.get(shard) ?? [],
            ]),
          ]
            .sort((a, b) => a - b)
          : [],
      });
    }
    return Promise.resolve(observed);
  }

  isUp(node: number): boolean {
    return this.up.has(node);
  }

  hostedShards(node: number): Promise<readonly number[] | null> {
    if (!this.up.has(node)) return Promise.resolve(null);
    return Promise.resolve([...this.hosting.get(node) ?? []]);
  }

  hostReplica(node: number, shard: number, term: number): Promise<void> {
    this.#effect();
    equal(term, this.shards.get(shard)!.term, "a host names the term of the view it rests on");
    ok(this.up.has(node), `host on down node ${node}`);
    this.hosting.get(node)!.add(shard);
    return Promise.resolve();
  }

  dropReplica(node: number, shard: number, term: number): Promise<void> {
    this.#effect();
    const state = this.shards.get(shard)!;
    equal(term, state.term, "a drop names the term of the view it rests on");
    ok(!state.voters.has(node) && !state.learners.has(node), `drop of configured ${node}/${shard}`);
    ok(
      !this.uncommitted.get(shard)?.has(node),
      `drop of ${node}/${shard} before its removal commits`,
    );
    this.hosting.get(node)!.delete(shard);
    return Promise.resolve();
  }

  changeMembership(shard: number, change: MembershipChangeType, node: number): Promise<void> {
    this.#effect();
    const state = this.shards.get(shard)!;
    if (change === "addLearner") {
      ok(!state.voters.has(node) && !state.learners.has(node), "add of a replica");
      state.learners.set(node, 1_000);
    } else if (change === "addVoter") {
      ok(state.learners.has(node), "promotion of a learner");
      ok(this.hosting.get(node)?.has(shard), "promotion of a learner without its replica");
      state.learners.delete(node);
      state.voters.add(node);
    } else if (state.learners.has(node)) {
      state.learners.delete(node);
    } else {
      ok(node !== state.leader, `removal of the leader of shard ${shard}`);
      state.voters.delete(node);
      const live = [...state.voters].filter((voter) => this.up.has(voter)).length;
      ok(live >= Math.floor(state.voters.size / 2) + 1, `shard ${shard} lost its live majority`);
    }
    this.#checkVoters();
    return Promise.resolve();
  }

  transferLeader(shard: number, to: number): Promise<void> {
    this.#effect();
    const state = this.shards.get(shard)!;
    ok(state.voters.has(to) && this.up.has(to), "transfer to an up voter");
    state.leader = to;
    state.term++;
    return Promise.resolve();
  }

  notifyRemoved(node: number): Promise<void> {
    this.#effect();
    this.notified.add(node);
    this.up.delete(node);
    return Promise.resolve();
  }

  readPlacement(): PlacementRecord {
    return this.placement;
  }

  writePlacement(placement: PlacementRecord): Promise<void> {
    this.#effect();
    this.placement = placement;
    return Promise.resolve();
  }

  #checkVoters(): void {
    for (const [shard, state] of this.shards) {
      for (const voter of state.voters) {
        const holds = this.hosting.get(voter)?.has(shard) ?? false;
        ok(holds || !this.up.has(voter), `voter ${voter} of shard ${shard} lacks its replica`);
      }
    }
  }
}

/** Runs passes (a fresh driver after each crash) until two passes in a row change nothing. */
async function converge(cluster: FakeCluster): Promise<number> {
  let quietPasses = 0;
  for (let pass = 0; pass < 200; pass++) {
    const before = cluster.effects;
    const driver = new RebalanceDriver(cluster, quiet, () => 0);
    cluster.isCrashed = false;
    try {
      await driver.pass();
    } catch (error) {
      if (!(error instanceof Crash)) throw error;
    }
    quietPasses = cluster.effects === before ? quietPasses + 1 : 0;
    if (quietPasses >= 2) return pass;
  }
  throw new Error("the driver did not converge in 200 passes");
}

function checkSettled(cluster: FakeCluster, options: { rf: number; gone: readonly number[] }) {
  for (const [shard, state] of cluster.shards) {
    equal(state.voters.size, options.rf, `shard ${shard} has ${options.rf} voters`);
    equal(state.learners.size, 0, `shard ${shard} has no learner`);
    for (const node of options.gone) ok(!state.voters.has(node), `${node} left shard ${shard}`);
    deepEqual(
      cluster.placement.get(shard),
      [...state.voters].sort((a, b) => a - b),
      `the placement of shard ${shard}`,
    );
  }
  for (const [node, shards] of cluster.hosting) {
    if (!cluster.up.has(node)) continue;
    for (const shard of shards) {
      ok(cluster.shards.get(shard)!.voters.has(node), `no orphan ${shard} on node ${node}`);
    }
  }
}

/** Runs `scenario` with a crash at each effect in turn, until a run has fewer effects. */
async function withCrashAtEveryStep(
  build: () => FakeCluster,
  check: (cluster: FakeCluster) => void,
): Promise<number> {
  const clean = build();
  await converge(clean);
  check(clean);
  const total = clean.effects;
  ok(total > 0, "the scenario does something");
  for (let crashAt = 1; crashAt <= total; crashAt++) {
    const cluster = build();
    cluster.crashAt = crashAt;
    await converge(cluster);
    check(cluster);
  }
  return total;
}

Deno.test("RebalanceDriver drains a node, with a crash at every step", async () => {
  const effects = await withCrashAtEveryStep(() => {
    const cluster = new FakeCluster({ nodes: [1, 2, 3, 4], shards: 4, rf: 3 });
    cluster.record = withMemberState(cluster.record, 2, "draining");
    return cluster;
  }, (cluster) => {
    checkSettled(cluster, { rf: 3, gone: [2] });
    equal(memberOf(cluster.record, 2)?.state, "removed");
    ok(cluster.notified.has(2), "the drained node was told");
    equal(cluster.hosting.get(2)?.size, 0, "the drained node holds nothing");
  });
  ok(effects >= 10, `a drain takes several steps (${effects})`);
});

Deno.test("RebalanceDriver grows onto a joining node, crashing at every step", async () => {
  await withCrashAtEveryStep(() => {
    const cluster = new FakeCluster({ nodes: [1, 2, 3], shards: 4, rf: 3 });
    cluster.addNode(4, true);
    cluster.record = withJoiningMember(cluster.record, {
      id: 4,
      peerAddress: "h:4",
      httpAddress: "",
    });
    return cluster;
  }, (cluster) => {
    checkSettled(cluster, { rf: 3, gone: [] });
    equal(memberOf(cluster.record, 4)?.state, "active");
    const counts = [1, 2, 3, 4].map((node) => cluster.hosting.get(node)!.size);
    ok(Math.max(...counts) - Math.min(...counts) <= 1, `balanced: ${counts.join(",")}`);
  });
});

Deno.test("RebalanceDriver rebuilds a dead node's replicas, crashing at every step", async () => {
  await withCrashAtEveryStep(() => {
    const cluster = new FakeCluster({ nodes: [1, 2, 3, 4], shards: 4, rf: 3 });
    cluster.up.delete(3);
    cluster.record = withMemberState(cluster.record, 3, "draining");
    return cluster;
  }, (cluster) => {
    checkSettled(cluster, { rf: 3, gone: [3] });
    equal(memberOf(cluster.record, 3)?.state, "removed");
    ok(!cluster.notified.has(3), "a dead node cannot be told");
  });
});

Deno.test("RebalanceDriver removes no replica while another voter is down", async () => {
  const cluster = new FakeCluster({ nodes: [1, 2, 3, 4], shards: 1, rf: 3 });
  // Shard 0 is on 1, 2, 3; draining 3 while 2 is down must not shrink the group to {1, 4}
  // with only 1 and 4 up and a new voter not yet there.
  cluster.record = withMemberState(cluster.record, 3, "draining");
  cluster.up.delete(2);
  for (let pass = 0; pass < 10; pass++) await new RebalanceDriver(cluster, quiet, () => 0).pass();
  const state = cluster.shards.get(0)!;
  ok(state.voters.has(3), "node 3 keeps its replica while node 2 is down");
  cluster.up.add(2);
  await converge(cluster);
  checkSettled(cluster, { rf: 3, gone: [3] });
});

Deno.test("RebalanceDriver gives a voter that never opened its replica an empty one", async () => {
  const cluster = new FakeCluster({ nodes: [1, 2, 3], shards: 2, rf: 3 });
  // Node 3 was down while a shard move created shard 1: a voter without its replica.
  cluster.hosting.get(3)!.delete(1);
  const report = await new RebalanceDriver(cluster, quiet, () => 0).pass();
  deepEqual(report.hosted, [{ node: 3, shard: 1 }]);
  ok(cluster.hosting.get(3)!.has(1), "node 3 hosts shard 1 again");
  await converge(cluster);
  checkSettled(cluster, { rf: 3, gone: [] });
});

Deno.test("RebalanceDriver keeps a replica whose removal is appended, not committed", async () => {
  const cluster = new FakeCluster({ nodes: [1, 2, 3, 4], shards: 4, rf: 3 });
  // A voter that is not its shard's leader: its removal is in the leader's log, uncommitted
  // (the leader may be deposed and the next leader list the replica again, counting on its
  // log). Its node is draining, so the pass must neither drop the replica nor finish the drain.
  const [shard, state] = [...cluster.shards].find(([, candidate]) =>
    candidate.leader !== 4 &&
    candidate.voters.has(4)
  )!;
  state.voters.delete(4);
  cluster.uncommitted.set(shard, new Set([4]));
  cluster.record = withMemberState(cluster.record, 4, "draining");
  for (let pass = 0; pass < 3; pass++) {
    const report = await new RebalanceDriver(cluster, quiet, () => 0).pass();
    deepEqual(report.dropped.filter((drop) => drop.node === 4 && drop.shard === shard), []);
  }
  ok(cluster.hosting.get(4)!.has(shard), "node 4 keeps its replica while the removal is open");
  notEqual(memberOf(cluster.record, 4)?.state, "removed", "the drain waits for the commit");
  // The removal commits: now the replica goes, and the drain finishes.
  cluster.uncommitted.delete(shard);
  await converge(cluster);
  checkSettled(cluster, { rf: 3, gone: [4] });
  equal(memberOf(cluster.record, 4)?.state, "removed");
});

Deno.test("RebalanceDriver removes a learner while a voter of its shard is down", async () => {
  // Shard 0 is on 1, 2, 3 with a learner on 4, and node 4 is drained while node 3 is dead
  // and drained too: the planner's first step in the shard is the learner's removal (it does
  // nothing else there before), so refusing it would keep node 3's replica from its rebuild.
  const cluster = new FakeCluster({ nodes: [1, 2, 3, 4, 5], shards: 1, rf: 3 });
  const state = cluster.shards.get(0)!;
  deepEqual([...state.voters].sort(), [1, 2, 3]);
  cluster.hosting.get(4)!.add(0);
  state.learners.set(4, 1_000);
  cluster.up.delete(3);
  cluster.record = withMemberState(cluster.record, 3, "draining");
  cluster.record = withMemberState(cluster.record, 4, "draining");
  await new RebalanceDriver(cluster, quiet, () => 0).pass();
  ok(!state.learners.has(4), "the learner on the draining node is removed");
  await converge(cluster);
  checkSettled(cluster, { rf: 3, gone: [3, 4] });
  equal(memberOf(cluster.record, 3)?.state, "removed");
  equal(memberOf(cluster.record, 4)?.state, "removed");
});

Deno.test("RebalanceDriver goes on with its pass when an orphan's drop is refused", async () => {
  // Node 4 holds an orphan replica of shard 0 that refuses its drop (it has seen a later term
  // than the view: a failed election it took part in), while node 2 is being drained. The pass
  // must not stop at the refusal: the drain goes on, and the orphan is dropped once it agrees.
  const cluster = new FakeCluster({ nodes: [1, 2, 3, 4, 5], shards: 2, rf: 3 });
  const [orphanShard] = [...cluster.shards].find(([, state]) => !state.voters.has(4))!;
  cluster.hosting.get(4)!.add(orphanShard);
  let isRefusing = true;
  const drop = cluster.dropReplica.bind(cluster);
  cluster.dropReplica = (node, shard, term) => {
    if (isRefusing && node === 4 && shard === orphanShard) {
      return Promise.reject(new Error(`replica ${node}/${shard} has seen a later term`));
    }
    return drop(node, shard, term);
  };
  cluster.record = withMemberState(cluster.record, 2, "draining");
  const report = await new RebalanceDriver(cluster, quiet, () => 0).pass();
  ok(report.operations.length > 0, "the plan ran despite the refused drop");
  ok(report.diagnoses.some((diagnosis) => diagnosis.includes("orphan")), "the refusal is reported");
  ok(cluster.hosting.get(4)!.has(orphanShard), "the refusing orphan stays for now");
  isRefusing = false;
  await converge(cluster);
  checkSettled(cluster, { rf: 3, gone: [2] });
  equal(memberOf(cluster.record, 2)?.state, "removed");
});

Deno.test("RebalanceDriver balances no leaders while a shard's leader did not answer", async () => {
  // Four shards on nodes 1, 2, 3 led by 1, 1, 2, 3: balanced within the planner's gap. A
  // status read of shard 3 that times out makes 3 look like it leads nothing (gap 2).
  const cluster = new FakeCluster({ nodes: [1, 2, 3], shards: 4, rf: 3 });
  const leaders = [1, 1, 2, 3];
  for (const [shard, state] of cluster.shards) state.leader = leaders[shard]!;
  await converge(cluster);
  const before = [...cluster.shards.values()].map((state) => state.leader);
  const observe = cluster.observeShards.bind(cluster);
  cluster.observeShards = async () =>
    (await observe()).map((shard) =>
      shard.leader === 3
        ? { ...shard, leader: null, term: 0, voters: [], learners: [], committedReplicas: [] }
        : shard
    );
  const report = await new RebalanceDriver(cluster, quiet, () => 0).pass();
  deepEqual(report.operations, [], "no transfer on a partial view");
  deepEqual([...cluster.shards.values()].map((state) => state.leader), before);
});

/** A driver on a fake clock: `look()` advances it by REBALANCE_PASS_MS and runs watch(). */
function watched(cluster: FakeCluster): { driver: RebalanceDriver; look: () => Promise<boolean> } {
  let nowMs = 0;
  const driver = new RebalanceDriver(cluster, quiet, () => nowMs);
  return {
    driver,
    look: () => {
      nowMs += REBALANCE_PASS_MS;
      return driver.watch();
    },
  };
}

/** Looks until a look runs no pass; returns the looks that ran one. */
async function lookUntilQuiet(look: () => Promise<boolean>): Promise<number> {
  for (let looks = 0; looks < 200; looks++) {
    if (!await look()) return looks;
  }
  throw new Error("the driver kept passing for 200 looks");
}

Deno.test("RebalanceDriver.watch(): idle, a pass only every REBALANCE_IDLE_PASS_MS", async () => {
  const cluster = new FakeCluster({ nodes: [1, 2, 3], shards: 8, rf: 3 });
  const { look } = watched(cluster);
  // The first passes write the placement record and balance the leaders, then it settles.
  const settling = await lookUntilQuiet(look);
  ok(settling >= 1, "the first look passes");
  const observations = cluster.observations;
  const looks = (3 * REBALANCE_IDLE_PASS_MS) / REBALANCE_PASS_MS;
  let passes = 0;
  for (let i = 0; i < looks; i++) if (await look()) passes++;
  equal(passes, 3, `one safety pass per ${REBALANCE_IDLE_PASS_MS} ms, not one per look`);
  equal(cluster.observations - observations, 3, "no shard status asked between passes");
});

Deno.test("RebalanceDriver.watch() passes at the next look after a change", async (t) => {
  const cluster = new FakeCluster({ nodes: [1, 2, 3, 4], shards: 4, rf: 3 });
  const { look } = watched(cluster);
  await lookUntilQuiet(look);
  ok(!await look(), "settled: no pass");

  await t.step("a drain: a pass per look until the node is removed", async () => {
    cluster.record = withMemberState(cluster.record, 2, "draining");
    ok(await look(), "the record's change starts a pass at once");
    const passes = await lookUntilQuiet(look);
    ok(passes >= 3, `the drain's steps follow each other look after look (${passes})`);
    equal(memberOf(cluster.record, 2)?.state, "removed");
    checkSettled(cluster, { rf: 3, gone: [2] });
  });

  await t.step("a peer going down or up", async () => {
    cluster.up.delete(3);
    ok(await look(), "a peer down starts a pass");
    await lookUntilQuiet(look);
    cluster.up.add(3);
    ok(await look(), "a peer up starts a pass");
    await lookUntilQuiet(look);
  });

  await t.step("a shard's new leader", async () => {
    const state = cluster.shards.get(1)!;
    state.leader = [...state.voters].find((voter) => voter !== state.leader)!;
    state.term++;
    ok(await look(), "a leader change starts a pass");
    await lookUntilQuiet(look);
  });

  await t.step(
    "shard 0's leadership: none while a follower, one at once when it leads",
    async () => {
      cluster.leads = false;
      cluster.record = withMemberState(cluster.record, 4, "draining");
      ok(!await look(), "a follower runs no pass");
      cluster.leads = true;
      ok(await look(), "the new leader passes at its first look");
    },
  );
});

Deno.test("RebalanceDriver reports a pass settled only when nothing is in motion", async () => {
  const cluster = new FakeCluster({ nodes: [1, 2, 3, 4], shards: 2, rf: 3 });
  const driver = new RebalanceDriver(cluster, quiet, () => 0);
  equal((await driver.pass()).isSettled, false, "the first pass writes the placement record");
  await converge(cluster);
  equal((await driver.pass()).isSettled, true, "an idle cluster");
  cluster.up.delete(4);
  await converge(cluster);
  equal((await driver.pass()).isSettled, true, "a node down: nothing to do until it comes up");
  cluster.up.add(4);
  const shard = cluster.shards.get(0)!;
  const outsider = [1, 2, 3, 4].find((node) => !shard.voters.has(node))!;
  shard.learners.set(outsider, 1_000);
  equal((await driver.pass()).isSettled, false, "a learner that has not caught up");
  await converge(cluster);
  equal((await driver.pass()).isSettled, true, "settled again");
  cluster.addNode(5, false);
  cluster.record = withJoiningMember(cluster.record, {
    id: 5,
    peerAddress: "h:5",
    httpAddress: "",
  });
  equal((await driver.pass()).isSettled, false, "a joining member that is not up yet");
});
