/**
 * The placement decision: given a snapshot of the cluster, which replica changes come next.
 *
 * A pure, deterministic function (in the spirit of TiKV's PD schedulers and CockroachDB's
 * allocator, with nothing taken from their code): no I/O, no clock, no randomness; the same
 * snapshot gives the same operations whatever the order of its lists. The runtime executes the
 * operations one at a time per shard, takes a fresh snapshot and asks again. It keeps no memory
 * between calls, so a crash at any step is recovered by planning from what the groups say now.
 *
 * Member states, as the planner reads them:
 *
 * ```text
 *   joining ──> active ──> draining ──> removed
 *      │           │           │
 *      └───────────┴───────────┴──────> dead (unreachable for good)
 * ```
 *
 * - healthy = `active` or `joining`: may receive replicas. Only `active` nodes receive
 *   leaderships (a joining node is busy taking snapshots); `joining` is a fallback target only.
 * - `draining`: alive, but must lose every replica and leadership.
 * - `dead`, `removed`: their replicas count as lost and are rebuilt elsewhere.
 * - live = healthy or draining. A leader reported on a node that is not live is ignored.
 *
 * Every shard aims at `target = min(rf, healthy nodes)` voters on healthy nodes and no learners.
 *
 * Goals, in order (earlier goals take the per-node move budget first). A move (a learner
 * catching up) counts against both its node and the shard's leader, which sends the snapshot;
 * no node takes part in more than `movesPerNodeMax` at once. Goals 3 and 4 only touch settled
 * shards: a live leader, no learner, no dead voter and exactly the target of healthy voters.
 * 1. repair: shards with a dead/removed replica, or fewer healthy voters than the target;
 * 2. drain: shards with a replica or the leadership on a draining node;
 * 3. balance replicas: move a replica from the most to the least loaded healthy node while
 *    their counts differ by 2 or more (so the counts end within 1 of each other);
 * 4. balance leaders: transfer a leadership from the node leading most shards to an active
 *    voter of that shard leading at least 2 fewer.
 *
 * A shard's next step, the first that applies (at most one per shard, none while the runtime
 * reports an operation on it in flight, none without a live leader):
 * a. the leader is draining: transfer it to a healthy voter;
 * b. a learner on a node that is not healthy: remove it (a learner has no vote);
 * c. a caught-up learner on a healthy node: promote it (`addVoter` on a learner);
 * d. a voter on a dead, removed or draining node that the removal rule allows: remove it;
 * e. more healthy voters than the target: remove the voter on the most loaded node (ties: a
 *    follower first, then the lowest id); when that is the leader, transfer leadership first;
 * f. a learner still catching up: wait;
 * g. fewer healthy voters than the target: add a learner on the least loaded healthy node.
 * A move is thus always add learner, catch up, promote, remove: a replica is never removed
 * before its replacement votes, and a shard never has two replicas on one node.
 *
 * The removal rule (checked again by {@linkcode checkOperation}, which the runtime can call on
 * fresh state just before executing). Removing voter `n` from voters `V` leaving `V' = V - n`
 * is allowed only when all hold:
 * - R1: `n` is not the leader (leadership is transferred first; Raft could let a leader remove
 *   itself, but a transfer keeps the choice of the next leader with the planner);
 * - R2: the healthy voters of `V'` number at least the target, so a healthy voter goes only from
 *   a surplus and a dead or draining one only once its replacement is a voter;
 * - R3: `V'` has at least `min(rf, live nodes)` voters, and so many live ones when `n` is
 *   live: when no healthy node can take a replica, a drain stops (it would lower the factor)
 *   and a dead voter stays (removing it would not let the shard survive one more failure)
 *   until a node joins to take its place;
 * - R4: the live voters of `V'` are a majority of `V'` (`|live V'| >= floor(|V'| / 2) + 1`), so
 *   a removal never leaves a shard unable to commit;
 * - R5: `V'` is not empty.
 *
 * The same notion of load places the shards a shard move creates ({@linkcode placeNewShards}):
 * on active members that are up, least loaded first, before any replica of them exists.
 *
 * Diagnoses say what the planner cannot do: `capacity` (fewer healthy nodes than rf: the
 * factor cannot be held; {@linkcode checkRemoveNode} refuses a removal that would cause it),
 * `drainBlocked`, `noLeader` and `quorumLost` (a shard whose live voters are no majority needs
 * an operator: one-at-a-time changes cannot fix it).
 */
import { assert, REPLICAS_MAX } from "../../raft/mod.ts";

/** Default cap on replica moves (learners catching up) touching one node, in or out. */
export const REBALANCE_MOVES_PER_NODE_MAX = 2;
/** Default cap on leadership transfers planned by one call for balance. */
export const REBALANCE_LEADER_TRANSFERS_MAX = 16;
/** The most members a snapshot may list. */
export const REBALANCE_MEMBERS_MAX = 1_024;
/** The most shards a snapshot may list (the router's shard limit). */
export const REBALANCE_SHARDS_MAX = 1_024;
/** Replica counts that differ by this much or more trigger a balancing move. */
export const REBALANCE_LOAD_GAP_MIN = 2;

/** The state of a cluster member as the planner reads it (see the module doc). */
export type MemberState = "active" | "joining" | "draining" | "dead" | "removed";

/** One cluster member. */
export interface MemberView {
  readonly id: number;
  readonly state: MemberState;
}

/** One shard's Raft configuration as reported by its leader (or the best known view). */
export interface ShardView {
  readonly shard: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  /** The learners whose log has caught up with the leader's (ready to be promoted). */
  readonly caughtUpLearners: readonly number[];
  readonly leader: number | null;
}

/** Why an operation was planned. */
export type RebalanceGoal = "repair" | "drain" | "balanceReplicas" | "balanceLeaders";

/** One step for the runtime to execute on a shard's Raft group (replica ids are node ids). */
export type RebalanceOperation =
  | {
    readonly type: "addLearner" | "promoteLearner" | "removeReplica";
    readonly shard: number;
    readonly node: number;
    readonly goal: RebalanceGoal;
  }
  | {
    readonly type: "transferLeader";
    readonly shard: number;
    readonly from: number;
    readonly to: number;
    readonly goal: RebalanceGoal;
  };

/** A snapshot of the cluster: the planner's whole input. */
export interface ClusterView {
  readonly members: readonly MemberView[];
  readonly replicationFactor: number;
  readonly shards: readonly ShardView[];
  /** Operations issued but not yet visible in `shards`: their shards get nothing new. */
  readonly inFlight: readonly RebalanceOperation[];
}

/** Caps on how much one plan may set in motion. */
export interface RebalanceLimits {
  readonly movesPerNodeMax: number;
  readonly leaderTransfersMax: number;
}

/** The limits used when the caller passes none. */
export const DEFAULT_REBALANCE_LIMITS: RebalanceLimits = {
  movesPerNodeMax: REBALANCE_MOVES_PER_NODE_MAX,
  leaderTransfersMax: REBALANCE_LEADER_TRANSFERS_MAX,
};

/** Something the planner cannot do; `shard` is null for cluster-wide problems. */
export interface RebalanceDiagnosis {
  readonly code: "capacity" | "drainBlocked" | "noLeader" | "quorumLost";
  readonly shard: number | null;
  readonly message: string;
}

/** The planner's output: operations in goal order, then diagnoses sorted by shard. */
export interface RebalancePlan {
  readonly operations: readonly RebalanceOperation[];
  readonly diagnoses: readonly RebalanceDiagnosis[];
}

/**
 * Plans the next operations for `cluster` (see the module doc for the goals and rules).
 *
 * @example
 * ```ts
 * planRebalance({
 *   members: [1, 2, 3].map((id) => ({ id, state: "active" })).concat({ id: 4, state: "dead" }),
 *   replicationFactor: 3,
 *   shards: [{ shard: 0, voters: [1, 2, 4], learners: [], caughtUpLearners: [], leader: 1 }],
 *   inFlight: [],
 * }).operations; // [{ type: "addLearner", shard: 0, node: 3, goal: "repair" }]
 * ```
 */
export function planRebalance(
  cluster: ClusterView,
  limits: RebalanceLimits = DEFAULT_REBALANCE_LIMITS,
): RebalancePlan {
  checkClusterView(cluster);
  assert(limits.movesPerNodeMax >= 1, "movesPerNodeMax must be at least 1");
  assert(limits.leaderTransfersMax >= 0, "leaderTransfersMax must not be negative");
  const context = buildContext(cluster, limits);
  const operations: RebalanceOperation[] = [];
  const diagnoses: RebalanceDiagnosis[] = [];
  if (context.healthy.length < context.rf) {
    diagnoses.push({
      code: "capacity",
      shard: null,
      message: `Cannot hold replication factor ${context.rf}: only ` +
        `${context.healthy.length} healthy node(s) can host replicas`,
    });
  }
  for (const shard of shardsByUrgency(context)) {
    if (context.busy.has(shard.shard)) continue;
    const step = shardStep(shard, context);
    if (step === null) continue;
    if ("code" in step) diagnoses.push(step);
    else emit(step, context, operations);
  }
  balanceReplicas(context, operations);
  balanceLeaders(context, operations);
  for (const operation of operations) {
    const problem = checkOperation(cluster, operation);
    assert(problem === null, `planRebalance() planned an unsafe operation: ${problem}`);
  }
  diagnoses.sort((a, b) => (a.shard ?? -1) - (b.shard ?? -1));
  return { operations, diagnoses };
}

/**
 * Why `node` may not leave the cluster (drained, or declared dead for good), or null when it
 * may: the other healthy nodes must be able to hold the replication factor.
 */
export function checkRemoveNode(cluster: ClusterView, node: number): string | null {
  checkClusterView(cluster);
  const member = cluster.members.find((candidate) => candidate.id === node);
  if (member === undefined) return `Cannot remove node ${node}: it is not a member`;
  if (member.state === "removed") return `Cannot remove node ${node}: it is already removed`;
  const remaining = cluster.members.filter((other) => other.id !== node && isHealthy(other.state));
  if (remaining.length >= cluster.replicationFactor) return null;
  return `Cannot remove node ${node}: ${remaining.length} healthy node(s) would remain but the ` +
    `replication factor is ${cluster.replicationFactor}`;
}

/**
 * Why `operation` is unsafe or invalid on `cluster`, or null when it may be executed now.
 * The planner asserts it on every operation it returns; the runtime may call it again on a
 * fresher snapshot just before proposing the change.
 */
export function checkOperation(cluster: ClusterView, operation: RebalanceOperation): string | null {
  const shard = cluster.shards.find((candidate) => candidate.shard === operation.shard);
  if (shard === undefined) return `shard ${operation.shard} is unknown`;
  const states = stateMap(cluster);
  if (operation.type === "transferLeader") {
    if (shard.leader !== operation.from) return `node ${operation.from} is not the leader`;
    if (!shard.voters.includes(operation.to)) return `node ${operation.to} is not a voter`;
    if (!isHealthy(states.get(operation.to))) return `node ${operation.to} is not healthy`;
    return null;
  }
  const node = operation.node;
  const isReplica = shard.voters.includes(node) || shard.learners.includes(node);
  if (operation.type === "addLearner") {
    if (isReplica) return `node ${node} already hosts shard ${shard.shard}`;
    if (!isHealthy(states.get(node))) return `node ${node} is not healthy`;
    const size = shard.voters.length + shard.learners.length;
    return size < REPLICAS_MAX ? null : `shard ${shard.shard} already has ${size} replicas`;
  }
  if (operation.type === "promoteLearner") {
    if (!shard.caughtUpLearners.includes(node)) return `node ${node} is no caught-up learner`;
    return isHealthy(states.get(node)) ? null : `node ${node} is not healthy`;
  }
  if (shard.learners.includes(node)) return null;
  if (!shard.voters.includes(node)) return `node ${node} does not host shard ${shard.shard}`;
  return removalProblem(shard, node, rulesOf(cluster, states));
}

// ---------------------------------------------------------------------------------------------

interface Rules {
  readonly rf: number;
  readonly states: ReadonlyMap<number, MemberState>;
  /** min(rf, healthy nodes): the healthy voters every shard aims at. */
  readonly target: number;
  /** min(rf, live nodes): the live voters a removal of a live voter must leave. */
  readonly liveTarget: number;
}

interface Context extends Rules {
  readonly limits: RebalanceLimits;
  /** Replica count per healthy node in the snapshot. */
  readonly rawLoad: ReadonlyMap<number, number>;
  readonly shards: readonly ShardView[];
  /** Healthy node ids, ascending. */
  readonly healthy: readonly number[];
  /** Projected replica count per healthy node. */
  readonly load: Map<number, number>;
  /** Projected leadership count per live node. */
  readonly leaders: Map<number, number>;
  /** Moves (learners catching up) touching each node. */
  readonly moves: Map<number, number>;
  /** Shards that already have an operation (in flight or in this plan). */
  readonly busy: Set<number>;
}

function removalProblem(shard: ShardView, node: number, rules: Rules): string | null {
  if (shard.leader === node) return `R1: node ${node} leads shard ${shard.shard}`;
  const rest = shard.voters.filter((voter) => voter !== node);
  if (rest.length === 0) return `R5: node ${node} is the last voter`;
  const healthy = rest.filter((voter) => isHealthy(rules.states.get(voter))).length;
  if (healthy < rules.target) {
    return `R2: ${healthy} healthy voter(s) would remain, below the target ${rules.target}`;
  }
  if (rest.length < rules.liveTarget) {
    return `R3: ${rest.length} voter(s) would remain, below ${rules.liveTarget}`;
  }
  const live = rest.filter((voter) => isLive(rules.states.get(voter))).length;
  if (isLive(rules.states.get(node)) && live < rules.liveTarget) {
    return `R3: ${live} live voter(s) would remain, below ${rules.liveTarget}`;
  }
  if (live < quorum(rest.length)) {
    return `R4: ${live} live voter(s) of ${rest.length} would be no majority`;
  }
  return null;
}

function shardStep(
  shard: ShardView,
  context: Context,
): RebalanceOperation | RebalanceDiagnosis | null {
  const id = shard.shard;
  const live = shard.voters.filter((voter) => isLive(context.states.get(voter)));
  if (live.length < quorum(shard.voters.length)) {
    const message = `Shard ${id} has ${live.length} live voter(s) of ${shard.voters.length}: ` +
      "no majority, it needs manual recovery";
    return { code: "quorumLost", shard: id, message };
  }
  const leader = liveLeader(shard, context.states);
  if (leader === null) {
    return { code: "noLeader", shard: id, message: `Shard ${id} has no live leader yet` };
  }
  const goal = goalOf(shard, context);
  if (context.states.get(leader) === "draining") {
    const to = bestLeaderTarget(shard, leader, context);
    if (to !== null) return { type: "transferLeader", shard: id, from: leader, to, goal };
  }
  const badLearner = shard.learners.find((node) => !isHealthy(context.states.get(node)));
  if (badLearner !== undefined) {
    return { type: "removeReplica", shard: id, node: badLearner, goal };
  }
  const ready = shard.caughtUpLearners.find((node) => isHealthy(context.states.get(node)));
  if (ready !== undefined) return { type: "promoteLearner", shard: id, node: ready, goal };
  const removal = voterRemoval(shard, leader, goal, context);
  if (removal !== null) return removal;
  if (shard.learners.length > 0) return null;
  const healthyVoters = shard.voters.filter((voter) => isHealthy(context.states.get(voter)));
  if (healthyVoters.length < context.target) {
    const node = leastLoadedHost(shard, context, leader);
    return node === null ? null : { type: "addLearner", shard: id, node, goal };
  }
  if (shard.voters.some((voter) => context.states.get(voter) === "draining")) {
    const message = `Cannot drain shard ${id}: no healthy node is left to take its replica`;
    return { code: "drainBlocked", shard: id, message };
  }
  return null;
}

/** Steps d and e: a bad voter the rule lets go, else the surplus healthy voter. */
function voterRemoval(
  shard: ShardView,
  leader: number,
  goal: RebalanceGoal,
  context: Context,
): RebalanceOperation | null {
  const bad = shard.voters
    .filter((voter) => !isHealthy(context.states.get(voter)))
    .sort((a, b) => badRank(context.states.get(a)) - badRank(context.states.get(b)) || a - b);
  for (const node of bad) {
    if (removalProblem(shard, node, context) === null) {
      return { type: "removeReplica", shard: shard.shard, node, goal };
    }
  }
  const surplus = surplusVoter(shard, context, false);
  if (surplus === null) return null;
  if (surplus === leader) {
    const to = bestLeaderTarget(shard, leader, context);
    if (to === null) return null;
    return { type: "transferLeader", shard: shard.shard, from: leader, to, goal };
  }
  if (removalProblem(shard, surplus, context) !== null) return null;
  return { type: "removeReplica", shard: shard.shard, node: surplus, goal };
}

/**
 * The healthy voter to drop when a shard has more healthy voters than the target: the most
 * loaded (by the snapshot's counts, so the choice is stable while a move is in progress),
 * ties going to a follower and then to the lowest id. Null when there is no surplus. With
 * `withLearners`, healthy learners count too: the voter a move in progress will drop.
 */
function surplusVoter(
  shard: ShardView,
  rules: Rules & { readonly rawLoad: ReadonlyMap<number, number> },
  withLearners: boolean,
): number | null {
  const healthy = shard.voters.filter((voter) => isHealthy(rules.states.get(voter)));
  const learners = shard.learners.filter((node) => isHealthy(rules.states.get(node)));
  if (healthy.length + (withLearners ? learners.length : 0) <= rules.target) return null;
  const sorted = [...healthy].sort((a, b) =>
    (rules.rawLoad.get(b) ?? 0) - (rules.rawLoad.get(a) ?? 0) ||
    Number(a === shard.leader) - Number(b === shard.leader) || a - b
  );
  return sorted[0] ?? null;
}

/** Where a shard's leadership goes: an active voter first, fewest leaderships, lowest id. */
function bestLeaderTarget(shard: ShardView, from: number, context: Context): number | null {
  const candidates = shard.voters.filter((voter) =>
    voter !== from && isHealthy(context.states.get(voter))
  );
  candidates.sort((a, b) =>
    Number(context.states.get(a) !== "active") - Number(context.states.get(b) !== "active") ||
    (context.leaders.get(a) ?? 0) - (context.leaders.get(b) ?? 0) || a - b
  );
  return candidates[0] ?? null;
}

/** The least loaded healthy node not hosting `shard` with move budget left, or null. */
function leastLoadedHost(shard: ShardView, context: Context, leader: number): number | null {
  if ((context.moves.get(leader) ?? 0) >= context.limits.movesPerNodeMax) return null;
  for (const node of nodesByLoad(context)) {
    if (shard.voters.includes(node) || shard.learners.includes(node)) continue;
    if ((context.moves.get(node) ?? 0) < context.limits.movesPerNodeMax) return node;
  }
  return null;
}

/** Healthy nodes by projected load ascending, then id. */
function nodesByLoad(context: Context): number[] {
  const load = (node: number) => context.load.get(node) ?? 0;
  return [...context.healthy].sort((a, b) => load(a) - load(b) || a - b);
}

/** Goal 3: moves from the most to the least loaded healthy node, on otherwise idle shards. */
function balanceReplicas(context: Context, operations: RebalanceOperation[]): void {
  const idle = context.shards.filter((shard) => isSettled(shard, context));
  for (let round = 0; round < idle.length; round++) {
    const move = nextReplicaMove(idle, context);
    if (move === null) return;
    context.load.set(move.from, (context.load.get(move.from) ?? 0) - 1);
    emit(
      { type: "addLearner", shard: move.shard, node: move.to, goal: "balanceReplicas" },
      context,
      operations,
    );
  }
}

function nextReplicaMove(
  idle: readonly ShardView[],
  context: Context,
): { shard: number; from: number; to: number } | null {
  const load = (node: number) => context.load.get(node) ?? 0;
  const cap = context.limits.movesPerNodeMax;
  const targets = nodesByLoad(context).filter((node) => (context.moves.get(node) ?? 0) < cap);
  const lightest = targets[0];
  if (lightest === undefined) return null;
  const sources = [...context.healthy].sort((a, b) => load(b) - load(a) || a - b);
  for (const from of sources) {
    if (load(from) - load(lightest) < REBALANCE_LOAD_GAP_MIN) return null;
    for (const shard of idle) {
      if (context.busy.has(shard.shard) || !shard.voters.includes(from)) continue;
      if ((context.moves.get(shard.leader ?? 0) ?? 0) >= cap) continue;
      const to = targets.find((node) => !shard.voters.includes(node));
      if (to === undefined || load(from) - load(to) < REBALANCE_LOAD_GAP_MIN) continue;
      return { shard: shard.shard, from, to };
    }
  }
  return null;
}

/** Goal 4: leadership transfers from the node leading most shards to active voters. */
function balanceLeaders(context: Context, operations: RebalanceOperation[]): void {
  const idle = context.shards.filter((shard) => isSettled(shard, context));
  for (let transfer = 0; transfer < context.limits.leaderTransfersMax; transfer++) {
    const move = nextLeaderMove(idle, context);
    if (move === null) return;
    emit({ type: "transferLeader", ...move, goal: "balanceLeaders" }, context, operations);
  }
}

/** From the busiest leader that can shed one, to the active voter leading fewest (then id). */
function nextLeaderMove(
  idle: readonly ShardView[],
  context: Context,
): { shard: number; from: number; to: number } | null {
  const count = (node: number) => context.leaders.get(node) ?? 0;
  const sources = [...context.healthy].sort((a, b) => count(b) - count(a) || a - b);
  for (const from of sources) {
    let best: { shard: number; from: number; to: number } | null = null;
    for (const shard of idle) {
      if (shard.leader !== from || context.busy.has(shard.shard)) continue;
      for (const to of shard.voters) {
        if (context.states.get(to) !== "active") continue;
        if (count(from) - count(to) < REBALANCE_LOAD_GAP_MIN) continue;
        const isBetter = best === null || count(to) < count(best.to) ||
          (count(to) === count(best.to) && to < best.to);
        if (isBetter) best = { shard: shard.shard, from, to };
      }
    }
    if (best !== null) return best;
  }
  return null;
}

/**
 * A shard with nothing of its own to do: a live leader, no learners, no dead or removed voter
 * and exactly the target of healthy voters (a draining voter may remain when no healthy node
 * can take it; it is never a move or transfer target).
 */
function isSettled(shard: ShardView, context: Context): boolean {
  if (context.busy.has(shard.shard) || shard.learners.length > 0) return false;
  if (liveLeader(shard, context.states) === null) return false;
  if (!shard.voters.every((voter) => isLive(context.states.get(voter)))) return false;
  const healthy = shard.voters.filter((voter) => isHealthy(context.states.get(voter)));
  return healthy.length === context.target;
}

/** Records `operation` in the plan and in the projected counts. */
function emit(
  operation: RebalanceOperation,
  context: Context,
  operations: RebalanceOperation[],
): void {
  assert(!context.busy.has(operation.shard), "one operation per shard at a time");
  context.busy.add(operation.shard);
  operations.push(operation);
  if (operation.type === "transferLeader") {
    context.leaders.set(operation.from, (context.leaders.get(operation.from) ?? 0) - 1);
    context.leaders.set(operation.to, (context.leaders.get(operation.to) ?? 0) + 1);
  }
  if (operation.type === "addLearner") {
    const shard = context.shards.find((candidate) => candidate.shard === operation.shard);
    assert(shard !== undefined, "an operation names a listed shard");
    countMove(context.moves, operation.node, liveLeader(shard, context.states));
    context.load.set(operation.node, (context.load.get(operation.node) ?? 0) + 1);
  }
}

function countMove(moves: Map<number, number>, learner: number, leader: number | null): void {
  moves.set(learner, (moves.get(learner) ?? 0) + 1);
  if (leader !== null) moves.set(leader, (moves.get(leader) ?? 0) + 1);
}

function buildContext(cluster: ClusterView, limits: RebalanceLimits): Context {
  const states = stateMap(cluster);
  const rules = rulesOf(cluster, states);
  const healthy = cluster.members.filter((member) => isHealthy(member.state))
    .map((member) => member.id).sort((a, b) => a - b);
  const shards = cluster.shards.map(normalizeShard).sort((a, b) => a.shard - b.shard);
  const rawLoad = new Map<number, number>(healthy.map((node) => [node, 0]));
  const leaders = new Map<number, number>();
  const moves = new Map<number, number>();
  for (const shard of shards) {
    for (const node of [...shard.voters, ...shard.learners]) {
      if (rawLoad.has(node)) rawLoad.set(node, (rawLoad.get(node) ?? 0) + 1);
    }
    const leader = liveLeader(shard, states);
    if (leader !== null) leaders.set(leader, (leaders.get(leader) ?? 0) + 1);
    for (const learner of shard.learners) countMove(moves, learner, leader);
  }
  const load = new Map(rawLoad);
  for (const shard of shards) {
    const surplus = surplusVoter(shard, { ...rules, rawLoad }, true);
    if (surplus !== null) load.set(surplus, (load.get(surplus) ?? 0) - 1);
  }
  const busy = new Set<number>();
  for (const operation of cluster.inFlight) {
    busy.add(operation.shard);
    const shard = shards.find((candidate) => candidate.shard === operation.shard);
    if (operation.type !== "addLearner" || shard === undefined) continue;
    countMove(moves, operation.node, liveLeader(shard, states));
    if (load.has(operation.node)) load.set(operation.node, (load.get(operation.node) ?? 0) + 1);
  }
  return { ...rules, limits, rawLoad, shards, healthy, load, leaders, moves, busy };
}

/** Shards in goal order: repair, drain, the rest; fewest healthy voters first; then id. */
function shardsByUrgency(context: Context): ShardView[] {
  const rank = { repair: 0, drain: 1, balanceReplicas: 2, balanceLeaders: 3 };
  const keyed = context.shards.map((shard) => ({
    shard,
    rank: rank[goalOf(shard, context)],
    healthy: shard.voters.filter((voter) => isHealthy(context.states.get(voter))).length,
  }));
  keyed.sort((a, b) => a.rank - b.rank || a.healthy - b.healthy || a.shard.shard - b.shard.shard);
  return keyed.map((entry) => entry.shard);
}

function goalOf(shard: ShardView, rules: Rules): RebalanceGoal {
  const replicas = [...shard.voters, ...shard.learners];
  const states = replicas.map((node) => rules.states.get(node));
  if (states.some((state) => state === "dead" || state === "removed")) return "repair";
  const healthyVoters = shard.voters.filter((voter) => isHealthy(rules.states.get(voter)));
  const hasDraining = states.includes("draining");
  if (!hasDraining && healthyVoters.length < rules.target) return "repair";
  if (hasDraining) return "drain";
  return "balanceReplicas";
}

function rulesOf(cluster: ClusterView, states: ReadonlyMap<number, MemberState>): Rules {
  const members = [...states.values()];
  const healthy = members.filter(isHealthy).length;
  const live = members.filter(isLive).length;
  const rf = cluster.replicationFactor;
  return { rf, states, target: Math.min(rf, healthy), liveTarget: Math.min(rf, live) };
}

function stateMap(cluster: ClusterView): Map<number, MemberState> {
  return new Map(cluster.members.map((member) => [member.id, member.state]));
}

function normalizeShard(shard: ShardView): ShardView {
  const ascending = (a: number, b: number) => a - b;
  return {
    shard: shard.shard,
    voters: [...shard.voters].sort(ascending),
    learners: [...shard.learners].sort(ascending),
    caughtUpLearners: [...shard.caughtUpLearners].sort(ascending),
    leader: shard.leader,
  };
}

function liveLeader(shard: ShardView, states: ReadonlyMap<number, MemberState>): number | null {
  if (shard.leader === null || !isLive(states.get(shard.leader))) return null;
  return shard.leader;
}

function badRank(state: MemberState | undefined): number {
  return state === "draining" ? 1 : 0;
}

function isHealthy(state: MemberState | undefined): boolean {
  return state === "active" || state === "joining";
}

function isLive(state: MemberState | undefined): boolean {
  return isHealthy(state) || state === "draining";
}

function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

function checkClusterView(cluster: ClusterView): void {
  const rf = cluster.replicationFactor;
  assert(Number.isSafeInteger(rf) && rf >= 1 && rf <= REPLICAS_MAX, "rf out of range");
  assert(cluster.members.length <= REBALANCE_MEMBERS_MAX, "too many members");
  assert(cluster.shards.length <= REBALANCE_SHARDS_MAX, "too many shards");
  const states = stateMap(cluster);
  assert(states.size === cluster.members.length, "member ids must be distinct");
  const ids = new Set(cluster.shards.map((shard) => shard.shard));
  assert(ids.size === cluster.shards.length, "shard ids must be distinct");
  for (const shard of cluster.shards) {
    const replicas = [...shard.voters, ...shard.learners];
    assert(shard.voters.length >= 1, `shard ${shard.shard} has no voter`);
    assert(new Set(replicas).size === replicas.length, `shard ${shard.shard} repeats a node`);
    assert(replicas.every((node) => states.has(node)), `shard ${shard.shard} names a stranger`);
    const isLeaderVoter = shard.leader === null || shard.voters.includes(shard.leader);
    assert(isLeaderVoter, `shard ${shard.shard}'s leader is not a voter`);
    const caughtUp = shard.caughtUpLearners.every((node) => shard.learners.includes(node));
    assert(caughtUp, `shard ${shard.shard} lists a caught-up learner that is no learner`);
  }
  for (const operation of cluster.inFlight) assert(ids.has(operation.shard), "unknown shard");
}

// ---------------------------------------------------------------------------------------------

/** A member as {@linkcode placeNewShards} reads it: its state and whether its link is up. */
export interface PlacementCandidate {
  readonly id: number;
  readonly state: MemberState;
  readonly isUp: boolean;
}

/** The voters of one new shard, its preferred leader first. */
export interface NewShardVoters {
  readonly shard: number;
  readonly voters: readonly number[];
}

/** Where new shards go, or why they cannot be placed. */
export type NewShardPlacement =
  | { readonly isPlaced: true; readonly shards: readonly NewShardVoters[] }
  | {
    readonly isPlaced: false;
    /** Active members whose link is up, and how many replicas each shard needs. */
    readonly available: number;
    readonly needed: number;
    readonly message: string;
  };

/**
 * The voters of shards created by a shard move (`aspen shard add`), on the members as they are
 * now: only `active` members that are up (a joining node is still taking snapshots, a draining
 * one is leaving, a dead or removed one is gone), `min(rf, members not removed)` each, so that
 * a single-node cluster keeps its one replica. Replicas go to the least loaded candidates (the
 * planner's load: replicas of the current configurations, voters and learners, per node), the
 * counts growing as each new shard is placed, so that the new shards even the load out rather
 * than leave it to balancing moves. Each shard's first voter is its preferred leader: the
 * chosen voter leading fewest shards. Ties go to the lower id, and the answer does not depend
 * on the order of the lists: every caller computes the same placement from the same view.
 *
 * @example
 * ```ts
 * placeNewShards({
 *   members: [1, 2, 3, 4].map((id) => ({ id, state: "active", isUp: id !== 2 })),
 *   replicationFactor: 3,
 *   shards: [{ shard: 0, voters: [1, 2, 3], learners: [], caughtUpLearners: [], leader: 1 }],
 *   newShards: [1],
 * }); // { isPlaced: true, shards: [{ shard: 1, voters: [4, 1, 3] }] }
 * ```
 */
export function placeNewShards(input: {
  readonly members: readonly PlacementCandidate[];
  readonly replicationFactor: number;
  /** The current configurations (leader null when unknown). */
  readonly shards: readonly ShardView[];
  readonly newShards: readonly number[];
}): NewShardPlacement {
  const rf = input.replicationFactor;
  assert(Number.isSafeInteger(rf) && rf >= 1 && rf <= REPLICAS_MAX, "rf out of range");
  assert(input.members.length <= REBALANCE_MEMBERS_MAX, "too many members");
  assert(input.shards.length + input.newShards.length <= REBALANCE_SHARDS_MAX, "too many shards");
  assert(new Set(input.members.map((member) => member.id)).size === input.members.length, "ids");
  assert(new Set(input.newShards).size === input.newShards.length, "new shard ids are distinct");
  const present = input.members.filter((member) => member.state !== "removed").length;
  const needed = Math.min(rf, Math.max(present, 1));
  const candidates = input.members
    .filter((member) => member.state === "active" && member.isUp)
    .map((member) => member.id)
    .sort((a, b) => a - b);
  if (candidates.length < needed) {
    return {
      isPlaced: false,
      available: candidates.length,
      needed,
      message: `${candidates.length} active member(s) are up, but each new shard needs ` +
        `${needed} replica(s) (replication factor ${rf})`,
    };
  }
  const load = new Map<number, number>(candidates.map((node) => [node, 0]));
  const leaders = new Map<number, number>(candidates.map((node) => [node, 0]));
  for (const shard of input.shards) {
    for (const node of new Set([...shard.voters, ...shard.learners])) {
      if (load.has(node)) load.set(node, load.get(node)! + 1);
    }
    const leader = shard.leader;
    if (leader !== null && leaders.has(leader)) leaders.set(leader, leaders.get(leader)! + 1);
  }
  const shards: NewShardVoters[] = [];
  for (const shard of [...input.newShards].sort((a, b) => a - b)) {
    const chosen = [...candidates]
      .sort((a, b) => load.get(a)! - load.get(b)! || a - b)
      .slice(0, needed);
    for (const node of chosen) load.set(node, load.get(node)! + 1);
    const leader = [...chosen].sort((a, b) =>
      leaders.get(a)! - leaders.get(b)! || load.get(a)! - load.get(b)! || a - b
    )[0]!;
    leaders.set(leader, leaders.get(leader)! + 1);
    const others = chosen.filter((node) => node !== leader).sort((a, b) => a - b);
    shards.push({ shard, voters: [leader, ...others] });
  }
  return { isPlaced: true, shards };
}
