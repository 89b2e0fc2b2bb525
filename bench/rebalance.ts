/**
 * `deno run -A --unstable-net bench/rebalance.ts [--mib N] [--value-bytes B]`: the cost of
 * growing the cluster (issue 15). Starts 3 nodes with SHARDS shards (replication factor 3),
 * loads N MiB of values, then runs a put workload (bench/admin_action.ts: PUT_CLIENTS
 * clients, 256-byte values) throughout: WINDOW_MS before, during the growth (a 4th node joins
 * with `--join`, and the window lasts until the rebalancer is idle: every member active, no
 * learner, the members within one replica of each other) and WINDOW_MS after. Prints the time
 * to balance, the data moved (the loaded bytes of the replicas the new node took, and its data
 * dir's size on disk), the time per GiB, and the put throughput and p99 of each window. Every
 * process shares the machine's CPU.
 */
import type { AspenClient, ClusterStatus } from "../api/mod.ts";
import { LocalCluster } from "../cli/mod.ts";
import { loadSizeArgs, measureAroundAction, print, sleep } from "./admin_action.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** Shards of the cluster: 12 replicas, 3 of which move to the 4th node. */
export const SHARDS = 4;
/** How long the rebalancer may take before the benchmark gives up. */
export const BALANCE_TIMEOUT_MS = 600_000;

const size = loadSizeArgs("bench/rebalance.ts");
const dir = await Deno.makeTempDir({ prefix: "aspen-rebalance-bench-" });
const cluster = await LocalCluster.launch({
  dir,
  nodes: 3,
  shards: SHARDS,
  selfCommand: [Deno.execPath(), "run", "-A", "--unstable-net", `${ROOT}main.ts`],
  randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
  logLevel: "warn",
  onLine: () => {},
});
await measureAroundAction({
  cluster,
  dir,
  size,
  // A 4th node joins; the action lasts until the rebalancer is idle.
  action: async (client) => {
    const joined = cluster.join(cluster.url(1));
    return { joined, status: await waitForBalance(client, joined.id) };
  },
  report: async ({ result: { joined, status }, actionMs }) => {
    const taken = status.members?.find((member) => member.id === joined.id)?.replicas ?? 0;
    const diskBytes = await folderBytes(joined.dataDir);
    // Keys hash evenly over the shards: each replica the new node took holds 1/SHARDS of the load.
    const movedMib = size.mib * taken / SHARDS;
    const seconds = actionMs / 1000;
    print(
      `join 3 -> 4 nodes: balanced in ${seconds.toFixed(1)} s; the new node took ${taken} ` +
        `of ${SHARDS * 3} replicas, ${movedMib.toFixed(1)} MiB of loaded values ` +
        `(${(diskBytes / 1024 ** 2).toFixed(1)} MiB on its disk): ` +
        `${(seconds / (movedMib / 1024)).toFixed(0)} s per GiB`,
    );
  },
});

/** Polls the status until the new node is active and the rebalancer has nothing left to do. */
async function waitForBalance(client: AspenClient, node: number): Promise<ClusterStatus> {
  const deadline = performance.now() + BALANCE_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const status = await client.request<ClusterStatus>({
      method: "GET",
      path: "/v1/cluster/status",
    }).catch(() => null);
    if (status !== null && isBalanced(status, node)) return status;
    await sleep(250);
  }
  throw new Error(`The rebalancer was not idle within ${BALANCE_TIMEOUT_MS} ms`);
}

function isBalanced(status: ClusterStatus, node: number): boolean {
  const members = (status.members ?? []).filter((member) => member.state !== "removed");
  const isActive = members.some((member) => member.id === node) &&
    members.every((member) => member.state === "active");
  if (!isActive || (status.learners ?? []).length > 0) return false;
  const counts = members.map((member) => member.replicas);
  const isPlaced = status.shards.every((shard) => shard.replicas.length === 3);
  return isPlaced && Math.max(...counts) - Math.min(...counts) <= 1;
}

/** The bytes of every file under `path`. */
async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    const full = `${path}/${entry.name}`;
    if (entry.isDirectory) total += await folderBytes(full);
    else if (entry.isFile) total += (await Deno.stat(full)).size;
  }
  return total;
}
