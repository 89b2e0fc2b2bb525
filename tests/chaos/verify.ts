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
  shape: { readonly shards: number; readonly replicasPerShard: number },
): ReplicaComparison {
  const { replicasPerShard } = shape;
  const byShard = new Map<number, { node: number; state: ReplicaDebugState }[]>();
  for (let shard = 0; shard < shape.shards; shard++) byShard.set(shard, []);
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
 * Polls every node's applied indexes (cheaply, without state hashes) until each shard's
 * replicas share one, then reads the hashes and returns the divergences found (none on a
 * healthy cluster). Hashing reads a node's whole state and holds its event loop meanwhile:
 * polled with hashes every 250 ms, a node of a few hundred thousand keys missed heartbeats,
 * its shards elected new leaders, each election appended an entry, and the indexes never
 * settled.
 *
 * @returns anomalies: divergent replicas, or replicas that did not converge in time.
 */
export async function awaitConvergence(
  chaos: ChaosCluster,
  options: { shards: number; replicasPerShard: number; timeoutMs: number; nowMs: () => number },
): Promise<string[]> {
  const deadline = options.nowMs() + options.timeoutMs;
  let last: ReplicaComparison | null = null;
  while (options.nowMs() < deadline) {
    last = compareReplicas(await readStates(chaos, false), options);
    if (last.isSettled) {
      last = compareReplicas(await readStates(chaos, true), options);
      if (last.divergences.length > 0) return [...last.divergences];
      if (last.isSettled) return [];
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return [
    `replicas did not converge within ${options.timeoutMs} ms: ` +
    (last?.pending.join("; ") ?? "no node answered"),
  ];
}

/** Every answering node's replicas, with or without state hashes. */
async function readStates(
  chaos: ChaosCluster,
  isHashed: boolean,
): Promise<Map<number, ReplicaDebugState[]>> {
  const states = new Map<number, ReplicaDebugState[]>();
  for (const id of chaos.nodeIds) {
    const replicas = await chaos.debugState(id, isHashed).catch(() => null);
    if (replicas !== null) states.set(id, replicas);
  }
  return states;
}
