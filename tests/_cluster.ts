/**
 * Real clusters of `aspen node` processes for tests, each in a temporary folder of its own.
 */
import { equal } from "node:assert/strict";
import { LocalCluster } from "../cli/launcher.ts";
import type { ReplicaDebugState } from "../server/http/mod.ts";
import { PROJECT_ROOT } from "./_source_files.ts";
import { compareReplicas } from "./chaos/verify.ts";

/** How a test starts this checkout's `aspen` (as `deno run`, so no build is needed). */
export const ASPEN_COMMAND = [
  Deno.execPath(),
  "run",
  "-A",
  "--unstable-net",
  `${PROJECT_ROOT}main.ts`,
];

/** A launched cluster, every line its nodes printed, and how to get rid of it. */
export interface TestCluster {
  readonly cluster: LocalCluster;
  /** Every output line, as `n<id> | <line>`, to print when a test fails. */
  readonly lines: string[];
  /** Stops every node and removes the folder. */
  close(): Promise<void>;
}

/** Launches `nodes` nodes with `shards` shards in a new temporary folder. */
export async function launchTestCluster(options: {
  readonly nodes: number;
  readonly shards: number;
  readonly extraNodeArgs?: readonly string[];
}): Promise<TestCluster> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-test-cluster-" });
  const lines: string[] = [];
  const cluster = await LocalCluster.launch({
    dir,
    nodes: options.nodes,
    shards: options.shards,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: (id, line) => lines.push(`n${id} | ${line}`),
    ...(options.extraNodeArgs === undefined ? {} : { extraNodeArgs: options.extraNodeArgs }),
  });
  return {
    cluster,
    lines,
    close: async () => {
      await cluster.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Polls every node's debug state until the replicas of every shard share one applied index and
 * state hash; a divergence fails at once.
 *
 * @throws {Error} naming the shards still apart after `timeoutMs`.
 */
export async function waitForConvergence(
  cluster: LocalCluster,
  shape: { readonly shards: number; readonly replicasPerShard: number },
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let pending: readonly string[] = [];
  while (performance.now() < deadline) {
    const states = new Map<number, readonly ReplicaDebugState[]>();
    for (const node of cluster.nodes) {
      const response = await fetch(`${cluster.url(node.id)}/v1/debug/state`, {
        headers: { authorization: `Bearer ${cluster.record.rootToken}` },
      });
      equal(response.status, 200);
      states.set(node.id, (await response.json() as { shards: ReplicaDebugState[] }).shards);
    }
    const comparison = compareReplicas(states, shape);
    equal(comparison.divergences.length, 0, comparison.divergences.join("; "));
    if (comparison.isSettled) return;
    pending = comparison.pending;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`The replicas did not converge: ${pending.join("; ")}`);
}

/** The value a linearizable GET of `key` through `url` answers, or "error <status>". */
export async function readValue(url: string, token: string, key: string): Promise<string> {
  const response = await fetch(`${url}/v1/kv/${encodeURIComponent(key)}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(15_000),
  });
  const body = await response.json() as { kv?: { value?: string } };
  return response.status === 200 ? body.kv?.value ?? "error no value" : `error ${response.status}`;
}

/** The node leading shard 0, as the cluster status through `url` names it once it has one. */
export async function shardZeroLeader(url: string, token: string): Promise<number> {
  for (;;) {
    const response = await fetch(`${url}/v1/cluster/status`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const status = await response.json() as { shards: { id: number; leader: number | null }[] };
    const leader = status.shards.find((shard) => shard.id === 0)?.leader ?? null;
    if (leader !== null) return leader;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
