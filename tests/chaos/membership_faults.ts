/**
 * The membership nemesis (issue 15), "member-change": the cluster grows and shrinks while the
 * other faults go on. Each time the kind comes up it takes the next step of a cycle:
 *
 * ```text
 * idle ──join──▶ joining ──(balanced)── remove ──▶ draining ──(removed, exited)──▶ idle
 * ```
 *
 * - join: a fresh node (the next unused id, its own data dir and ports) starts with `--join`
 *   through a random reachable founder (a member holding the CA key); once it serves HTTP it is
 *   a node like the others: clients use it, kills and partitions hit it, while the rebalancer
 *   moves replicas onto it.
 * - remove: once the rebalancer is idle (no learner, every shard on REPLICATION_FACTOR members,
 *   every member within one replica of the others), `POST /v1/cluster/nodes/{id}/remove`
 *   through a random reachable node; removals alternate between an older member and the newest
 *   joined node. The draining node leaves the fault targets and the clients at once (it stops
 *   by itself once drained, and a node removed while down is not told so).
 * - the next join waits for the drained node to be `removed` and its process to end.
 *
 * Each step waits a bounded while for the previous one; a step that cannot be taken yet is
 * not counted. {@linkcode MembershipChanges.settle} runs before the final checks: it waits
 * until the last change is over and the rebalancer idle, so that the convergence check covers
 * the joined nodes' replicas.
 */
import type { ClusterStatus } from "../../api/mod.ts";
import type { SeededPrng } from "../../raft/mod.ts";
import type { ChaosCluster } from "./cluster.ts";

/** How long a step waits for the rebalancer to finish the previous one. */
export const MEMBER_STEP_WAIT_MS = 30_000;
/** How long a removal request is retried (a peer just restarted may still count as down). */
export const MEMBER_REMOVE_RETRY_MS = 20_000;
/** How long a joining node may take to serve HTTP. */
export const MEMBER_BOOT_TIMEOUT_MS = 60_000;
/** How often the status is polled while waiting. */
const POLL_MS = 500;

/** What the membership nemesis needs. */
export interface MembershipOptions {
  readonly cluster: ChaosCluster;
  readonly prng: SeededPrng;
  /** Replicas per shard (the nodes' replication factor). */
  readonly replicationFactor: number;
  /** Nodes that run and are not paused. */
  readonly reachableNodes: () => number[];
  readonly nowMs: () => number;
  readonly log: (line: string) => void;
  /** Told just before a node is removed (it stops by itself once drained). */
  readonly onStop?: (node: number) => void;
}

/** The figures of a run's membership changes. */
export interface MembershipFigures {
  readonly joined: readonly number[];
  readonly removed: readonly number[];
}

type Phase =
  | { readonly kind: "idle" }
  | { readonly kind: "joining"; readonly node: number }
  | { readonly kind: "draining"; readonly node: number };

/** Joins and removes nodes, one step per "member-change" fault. */
export class MembershipChanges {
  readonly #options: MembershipOptions;
  readonly #joined: number[] = [];
  readonly #removed: number[] = [];
  #phase: Phase = { kind: "idle" };

  constructor(options: MembershipOptions) {
    this.#options = options;
  }

  /** The nodes joined and removed so far. */
  get figures(): MembershipFigures {
    return { joined: [...this.#joined], removed: [...this.#removed] };
  }

  /**
   * Takes the next step of the cycle; false (not counted) when the previous step is not over
   * within MEMBER_STEP_WAIT_MS or no node answered.
   *
   * @throws {Error} when a joining node exits or does not serve HTTP in time.
   */
  async inject(): Promise<boolean> {
    const phase = this.#phase;
    if (phase.kind === "joining") {
      const isBalanced = await this.#waitFor((status) => isSettled(status, this.#shape()));
      return isBalanced ? await this.#remove() : false;
    }
    if (phase.kind === "draining") {
      const isGone = await this.#waitFor((status) => this.#isRemoved(status, phase.node));
      if (!isGone) return false;
      this.#phase = { kind: "idle" };
    }
    return await this.#join();
  }

  /**
   * Waits until the last change is over (a draining node removed and stopped, a joined node
   * active) and the rebalancer is idle; returns anomalies when that takes over `timeoutMs`.
   */
  async settle(timeoutMs: number): Promise<string[]> {
    if (this.#joined.length === 0) return [];
    const phase = this.#phase;
    let last: ClusterStatus | null = null;
    const isDone = (status: ClusterStatus) => {
      last = status;
      const isGone = phase.kind !== "draining" || this.#isRemoved(status, phase.node);
      return isGone && isSettled(status, this.#shape());
    };
    if (await this.#waitFor(isDone, timeoutMs)) {
      this.#phase = phase.kind === "draining" ? { kind: "idle" } : phase;
      this.#options.log(`member-change: settled, members ${this.#options.cluster.nodeIds}`);
      return [];
    }
    return [
      `the membership change (${JSON.stringify(phase)}) did not settle within ${timeoutMs} ms: ` +
      `members ${JSON.stringify(last === null ? null : (last as ClusterStatus).members)}, ` +
      `learners ${JSON.stringify(last === null ? null : (last as ClusterStatus).learners)}`,
    ];
  }

  async #join(): Promise<boolean> {
    const { cluster, log } = this.#options;
    const founders = this.#options.reachableNodes().filter((id) => !cluster.isJoined(id));
    const via = founders[this.#options.prng.nextInt(Math.max(1, founders.length))];
    if (via === undefined) return false;
    const node = cluster.cluster.join(cluster.cluster.url(via));
    log(`member-change: node ${node.id} joins through node ${via}`);
    this.#joined.push(node.id);
    this.#phase = { kind: "joining", node: node.id };
    await this.#waitForHealth(node.id);
    log(`member-change: node ${node.id} serves HTTP`);
    return true;
  }

  async #remove(): Promise<boolean> {
    const { cluster, prng, log } = this.#options;
    const newest = this.#joined.at(-1)!;
    const others = cluster.nodeIds.filter((id) => id !== newest);
    const isNewest = this.#removed.length % 2 === 1;
    const target = isNewest ? newest : others[prng.nextInt(others.length)]!;
    const deadline = this.#options.nowMs() + MEMBER_REMOVE_RETRY_MS;
    let answer = "no answer";
    while (this.#options.nowMs() < deadline) {
      const nodes = this.#options.reachableNodes().filter((id) => id !== target);
      const via = nodes[prng.nextInt(Math.max(1, nodes.length))];
      const result = via === undefined ? null : await cluster.call(via, {
        method: "POST",
        path: `/v1/cluster/nodes/${target}/remove`,
      }).catch((error: unknown) => ({ status: 0, json: { error: String(error) } }));
      answer = `${result?.status}: ${JSON.stringify(result?.json)}`;
      if (result?.status === 202) {
        log(`member-change: remove node ${target} via node ${via}: 202`);
        this.#options.onStop?.(target);
        cluster.cluster.retire(target);
        this.#removed.push(target);
        this.#phase = { kind: "draining", node: target };
        return true;
      }
      await sleep(POLL_MS);
    }
    log(`member-change: node ${target} could not be removed: ${answer}`);
    return false;
  }

  /** Whether `node` is `removed` in the members record and its process ended. */
  #isRemoved(status: ClusterStatus, node: number): boolean {
    const member = status.members?.find((candidate) => candidate.id === node);
    return member?.state === "removed" && !this.#options.cluster.cluster.isRunning(node);
  }

  #shape(): { members: readonly number[]; replicationFactor: number } {
    return {
      members: this.#options.cluster.nodeIds,
      replicationFactor: this.#options.replicationFactor,
    };
  }

  /** Polls the status through reachable nodes until `isDone` holds or the time is up. */
  async #waitFor(
    isDone: (status: ClusterStatus) => boolean,
    timeoutMs = MEMBER_STEP_WAIT_MS,
  ): Promise<boolean> {
    const deadline = this.#options.nowMs() + timeoutMs;
    while (this.#options.nowMs() < deadline) {
      const nodes = this.#options.reachableNodes();
      const via = nodes[this.#options.prng.nextInt(Math.max(1, nodes.length))];
      const answer = via === undefined
        ? null
        : await this.#options.cluster.call(via, { method: "GET", path: "/v1/cluster/status" })
          .catch(() => null);
      if (answer?.status === 200 && isDone(answer.json as unknown as ClusterStatus)) return true;
      await sleep(POLL_MS);
    }
    return false;
  }

  async #waitForHealth(id: number): Promise<void> {
    const { cluster, nowMs } = this.#options;
    const deadline = nowMs() + MEMBER_BOOT_TIMEOUT_MS;
    while (nowMs() < deadline) {
      const isUp = await cluster.call(id, { method: "GET", path: "/v1/health" })
        .then((answer) => answer.status === 200, () => false);
      if (isUp) return;
      if (!cluster.cluster.isRunning(id)) throw new Error(`Node ${id} exited while joining`);
      await sleep(100);
    }
    throw new Error(`Joining node ${id} did not serve HTTP within ${MEMBER_BOOT_TIMEOUT_MS} ms`);
  }
}

/**
 * Whether the rebalancer has nothing left to do for `members`: every one of them is `active`,
 * no learner catches up, every shard has a leader and `replicationFactor` replicas, all on
 * members, and the members hold within one replica of each other.
 */
export function isSettled(
  status: ClusterStatus,
  shape: { readonly members: readonly number[]; readonly replicationFactor: number },
): boolean {
  const members = status.members ?? [];
  const counts: number[] = [];
  for (const id of shape.members) {
    const member = members.find((candidate) => candidate.id === id);
    if (member?.state !== "active") return false;
    counts.push(member.replicas);
  }
  if ((status.learners ?? []).length > 0) return false;
  const isPlaced = status.shards.every((shard) =>
    shard.leader !== null && shard.replicas.length === shape.replicationFactor &&
    shard.replicas.every((replica) => shape.members.includes(replica.node))
  );
  if (!isPlaced) return false;
  return Math.max(...counts) - Math.min(...counts) <= 1;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
