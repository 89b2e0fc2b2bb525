/**
 * A seeded model of the cluster the rebalance driver works on, faithful where the driver's
 * crashes came from (rebalance_sim_test.ts runs it): per shard and replica a Raft log of
 * configuration entries (rebalance_sim_log.ts) with its own commit index, term and vote;
 * leaders with per-replica progress (match); elections that may truncate an uncommitted
 * change; deposed leaders that still answer the driver's status reads (a partitioned node
 * talks to the driver but not to its peers); node crashes and restarts; and the node side of
 * host/drop as in replica_host.ts (terms of dropped replicas, refusals). The driver's calls go
 * through `DriverCluster`; before each one the model runs a few random Raft steps (and faults
 * while they are on), and it may crash the driver just before or just after an effect.
 *
 * Checked after every step (a `SimViolation` stops the run):
 * - no heartbeat carries a commit index past the log of a replica that accepts its term (the
 *   node would die on a Raft assertion);
 * - no committed entry is lost (a replica's committed prefix and every new leader's log agree
 *   with the committed log), one leader per term;
 * - no replica is dropped while the committed configuration lists it;
 * - a majority of the committed configuration's voters are up and hold the data.
 */
import { type Prng, SeededPrng } from "../../raft/mod.ts";
import { type MembersRecord, seedMembers, withJoiningMember, withMemberState } from "./members.ts";
import { replicasOf } from "./placement.ts";
import type { PlacementRecord } from "./placement_record.ts";
import {
  type DriverCluster,
  LEARNER_CAUGHT_UP_LAG_MAX,
  type ShardObservation,
} from "./rebalance_driver.ts";
import {
  appended,
  configAt,
  configIndexAt,
  isUpToDate,
  lastIndexOf,
  latestConfigOf,
  matchLength,
  nodesOf,
  type SimConfig,
  type SimLog,
  termAt,
  truncated,
} from "./rebalance_sim_log.ts";
import type { MembershipChangeType } from "./shard_request.ts";

/** The last index of a shard's initial data: a replica holds the data once it has this. */
export const SIM_DATA_INDEX = 1_000;
/**
 * A replica holds the data from this index on: a learner is promoted that close to its
 * leader's last index, so a new voter may still lack the last entries of the initial data.
 */
export const SIM_DATA_HELD_INDEX = SIM_DATA_INDEX - LEARNER_CAUGHT_UP_LAG_MAX;
/** Random Raft steps a membership change waits for its commit before it times out. */
export const SIM_COMMIT_WAIT_STEPS_MAX = 40;
/** The most entries one client write appends. */
const SIM_WRITE_ENTRIES_MAX = 40;

/** A broken invariant (a bug in the driver, the node side, or the model). */
export class SimViolation extends Error {}

/** The driver crashing at an effect: its pass ends, a fresh driver runs the next. */
export class SimCrash extends Error {}

/** A refusal or timeout the real call would answer with (the driver's pass stops there). */
export class SimRefusal extends Error {}

/** One shard's replica on one node: its durable Raft state and, when leading, its progress. */
interface SimReplica {
  log: SimLog;
  commit: number;
  term: number;
  vote: number | null;
  leader: { readonly term: number; readonly match: Map<number, number> } | null;
}

interface SimNode {
  readonly id: number;
  isUp: boolean;
  /** Crashed for good (a replace-node target). */
  isDead: boolean;
  /** Told it was removed: stopped for good. */
  isStopped: boolean;
  /** Cut off from some of its peers' Raft traffic (`cut`); the driver still reaches it. */
  isIsolated: boolean;
  /** The peers this node's Raft traffic cannot reach while it is isolated. */
  readonly cut: Set<number>;
  readonly replicas: Map<number, SimReplica>;
  /** Per dropped shard, the term of the view that justified the drop (replica_host.ts). */
  readonly dropped: Map<number, number>;
}

/** The model's knobs. */
export interface SimClusterOptions {
  readonly seed: number;
  readonly nodes: readonly number[];
  readonly shards: number;
  readonly rf: number;
}

/** The model; see the module doc. */
export class SimCluster implements DriverCluster {
  readonly replicationFactor: number;
  readonly prng: Prng;
  record: MembersRecord;
  placement: PlacementRecord = new Map();
  readonly nodes = new Map<number, SimNode>();
  readonly shardIds: number[] = [];
  /** Per shard, the longest log prefix known committed. */
  readonly committed = new Map<number, SimLog>();
  /** Per shard, the leader of each term. */
  readonly #leaders = new Map<number, Map<number, number>>();
  /** Whether faults (crashes, partitions) are injected between steps. */
  hasFaults = true;
  /** The chance (per mille) that the driver crashes at an effect. */
  crashPerMille = 60;
  effects = 0;
  /** The first broken invariant (also thrown, but the driver may catch it). */
  violation: string | null = null;
  /** Set by a driver crash: the crashed driver's later calls fail until a fresh one starts. */
  isDriverCrashed = false;
  /** What happened, for a failing seed's report (the last lines are kept). */
  readonly trace: string[] = [];

  constructor(options: SimClusterOptions) {
    this.prng = new SeededPrng(options.seed);
    this.replicationFactor = options.rf;
    const peers = options.nodes.map((id) => ({ id, address: `h:${id}` }));
    this.record = seedMembers(peers, { id: options.nodes[0]!, httpAddress: "" });
    for (const id of options.nodes) this.#addNode(id);
    for (let shard = 0; shard < options.shards; shard++) {
      this.shardIds.push(shard);
      const voters = replicasOf([...options.nodes], shard, options.rf).sort((a, b) => a - b);
      const config = { voters, learners: [] };
      const log = appended(appended([], 1, 1, config), 1, SIM_DATA_INDEX - 1, null);
      for (const node of voters) {
        const replica: SimReplica = {
          log,
          commit: SIM_DATA_INDEX,
          term: 1,
          vote: null,
          leader: null,
        };
        this.nodes.get(node)!.replicas.set(shard, replica);
      }
      const match = new Map(voters.map((node) => [node, SIM_DATA_INDEX]));
      this.nodes.get(voters[0]!)!.replicas.get(shard)!.leader = { term: 1, match };
      this.committed.set(shard, log);
      this.#leaders.set(shard, new Map([[1, voters[0]!]]));
    }
  }

  #addNode(id: number): SimNode {
    const node: SimNode = {
      id,
      isUp: true,
      isDead: false,
      isStopped: false,
      isIsolated: false,
      cut: new Set(),
      replicas: new Map(),
      dropped: new Map(),
    };
    this.nodes.set(id, node);
    return node;
  }

  /** A new node joins (the record lists it as joining; it is up, hosting nothing). */
  join(): number {
    const id = Math.max(...this.nodes.keys()) + 1;
    this.#addNode(id);
    this.record = withJoiningMember(this.record, { id, peerAddress: `h:${id}`, httpAddress: "" });
    this.note(`join ${id}`);
    return id;
  }

  /** An operator drains `id` (remove-node). */
  drain(id: number): void {
    this.record = withMemberState(this.record, id, "draining");
    this.note(`drain ${id}`);
  }

  /** `id` dies for good and is drained (replace-node: its replicas are rebuilt elsewhere). */
  replace(id: number): void {
    const node = this.nodes.get(id)!;
    this.#crash(node);
    node.isDead = true;
    this.drain(id);
  }

  /** Ends the faults: every node that is not dead or stopped is up and connected. */
  heal(): void {
    this.hasFaults = false;
    this.crashPerMille = 0;
    for (const node of this.nodes.values()) {
      node.isIsolated = false;
      node.cut.clear();
      if (!node.isUp && !node.isDead && !node.isStopped) this.#restart(node);
    }
    this.note("heal");
  }

  note(line: string): void {
    this.trace.push(line);
    if (this.trace.length > 400) this.trace.splice(0, 100);
  }

  #random(bound: number): number {
    return this.prng.nextInt(bound);
  }

  #pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.#random(items.length)];
  }

  #violate(message: string): never {
    this.note(`VIOLATION ${message}`);
    this.violation ??= message;
    throw new SimViolation(message);
  }

  // --- The driver's view (DriverCluster) ---

  /** The simulation runs pass() itself (no watch()): any key that follows the record does. */
  watchKey(): string {
    return `${this.record.version}`;
  }

  isLeader(): boolean {
    return true;
  }

  readMembers(): Promise<MembersRecord | null> {
    this.#interleave();
    return Promise.resolve(this.record);
  }

  updateMembers(change: (record: MembersRecord) => MembersRecord): Promise<MembersRecord> {
    return this.#effect("updateMembers", () => {
      this.record = change(this.record);
      // A node removed without being told (it was down when the driver looked, and came back
      // since) is refused by every peer: the README's known limit. It is out of the game.
      for (const member of this.record.members) {
        const node = this.nodes.get(member.id);
        if (member.state !== "removed" || node === undefined || node.isStopped) continue;
        if (node.isUp) this.#crash(node);
        node.isStopped = true;
      }
      return this.record;
    });
  }

  observeShards(): Promise<readonly ShardObservation[]> {
    this.#interleave();
    const observed = this.shardIds.map((shard) => this.#observe(shard));
    this.note(`observe ${observed.map((view) => `${view.leader}@${view.term}`).join(" ")}`);
    return Promise.resolve(observed);
  }

  isUp(id: number): boolean {
    const node = this.nodes.get(id);
    return node !== undefined && node.isUp;
  }

  hostedShards(id: number): Promise<readonly number[] | null> {
    this.#interleave();
    const node = this.nodes.get(id);
    if (node === undefined || !node.isUp) return Promise.resolve(null);
    return Promise.resolve([...node.replicas.keys()].sort((a, b) => a - b));
  }

  hostReplica(id: number, shard: number, term: number): Promise<void> {
    return this.#effect(`host ${id}/${shard} t${term}`, () => this.#host(id, shard, term));
  }

  dropReplica(id: number, shard: number, term: number): Promise<void> {
    return this.#effect(`drop ${id}/${shard} t${term}`, () => this.#drop(id, shard, term));
  }

  changeMembership(shard: number, change: MembershipChangeType, id: number): Promise<void> {
    return this.#effect(
      `${change} ${id}/${shard}`,
      () => this.#changeMembership(shard, change, id),
    );
  }

  transferLeader(shard: number, to: number): Promise<void> {
    return this.#effect(`transfer ${shard} to ${to}`, () => this.#transfer(shard, to));
  }

  notifyRemoved(id: number): Promise<void> {
    return this.#effect(`removed ${id}`, () => {
      const node = this.#reachable(id);
      this.#crash(node);
      node.isStopped = true;
    });
  }

  readPlacement(): PlacementRecord {
    return this.placement;
  }

  writePlacement(placement: PlacementRecord): Promise<void> {
    return this.#effect("placement", () => {
      this.placement = placement;
    });
  }

  /** One driver effect: a few random steps first, and maybe a crash before or after it. */
  #effect<T>(what: string, apply: () => T): Promise<T> {
    this.effects++;
    try {
      if (this.isDriverCrashed) throw new SimCrash(`the driver is down at ${what}`);
      this.#interleave();
      const crash = this.#random(1_000) < this.crashPerMille ? this.#random(2) : -1;
      this.isDriverCrashed = crash !== -1;
      if (crash === 0) throw new SimCrash(`the driver crashed before ${what}`);
      const result = apply();
      this.note(`effect ${what}`);
      if (crash === 1) throw new SimCrash(`the driver crashed after ${what}`);
      return Promise.resolve(result);
    } catch (error) {
      if (!(error instanceof SimViolation)) this.note(`effect ${what} failed: ${error}`);
      return Promise.reject(error);
    }
  }

  #reachable(id: number): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined || !node.isUp) throw new SimRefusal(`node ${id} does not answer`);
    return node;
  }

  /** replica_host.ts host(): refused below the term of a drop; new replicas start there. */
  #host(id: number, shard: number, term: number): void {
    const node = this.#reachable(id);
    if (node.replicas.has(shard)) return;
    const droppedAt = node.dropped.get(shard) ?? 0;
    if (droppedAt > term) throw new SimRefusal(`conflict: ${id}/${shard} dropped at ${droppedAt}`);
    const floor = Math.max(droppedAt, term);
    node.replicas.set(shard, { log: [], commit: 0, term: floor, vote: null, leader: null });
  }

  /**
   * replica_host.ts drop(): refused when the replica has seen a later term, unless no leader
   * ever filled it (nothing to lose; a later term reached it through a vote request only).
   */
  #drop(id: number, shard: number, termMax: number): void {
    const node = this.#reachable(id);
    const replica = node.replicas.get(shard);
    if (replica === undefined) return;
    if (replica.term > termMax && lastIndexOf(replica.log) > 0) {
      throw new SimRefusal(`conflict: ${id}/${shard} saw ${replica.term}`);
    }
    const committed = this.committed.get(shard)!;
    const config = configAt(committed, lastIndexOf(committed));
    if (nodesOf(config).includes(id)) {
      this.#violate(
        `shard ${shard}: node ${id}'s replica dropped while the committed ` +
          `configuration ${JSON.stringify(config)} lists it`,
      );
    }
    node.replicas.delete(shard);
    node.dropped.set(shard, Math.max(node.dropped.get(shard) ?? 0, termMax, replica.term));
  }

  /** The leader a request for `shard` reaches: often the newest, sometimes a deposed one. */
  #route(shard: number): { node: SimNode; replica: SimReplica } | null {
    const leaders: { node: SimNode; replica: SimReplica }[] = [];
    for (const node of this.nodes.values()) {
      const replica = node.replicas.get(shard);
      if (node.isUp && replica?.leader) leaders.push({ node, replica });
    }
    if (leaders.length === 0 || this.#random(100) < 3) return null;
    if (this.#random(100) < 60) {
      return leaders.reduce((best, next) => next.replica.term > best.replica.term ? next : best);
    }
    return this.#pick(leaders)!;
  }

  #observe(shard: number): ShardObservation {
    const routed = this.#route(shard);
    if (routed === null) {
      return { shard, leader: null, term: 0, voters: [], learners: [], committedReplicas: [] };
    }
    const { node, replica } = routed;
    const config = latestConfigOf(replica.log);
    const last = lastIndexOf(replica.log);
    return {
      shard,
      leader: node.id,
      term: replica.term,
      voters: config.voters,
      learners: config.learners.map((learner) => ({
        node: learner,
        lag: last - (replica.leader!.match.get(learner) ?? 0),
        matchIndex: replica.leader!.match.get(learner) ?? 0,
      })),
      committedReplicas: nodesOf(configAt(replica.log, replica.commit)).sort((a, b) => a - b),
    };
  }

  /** shard/replica.ts changeMembership(): propose on the leader, wait for the commit. */
  #changeMembership(shard: number, change: MembershipChangeType, id: number): void {
    const routed = this.#route(shard);
    if (routed === null) throw new SimRefusal(`not_leader: shard ${shard} has no leader`);
    const { node, replica } = routed;
    const leader = replica.leader!;
    if (configIndexAt(replica.log, lastIndexOf(replica.log)) > replica.commit) {
      throw new SimRefusal("conflict: a configuration change is uncommitted");
    }
    if (termAt(replica.log, replica.commit) !== replica.term) {
      throw new SimRefusal("conflict: no entry of this term is committed yet");
    }
    const config = withChange(latestConfigOf(replica.log), change, id);
    if (change === "addVoter" && (leader.match.get(id) ?? 0) === 0) {
      throw new SimRefusal(`conflict: replica ${id} has stored none of the log yet`);
    }
    replica.log = appended(replica.log, replica.term, 1, config);
    leader.match.delete(id);
    const index = lastIndexOf(replica.log);
    this.note(`shard ${shard}: ${node.id} t${replica.term} appends ${change} ${id} at ${index}`);
    const term = replica.term;
    for (let step = 0; step < SIM_COMMIT_WAIT_STEPS_MAX; step++) {
      if (this.#random(100) < 70 && replica.leader !== null) this.#replicate(shard, node);
      else this.#step();
      const committed = this.committed.get(shard)!;
      if (termAt(committed, index) === term) return;
    }
    throw new SimRefusal(`timeout: ${change} ${id} in shard ${shard} did not commit`);
  }

  /** A leadership transfer: the target catches up, then campaigns at once. */
  #transfer(shard: number, to: number): void {
    const routed = this.#route(shard);
    if (routed === null) throw new SimRefusal(`not_leader: shard ${shard} has no leader`);
    const { node, replica } = routed;
    if (!latestConfigOf(replica.log).voters.includes(to)) throw new SimRefusal(`${to} is no voter`);
    const target = this.nodes.get(to);
    if (target === undefined || !target.replicas.has(shard) || !this.#isLinked(node, target)) {
      throw new SimRefusal("timeout");
    }
    this.#append(shard, node, target, lastIndexOf(replica.log));
    if (replica.leader === null || !this.#campaign(shard, target)) throw new SimRefusal("timeout");
  }

  // --- Raft ---

  #isLinked(a: SimNode, b: SimNode): boolean {
    if (!a.isUp || !b.isUp) return false;
    return a === b || (!a.cut.has(b.id) && !b.cut.has(a.id));
  }

  /** A few random steps before each driver call. */
  #interleave(): void {
    const steps = this.#random(4);
    for (let step = 0; step < steps; step++) this.#step();
  }

  /** One random step: Raft traffic on a shard, a client write, or (with faults on) a fault. */
  step(): void {
    this.#step();
  }

  #step(): void {
    if (this.hasFaults && this.#random(100) < 6) {
      this.#fault();
      this.#check();
      return;
    }
    const shard = this.#pick(this.shardIds)!;
    const leaders = [...this.nodes.values()].filter((node) =>
      node.isUp && node.replicas.get(shard)?.leader
    );
    const roll = this.#random(100);
    const leader = this.#pick(leaders);
    // Leaders hold their followers (check quorum): an election needs no leader, or a fault.
    if (leader === undefined || (this.hasFaults && roll < 2)) this.#electRandom(shard);
    else if (roll < 55) this.#replicate(shard, leader);
    else if (roll < 85) this.#heartbeat(shard, leader);
    else this.#write(shard, leader);
    this.#check();
  }

  #electRandom(shard: number): void {
    const candidates = [...this.nodes.values()].filter((node) => {
      const replica = node.replicas.get(shard);
      return node.isUp && replica !== undefined && replica.leader === null &&
        latestConfigOf(replica.log).voters.includes(node.id);
    });
    const candidate = this.#pick(candidates);
    if (candidate !== undefined) this.#campaign(shard, candidate);
  }

  /** An election: `candidate` asks its configuration's voters for their votes. */
  #campaign(shard: number, candidate: SimNode): boolean {
    const own = candidate.replicas.get(shard)!;
    own.term++;
    own.vote = candidate.id;
    own.leader = null;
    const voters = latestConfigOf(own.log).voters;
    let votes = voters.includes(candidate.id) ? 1 : 0;
    for (const id of voters) {
      const voter = this.nodes.get(id);
      const replica = voter?.replicas.get(shard);
      if (id === candidate.id || voter === undefined || replica === undefined) continue;
      if (!this.#isLinked(candidate, voter)) continue;
      if (replica.term > own.term) {
        this.#stepDown(own, replica.term);
        return false;
      }
      if (replica.term < own.term) this.#stepDown(replica, own.term);
      if (replica.vote !== null && replica.vote !== candidate.id) continue;
      // As in raft.ts: a replica that knows no configuration (hosted empty) does not vote.
      if (latestConfigOf(replica.log).voters.length === 0) continue;
      if (!isUpToDate(own.log, replica.log)) continue;
      replica.vote = candidate.id;
      votes++;
    }
    if (votes < Math.floor(voters.length / 2) + 1) return false;
    this.#becomeLeader(shard, candidate, own);
    return true;
  }

  #becomeLeader(shard: number, node: SimNode, replica: SimReplica): void {
    const terms = this.#leaders.get(shard)!;
    const previous = terms.get(replica.term);
    if (previous !== undefined && previous !== node.id) {
      this.#violate(
        `shard ${shard}: two leaders (${previous}, ${node.id}) in term ${replica.term}`,
      );
    }
    terms.set(replica.term, node.id);
    const committed = this.committed.get(shard)!;
    const last = lastIndexOf(committed);
    if (termAt(replica.log, last) !== termAt(committed, last)) {
      this.#violate(
        `shard ${shard}: leader ${node.id} of term ${replica.term} lacks committed ` +
          `entry ${last}`,
      );
    }
    replica.leader = { term: replica.term, match: new Map() };
    replica.log = appended(replica.log, replica.term, 1, null);
    this.note(
      `shard ${shard}: ${node.id} leads t${replica.term} ` +
        `${JSON.stringify(latestConfigOf(replica.log))} last ${lastIndexOf(replica.log)}`,
    );
  }

  #stepDown(replica: SimReplica, term: number): void {
    if (term > replica.term) replica.vote = null;
    replica.term = Math.max(replica.term, term);
    replica.leader = null;
  }

  /** The leader on `node` sends an append to a random replica of its configuration. */
  #replicate(shard: number, node: SimNode): void {
    const replica = node.replicas.get(shard)!;
    const others = nodesOf(latestConfigOf(replica.log)).filter((id) => id !== node.id);
    const target = this.nodes.get(this.#pick(others) ?? -1);
    if (target === undefined || !this.#isLinked(node, target)) return;
    const last = lastIndexOf(replica.log);
    const match = replica.leader!.match.get(target.id) ?? 0;
    const upTo = match + 1 + this.#random(Math.max(1, last - match));
    this.#append(shard, node, target, Math.min(upTo, last));
  }

  /**
   * An append from the leader on `from` to `to` with the entries up to `upTo`, from its match
   * on (raft/replication.ts). A replica that lacks the match refuses, and the leader keeps its
   * match (raft/progress.ts never lowers it).
   */
  #append(shard: number, from: SimNode, to: SimNode, upTo: number): void {
    const leader = from.replicas.get(shard)!;
    const follower = to.replicas.get(shard);
    if (follower === undefined || leader.leader === null || from === to) return;
    if (!this.#isLinked(from, to)) return;
    if (follower.term > leader.term) return this.#stepDown(leader, follower.term);
    if (follower.term < leader.term) this.#stepDown(follower, leader.term);
    follower.leader = null;
    const match = leader.leader.match.get(to.id) ?? 0;
    if (termAt(follower.log, match) !== termAt(leader.log, match)) return;
    const common = matchLength(follower.log, leader.log);
    if (common < upTo) follower.log = truncated(leader.log, upTo);
    this.#commitTo(shard, follower, Math.min(leader.commit, upTo));
    leader.leader.match.set(to.id, Math.max(match, upTo));
    this.#advanceCommit(shard, from, leader);
  }

  /**
   * A heartbeat from the leader on `from` to `to`: commit = min(match, commit). A replica of a
   * later term refuses it; one that accepts it and lacks that index is the crash this model
   * exists to find (raft/follower.ts asserts the commit is within the log).
   */
  #heartbeat(shard: number, from: SimNode): void {
    const leader = from.replicas.get(shard)!;
    const others = nodesOf(latestConfigOf(leader.log)).filter((id) => id !== from.id);
    const to = this.nodes.get(this.#pick(others) ?? -1);
    const follower = to?.replicas.get(shard);
    if (to === undefined || follower === undefined || !this.#isLinked(from, to)) return;
    if (follower.term > leader.term) return this.#stepDown(leader, follower.term);
    if (follower.term < leader.term) this.#stepDown(follower, leader.term);
    follower.leader = null;
    const commit = Math.min(leader.leader!.match.get(to.id) ?? 0, leader.commit);
    if (commit > lastIndexOf(follower.log)) {
      this.#violate(
        `shard ${shard}: heartbeat commit ${commit} from ${from.id} (term ` +
          `${leader.term}) past the log (last ${lastIndexOf(follower.log)}) of node ${to.id} ` +
          `(term ${follower.term})`,
      );
    }
    this.#commitTo(shard, follower, commit);
  }

  #write(shard: number, node: SimNode): void {
    const replica = node.replicas.get(shard)!;
    replica.log = appended(
      replica.log,
      replica.term,
      1 + this.#random(SIM_WRITE_ENTRIES_MAX),
      null,
    );
  }

  /** The leader commits the highest index of its term that a majority of its voters hold. */
  #advanceCommit(shard: number, node: SimNode, replica: SimReplica): void {
    const voters = latestConfigOf(replica.log).voters;
    const matches = voters.map((id) =>
      id === node.id ? lastIndexOf(replica.log) : replica.leader!.match.get(id) ?? 0
    ).sort((a, b) => b - a);
    const quorum = matches[Math.floor(voters.length / 2)] ?? 0;
    if (quorum <= replica.commit || termAt(replica.log, quorum) !== replica.term) return;
    this.#commitTo(shard, replica, quorum);
    // A leader that removed itself steps down once the removal commits.
    if (!configAt(replica.log, replica.commit).voters.includes(node.id)) replica.leader = null;
  }

  /** Moves a replica's commit index and checks it against the committed log. */
  #commitTo(shard: number, replica: SimReplica, commit: number): void {
    if (commit <= replica.commit) return;
    replica.commit = commit;
    const known = this.committed.get(shard)!;
    const shared = Math.min(commit, lastIndexOf(known));
    if (termAt(replica.log, shared) !== termAt(known, shared)) {
      this.#violate(`shard ${shard}: committed entry ${shared} differs (a lost commit)`);
    }
    if (commit > lastIndexOf(known)) this.committed.set(shard, truncated(replica.log, commit));
  }

  // --- Faults ---

  /** Nodes down or cut off among the members not removed (the fault budget is one). */
  downCount(): number {
    const removed = new Set(
      this.record.members.filter((member) => member.state === "removed").map((member) => member.id),
    );
    return [...this.nodes.values()].filter((node) =>
      !removed.has(node.id) && !node.isStopped && (!node.isUp || node.isIsolated)
    ).length;
  }

  #fault(): void {
    const nodes = [...this.nodes.values()].filter((node) => !node.isDead && !node.isStopped);
    const roll = this.#random(100);
    const down = nodes.find((node) => !node.isUp);
    const isolated = nodes.find((node) => node.isIsolated);
    if (down !== undefined && roll < 50) return this.#restart(down);
    if (isolated !== undefined && roll < 50) {
      isolated.isIsolated = false;
      isolated.cut.clear();
      return this.note(`heal ${isolated.id}`);
    }
    if (this.downCount() > 0) return;
    const target = roll < 60 ? this.#leaderNode() : this.#pick(nodes.filter((node) => node.isUp));
    if (target === undefined) return;
    if (this.#random(2) === 0) {
      // A partial partition half the time: some peers still hear it (a deposed leader then
      // reaches some of its old followers).
      const isPartial = this.#random(2) === 0;
      for (const node of nodes) {
        if (node !== target && (!isPartial || this.#random(2) === 0)) target.cut.add(node.id);
      }
      target.isIsolated = true;
      this.note(`isolate ${target.id} from ${[...target.cut].join(",")}`);
    } else {
      this.#crash(target);
    }
  }

  /** The node of a random shard's newest leader (deposing leaders finds the bugs). */
  #leaderNode(): SimNode | undefined {
    const shard = this.#pick(this.shardIds)!;
    const terms = this.#leaders.get(shard)!;
    const newest = Math.max(...terms.keys());
    const node = this.nodes.get(terms.get(newest)!);
    return node !== undefined && node.isUp && !node.isDead && !node.isStopped ? node : undefined;
  }

  #crash(node: SimNode): void {
    node.isUp = false;
    for (const replica of node.replicas.values()) replica.leader = null;
    this.note(`crash ${node.id}`);
  }

  #restart(node: SimNode): void {
    // A node removed while it was down is refused by every peer: as good as stopped (the
    // README's known limit; an operator must not start it again).
    if (this.record.members.some((member) => member.id === node.id && member.state === "removed")) {
      node.isStopped = true;
      return this.note(`${node.id} stays stopped: removed while down`);
    }
    node.isUp = true;
    this.note(`restart ${node.id}`);
  }

  // --- Invariants ---

  #check(): void {
    for (const shard of this.shardIds) {
      const committed = this.committed.get(shard)!;
      const voters = configAt(committed, lastIndexOf(committed)).voters;
      const holding = voters.filter((id) => {
        const node = this.nodes.get(id);
        const replica = node?.replicas.get(shard);
        return node !== undefined && node.isUp && replica !== undefined &&
          lastIndexOf(replica.log) >= SIM_DATA_HELD_INDEX;
      });
      const down = voters.filter((id) => !this.nodes.get(id)?.isUp).length;
      if (down <= 1 && holding.length < Math.floor(voters.length / 2) + 1) {
        this.#violate(
          `shard ${shard}: only ${holding.length} of the committed voters ` +
            `${voters.join(",")} are up with the data`,
        );
      }
    }
  }

  /** The newest leader's replica of `shard`, or null. */
  newestLeader(shard: number): { node: number; replica: SimReplica } | null {
    let best: { node: number; replica: SimReplica } | null = null;
    for (const node of this.nodes.values()) {
      const replica = node.replicas.get(shard);
      if (!node.isUp || !replica?.leader) continue;
      if (best === null || replica.term > best.replica.term) best = { node: node.id, replica };
    }
    return best;
  }

  /** The latest configuration of the newest leader of `shard`. */
  configOf(shard: number): SimConfig | null {
    const leader = this.newestLeader(shard);
    return leader === null ? null : latestConfigOf(leader.replica.log);
  }
}

/** checkConfChange() + applyConfChange() of raft/membership.ts. */
function withChange(config: SimConfig, change: MembershipChangeType, id: number): SimConfig {
  const isVoter = config.voters.includes(id);
  const isLearner = config.learners.includes(id);
  if (change === "addVoter" && isVoter) throw new SimRefusal(`bad_request: ${id} is a voter`);
  if (change === "addLearner" && (isVoter || isLearner)) {
    throw new SimRefusal(`bad_request: ${id} is a member`);
  }
  if (change === "removeReplica" && !isVoter && !isLearner) {
    throw new SimRefusal(`bad_request: ${id} is not a member`);
  }
  if (change === "removeReplica" && isVoter && config.voters.length === 1) {
    throw new SimRefusal("bad_request: the last voter");
  }
  const voters = config.voters.filter((voter) => voter !== id);
  const learners = config.learners.filter((learner) => learner !== id);
  if (change === "addVoter") voters.push(id);
  if (change === "addLearner") learners.push(id);
  return { voters: voters.sort((a, b) => a - b), learners: learners.sort((a, b) => a - b) };
}
