/**
 * Growing a real cluster from 3 nodes to 5 and shrinking it back to 3 under write load, with
 * nodes killed while replicas move (issue 15's proof).
 *
 * 3 `aspen node` processes, 4 shards, replication factor 3, writers through nodes 1 and 3 (who
 * stay) the whole time. Nodes 4 and 5 start together with empty data dirs and `--join`; while
 * replicas move onto them node 2 is killed (SIGKILL) and started again; the rebalancer must
 * settle with 5 active members, no learner, every node within one replica of the others and no
 * difference between the members record, the placement record, the replicas and the groups.
 * Then node 5 (a joined node) is drained while node 4 (joined too) is killed and started again
 * from its data dir (no `--join`), and node 2 (a founder) is drained while node 3 is killed and
 * started again; each ends `removed` and stops by itself. The 3 members left (1, 3, 4) hold
 * every replica, every acknowledged write reads back and each shard's replicas share one
 * applied index and one state hash.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { ClusterStatus } from "../api/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import { launchTestCluster } from "./_cluster.ts";
import {
  checkAcknowledged,
  type JoiningNode,
  post,
  startJoiningNode,
  startWriters,
  waitFor,
  waitForReplicas,
  waitForStatus,
} from "./_membership.ts";

const SHARDS = 4;
/** The replicas in the cluster: SHARDS at replication factor 3. */
const REPLICAS = SHARDS * 3;
/** Concurrent writers through nodes 1 and 3 (never removed; 3 is killed once). */
const WRITERS = 4;
const KEY_PREFIX = "grow-shrink-e2e/";
/** How long the rebalancer may take to settle 5 members after the joins, kill included. */
const GROW_TIMEOUT_MS = 60_000;
/** How long a drain may take, kill and restart included. */
const DRAIN_TIMEOUT_MS = 45_000;
const CONVERGE_TIMEOUT_MS = 15_000;
/** How long a killed node stays down before it is started again. */
const KILLED_FOR_MS = 1_500;
/** How long a removed node may take to stop by itself. */
const REMOVED_STOP_TIMEOUT_MS = 10_000;

Deno.test("3 nodes grow to 5 and shrink to 3 under load, through killed nodes", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: SHARDS });
  const { cluster } = test;
  const dir = await Deno.makeTempDir({ prefix: "aspen-grow-shrink-" });
  const joined = new Map<number, JoiningNode>();
  try {
    await cluster.waitForLeaders();
    await waitForStatus(cluster, 1, (status) => status.members?.length === 3);
    const load = startWriters(cluster, {
      writers: WRITERS,
      keyPrefix: KEY_PREFIX,
      endpoints: [cluster.url(1), cluster.url(3)],
    });
    let acknowledged: ReadonlyMap<string, string>;
    try {
      await grow(cluster, dir, test.lines, joined);
      await drainJoinedNode(cluster, dir, test.lines, joined);
      await drainFounder(cluster);
    } finally {
      acknowledged = await load.stop();
    }
    ok(acknowledged.size > 0, "some write was acknowledged");
    await checkAcknowledged(cluster, KEY_PREFIX, acknowledged);
    await waitForReplicas(cluster, [1, 3], CONVERGE_TIMEOUT_MS, {
      shards: SHARDS,
      joined: [joined.get(4)!],
    });
  } catch (error) {
    console.error(test.lines.slice(-120).join("\n"));
    throw error;
  } finally {
    for (const node of joined.values()) await node.stop();
    await test.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Nodes 4 and 5 join; once a replica moves onto either, node 2 is killed and started again;
 * then the rebalancer settles with 5 active members.
 */
async function grow(
  cluster: LocalCluster,
  dir: string,
  lines: string[],
  joined: Map<number, JoiningNode>,
): Promise<void> {
  for (const id of [4, 5]) {
    joined.set(id, startJoiningNode(cluster, dir, lines, { id, shards: SHARDS }));
  }
  await waitForStatus(cluster, 1, (status) =>
    (status.learners?.length ?? 0) > 0 ||
    (status.members ?? []).some((member) => member.id > 3 && member.replicas > 0));
  await killAndRestart(() => cluster.kill(2, "SIGKILL"), () => cluster.start(2));
  const settled = await waitForStatus(
    cluster,
    1,
    (status) => isSettled(status, [1, 2, 3, 4, 5]),
    GROW_TIMEOUT_MS,
  );
  const counts = settled.members!.map((member) => member.replicas);
  ok(counts.every((count) => count >= 2), `each of 5 members holds 2 or 3: ${counts}`);
}

/**
 * Node 5 (joined) is drained; once its replicas move, node 4 (joined too) is killed and started
 * again from its data dir without `--join`. Node 5 ends removed and its process exits by itself.
 */
async function drainJoinedNode(
  cluster: LocalCluster,
  dir: string,
  lines: string[],
  joined: Map<number, JoiningNode>,
): Promise<void> {
  const before = await waitForStatus(cluster, 1, () => true);
  const held = before.members?.find((member) => member.id === 5)?.replicas ?? 0;
  const removal = await post(cluster, 1, "/v1/cluster/nodes/5/remove");
  equal(removal.status, 202, JSON.stringify(removal.body));
  deepEqual(removal.body, { node: 5, state: "draining", previousState: "active" });
  await waitForStatus(cluster, 1, (status) => isMoving(status, 5, held));
  const four = joined.get(4)!;
  await killAndRestart(
    () => four.stop("SIGKILL"),
    () => {
      const again = startJoiningNode(cluster, dir, lines, {
        id: 4,
        shards: SHARDS,
        ports: four.ports,
        join: false,
      });
      joined.set(4, again);
    },
  );
  await waitForStatus(
    cluster,
    1,
    (status) => memberState(status, 5) === "removed" && isSettled(status, [1, 2, 3, 4]),
    DRAIN_TIMEOUT_MS,
  );
  let hasExited = false;
  void joined.get(5)!.exited.then(() => hasExited = true);
  await waitFor(() => hasExited, REMOVED_STOP_TIMEOUT_MS, "node 5 stops once removed");
}

/**
 * Node 2 (a founder) is drained; once its replicas move, node 3 is killed and started again.
 * Node 2 ends removed and stops; nodes 1, 3 and 4 hold a replica of every shard.
 */
async function drainFounder(cluster: LocalCluster): Promise<void> {
  const before = await waitForStatus(cluster, 1, () => true);
  const held = before.members?.find((member) => member.id === 2)?.replicas ?? 0;
  const removal = await post(cluster, 1, "/v1/cluster/nodes/2/remove");
  equal(removal.status, 202, JSON.stringify(removal.body));
  await waitForStatus(cluster, 1, (status) => isMoving(status, 2, held));
  await killAndRestart(() => cluster.kill(3, "SIGKILL"), () => cluster.start(3));
  const settled = await waitForStatus(
    cluster,
    1,
    (status) => memberState(status, 2) === "removed" && isSettled(status, [1, 3, 4]),
    DRAIN_TIMEOUT_MS,
  );
  deepEqual(
    settled.members?.map((member) => [member.id, member.state, member.replicas]),
    [[1, "active", 4], [2, "removed", 0], [3, "active", 4], [4, "active", 4], [5, "removed", 0]],
  );
  for (const shard of settled.shards) {
    const nodes = shard.replicas.map((replica) => replica.node).sort();
    deepEqual(nodes, [1, 3, 4], `shard ${shard.id}: ${JSON.stringify(shard.replicas)}`);
  }
  await waitFor(() => !cluster.isRunning(2), REMOVED_STOP_TIMEOUT_MS, "node 2 stops once removed");
}

/**
 * The rebalancer is done: exactly `active` are the active members, every other member is
 * removed, no learner is left, each shard has a leader and 3 voters, the active members hold
 * every replica within one of each other, and the records, replicas and groups agree.
 */
function isSettled(status: ClusterStatus, active: readonly number[]): boolean {
  const members = status.members ?? [];
  const live = members.filter((member) => active.includes(member.id));
  const counts = live.map((member) => member.replicas);
  return live.length === active.length &&
    live.every((member) => member.state === "active") &&
    members.every((member) => active.includes(member.id) || member.state === "removed") &&
    (status.learners?.length ?? 1) === 0 &&
    status.shards.every((shard) => shard.leader !== null && shard.replicas.length === 3) &&
    counts.reduce((sum, count) => sum + count, 0) === REPLICAS &&
    Math.max(...counts) - Math.min(...counts) <= 1 &&
    status.differences?.length === 0;
}

/** A drain of `node` is under way: a learner catches up, or the node lost a replica already. */
function isMoving(status: ClusterStatus, node: number, held: number): boolean {
  const member = status.members?.find((candidate) => candidate.id === node);
  return (status.learners?.length ?? 0) > 0 || member === undefined ||
    member.replicas !== held || member.state === "removed";
}

function memberState(status: ClusterStatus, node: number): string | undefined {
  return status.members?.find((member) => member.id === node)?.state;
}

/** Kills a node, leaves it down for KILLED_FOR_MS and starts it again. */
async function killAndRestart(
  kill: () => Promise<void>,
  start: () => void,
): Promise<void> {
  await kill();
  await new Promise((resolve) => setTimeout(resolve, KILLED_FOR_MS));
  start();
}
