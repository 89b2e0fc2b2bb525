/**
 * The nemesis's faults under heavy load (each runs the heavy writer while it lasts):
 * - "outage-follower" / "outage-leader": kill -9 a follower (or the leader) of a random shard,
 *   write to that shard until its log grew `outageEntries` past the index at the kill, start
 *   the node again while the writes go on, and wait until it has caught up (from the log, or
 *   from a snapshot when the leader compacted past it). The outage is measured in entries:
 *   the shard's commit index at the restart minus the one at the kill.
 * - "transfer-storm": leadership transfers (`POST /v1/shards/{id}/transfer-leader`, shards and
 *   targets rotating) and campaigns (`POST /v1/test/campaign`) in quick succession.
 * - "power-loss": one node (every second time: every node at once) loses power under the
 *   writes: killed with -9, its data files rolled back to their last fsynced bytes
 *   (power_loss.ts), and started again.
 *
 * Every choice comes from the nemesis's seeded PRNG; each fault is over (nodes running again)
 * when its method returns.
 */
import type { SeededPrng } from "../../raft/mod.ts";
import type { ChaosCluster } from "./cluster.ts";
import type { HeavyWriter } from "./heavy.ts";

/** Heavy-load faults short enough for any run. */
export const LOAD_FAULT_KINDS = ["transfer-storm", "power-loss"] as const;
/** Outages measured in entries: long-run faults at their full size. */
export const OUTAGE_KINDS = ["outage-follower", "outage-leader"] as const;

/** One heavy-load fault. */
export type LoadFaultKind = typeof LOAD_FAULT_KINDS[number] | typeof OUTAGE_KINDS[number];

/** How big the heavy-load faults are. */
export interface LoadFaultSizes {
  /** Entries a shard's log must grow while one of its replicas is down. */
  readonly outageEntries: number;
  /** The longest an outage may wait for those entries. */
  readonly outageMsMax: number;
  /** Transfers and campaigns in one storm. */
  readonly stormActions: { readonly min: number; readonly max: number };
  /** The pause between two of them. */
  readonly stormGapMs: { readonly min: number; readonly max: number };
  /** How long the writes run before a power loss. */
  readonly powerLossLeadMs: { readonly min: number; readonly max: number };
}

/** The sizes of long runs: outages of 100,000 entries. */
export const LONG_LOAD_FAULT_SIZES: LoadFaultSizes = {
  outageEntries: 100_000,
  outageMsMax: 180_000,
  stormActions: { min: 20, max: 60 },
  stormGapMs: { min: 50, max: 800 },
  powerLossLeadMs: { min: 500, max: 3_000 },
};

/** How long a node back from an outage may take to catch up before the nemesis moves on. */
export const CATCH_UP_TIMEOUT_MS = 120_000;
/** Every second power loss hits every node at once (the others hit one node). */
const EVERY_NODE_POWER_LOSS_PERIOD = 2;
/** The shortest outage, even at the end of a run. */
const OUTAGE_MS_MIN = 10_000;
/** How often an outage polls the shard's indexes. */
const POLL_MS = 250;

/** One outage as measured. */
export interface OutageFigure {
  readonly kind: string;
  readonly node: number;
  readonly shard: number;
  /** Entries the shard's log grew while the node was down. */
  readonly entries: number;
  /** Whether the node caught up within CATCH_UP_TIMEOUT_MS. */
  readonly isCaughtUp: boolean;
  /** Snapshots the node installed while catching up (0: from the log alone). */
  readonly snapshotsInstalled: number;
}

/** What the heavy-load faults did. */
export interface LoadFigures {
  /** Nodes killed with -9 by these faults (outages and power losses). */
  kills: number;
  readonly outages: OutageFigure[];
  powerLossRestarts: number;
  /** Writes undone by power-loss rollbacks, and their bytes. */
  writesUndone: number;
  bytesUndone: number;
  transfers: number;
  campaigns: number;
  /** Answers of the storms, by status (or "no answer"). */
  readonly answers: Record<string, number>;
}

/** What the faults need from the nemesis. */
export interface LoadFaultTools {
  readonly cluster: ChaosCluster;
  readonly prng: SeededPrng;
  readonly heavy: HeavyWriter;
  readonly shards: number;
  readonly sizes: LoadFaultSizes;
  readonly nowMs: () => number;
  readonly log: (line: string) => void;
  /** Nodes running and not paused. */
  readonly reachableNodes: () => number[];
  /** Starts node `id` and waits until it serves HTTP. */
  readonly start: (id: number) => Promise<void>;
}

/** A shard as the reachable nodes see it. */
interface ShardView {
  readonly leader: number | null;
  readonly replicas: readonly number[];
  /** The highest commit index any replica reports. */
  readonly commit: number;
}

/** The heavy-load faults; each method returns false when its fault could not be injected. */
export class LoadFaults {
  readonly figures: LoadFigures = {
    kills: 0,
    outages: [],
    powerLossRestarts: 0,
    writesUndone: 0,
    bytesUndone: 0,
    transfers: 0,
    campaigns: 0,
    answers: {},
  };
  /** Answers that point at a bug (a 500). */
  readonly anomalies: string[] = [];
  readonly #tools: LoadFaultTools;
  #powerLosses = 0;

  constructor(tools: LoadFaultTools) {
    this.#tools = tools;
  }

  /**
   * Injects `kind` and undoes it; false when it could not be injected. An outage or a storm
   * ends early at `untilMs` (the run's end), an outage no sooner than OUTAGE_MS_MIN after it
   * began.
   */
  async inject(kind: LoadFaultKind, untilMs: number): Promise<boolean> {
    switch (kind) {
      case "outage-follower":
      case "outage-leader":
        return await this.#outage(kind, untilMs);
      case "transfer-storm":
        return await this.#storm(untilMs);
      case "power-loss":
        return await this.#powerLoss();
    }
  }

  async #outage(kind: LoadFaultKind, untilMs: number): Promise<boolean> {
    const { prng, cluster, heavy, log, sizes, nowMs } = this.#tools;
    const shard = prng.nextInt(this.#tools.shards);
    const view = await this.#view(shard);
    if (view.leader === null) return false;
    const followers = view.replicas.filter((id) => id !== view.leader);
    const victim = kind === "outage-leader"
      ? view.leader
      : followers[prng.nextInt(Math.max(1, followers.length))] ?? null;
    if (victim === null) return false;
    log(
      `${kind}: kill -9 node ${victim}, heavy writes to shard ${shard} from index ${view.commit}`,
    );
    await cluster.cluster.kill(victim, "SIGKILL");
    this.figures.kills++;
    heavy.start(shard);
    try {
      const deadline = Math.min(
        nowMs() + sizes.outageMsMax,
        Math.max(untilMs, nowMs() + OUTAGE_MS_MIN),
      );
      let commit = view.commit;
      while (commit - view.commit < sizes.outageEntries && nowMs() < deadline) {
        await sleep(POLL_MS);
        commit = Math.max(commit, (await this.#view(shard)).commit);
      }
      const entries = commit - view.commit;
      log(`${kind}: node ${victim} is ${entries} entries behind on shard ${shard}: start it`);
      const installedBefore = cluster.eventsOf(victim).snapshotInstalled ?? 0;
      await this.#tools.start(victim);
      const isCaughtUp = await this.#awaitCatchUp(victim, shard, commit);
      const snapshotsInstalled = (cluster.eventsOf(victim).snapshotInstalled ?? 0) -
        installedBefore;
      log(
        `${kind}: node ${victim} ${isCaughtUp ? "caught up" : "did NOT catch up"} ` +
          `(${snapshotsInstalled} snapshots installed)`,
      );
      this.figures.outages.push({
        kind,
        node: victim,
        shard,
        entries,
        isCaughtUp,
        snapshotsInstalled,
      });
    } finally {
      await heavy.stop();
    }
    return true;
  }

  /** Waits, while the writes go on, until node `id` applied `index` of `shard`. */
  async #awaitCatchUp(id: number, shard: number, index: number): Promise<boolean> {
    const { cluster, nowMs } = this.#tools;
    const deadline = nowMs() + CATCH_UP_TIMEOUT_MS;
    while (nowMs() < deadline && cluster.cluster.isRunning(id)) {
      const states = await cluster.debugState(id).catch(() => []);
      const replica = states.find((state) => state.shard === shard);
      if (replica !== undefined && replica.appliedIndex >= index) return true;
      await sleep(POLL_MS);
    }
    return false;
  }

  async #storm(untilMs: number): Promise<boolean> {
    const { prng, heavy, log, sizes, cluster, nowMs } = this.#tools;
    const actions = between(prng, sizes.stormActions);
    const ids = cluster.nodeIds;
    const offset = prng.nextInt(ids.length);
    log(`transfer-storm: ${actions} transfers and campaigns under heavy writes`);
    heavy.start(null);
    try {
      for (let i = 0; i < actions && cluster.unexpectedExits.length === 0; i++) {
        if (i > 0 && nowMs() >= untilMs) break;
        const nodes = this.#tools.reachableNodes();
        const shard = i % this.#tools.shards;
        if (nodes.length > 0) {
          const isCampaign = prng.nextInt(4) === 0;
          const via = nodes[prng.nextInt(nodes.length)]!;
          const to = ids[(offset + i) % ids.length]!;
          await this.#stormAction(isCampaign ? { shard, via } : { shard, via, to });
        }
        await sleep(between(prng, sizes.stormGapMs));
      }
    } finally {
      await heavy.stop();
    }
    log(`transfer-storm: over, answers ${JSON.stringify(this.figures.answers)}`);
    return true;
  }

  /** One campaign (no `to`) or transfer; a 500 is an anomaly, any other answer is fine. */
  async #stormAction(action: { shard: number; via: number; to?: number }): Promise<void> {
    const isCampaign = action.to === undefined;
    const request = isCampaign
      ? { method: "POST", path: "/v1/test/campaign", body: { shard: action.shard } }
      : {
        method: "POST",
        path: `/v1/shards/${action.shard}/transfer-leader`,
        body: { to: action.to },
      };
    if (isCampaign) this.figures.campaigns++;
    else this.figures.transfers++;
    const answer = await this.#tools.cluster.call(action.via, request).catch(() => null);
    const outcome = answer === null ? "no answer" : String(answer.status);
    this.figures.answers[outcome] = (this.figures.answers[outcome] ?? 0) + 1;
    if (answer !== null && answer.status === 500) {
      this.anomalies.push(
        `${request.path} ${JSON.stringify(request.body)} via node ${action.via}: ` +
          `${answer.status} ${JSON.stringify(answer.json)}`,
      );
    }
  }

  async #powerLoss(): Promise<boolean> {
    const { prng, heavy, log, sizes, cluster } = this.#tools;
    if (!cluster.isPowerLossTracked) return false;
    const running = this.#tools.reachableNodes();
    if (running.length < cluster.nodeIds.length) return false;
    const isEveryone = this.#powerLosses++ % EVERY_NODE_POWER_LOSS_PERIOD ===
      EVERY_NODE_POWER_LOSS_PERIOD - 1;
    const victims = isEveryone ? running : [running[prng.nextInt(running.length)]!];
    heavy.start(null);
    try {
      await sleep(between(prng, sizes.powerLossLeadMs));
      log(`power-loss: ${isEveryone ? "every node loses" : `node ${victims[0]} loses`} power`);
      const undone = await Promise.all(victims.map((id) => cluster.powerLoss(id)));
      this.figures.kills += victims.length;
      const writes = undone.reduce((total, figures) => total + figures.records, 0);
      const bytes = undone.reduce((total, figures) => total + figures.bytes, 0);
      this.figures.writesUndone += writes;
      this.figures.bytesUndone += bytes;
      log(`power-loss: ${writes} unsynced writes (${bytes} bytes) undone; start again`);
      for (const id of victims) {
        await this.#tools.start(id);
        this.figures.powerLossRestarts++;
      }
    } finally {
      await heavy.stop();
    }
    return true;
  }

  /** Shard `shard` as the reachable nodes report it. */
  async #view(shard: number): Promise<ShardView> {
    const { cluster } = this.#tools;
    let leader: { node: number; term: number } | null = null;
    const replicas: number[] = [];
    let commit = 0;
    for (const id of this.#tools.reachableNodes()) {
      const states = await cluster.debugState(id).catch(() => []);
      const replica = states.find((state) => state.shard === shard);
      if (replica === undefined) continue;
      replicas.push(id);
      commit = Math.max(commit, replica.commitIndex);
      const isNewer = leader === null || replica.term > leader.term;
      if (replica.role === "leader" && isNewer) leader = { node: id, term: replica.term };
    }
    return { leader: leader?.node ?? null, replicas, commit };
  }
}

function between(prng: SeededPrng, range: { min: number; max: number }): number {
  return range.min + prng.nextInt(range.max - range.min + 1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
