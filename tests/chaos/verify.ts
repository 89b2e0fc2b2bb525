/**
 * The checks at the end of a chaos run, after every fault is healed: the replicas of each
 * shard converge to identical state (once every replica reports the same applied index, their
 * state hashes must be equal), and the run's answers are explained by the history checker.
 */
import type { ReplicaDebugState } from "../../server/http/mod.ts";
import type { ChaosCluster } from "./cluster.ts";

/** The verdict on one snapshot of every node's replicas. */
export interface ReplicaComparison {
  /** True when every shard has all its replicas reporting and they share one applied index. */
  readonly isSettled: boolean;
  /** Replicas at the same applied index with different state: divergence, always a bug. */
  readonly divergences: readonly string[];
  /** Why the snapshot is not settled yet (for the timeout message). */
  readonly pending: readonly string[];
}

/**
 * Compares the replicas of each shard as reported by every node at about the same time.
 *
 * @param states each node's replicas, by node id
 * @param shape how many shards there are and how many replicas each has
 */
export function compareReplicas(
  states: ReadonlyMap<number, readonly ReplicaDebugState[]>,
  shape: {
    readonly shards: number;
    readonly replicasPerShard: number;
    /** The first shard compared (shards `firstShard` to `firstShard + shards - 1`); 0. */
    readonly firstShard?: number;
  },
): ReplicaComparison {
  const { replicasPerShard } = shape;
  const first = shape.firstShard ?? 0;
  const byShard = new Map<number, { node: number; state: ReplicaDebugState }[]>();
  for (let shard = first; shard < first + shape.shards; shard++) byShard.set(shard, []);
  for (const [node, replicas] of states) {
    for (const state of replicas) {
      const list = byShard.get(state.shard) ?? [];
      list.push({ node, state });
      byShard.set(state.shard, list);
    }
  }
  const divergences: string[] = [];
  const pending: string[] = [];
  for (const [shard, replicas] of [...byShard].sort((a, b) => a[0] - b[0])) {
    const describe = replicas.map(({ node, state }) => `n${node}@${state.appliedIndex}`).join(" ");
    if (replicas.length < replicasPerShard) {
      pending.push(`shard ${shard}: ${replicas.length} of ${replicasPerShard} replicas answer`);
      continue;
    }
    const indexes = new Set(replicas.map(({ state }) => state.appliedIndex));
    if (indexes.size > 1) {
      pending.push(`shard ${shard}: applied indexes differ (${describe})`);
      continue;
    }
    // States read without hashes (cheap polling) settle the indexes only.
    if (replicas.some(({ state }) => state.stateHash === null)) continue;
    const hashes = new Set(replicas.map(({ state }) => state.stateHash));
    if (hashes.size > 1) {
      const detail = replicas.map(({ node, state }) => `n${node}=${state.stateHash!.slice(0, 12)}`);
      divergences.push(
        `shard ${shard}: replicas at applied index ${[...indexes][0]} differ: ${detail.join(" ")}`,
      );
    }
  }
  return { isSettled: pending.length === 0, divergences, pending };
}

/**
 * Waits until the replicas of every shard are seen at one applied index with one state hash,
 * and returns the divergences found (none on a healthy cluster). Shard by shard: once a
 * shard's replicas report one applied index (cheap polls without hashes), each of its nodes
 * hashes that shard alone; a shard verified at one index stays verified. Hashing reads a whole
 * state machine: done for every shard at once and every 250 ms, it starved nodes of a few
 * hundred thousand keys, their shards elected new leaders, each election appended an entry,
 * and no moment came when every shard agreed.
 *
 * @returns anomalies: divergent replicas, or shards not seen to converge in time.
 */
export async function awaitConvergence(
  chaos: ChaosCluster,
  options: { shards: number; replicasPerShard: number; timeoutMs: number; nowMs: () => number },
): Promise<string[]> {
  const deadline = options.nowMs() + options.timeoutMs;
  const verified = new Set<number>();
  let pending: readonly string[] = ["no node answered"];
  while (options.nowMs() < deadline) {
    const indexes = compareReplicas(await readStates(chaos, { isHashed: false }), options);
    pending = indexes.pending;
    for (let shard = 0; shard < options.shards; shard++) {
      if (verified.has(shard) || isShardPending(indexes, shard)) continue;
      const hashed = compareReplicas(
        await readStates(chaos, { isHashed: true, shard }),
        { shards: 1, replicasPerShard: options.replicasPerShard, firstShard: shard },
      );
      if (hashed.divergences.length > 0) return [...hashed.divergences];
      if (hashed.isSettled) verified.add(shard);
    }
    if (verified.size === options.shards) return [];
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const unverified = [...Array(options.shards).keys()].filter((shard) => !verified.has(shard));
  return [
    `replicas did not converge within ${options.timeoutMs} ms: shards ${unverified.join(", ")} ` +
    `not seen at one index and hash (${pending.join("; ") || "indexes agreed while hashing"})`,
  ];
}

/** Whether `comparison` lists `shard` as not settled. */
function isShardPending(comparison: ReplicaComparison, shard: number): boolean {
  return comparison.pending.some((line) => line.startsWith(`shard ${shard}:`));
}

/** Every answering node's replicas (of one shard, or all), with or without state hashes. */
async function readStates(
  chaos: ChaosCluster,
  options: { readonly isHashed: boolean; readonly shard?: number },
): Promise<Map<number, ReplicaDebugState[]>> {
  const states = new Map<number, ReplicaDebugState[]>();
  for (const id of chaos.nodeIds) {
    const replicas = await chaos.debugState(id, options).catch(() => null);
    if (replicas !== null) states.set(id, replicas);
  }
  return states;
}
