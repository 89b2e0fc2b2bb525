/**
 * The rebalance driver: the runtime of the placement planner (rebalancer.ts). It runs on shard
 * 0's leader only and keeps no state between passes: each pass reads the members record and
 * every shard's actual Raft configuration (from the shard's leader), plans, and executes. A
 * crash, or a new shard 0 leader, just runs the next pass from what the groups say then.
 *
 * One pass:
 *
 * ```text
 *   members record + each shard's leader view (voters, learners, lag) + node reports
 *     │
 *     ├─ repair drift: a learner whose node lacks the replica gets it again (host);
 *     │                a replica no group lists is dropped (a crash between two steps)
 *     ├─ planRebalance ─▶ at most one operation per shard, executed one after another:
 *     │     addLearner      host an empty replica on the node, then add it as a learner
 *     │     promoteLearner  once its lag is at most LEARNER_CAUGHT_UP_LAG_MAX (addVoter)
 *     │     removeReplica   only while every other voter's node is up; then drop its files
 *     │     transferLeader  before the leader's own replica is removed
 *     ├─ members: joining ─▶ active once the node is up; draining ─▶ removed once no
 *     │           group lists it (the node is told first, and stops)
 *     └─ the placement record (routing) follows the configurations
 * ```
 *
 * Member states as the planner sees them: a draining node that is down is `dead` (its
 * replicas are rebuilt from the survivors: replace-node); an active node that is down stays
 * `active` (a restart must not trigger a rebuild), but no operation targets it and no replica
 * is removed from a shard while one of its other voters is down, so a removal never leaves a
 * group without a majority of live voters.
 *
 * When a pass runs: the driver looks every REBALANCE_PASS_MS at what it can see without asking
 * anyone ({@linkcode DriverCluster.watchKey}: the members record as this node last read it,
 * which members' links are up, the leaders of the local replicas, the shard count). A pass runs
 * when that changed since the last pass began, when this node just became shard 0's leader,
 * when the last pass was not settled (it did something, left something undone, reported a
 * diagnosis, saw a learner, a shard without a leader, a joining or draining member, or failed),
 * and otherwise every REBALANCE_IDLE_PASS_MS as a safety net. So a join, drain or replace
 * proceeds a pass per REBALANCE_PASS_MS as before, while an idle cluster's leader asks every
 * shard for its status only every REBALANCE_IDLE_PASS_MS.
 */
import { assert } from "../../raft/mod.ts";
import type { Logger } from "../log.ts";
import { type MemberRecordState, type MembersRecord, withMemberState } from "./members.ts";
import {
  type ClusterView,
  type MemberState,
  planRebalance,
  type RebalanceOperation,
  type ShardView,
} from "./rebalancer.ts";
import type { MembershipChangeType } from "./shard_request.ts";
import type { PlacementRecord } from "./placement_record.ts";

/**
 * How often the driver looks for a reason to run a pass (a cheap look: no read, no request),
 * and so the pace of passes while the cluster is in motion.
 */
export const REBALANCE_PASS_MS = 1_000;
/** The longest time between two passes on shard 0's leader while nothing seems to change. */
export const REBALANCE_IDLE_PASS_MS = 10_000;
/** A learner this close to the leader's last index is promoted. */
export const LEARNER_CAUGHT_UP_LAG_MAX = 64;
/** The most operations one pass executes (the planner's own caps apply first). */
export const REBALANCE_OPERATIONS_PER_PASS_MAX = 32;

/** A learner as its shard's leader reports it. */
export interface LearnerObservation {
  readonly node: number;
  readonly lag: number;
  /** 0 until the learner has stored some of the log (the Raft core refuses to promote it). */
  readonly matchIndex: number;
}

/** One shard as its leader reports it; null fields when no leader answered. */
export interface ShardObservation {
  readonly shard: number;
  readonly leader: number | null;
  /** The leader's term (0 without a leader). */
  readonly term: number;
  readonly voters: readonly number[];
  /** A learner's distance behind the leader's last index, and what the leader knows it holds. */
  readonly learners: readonly LearnerObservation[];
  /**
   * The nodes of the leader's configuration at its commit index. `voters` and `learners` are
   * its latest, in force from the append: a change there can still be truncated away by the
   * next leader, so a replica is only dropped when both lack it.
   */
  readonly committedReplicas: readonly number[];
}

/** Everything the driver does to the cluster: the node implements it, tests fake it. */
export interface DriverCluster {
  /** Whether this node leads shard 0 now (the driver runs only there). */
  isLeader(): boolean;
  /**
   * A summary of what a pass depends on that this node knows without asking anyone (no read,
   * no request): a pass runs when it changes. Asked once per REBALANCE_PASS_MS on the leader.
   */
  watchKey(): string;
  readonly replicationFactor: number;
  /** The members record, read linearizably; null before shard 0's leader wrote it. */
  readMembers(): Promise<MembersRecord | null>;
  /** Changes the members record by compare-and-swap. */
  updateMembers(change: (record: MembersRecord) => MembersRecord): Promise<MembersRecord>;
  /** Every shard's configuration from its leader (leader null when none answered). */
  observeShards(): Promise<readonly ShardObservation[]>;
  /** Whether the peer link to `node` is up (this node counts as up). */
  isUp(node: number): boolean;
  /** The shards `node` hosts a replica of, or null when it did not answer. */
  hostedShards(node: number): Promise<readonly number[] | null>;
  /**
   * Hosts an empty replica on `node` for a group led in `term`; the node refuses (a conflict)
   * when it dropped that replica on the word of a later term's leader.
   */
  hostReplica(node: number, shard: number, term: number): Promise<void>;
  /** Drops `node`'s replica, unless it has seen a term after `term` (a stale view). */
  dropReplica(node: number, shard: number, term: number): Promise<void>;
  changeMembership(shard: number, change: MembershipChangeType, node: number): Promise<void>;
  transferLeader(shard: number, to: number): Promise<void>;
  /** Tells `node` it was removed (it writes its mark and stops). */
  notifyRemoved(node: number): Promise<void>;
  /** The placement record as last written, and a write of a new one. */
  readPlacement(): PlacementRecord;
  writePlacement(placement: PlacementRecord): Promise<void>;
}

/** What one pass did, for logs and tests. */
export interface PassReport {
  readonly operations: readonly RebalanceOperation[];
  readonly hosted: readonly { readonly node: number; readonly shard: number }[];
  readonly dropped: readonly { readonly node: number; readonly shard: number }[];
  readonly memberChanges: readonly { readonly node: number; readonly state: MemberRecordState }[];
  readonly diagnoses: readonly string[];
  /**
   * Whether the pass found the cluster at rest: it changed nothing (the placement record
   * included), left no planned operation to a later pass but those it skipped because a node is
   * down (the watch key sees it come up), diagnosed nothing, and saw every shard led, no learner
   * and no joining or draining member. The next pass then waits for a change of the watch key.
   */
  readonly isSettled: boolean;
}

/** A pass that found nothing to work from (no members record yet): not settled. */
const EMPTY_REPORT: PassReport = {
  operations: [],
  hosted: [],
  dropped: [],
  memberChanges: [],
  diagnoses: [],
  isSettled: false,
};

/** Runs passes on shard 0's leader. */
export class RebalanceDriver {
  readonly #cluster: DriverCluster;
  readonly #logger: Logger;
  readonly #nowMs: () => number;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #isClosed = false;
  #lastDiagnoses = "";
  /** The watch key when the last pass began; null: no pass yet as shard 0's leader. */
  #passKey: string | null = null;
  #passStartMs = 0;
  #isSettled = false;
  #passes = 0;

  /** `nowMs`: monotonic milliseconds. */
  constructor(cluster: DriverCluster, logger: Logger, nowMs: () => number) {
    this.#cluster = cluster;
    this.#logger = logger;
    this.#nowMs = nowMs;
  }

  /** Passes run by watch() so far (for tests). */
  get passes(): number {
    return this.#passes;
  }

  /** Starts watching: a look every REBALANCE_PASS_MS (see the module doc). */
  start(): void {
    const run = async () => {
      await this.watch();
      if (!this.#isClosed) this.#timer = setTimeout(run, REBALANCE_PASS_MS);
    };
    this.#timer = setTimeout(run, REBALANCE_PASS_MS);
  }

  /**
   * One look (the timer's, or a test's): runs a pass when this node leads shard 0 and one is
   * due (see the module doc). Resolves whether a pass ran; a failed pass is logged.
   */
  async watch(): Promise<boolean> {
    const cluster = this.#cluster;
    if (!cluster.isLeader()) {
      this.#passKey = null; // A later leadership starts with a pass.
      return false;
    }
    const key = cluster.watchKey();
    const isDue = this.#passKey === null || key !== this.#passKey || !this.#isSettled ||
      this.#nowMs() - this.#passStartMs >= REBALANCE_IDLE_PASS_MS;
    if (!isDue) return false;
    this.#passKey = key;
    this.#passStartMs = this.#nowMs();
    this.#isSettled = false;
    this.#passes++;
    try {
      this.#isSettled = (await this.pass()).isSettled;
    } catch (error) {
      this.#logger.warn("A rebalance pass failed; the next one resumes", {
        reason: error instanceof Error ? error.message : String(error),
      });
    }
    return true;
  }

  /** Stops the passes (one under way finishes its current step). */
  close(): void {
    this.#isClosed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
  }

  /**
   * One pass (see the module doc). Every step is derived from the state read at its start,
   * so a pass that fails half-way leaves nothing the next pass cannot finish.
   *
   * @throws the cluster's errors: the pass stops at the first failed step.
   */
  async pass(): Promise<PassReport> {
    const cluster = this.#cluster;
    const read = await cluster.readMembers();
    if (read === null) return EMPTY_REPORT;
    let record = read;
    const observed = await cluster.observeShards();
    const hosting = await this.#hostingReports(record);
    const hosted = await this.#rehostLearners(observed, hosting);
    const refusals: string[] = [];
    const dropped = await this.#dropOrphans(observed, hosting, refusals);
    const memberChanges: { node: number; state: MemberRecordState }[] = [];
    record = await this.#activateJoined(record, memberChanges);
    const view = clusterView(record, observed, cluster);
    const plan = planRebalance(view);
    const operations: RebalanceOperation[] = [];
    for (const operation of plan.operations.slice(0, REBALANCE_OPERATIONS_PER_PASS_MAX)) {
      if (!this.#isSafeNow(operation, observed)) continue;
      const term = observed.find((shard) => shard.shard === operation.shard)?.term ?? 0;
      await this.#execute(operation, term);
      operations.push(operation);
    }
    const isPlacementWritten = await this.#savePlacement(observed, operations);
    if (operations.length === 0) await this.#finishDrains(record, observed, memberChanges);
    const diagnoses = [...refusals, ...plan.diagnoses.map((diagnosis) => diagnosis.message)];
    this.#report(operations, diagnoses);
    const isAtRest =
      observed.every((shard) => shard.leader !== null && shard.learners.length === 0) &&
      record.members.every((member) => member.state === "active" || member.state === "removed");
    // An operation skipped as unsafe waits for a node to come up, which changes the watch key;
    // one left for the next pass by the cap needs that pass soon.
    const isCapped = plan.operations.length > REBALANCE_OPERATIONS_PER_PASS_MAX;
    const isSettled = isAtRest && !isPlacementWritten && operations.length === 0 && !isCapped &&
      diagnoses.length === 0 && hosted.length === 0 && dropped.length === 0 &&
      memberChanges.length === 0;
    return { operations, hosted, dropped, memberChanges, diagnoses, isSettled };
  }

  /** What each up node reports hosting (null entries: it did not answer). */
  async #hostingReports(record: MembersRecord): Promise<Map<number, readonly number[] | null>> {
    const reports = new Map<number, readonly number[] | null>();
    for (const member of record.members) {
      if (member.state === "removed" || !this.#cluster.isUp(member.id)) continue;
      reports.set(member.id, await this.#cluster.hostedShards(member.id));
    }
    return reports;
  }

  /**
   * A learner whose node lacks the replica (a crash after addLearner): host it again. So for a
   * voter whose node never opened its replica (down while a shard move created the shard):
   * an empty replica, which its leader fills from the log or a snapshot. A voter that once
   * held data and lost it (a wiped disk) looks the same; that is an operator's recovery.
   */
  async #rehostLearners(
    observed: readonly ShardObservation[],
    hosting: ReadonlyMap<number, readonly number[] | null>,
  ): Promise<{ node: number; shard: number }[]> {
    const done: { node: number; shard: number }[] = [];
    for (const shard of observed) {
      const nodes = [...shard.learners.map((learner) => learner.node), ...shard.voters];
      for (const node of nodes) {
        const report = hosting.get(node) ?? null;
        if (report === null || report.includes(shard.shard)) continue;
        this.#checkLeader();
        await this.#cluster.hostReplica(node, shard.shard, shard.term);
        done.push({ node, shard: shard.shard });
      }
    }
    return done;
  }

  /**
   * A replica that its shard's leader does not list (a crash between a removal and the drop,
   * or between a host and its addLearner): dropped. Shards without a leader's answer are
   * left alone: their configuration is unknown. A replica the leader's committed configuration
   * still lists is kept: its removal is only appended, and a new leader without that entry
   * would list the replica again (and re-host it empty while it still counts on its log).
   * A drop that fails (a replica that has seen a later term than the view refuses) is skipped
   * and reported: nothing else in the pass depends on it, and failing the pass there would
   * stall every shard's rebalancing behind one replica (the simulation found it, seed 2187).
   */
  async #dropOrphans(
    observed: readonly ShardObservation[],
    hosting: ReadonlyMap<number, readonly number[] | null>,
    refusals: string[],
  ): Promise<{ node: number; shard: number }[]> {
    const done: { node: number; shard: number }[] = [];
    const byShard = new Map(observed.map((shard) => [shard.shard, shard]));
    for (const [node, shards] of hosting) {
      for (const shard of shards ?? []) {
        const view = byShard.get(shard);
        if (view === undefined || view.leader === null) continue;
        if (isListed(view, node)) continue;
        try {
          this.#checkLeader();
          await this.#cluster.dropReplica(node, shard, view.term);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          refusals.push(`Cannot drop node ${node}'s orphan replica of shard ${shard}: ${reason}`);
          continue;
        }
        done.push({ node, shard });
      }
    }
    return done;
  }

  /** joining -> active once the node is up. */
  async #activateJoined(
    record: MembersRecord,
    changes: { node: number; state: MemberRecordState }[],
  ): Promise<MembersRecord> {
    let current = record;
    for (const member of record.members) {
      if (member.state !== "joining" || !this.#cluster.isUp(member.id)) continue;
      current = await this.#cluster.updateMembers((latest) =>
        withMemberState(latest, member.id, "active")
      );
      changes.push({ node: member.id, state: "active" });
    }
    return current;
  }

  /**
   * The driver's own rule on top of the planner's: no operation targets a node that is down,
   * and no voter is removed while another voter of its shard is down (the planner counts a
   * down active node as live). A learner counts in no majority: its removal is always safe,
   * and must be, since the planner does nothing else in its shard first (a learner on a
   * draining node kept a dead voter's shard from its rebuild forever).
   */
  #isSafeNow(operation: RebalanceOperation, observed: readonly ShardObservation[]): boolean {
    const cluster = this.#cluster;
    if (operation.type === "transferLeader") {
      // Balancing counts every shard's leader: a shard whose leader did not answer is counted
      // as led by no one, and the balance it computes moves leaderships for nothing.
      const isBlind = operation.goal === "balanceLeaders" &&
        observed.some((shard) => shard.leader === null);
      return !isBlind && cluster.isUp(operation.to);
    }
    if (operation.type !== "removeReplica") return cluster.isUp(operation.node);
    const shard = observed.find((candidate) => candidate.shard === operation.shard);
    assert(shard !== undefined, "the planner plans only observed shards");
    if (shard.learners.some((learner) => learner.node === operation.node)) return true;
    return shard.voters.every((voter) => voter === operation.node || cluster.isUp(voter));
  }

  /**
   * Stops the pass when this node no longer leads shard 0: the new leader's driver runs its
   * own passes, and two drivers acting on views of different ages undo each other's steps (a
   * deposed one dropped a learner the other had just added).
   */
  #checkLeader(): void {
    if (!this.#cluster.isLeader()) {
      throw new Error("This node no longer leads shard 0: the pass stops");
    }
  }

  async #execute(operation: RebalanceOperation, term: number): Promise<void> {
    const cluster = this.#cluster;
    this.#checkLeader();
    this.#logger.info("Rebalance step", describe(operation));
    if (operation.type === "transferLeader") {
      await cluster.transferLeader(operation.shard, operation.to);
      return;
    }
    if (operation.type === "addLearner") {
      await cluster.hostReplica(operation.node, operation.shard, term);
      await cluster.changeMembership(operation.shard, "addLearner", operation.node);
      return;
    }
    if (operation.type === "promoteLearner") {
      await cluster.changeMembership(operation.shard, "addVoter", operation.node);
      return;
    }
    await cluster.changeMembership(operation.shard, "removeReplica", operation.node);
    if (cluster.isUp(operation.node)) {
      await cluster.dropReplica(operation.node, operation.shard, term);
    }
  }

  /**
   * draining -> removed once no shard lists the node (every shard answered): the node is
   * told first when it is up, since its peers refuse it from then on.
   */
  async #finishDrains(
    record: MembersRecord,
    observed: readonly ShardObservation[],
    changes: { node: number; state: MemberRecordState }[],
  ): Promise<void> {
    if (observed.some((shard) => shard.leader === null)) return;
    for (const member of record.members) {
      if (member.state !== "draining") continue;
      if (observed.some((shard) => isListed(shard, member.id))) continue;
      if (this.#cluster.isUp(member.id)) await this.#cluster.notifyRemoved(member.id);
      await this.#cluster.updateMembers((latest) => withMemberState(latest, member.id, "removed"));
      changes.push({ node: member.id, state: "removed" });
    }
  }

  /**
   * Writes the placement record when the configurations (after this pass's steps) differ;
   * resolves whether it wrote.
   */
  async #savePlacement(
    observed: readonly ShardObservation[],
    operations: readonly RebalanceOperation[],
  ): Promise<boolean> {
    const previous = this.#cluster.readPlacement();
    const next = new Map(previous);
    for (const shard of observed) {
      if (shard.leader === null) continue;
      const nodes = new Set([...shard.voters, ...shard.learners.map((learner) => learner.node)]);
      for (const operation of operations) {
        if (operation.shard !== shard.shard || operation.type === "transferLeader") continue;
        if (operation.type === "addLearner") nodes.add(operation.node);
        if (operation.type === "removeReplica") nodes.delete(operation.node);
      }
      next.set(shard.shard, [...nodes].sort((a, b) => a - b));
    }
    const isSame = next.size === previous.size &&
      [...next].every(([shard, nodes]) => previous.get(shard)?.join(",") === nodes.join(","));
    if (!isSame) await this.#cluster.writePlacement(next);
    return !isSame;
  }

  #report(operations: readonly RebalanceOperation[], diagnoses: readonly string[]): void {
    const key = diagnoses.join("; ");
    if (key !== this.#lastDiagnoses && key !== "") {
      this.#logger.warn("Rebalance cannot do everything", { diagnoses: key });
    }
    this.#lastDiagnoses = key;
    if (operations.length > 0) {
      this.#logger.debug("Rebalance pass", { operations: operations.length });
    }
  }
}

/** Whether `shard`'s leader lists `node` in its latest or its committed configuration. */
function isListed(shard: ShardObservation, node: number): boolean {
  return shard.voters.includes(node) || shard.committedReplicas.includes(node) ||
    shard.learners.some((learner) => learner.node === node);
}

/** The planner's input from the record, the observations and the peer links. */
export function clusterView(
  record: MembersRecord,
  observed: readonly ShardObservation[],
  cluster: Pick<DriverCluster, "isUp" | "replicationFactor">,
): ClusterView {
  const members = record.members.map((member) => ({
    id: member.id,
    state: plannerState(member.state, cluster.isUp(member.id)),
  }));
  const shards: ShardView[] = observed.map((shard) => ({
    shard: shard.shard,
    voters: shard.voters,
    learners: shard.learners.map((learner) => learner.node),
    caughtUpLearners: shard.learners
      .filter((learner) => learner.matchIndex > 0 && learner.lag <= LEARNER_CAUGHT_UP_LAG_MAX)
      .map((learner) => learner.node),
    // A leader that is no voter (it removed itself and steps down) is no leader to plan with.
    leader: shard.leader !== null && shard.voters.includes(shard.leader) ? shard.leader : null,
  }));
  // The planner wants every node a shard lists to be a member: a node unknown to the record
  // (a record older than the configuration, which cannot happen) is treated as removed.
  const known = new Set(members.map((member) => member.id));
  const extra = new Set<number>();
  for (const shard of shards) {
    for (const node of [...shard.voters, ...shard.learners]) {
      if (!known.has(node)) extra.add(node);
    }
  }
  for (const node of extra) members.push({ id: node, state: "removed" });
  return {
    members,
    replicationFactor: cluster.replicationFactor,
    shards: shards.filter((shard) => shard.voters.length > 0),
    inFlight: [],
  };
}

function plannerState(state: MemberRecordState, isUp: boolean): MemberState {
  if (state === "draining" && !isUp) return "dead";
  return state;
}

function describe(operation: RebalanceOperation): Record<string, string | number> {
  if (operation.type === "transferLeader") {
    const { type, shard, from, to, goal } = operation;
    return { type, shard, from, to, goal };
  }
  const { type, shard, node, goal } = operation;
  return { type, shard, node, goal };
}
