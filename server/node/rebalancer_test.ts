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
