/**
 * The nemesis of a chaos run: a seeded schedule of faults against a real cluster, one at a
 * time, each held for a random while, undone, and followed by a calm spell.
 *
 * Faults: kill -9 the leader of a random shard, kill -9 any node, graceful restart, pause a
 * node (SIGSTOP, later SIGCONT), isolate a random minority, isolate a shard leader, a
 * "majorities ring" (every node still reaches a majority, but no two agree on which: for 3
 * nodes, two nodes lose their link and the third bridges them), a flaky network (random loss
 * and delay on every link), and a slow node (every frame to and from it delayed by about an
 * election timeout). Partitions and delays apply in both directions through each node's
 * `/v1/test/faults`. Long runs add "kill-node-long": a node down for 20-40 s, so that it may
 * have to catch up from a snapshot.
 *
 * Faults under heavy load (load_faults.ts, with the heavy writer running while they last):
 * leadership transfers and campaigns in quick succession, power losses (a node, or all of them,
 * restarted from their last fsynced bytes), and, in long runs, outages of a follower or a
 * leader while its shard's log grows by 100,000 entries.
 */
import type { SeededPrng } from "../../raft/mod.ts";
import type { ChaosCluster } from "./cluster.ts";
import type { HeavyWriter } from "./heavy.ts";
import {
  LOAD_FAULT_KINDS,
  type LoadFaultKind,
  LoadFaults,
  type LoadFaultSizes,
  LONG_LOAD_FAULT_SIZES,
  OUTAGE_KINDS,
} from "./load_faults.ts";
import { MembershipChanges } from "./membership_faults.ts";

/** Every kind of fault the nemesis injects. */
export const FAULT_KINDS = [
  "kill-leader",
  "kill-node",
  "restart",
  "pause",
  "partition-minority",
  "partition-leader",
  "partition-majorities-ring",
  "flaky-network",
  "slow-node",
] as const;

/**
 * Faults for long runs only: a node down long enough (20-40 s) that the log may be compacted
 * past it, so that it must catch up from a snapshot; a follower or a leader down while its
 * shard's log grows by 100,000 entries.
 */
export const LONG_FAULT_KINDS = ["kill-node-long", ...OUTAGE_KINDS] as const;

/**
 * Resharding: "shard-add" starts a move that adds one shard (`POST /v1/shards`) through a random
 * reachable node, up to NemesisOptions.maxShards; the move runs on while the next faults come,
 * and the checks wait for it to end. "tenant-move" creates the next of NemesisOptions.tenants on
 * a random shard, or (all created) moves a random one to another shard (`POST /v1/tenants`,
 * `POST /v1/tenants/{name}/move`), the same way.
 */
export const RESHARD_FAULT_KINDS = ["shard-add", "tenant-move"] as const;

/**
 * Membership (issue 15): "member-change" joins a fresh node, later removes one, one step each
 * time it comes up (membership_faults.ts); the rebalancer moves replicas meanwhile, under the
 * next faults, and the checks wait for it to be idle.
 */
export const MEMBERSHIP_FAULT_KINDS = ["member-change"] as const;

/**
 * The mix a run takes when it names no kinds (`deno task chaos` and the CI runs): every fault of
 * {@linkcode FAULT_KINDS} and the resharding one, so that moves meet kills and partitions.
 */
export const DEFAULT_FAULT_KINDS = [...FAULT_KINDS, ...RESHARD_FAULT_KINDS] as const;

/** One kind of fault. */
export type FaultKind =
  | typeof FAULT_KINDS[number]
  | typeof LONG_FAULT_KINDS[number]
  | typeof RESHARD_FAULT_KINDS[number]
  | typeof MEMBERSHIP_FAULT_KINDS[number]
  | LoadFaultKind;

export { LOAD_FAULT_KINDS };

/** Kinds that time themselves (the fault is over when injecting it returns). */
const SELF_TIMED_KINDS: ReadonlySet<FaultKind> = new Set([
  ...LOAD_FAULT_KINDS,
  ...OUTAGE_KINDS,
  ...MEMBERSHIP_FAULT_KINDS,
]);

/** How long a "kill-node-long" keeps its node down. */
const LONG_DOWN_MS = { min: 20_000, max: 40_000 };

/** How long a restarted node may take to serve HTTP again. */
export const NODE_BOOT_TIMEOUT_MS = 60_000;
/** Attempts of a control request (set or clear a fault) before the run fails. */
const CONTROL_ATTEMPTS_MAX = 10;

/** How the nemesis behaves. */
export interface NemesisOptions {
  readonly cluster: ChaosCluster;
  readonly prng: SeededPrng;
  readonly holdMs: { readonly min: number; readonly max: number };
  readonly calmMs: { readonly min: number; readonly max: number };
  readonly kinds?: readonly FaultKind[];
  /** Take the kinds in turn rather than at random (CI runs that must see each kind). */
  readonly isCycling?: boolean;
  /** Stop after this many faults (absent: only the deadline stops the schedule). */
  readonly faultsMax?: number;
  /** The heavy writer the load faults run; absent: those faults are skipped. */
  readonly heavy?: HeavyWriter;
  /** How many shards the cluster has (the load faults pick one). */
  readonly shards: number;
  /**
   * The tenants "tenant-move" creates and moves (names of the workloads' key prefixes, so that
   * their keys move); absent: ["chaos"].
   */
  readonly tenants?: readonly string[];
  /** The most shards "shard-add" grows the cluster to; absent: `shards + 2`. */
  readonly maxShards?: number;
  /** How big the load faults are; absent: LONG_LOAD_FAULT_SIZES. */
  readonly loadSizes?: LoadFaultSizes;
  /** Replicas per shard (what "member-change" waits for); absent: 3. */
  readonly replicationFactor?: number;
  /** Monotonic milliseconds. */
  readonly nowMs: () => number;
  /** Receives one line per action (the run's timeline). */
  readonly log: (line: string) => void;
  /** Told just before a node is killed -9 or stopped by a kill or restart fault. */
  readonly onStop?: (node: number) => void;
}

/** Injects faults until told to stop, and heals the cluster afterwards. */
export class Nemesis {
  readonly counts: Record<string, number> = {};
  total = 0;
  /** The load faults, when there is a heavy writer. */
  readonly load: LoadFaults | null;
  /** The membership changes ("member-change"). */
  readonly membership: MembershipChanges;
  readonly #options: NemesisOptions;
  readonly #paused = new Set<number>();

  constructor(options: NemesisOptions) {
    this.#options = options;
    this.load = options.heavy === undefined ? null : new LoadFaults({
      cluster: options.cluster,
      prng: options.prng,
      heavy: options.heavy,
      shards: options.shards,
      sizes: options.loadSizes ?? LONG_LOAD_FAULT_SIZES,
      nowMs: options.nowMs,
      log: options.log,
      reachableNodes: () => this.reachableNodes(),
      start: (id) => this.#start(id),
    });
    this.membership = new MembershipChanges({
      cluster: options.cluster,
      prng: options.prng,
      replicationFactor: options.replicationFactor ?? 3,
      reachableNodes: () => this.reachableNodes(),
      nowMs: options.nowMs,
      log: options.log,
      ...(options.onStop === undefined ? {} : { onStop: options.onStop }),
    });
  }

  /** Nodes killed with -9 so far, by any fault. */
  get kills(): number {
    const killKinds = ["kill-leader", "kill-node", "kill-node-long"];
    const direct = killKinds.reduce((total, kind) => total + (this.counts[kind] ?? 0), 0);
    return direct + (this.load?.figures.kills ?? 0);
  }

  /** Nodes that run and are not paused: where clients may send. */
  reachableNodes(): number[] {
    const cluster = this.#options.cluster.cluster;
    return this.#options.cluster.nodeIds.filter((id) =>
      cluster.isRunning(id) && !this.#paused.has(id)
    );
  }

  /**
   * Runs the schedule until `untilMs` (monotonic); the last fault is undone before it ends. A
   * loaded machine injects fewer faults in the same time: while fewer than `faultsMin` were
   * injected, the schedule runs on for up to `overtimeMs` more.
   */
  async run(untilMs: number, faultsMin = 0, overtimeMs = 0): Promise<void> {
    const { prng, nowMs } = this.#options;
    const kinds = this.#options.kinds ?? DEFAULT_FAULT_KINDS;
    const faultsMax = this.#options.faultsMax ?? Number.MAX_SAFE_INTEGER;
    for (let round = 0; round < faultsMax; round++) {
      const isOvertime = nowMs() >= untilMs;
      if (isOvertime && (this.total >= faultsMin || nowMs() >= untilMs + overtimeMs)) return;
      const endMs = isOvertime ? untilMs + overtimeMs : untilMs;
      if (this.#options.cluster.unexpectedExits.length > 0) {
        this.#options.log("a node exited unasked: the schedule stops (the run has failed)");
        return;
      }
      const kind = this.#options.isCycling === true
        ? kinds[round % kinds.length]!
        : kinds[prng.nextInt(kinds.length)]!;
      const holdMs = SELF_TIMED_KINDS.has(kind)
        ? 0
        : between(prng, kind === "kill-node-long" ? LONG_DOWN_MS : this.#options.holdMs);
      const undo = await this.#inject(kind, endMs);
      if (undo !== null) {
        this.total++;
        this.counts[kind] = (this.counts[kind] ?? 0) + 1;
        await sleep(Math.max(0, Math.min(holdMs, endMs - nowMs())));
        await undo();
      }
      await sleep(between(prng, this.#options.calmMs));
    }
  }

  /** Undoes everything: resumes paused nodes, starts dead ones, clears every fault rule. */
  async healAll(): Promise<void> {
    const chaos = this.#options.cluster;
    for (const id of chaos.nodeIds) {
      if (this.#paused.delete(id)) await chaos.cluster.kill(id, "SIGCONT");
      if (!chaos.cluster.isRunning(id)) await this.#start(id);
    }
    await this.#clearAll();
    this.#options.log("heal: every node runs, no fault rules");
  }

  /** Injects one fault; returns how to undo it, or null when it could not be injected. */
  async #inject(kind: FaultKind, untilMs: number): Promise<(() => Promise<void>) | null> {
    switch (kind) {
      case "kill-leader":
        return await this.#kill(await this.#randomLeader(), kind);
      case "kill-node":
      case "kill-node-long":
        return await this.#kill(this.#randomNode(), kind);
      case "restart":
        return await this.#restart(this.#randomNode());
      case "pause":
        return await this.#pause(
          this.#options.prng.nextInt(2) === 0 ? await this.#randomLeader() : this.#randomNode(),
        );
      case "partition-minority":
        return await this.#isolate(this.#randomMinority(), kind);
      case "partition-leader": {
        const leader = await this.#randomLeader();
        return leader === null ? null : await this.#isolate([leader], kind);
      }
      case "partition-majorities-ring":
        return await this.#cut(this.#ringCuts(), kind, { dropProbability: 1, delayMs: 0 });
      case "flaky-network":
        return await this.#flaky();
      case "shard-add":
        return await this.#addShard();
      case "tenant-move":
        return await this.#moveTenant();
      case "member-change":
        return await this.membership.inject() ? () => Promise.resolve() : null;
      case "slow-node":
        return await this.#slow(this.#randomNode());
      case "outage-follower":
      case "outage-leader":
      case "transfer-storm":
      case "power-loss": {
        const isInjected = this.load === null ? false : await this.load.inject(kind, untilMs);
        return isInjected ? () => Promise.resolve() : null;
      }
    }
  }

  async #kill(id: number | null, kind: FaultKind): Promise<(() => Promise<void>) | null> {
    if (id === null) return null;
    this.#options.log(`${kind}: kill -9 node ${id}`);
    this.#options.onStop?.(id);
    await this.#options.cluster.cluster.kill(id, "SIGKILL");
    return async () => {
      this.#options.log(`${kind}: start node ${id}`);
      await this.#start(id);
    };
  }

  async #restart(id: number): Promise<() => Promise<void>> {
    this.#options.log(`restart: stop node ${id} (SIGTERM) and start it again`);
    this.#options.onStop?.(id);
    await this.#options.cluster.cluster.stopNode(id);
    await this.#start(id);
    return () => Promise.resolve();
  }

  async #pause(id: number | null): Promise<(() => Promise<void>) | null> {
    if (id === null) return null;
    this.#options.log(`pause: SIGSTOP node ${id}`);
    this.#paused.add(id);
    await this.#options.cluster.cluster.kill(id, "SIGSTOP");
    return async () => {
      this.#options.log(`pause: SIGCONT node ${id}`);
      await this.#options.cluster.cluster.kill(id, "SIGCONT");
      this.#paused.delete(id);
    };
  }

  /** Cuts `group` off from every other node, both ways. */
  async #isolate(group: readonly number[], kind: FaultKind): Promise<() => Promise<void>> {
    const others = this.#options.cluster.nodeIds.filter((id) => !group.includes(id));
    const cuts: [number, number][] = [];
    for (const a of group) for (const b of others) cuts.push([a, b]);
    this.#options.log(`${kind}: isolate nodes ${group.join(",")} from ${others.join(",")}`);
    return await this.#cut(cuts, kind, { dropProbability: 1, delayMs: 0 });
  }

  /** Applies `rule` to both directions of every link in `cuts`. */
  async #cut(
    cuts: readonly [number, number][],
    kind: FaultKind,
    rule: { dropProbability: number; delayMs: number },
  ): Promise<() => Promise<void>> {
    if (kind === "partition-majorities-ring") {
      this.#options.log(`${kind}: cut ${cuts.map(([a, b]) => `${a}-${b}`).join(" ")}`);
    }
    for (const [a, b] of cuts) {
      await this.#control(() => this.#options.cluster.setFault(a, b, rule));
      await this.#control(() => this.#options.cluster.setFault(b, a, rule));
    }
    return async () => {
      this.#options.log(`${kind}: heal`);
      await this.#clearAll();
    };
  }

  async #flaky(): Promise<() => Promise<void>> {
    const { prng, cluster } = this.#options;
    const dropProbability = (5 + prng.nextInt(26)) / 100;
    const delayMsMax = prng.nextInt(60);
    this.#options.log(`flaky-network: drop ${dropProbability}, delay up to ${delayMsMax} ms`);
    for (const a of cluster.nodeIds) {
      for (const b of cluster.nodeIds) {
        if (a === b) continue;
        const rule = { dropProbability, delayMs: prng.nextInt(delayMsMax + 1) };
        await this.#control(() => cluster.setFault(a, b, rule));
      }
    }
    return async () => {
      this.#options.log("flaky-network: heal");
      await this.#clearAll();
    };
  }

  /** Delays every frame to and from one node by 100..800 ms (about an election timeout). */
  async #slow(id: number): Promise<() => Promise<void>> {
    const delayMs = 100 + this.#options.prng.nextInt(701);
    this.#options.log(`slow-node: delay node ${id}'s links by ${delayMs} ms`);
    const others = this.#options.cluster.nodeIds.filter((other) => other !== id);
    const links: [number, number][] = others.map((other) => [id, other]);
    return await this.#cut(links, "slow-node", { dropProbability: 0, delayMs });
  }

  async #clearAll(): Promise<void> {
    const chaos = this.#options.cluster;
    for (const id of chaos.nodeIds) await this.#control(() => chaos.clearFaults(id));
  }

  async #start(id: number): Promise<void> {
    const chaos = this.#options.cluster;
    chaos.cluster.start(id);
    const deadline = this.#options.nowMs() + NODE_BOOT_TIMEOUT_MS;
    while (this.#options.nowMs() < deadline) {
      const isUp = await chaos.call(id, { method: "GET", path: "/v1/health" })
        .then((answer) => answer.status === 200, () => false);
      if (isUp) return;
      if (!chaos.cluster.isRunning(id)) throw new Error(`Node ${id} exited while starting`);
      await sleep(100);
    }
    throw new Error(`Node ${id} did not serve HTTP within ${NODE_BOOT_TIMEOUT_MS} ms`);
  }

  /** Retries a control request (a busy node may miss the control deadline once or twice). */
  async #control(action: () => Promise<void>): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        return await action();
      } catch (error) {
        if (attempt >= CONTROL_ATTEMPTS_MAX) throw error;
        await sleep(200);
      }
    }
  }

  /**
   * Starts a move adding one shard through a random reachable node; null (not counted) when
   * the cluster has its most shards, a move runs already, or no node answered.
   */
  async #addShard(): Promise<(() => Promise<void>) | null> {
    const chaos = this.#options.cluster;
    const nodes = this.reachableNodes();
    const via = nodes[this.#options.prng.nextInt(Math.max(1, nodes.length))];
    if (via === undefined) return null;
    const answer = await chaos.call(via, { method: "GET", path: "/v1/shards" }).catch(() => null);
    const count = (answer?.json as { numShards?: number } | null)?.numShards;
    const max = this.#options.maxShards ?? this.#options.shards + 2;
    if (typeof count !== "number" || count >= max) return null;
    const started = await chaos.call(via, {
      method: "POST",
      path: "/v1/shards",
      body: { count: 1 },
    }).catch((error: unknown) => ({ status: 0, json: String(error) }));
    this.#options.log(`shard-add via node ${via}: ${count} -> ${count + 1}: ${started.status}`);
    return started.status === 202 ? () => Promise.resolve() : null;
  }

  /**
   * Creates a tenant not created yet on a random shard, or moves a random tenant to another
   * shard, through a random reachable node; null (not counted) when a move runs already, the
   * cluster has one shard, or no node answered.
   */
  async #moveTenant(): Promise<(() => Promise<void>) | null> {
    const chaos = this.#options.cluster;
    const prng = this.#options.prng;
    const nodes = this.reachableNodes();
    const via = nodes[prng.nextInt(Math.max(1, nodes.length))];
    if (via === undefined) return null;
    const sizes = await chaos.call(via, { method: "GET", path: "/v1/shards" }).catch(() => null);
    const count = (sizes?.json as { numShards?: number } | null)?.numShards;
    const listed = await chaos.call(via, { method: "GET", path: "/v1/tenants" }).catch(() => null);
    const known = (listed?.json as { tenants?: { name: string; shard: number }[] } | null)
      ?.tenants;
    if (typeof count !== "number" || count < 2 || known === undefined) return null;
    const names = this.#options.tenants ?? ["chaos"];
    const fresh = names.filter((name) => !known.some((tenant) => tenant.name === name));
    const target = prng.nextInt(count);
    const tenant = known[prng.nextInt(Math.max(1, known.length))];
    const request = fresh.length > 0
      ? { method: "POST", path: "/v1/tenants", body: { name: fresh[0], shard: target } }
      : tenant === undefined
      ? null
      : {
        method: "POST",
        path: `/v1/tenants/${tenant.name}/move`,
        body: { to: (tenant.shard + 1 + prng.nextInt(count - 1)) % count },
      };
    if (request === null) return null;
    // A create answers once its move is done: the nemesis does not wait so long, and looks
    // at the move record instead when no answer came in time.
    const started = await chaos.call(via, request)
      .catch((error: unknown) => ({ status: 0, json: String(error) }));
    const isStarted = started.status === 201 || started.status === 202 ||
      (started.status === 0 && await this.#isTenantMoving(via, request.path));
    this.#options.log(
      `tenant-move via node ${via}: ${request.path} ${JSON.stringify(request.body)}: ` +
        `${started.status}${isStarted ? "" : " (not started)"}`,
    );
    return isStarted ? () => Promise.resolve() : null;
  }

  /** Whether the move record names the tenant of `path`'s request (a create's body's). */
  async #isTenantMoving(via: number, path: string): Promise<boolean> {
    const answer = await this.#options.cluster.call(via, {
      method: "GET",
      path: "/v1/shards/moves",
    }).catch(() => null);
    const move = (answer?.json as { move?: { tenant?: { name: string } } | null } | null)?.move;
    const name = move?.tenant?.name;
    if (name === undefined) return false;
    return path === "/v1/tenants" ? (this.#options.tenants ?? ["chaos"]).includes(name) : true;
  }

  /** The node leading a random shard (the highest term seen wins), or null if none is known. */
  async #randomLeader(): Promise<number | null> {
    const chaos = this.#options.cluster;
    const leaders = new Map<number, { node: number; term: number }>();
    for (const id of this.reachableNodes()) {
      const replicas = await chaos.debugState(id).catch(() => []);
      for (const replica of replicas) {
        const known = leaders.get(replica.shard);
        const isNewer = known === undefined || replica.term > known.term;
        if (replica.role === "leader" && isNewer) {
          leaders.set(replica.shard, { node: id, term: replica.term });
        }
      }
    }
    const found = [...leaders.values()];
    if (found.length === 0) return null;
    return found[this.#options.prng.nextInt(found.length)]!.node;
  }

  #randomNode(): number {
    const ids = this.#options.cluster.nodeIds;
    return ids[this.#options.prng.nextInt(ids.length)]!;
  }

  /** A random non-empty minority of the nodes. */
  #randomMinority(): number[] {
    const ids = shuffle(this.#options.prng, this.#options.cluster.nodeIds);
    const minorityMax = Math.floor((ids.length - 1) / 2);
    return ids.slice(0, 1 + this.#options.prng.nextInt(minorityMax));
  }

  /** The links to cut for a majorities ring (a bridge for 3 nodes). */
  #ringCuts(): [number, number][] {
    const ring = shuffle(this.#options.prng, this.#options.cluster.nodeIds);
    const cuts: [number, number][] = [];
    if (ring.length === 3) return [[ring[0]!, ring[1]!]];
    for (let i = 0; i < ring.length; i++) {
      for (let j = i + 2; j < ring.length; j++) {
        const isNeighbour = i === 0 && j === ring.length - 1;
        if (!isNeighbour) cuts.push([ring[i]!, ring[j]!]);
      }
    }
    return cuts;
  }
}

function between(prng: SeededPrng, range: { min: number; max: number }): number {
  return range.min + prng.nextInt(range.max - range.min + 1);
}

function shuffle(prng: SeededPrng, items: readonly number[]): number[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = prng.nextInt(i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
