/**
 * The rebalancer: one table-driven test per rule (repair, drain, removal rule, move cap,
 * in-flight shards, replica and leader balance, diagnoses, node removal), then a seeded
 * property test that applies the plans to random clusters step by step, simulating learners
 * catching up and operations staying in flight, and checks the safety invariants after every
 * operation and convergence (balanced replicas and leaders, empty draining nodes) at the end.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { SeededPrng } from "../../raft/mod.ts";
import {
  checkOperation,
  checkRemoveNode,
  type ClusterView,
  type MemberState,
  planRebalance,
  REBALANCE_MOVES_PER_NODE_MAX,
  type RebalanceOperation,
  type ShardView,
} from "./rebalancer.ts";

function members(states: Record<number, MemberState>): ClusterView["members"] {
  return Object.entries(states).map(([id, state]) => ({ id: Number(id), state }));
}

function shard(
  id: number,
  voters: number[],
  leader: number | null,
  learners: number[] = [],
  caughtUpLearners: number[] = [],
): ShardView {
  return { shard: id, voters, learners, caughtUpLearners, leader };
}

function cluster(
  states: Record<number, MemberState>,
  shards: ShardView[],
  replicationFactor = 3,
  inFlight: RebalanceOperation[] = [],
): ClusterView {
  return { members: members(states), replicationFactor, shards, inFlight };
}

const FOUR_ACTIVE: Record<number, MemberState> = {
  1: "active",
  2: "active",
  3: "active",
  4: "active",
};

Deno.test("planRebalance() repairs a dead replica: learner, promote, then remove", async (t) => {
  const states = { ...FOUR_ACTIVE, 3: "dead" as const };
  const cases: [string, ShardView, RebalanceOperation[]][] = [
    ["adds a learner on the free node", shard(0, [1, 2, 3], 1), [
      { type: "addLearner", shard: 0, node: 4, goal: "repair" },
    ]],
    ["waits while the learner catches up", shard(0, [1, 2, 3], 1, [4]), []],
    ["promotes the caught-up learner", shard(0, [1, 2, 3], 1, [4], [4]), [
      { type: "promoteLearner", shard: 0, node: 4, goal: "repair" },
    ]],
    ["removes the dead voter once its replacement votes", shard(0, [1, 2, 3, 4], 1), [
      { type: "removeReplica", shard: 0, node: 3, goal: "repair" },
    ]],
    ["removes a learner on a dead node", shard(0, [1, 2, 4], 1, [3]), [
      { type: "removeReplica", shard: 0, node: 3, goal: "repair" },
    ]],
  ];
  for (const [name, view, expected] of cases) {
    await t.step(
      name,
      () => deepEqual(planRebalance(cluster(states, [view])).operations, expected),
    );
  }
});

Deno.test("planRebalance() drains: leadership first, replica after its replacement", async (t) => {
  const states = { ...FOUR_ACTIVE, 1: "draining" as const };
  const cases: [string, ShardView, RebalanceOperation[]][] = [
    ["transfers the draining leader's shard", shard(0, [1, 2, 3], 1), [
      { type: "transferLeader", shard: 0, from: 1, to: 2, goal: "drain" },
    ]],
    ["adds the replacement", shard(0, [1, 2, 3], 2), [
      { type: "addLearner", shard: 0, node: 4, goal: "drain" },
    ]],
    ["keeps the draining replica while the learner catches up", shard(0, [1, 2, 3], 2, [4]), []],
    ["removes the draining voter once replaced", shard(0, [1, 2, 3, 4], 2), [
      { type: "removeReplica", shard: 0, node: 1, goal: "drain" },
    ]],
  ];
  for (const [name, view, expected] of cases) {
    await t.step(
      name,
      () => deepEqual(planRebalance(cluster(states, [view])).operations, expected),
    );
  }
});

Deno.test("planRebalance() refuses to drain below the replication factor", () => {
  const plan = planRebalance(cluster({ 1: "active", 2: "active", 3: "draining" }, [
    shard(0, [1, 2, 3], 1),
  ]));
  deepEqual(plan.operations, []);
  deepEqual(plan.diagnoses.map((diagnosis) => diagnosis.code), ["capacity", "drainBlocked"]);
});

Deno.test("checkOperation() states the removal rule", async (t) => {
  const states: Record<number, MemberState> = {
    ...FOUR_ACTIVE,
    5: "dead",
    6: "draining",
    7: "dead",
    8: "dead",
  };
  const cases: [string, ShardView, number, RegExp | null][] = [
    ["R1: never the leader", shard(0, [1, 2, 3, 4], 1), 1, /R1/],
    ["R2: never a healthy voter without surplus", shard(0, [1, 2, 3], 1), 3, /R2/],
    ["R2: never a dead voter before its replacement", shard(0, [1, 2, 5], 1), 5, /R2/],
    ["R2: never a draining voter before its replacement", shard(0, [1, 2, 6], 1), 6, /R2/],
    ["allowed: surplus healthy voter", shard(0, [1, 2, 3, 4], 1), 4, null],
    ["allowed: replaced dead voter", shard(0, [1, 2, 3, 5], 1), 5, null],
    [
      "R4: never leaves live voters short of a majority",
      shard(0, [1, 2, 3, 5, 6, 7, 8], 1),
      6,
      /R4/,
    ],
    ["a learner may always go", shard(0, [1, 2], 1, [3]), 3, null],
  ];
  for (const [name, view, node, expected] of cases) {
    await t.step(name, () => {
      const operation = { type: "removeReplica", shard: 0, node, goal: "repair" } as const;
      const problem = checkOperation(cluster(states, [view]), operation);
      if (expected === null) equal(problem, null);
      else match(problem ?? "", expected);
    });
  }
});

Deno.test("planRebalance() keeps a dead voter that nothing can replace", () => {
  const states: Record<number, MemberState> = {
    1: "active",
    2: "active",
    3: "dead",
    4: "draining",
  };
  const view = cluster(states, [shard(0, [1, 2, 3], 1)]);
  deepEqual(planRebalance(view).operations, []);
  const operation = { type: "removeReplica", shard: 0, node: 3, goal: "repair" } as const;
  match(checkOperation(view, operation) ?? "", /R3: 2 voter\(s\) would remain, below 3/);
  const grown = cluster({ ...states, 5: "joining" }, [shard(0, [1, 2, 3], 1)]);
  deepEqual(planRebalance(grown).operations, [
    { type: "addLearner", shard: 0, node: 5, goal: "repair" },
  ]);
});

Deno.test("planRebalance() diagnoses shards it cannot touch", () => {
  const states = { ...FOUR_ACTIVE, 3: "dead" as const, 4: "dead" as const };
  const plan = planRebalance(cluster(states, [shard(0, [1, 3, 4], 1), shard(1, [1, 2, 3], null)]));
  deepEqual(plan.operations, []);
  deepEqual(plan.diagnoses.map((diagnosis) => [diagnosis.code, diagnosis.shard]), [
    ["capacity", null],
    ["quorumLost", 0],
    ["noLeader", 1],
  ]);
});

Deno.test("planRebalance() caps the moves per node and skips shards in flight", () => {
  const shards = Array.from({ length: 6 }, (_, i) => shard(i, [1, 2, 3], 1 + (i % 3)));
  const plan = planRebalance(cluster({ ...FOUR_ACTIVE, 4: "joining" }, shards), {
    movesPerNodeMax: 2,
    leaderTransfersMax: 0,
  });
  deepEqual(plan.operations.map((operation) => [operation.type, operation.shard]), [
    ["addLearner", 0],
    ["addLearner", 1],
  ]);
  const inFlight: RebalanceOperation[] = [
    { type: "addLearner", shard: 0, node: 4, goal: "balanceReplicas" },
  ];
  const next = planRebalance(cluster({ ...FOUR_ACTIVE }, shards, 3, inFlight));
  deepEqual(next.operations.map((operation) => [operation.type, operation.shard]), [
    ["addLearner", 1],
  ]);
});

Deno.test("planRebalance() moves replicas off the busiest node, then removes the surplus", () => {
  const shards = [shard(0, [1, 2, 3], 1), shard(1, [1, 2, 3], 2), shard(2, [1, 2, 3], 3)];
  const plan = planRebalance(cluster(FOUR_ACTIVE, shards));
  deepEqual(plan.operations, [
    { type: "addLearner", shard: 0, node: 4, goal: "balanceReplicas" },
    { type: "addLearner", shard: 1, node: 4, goal: "balanceReplicas" },
  ]);
  const promoted = [shard(0, [1, 2, 3, 4], 1), ...shards.slice(1)];
  deepEqual(planRebalance(cluster(FOUR_ACTIVE, promoted)).operations, [
    { type: "removeReplica", shard: 0, node: 2, goal: "balanceReplicas" },
    { type: "addLearner", shard: 1, node: 4, goal: "balanceReplicas" },
  ]);
});

Deno.test("planRebalance() spreads leaders over active voters, never to joining nodes", () => {
  const shards = Array.from({ length: 4 }, (_, i) => shard(i, [1, 2, 3], 1));
  const states: Record<number, MemberState> = { 1: "active", 2: "active", 3: "joining" };
  deepEqual(planRebalance(cluster(states, shards)).operations, [
    { type: "transferLeader", shard: 0, from: 1, to: 2, goal: "balanceLeaders" },
    { type: "transferLeader", shard: 1, from: 1, to: 2, goal: "balanceLeaders" },
  ]);
});

Deno.test("planRebalance() does not depend on the order of its input lists", () => {
  const states = { ...FOUR_ACTIVE, 5: "active" as const, 2: "draining" as const };
  const shards = [shard(0, [1, 2, 3], 1), shard(1, [2, 3, 4], 2), shard(2, [3, 4, 1], 3)];
  const forward = planRebalance(cluster(states, shards));
  const reversed = cluster(
    states,
    shards.map((view) => ({
      ...view,
      voters: [...view.voters].reverse(),
    })).reverse(),
  );
  ok(forward.operations.length > 0);
  deepEqual(planRebalance({ ...reversed, members: [...reversed.members].reverse() }), forward);
});

Deno.test("checkRemoveNode() refuses when the others cannot hold the replication factor", () => {
  const view = cluster({ ...FOUR_ACTIVE, 4: "dead" }, [shard(0, [1, 2, 3], 1)]);
  match(checkRemoveNode(view, 1) ?? "", /Cannot remove node 1: 2 healthy node\(s\) would remain/);
  equal(checkRemoveNode(view, 4), null);
  match(checkRemoveNode(view, 9) ?? "", /not a member/);
  equal(checkRemoveNode(cluster(FOUR_ACTIVE, [shard(0, [1, 2, 3], 1)]), 1), null);
});

/** Seeds the property test runs; each is a random cluster driven to convergence. */
const PROPERTY_SEEDS = 120;
/**
 * Plan rounds per move a random cluster may take to converge: a move is about four rounds
 * (add, catch up at 1/2 a round, promote, remove; an operation stays in flight at 1/4), at most
 * `REBALANCE_MOVES_PER_NODE_MAX` in parallel on the busiest node, and a cluster needs at most
 * shards * rf of them. Measured worst over the seeds: 2.9.
 */
const PROPERTY_ROUNDS_PER_MOVE_MAX = 4;
/** Every this many rounds the plan is recomputed from reversed input and must not change. */
const ORDER_CHECK_ROUNDS = 4;
/** Node deaths and drains happen in the first this many rounds, each round at 1 in this many. */
const EVENT_ROUNDS = 20;

interface SimShard {
  shard: number;
  voters: number[];
  learners: number[];
  caughtUp: Set<number>;
  leader: number | null;
}

interface Sim {
  states: Map<number, MemberState>;
  rf: number;
  shards: SimShard[];
}

Deno.test("planRebalance() keeps every invariant and converges on random clusters", () => {
  for (let seed = 1; seed <= PROPERTY_SEEDS; seed++) {
    const prng = new SeededPrng(seed);
    const sim = randomSim(prng);
    const moves = sim.shards.length * sim.rf / REBALANCE_MOVES_PER_NODE_MAX + 5;
    runToConvergence(sim, prng, { seed, roundsMax: PROPERTY_ROUNDS_PER_MOVE_MAX * moves });
    checkConverged(sim, seed);
  }
});

function randomSim(prng: SeededPrng): Sim {
  const nodeCount = 3 + prng.nextInt(7);
  const rf = 1 + prng.nextInt(5);
  const shardCount = 1 + prng.nextInt(64);
  const states = new Map<number, MemberState>();
  const pool: MemberState[] = ["dead", "draining", "joining", "active", "active", "active"];
  for (let id = 1; id <= nodeCount; id++) states.set(id, pool[prng.nextInt(pool.length)]!);
  if (![...states.values()].some((state) => state !== "joining")) states.set(1, "active");
  const old = [...states.keys()].filter((id) => states.get(id) !== "joining");
  const shards: SimShard[] = [];
  for (let shard = 0; shard < shardCount; shard++) {
    const voters = Array.from(
      { length: Math.min(rf, old.length) },
      (_, i) => old[(shard + i) % old.length]!,
    );
    shards.push({
      shard,
      voters,
      learners: [],
      caughtUp: new Set(),
      leader: null,
    });
  }
  // Revive dead voters until every shard keeps a live majority (one-at-a-time changes cannot
  // repair a shard that lost it), then elect the first live voter.
  for (const view of shards) {
    for (const voter of view.voters) {
      if (liveCount(states, view.voters) * 2 > view.voters.length) break;
      if (states.get(voter) === "dead") states.set(voter, "active");
    }
  }
  const sim = { states, rf, shards };
  for (const view of shards) {
    view.leader = view.voters.find((voter) => isLiveState(states.get(voter))) ?? null;
    ok(view.leader !== null);
  }
  return sim;
}

function runToConvergence(
  sim: Sim,
  prng: SeededPrng,
  { seed, roundsMax }: { seed: number; roundsMax: number },
): void {
  let inFlight: RebalanceOperation[] = [];
  for (let round = 0; round < roundsMax; round++) {
    if (round < EVENT_ROUNDS && prng.nextInt(EVENT_ROUNDS) === 0) nodeEvent(sim, prng);
    const plan = planRebalance(toView(sim, inFlight));
    const touched = new Set(inFlight.map((operation) => operation.shard));
    for (const operation of plan.operations) {
      ok(!touched.has(operation.shard), `seed ${seed}: two changes on shard ${operation.shard}`);
      touched.add(operation.shard);
    }
    if (round % ORDER_CHECK_ROUNDS === 0) {
      const shuffled = toView({ ...sim, shards: [...sim.shards].reverse() }, inFlight);
      deepEqual(planRebalance(shuffled), plan, `seed ${seed}: the plan depends on input order`);
    }
    if (plan.operations.length === 0 && inFlight.length === 0 && !hasLearners(sim)) return;
    // The runtime re-checks an operation on fresh state before executing it (a node may have
    // died meanwhile); what passes is checked again on its own terms by applyChecked().
    const view = toView(sim, []);
    for (const operation of inFlight) {
      if (checkOperation(view, operation) === null) applyChecked(sim, operation, seed);
    }
    inFlight = [];
    for (const operation of plan.operations) {
      if (prng.nextInt(4) === 0) inFlight.push(operation);
      else applyChecked(sim, operation, seed);
    }
    for (const view of sim.shards) {
      for (const learner of view.learners) if (prng.nextInt(2) === 0) view.caughtUp.add(learner);
      if (view.leader === null) view.leader = electLeader(sim, view);
    }
  }
  throw new Error(`seed ${seed}: no convergence in ${roundsMax} rounds`);
}

/**
 * A node dies for good (when every shard keeps a live majority without it) or is drained
 * (when checkRemoveNode() allows it), as an operator or a failure would mid-rebalance.
 */
function nodeEvent(sim: Sim, prng: SeededPrng): void {
  const live = [...sim.states].filter(([, state]) => isLiveState(state)).map(([id]) => id);
  const node = live[prng.nextInt(live.length)]!;
  if (prng.nextInt(2) === 0) {
    if (checkRemoveNode(toView(sim, []), node) === null) sim.states.set(node, "draining");
    return;
  }
  const states = new Map(sim.states).set(node, "dead");
  const isSafe = sim.shards.every((view) =>
    liveCount(states, view.voters) * 2 > view.voters.length
  );
  if (!isSafe) return;
  sim.states.set(node, "dead");
  for (const view of sim.shards) if (view.leader === node) view.leader = null;
}

/** The first live voter wins the election (any live voter may; the planner must cope). */
function electLeader(sim: Sim, view: SimShard): number | null {
  return view.voters.find((voter) => isLiveState(sim.states.get(voter))) ?? null;
}

function hasLearners(sim: Sim): boolean {
  return sim.shards.some((view) => view.learners.length > 0);
}

function toView(sim: Sim, inFlight: RebalanceOperation[]): ClusterView {
  return {
    members: [...sim.states].map(([id, state]) => ({ id, state })),
    replicationFactor: sim.rf,
    shards: sim.shards.map((view) => ({
      shard: view.shard,
      voters: [...view.voters],
      learners: [...view.learners],
      caughtUpLearners: view.learners.filter((learner) => view.caughtUp.has(learner)),
      leader: view.leader,
    })),
    inFlight,
  };
}

/** Applies one operation, checking it on its own terms (not through checkOperation). */
function applyChecked(sim: Sim, operation: RebalanceOperation, seed: number): void {
  const view = sim.shards[operation.shard]!;
  const where = `seed ${seed}, shard ${view.shard}, ${JSON.stringify(operation)}`;
  const before = countsOf(sim, view);
  if (operation.type === "transferLeader") {
    equal(view.leader, operation.from, where);
    ok(view.voters.includes(operation.to) && isLiveState(sim.states.get(operation.to)), where);
    view.leader = operation.to;
  } else if (operation.type === "addLearner") {
    ok(!view.voters.includes(operation.node) && !view.learners.includes(operation.node), where);
    ok(["active", "joining"].includes(sim.states.get(operation.node)!), where);
    view.learners.push(operation.node);
  } else if (operation.type === "promoteLearner") {
    ok(view.caughtUp.has(operation.node), where);
    view.learners = view.learners.filter((learner) => learner !== operation.node);
    view.caughtUp.delete(operation.node);
    view.voters.push(operation.node);
  } else {
    ok(operation.node !== view.leader, where);
    const wasVoter = view.voters.includes(operation.node);
    ok(wasVoter || view.learners.includes(operation.node), where);
    view.voters = view.voters.filter((voter) => voter !== operation.node);
    view.learners = view.learners.filter((learner) => learner !== operation.node);
    view.caughtUp.delete(operation.node);
    if (wasVoter) {
      ok(liveCount(sim.states, view.voters) * 2 > view.voters.length, `majority: ${where}`);
    }
  }
  checkShard(sim, view, before, where);
}

function checkShard(sim: Sim, view: SimShard, before: ShardCounts, where: string): void {
  const replicas = [...view.voters, ...view.learners];
  equal(new Set(replicas).size, replicas.length, `a node twice: ${where}`);
  ok(view.voters.length >= 1, where);
  const factor = factorOf(sim);
  const after = countsOf(sim, view);
  if (before.live >= factor) ok(after.live >= factor, `live voters below ${factor}: ${where}`);
  if (before.voters >= factor) ok(after.voters >= factor, `voters below ${factor}: ${where}`);
}

interface ShardCounts {
  voters: number;
  live: number;
}

function countsOf(sim: Sim, view: SimShard): ShardCounts {
  return { voters: view.voters.length, live: liveCount(sim.states, view.voters) };
}

/** min(rf, live nodes): once a shard has this many voters (live voters), it keeps them. */
function factorOf(sim: Sim): number {
  return Math.min(sim.rf, [...sim.states.values()].filter(isLiveState).length);
}

function checkConverged(sim: Sim, seed: number): void {
  const healthy = [...sim.states].filter(([, state]) => state === "active" || state === "joining")
    .map(([id]) => id);
  const target = Math.min(sim.rf, healthy.length);
  const load = new Map(healthy.map((node) => [node, 0]));
  const leaders = new Map(healthy.map((node) => [node, 0]));
  for (const view of sim.shards) {
    const where = `seed ${seed}, shard ${view.shard}: ${JSON.stringify(view.voters)}`;
    equal(view.learners.length, 0, where);
    const healthyVoters = view.voters.filter((voter) => load.has(voter));
    equal(healthyVoters.length, target, where);
    for (const voter of healthyVoters) load.set(voter, load.get(voter)! + 1);
    const hasCapacity = healthy.length >= sim.rf;
    if (hasCapacity) equal(view.voters.length, target, `draining or dead left: ${where}`);
    const isAllLive = view.voters.every((voter) => isLiveState(sim.states.get(voter)));
    if (hasCapacity) ok(isAllLive, `dead left: ${where}`);
    ok(view.leader !== null && isLiveState(sim.states.get(view.leader)), where);
    if (healthyVoters.length > 0) ok(leaders.has(view.leader), `leader not healthy: ${where}`);
    if (leaders.has(view.leader)) leaders.set(view.leader, leaders.get(view.leader)! + 1);
  }
  const counts = [...load.values()];
  ok(Math.max(...counts) - Math.min(...counts) <= 1, `seed ${seed}: loads ${counts}`);
  for (const view of sim.shards) {
    const from = view.leader!;
    for (const to of view.voters) {
      if (sim.states.get(to) !== "active" || !leaders.has(from)) continue;
      ok(leaders.get(from)! - leaders.get(to)! < 2, `seed ${seed}: leaders ${[...leaders]}`);
    }
  }
}

function liveCount(states: Map<number, MemberState>, nodes: readonly number[]): number {
  return nodes.filter((node) => isLiveState(states.get(node))).length;
}

function isLiveState(state: MemberState | undefined): boolean {
  return state === "active" || state === "joining" || state === "draining";
}
