/**
 * Growing and shrinking a real cluster (issue 15).
 *
 * Shrink: 4 `aspen node` processes, 4 shards, replication factor
 * 3, under a small write load. `POST /v1/cluster/nodes/4/remove` drains node 4 while node 2
 * is killed (SIGKILL) in the middle of the move and started again. Checks that the status
 * shows the members record (every node active, then node 4 draining, then removed), that node
 * 4 ends holding no replica and stops by itself, that every shard ends with 3 voters on nodes
 * 1-3 and no learner, that every acknowledged write reads back, that the replicas of every
 * shard converge (one applied index and one state hash), that removing another node is
 * refused with 409 insufficient_capacity (3 nodes cannot lose one at factor 3), and that node
 * 4 started again with its old data refuses to start and says why.
 *
 * Grow: 3 nodes under the same load; a fourth process starts with an empty data dir and
 * `--join` (its own key, certified by the member it asks), becomes active and receives
 * replicas while node 2 is killed and restarted; it ends with exactly a quarter of the
 * replicas, every acknowledged write reads back and the 4 nodes' replicas converge. Then node
 * 3 (of the startup peer list) is removed; with node 2 killed too, `shard add` is refused with
 * 409 insufficient_capacity, and with node 2 back it places the 2 new shards on the members
 * 1, 2 and 4 (not on the static list 1-3), which serve writes and converge.
 *
 * Replace: 4 nodes under load; replacing node 4 while it is up is 409; once it is killed for
 * good, `replace` rebuilds its replicas on nodes 1-3 from the survivors, it ends `removed`,
 * every acknowledged write reads back and the replicas converge; started again with its old
 * data, node 4 asks the members it knew, learns it was removed, exits non-zero with a clear
 * message and changes no file in its data dir but its new removed mark; without the mark, started
 * while nodes 1-3 are down, it starts, and once they are back it asks again and stops.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { AspenClient, type ShardMovesResponse } from "../api/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import { launchTestCluster } from "./_cluster.ts";
import {
  type JoiningNode,
  post,
  readAll,
  startJoiningNode,
  startWriters,
  waitFor,
  waitForReplicas,
  waitForStatus,
} from "./_membership.ts";

const SHARDS = 4;
/** Concurrent writers through nodes 1 and 3 (2 is killed, 4 leaves). */
const WRITERS = 6;
const KEY_PREFIX = "members-e2e/";
/** How long the drain may take, kill and restart included. */
const DRAIN_TIMEOUT_MS = 45_000;
const CONVERGE_TIMEOUT_MS = 15_000;

Deno.test("remove-node drains a node under load, through a killed peer", async () => {
  const test = await launchTestCluster({ nodes: 4, shards: SHARDS });
  const { cluster } = test;
  try {
    await cluster.waitForLeaders();
    const first = await waitForStatus(
      cluster,
      1,
      (status) =>
        status.members?.length === 4 && status.members.every((member) => member.httpAddress !== ""),
    );
    deepEqual(first.members?.map((member) => member.state), [
      "active",
      "active",
      "active",
      "active",
    ]);
    const load = startWriters(cluster, writerOptions(cluster));
    let acknowledged: ReadonlyMap<string, string>;
    try {
      const removal = await post(cluster, 1, "/v1/cluster/nodes/4/remove");
      equal(removal.status, 202, JSON.stringify(removal.body));
      deepEqual(removal.body, { node: 4, state: "draining", previousState: "active" });
      await waitForStatus(cluster, 1, (status) =>
        (status.learners?.length ?? 0) > 0 ||
        status.members?.find((member) => member.id === 4)?.replicas !== SHARDS);
      await cluster.kill(2, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      cluster.start(2);
      await waitForStatus(
        cluster,
        1,
        (status) => status.members?.find((member) => member.id === 4)?.state === "removed",
        DRAIN_TIMEOUT_MS,
      );
    } finally {
      acknowledged = await load.stop();
    }
    ok(acknowledged.size > 0, "some write was acknowledged");
    const settled = await waitForStatus(
      cluster,
      1,
      (status) =>
        status.shards.every((shard) =>
          shard.leader !== null && shard.replicas.length === 3 &&
          shard.replicas.every((replica) => replica.node !== 4 && replica.role !== "learner")
        ),
    );
    deepEqual(settled.members?.map((member) => member.replicas), [SHARDS, SHARDS, SHARDS, 0]);
    deepEqual(settled.nodes.map((node) => node.id), [1, 2, 3]);
    const stored = await readAll(cluster, KEY_PREFIX);
    for (const [key, value] of acknowledged) equal(stored.get(key), value, key);
    await waitForReplicas(cluster, [1, 2, 3], CONVERGE_TIMEOUT_MS, { shards: SHARDS });
    const refused = await post(cluster, 1, "/v1/cluster/nodes/3/remove");
    equal(refused.status, 409);
    equal((refused.body as { error: { code: string } }).error.code, "insufficient_capacity");
    await checkRemovedNodeRefusesToStart(cluster, test.lines);
  } catch (error) {
    console.error(test.lines.slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

Deno.test("a node joins under load, takes replicas; shard add places on the members", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: SHARDS });
  const { cluster } = test;
  const dir = await Deno.makeTempDir({ prefix: "aspen-join-" });
  let joiner: JoiningNode | null = null;
  try {
    await cluster.waitForLeaders();
    await waitForStatus(cluster, 1, (status) => status.members?.length === 3);
    const load = startWriters(cluster, writerOptions(cluster));
    let acknowledged: ReadonlyMap<string, string>;
    try {
      joiner = startJoiningNode(cluster, dir, test.lines, { shards: SHARDS });
      await waitForStatus(
        cluster,
        1,
        (status) => (status.members?.find((member) => member.id === 4)?.replicas ?? 0) > 0,
      );
      await cluster.kill(2, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      cluster.start(2);
      await waitForStatus(
        cluster,
        1,
        (status) =>
          status.members?.find((member) => member.id === 4)?.state === "active" &&
          (status.learners?.length ?? 1) === 0 &&
          status.members.every((member) => member.replicas === SHARDS * 3 / 4) &&
          // The members record, the placement record, the nodes' replicas and the groups agree.
          status.differences?.length === 0,
        DRAIN_TIMEOUT_MS,
      );
    } finally {
      acknowledged = await load.stop();
    }
    ok(acknowledged.size > 0, "some write was acknowledged");
    const stored = await readAll(cluster, KEY_PREFIX);
    for (const [key, value] of acknowledged) equal(stored.get(key), value, key);
    await waitForReplicas(cluster, [1, 2, 3], CONVERGE_TIMEOUT_MS, {
      shards: SHARDS,
      joined: [joiner],
    });
    // Node 3, of the startup peer list, leaves: the static placement would still put new
    // shards on it, and never on node 4.
    const leave = await post(cluster, 1, "/v1/cluster/nodes/3/remove");
    equal(leave.status, 202, JSON.stringify(leave.body));
    await waitForStatus(
      cluster,
      1,
      (status) =>
        status.members?.find((member) => member.id === 3)?.state === "removed" &&
        status.members.every((member) => member.replicas === (member.id === 3 ? 0 : SHARDS)) &&
        status.differences?.length === 0,
      DRAIN_TIMEOUT_MS,
    );
    await waitFor(() => !cluster.isRunning(3), 10_000, "node 3 stops once removed");
    await waitForReplicas(cluster, [1, 2], CONVERGE_TIMEOUT_MS, {
      shards: SHARDS,
      joined: [joiner],
    });
    await checkShardAddNeedsCapacity(cluster);
    await addShardsOnLiveMembers(cluster, joiner, test.lines);
  } catch (error) {
    console.error(test.lines.slice(-80).join("\n"));
    throw error;
  } finally {
    await joiner?.stop();
    await test.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replace-node rebuilds a dead node's replicas from the survivors", async () => {
  const test = await launchTestCluster({ nodes: 4, shards: SHARDS });
  const { cluster } = test;
  try {
    await cluster.waitForLeaders();
    // Node 1 must see node 4 up (a recent peer heartbeat) before it is asked to replace it.
    await waitForStatus(
      cluster,
      1,
      (status) =>
        status.members?.length === 4 &&
        status.nodes.find((node) => node.id === 4)?.status === "up",
    );
    const load = startWriters(cluster, writerOptions(cluster));
    let acknowledged: ReadonlyMap<string, string>;
    try {
      const refused = await post(cluster, 1, "/v1/cluster/nodes/4/replace");
      equal(refused.status, 409, "a node that is up is drained with remove, not replaced");
      // Node 4 must have kept the members' HTTP addresses: whom it asks when it comes back.
      await waitFor(
        () => knownHttpAddresses(dataDirOf(cluster, 4)) === 4,
        20_000,
        "node 4 keeps every member's HTTP address",
      );
      await cluster.kill(4, "SIGKILL");
      await waitForStatus(
        cluster,
        1,
        (status) => status.nodes.find((node) => node.id === 4)?.status === "down",
      );
      // The answering node counts a peer down once it was silent for about a second.
      let replaced = await post(cluster, 1, "/v1/cluster/nodes/4/replace");
      for (let attempt = 0; attempt < 20 && replaced.status === 409; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        replaced = await post(cluster, 1, "/v1/cluster/nodes/4/replace");
      }
      equal(replaced.status, 202, JSON.stringify(replaced.body));
      await waitForStatus(
        cluster,
        1,
        (status) =>
          status.members?.find((member) => member.id === 4)?.state === "removed" &&
          status.shards.every((shard) =>
            shard.replicas.length === 3 && shard.replicas.every((replica) => replica.node !== 4)
          ),
        DRAIN_TIMEOUT_MS,
      );
    } finally {
      acknowledged = await load.stop();
    }
    ok(acknowledged.size > 0, "some write was acknowledged");
    const stored = await readAll(cluster, KEY_PREFIX);
    for (const [key, value] of acknowledged) equal(stored.get(key), value, key);
    await waitForReplicas(cluster, [1, 2, 3], CONVERGE_TIMEOUT_MS, { shards: SHARDS });
    await checkReplacedNodeIsTold(cluster, test.lines);
    await checkRunningReplacedNodeIsTold(cluster, test.lines);
  } catch (error) {
    console.error(test.lines.slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

/** The shards after `shard add` in the join test. */
const GROWN_SHARDS = SHARDS + 2;
/** The longest a shard add of a few hundred keys may take here. */
const SHARD_ADD_TIMEOUT_MS = 60_000;
/** How long a node may take to see a killed peer down, or a restarted one up again. */
const PEER_STATE_TIMEOUT_MS = 20_000;

/**
 * Nodes 1, 2 and 4 are the active members (node 3 was removed): with node 2 killed, two are
 * up and `shard add` is refused with 409 insufficient_capacity (dry run or not: the dry run is
 * what is polled, it changes nothing); once node 2 is back it is accepted again.
 */
async function checkShardAddNeedsCapacity(cluster: LocalCluster): Promise<void> {
  await cluster.kill(2, "SIGKILL");
  const refused = await pollShardAdd(cluster, { count: 2, dryRun: true }, 409);
  const error = (refused as { error: { code: string; message: string } }).error;
  equal(error.code, "insufficient_capacity");
  match(error.message, /2 active member\(s\) are up/);
  cluster.start(2);
  await pollShardAdd(cluster, { count: 2, dryRun: true }, 200);
}

/** POSTs `/v1/shards` through node 1 until it answers `status`; returns the body. */
async function pollShardAdd(
  cluster: LocalCluster,
  body: { count: number; dryRun: boolean },
  status: number,
): Promise<unknown> {
  const deadline = performance.now() + PEER_STATE_TIMEOUT_MS;
  let last = "";
  while (performance.now() < deadline) {
    const response = await fetch(`${cluster.url(1)}/v1/shards`, {
      method: "POST",
      headers: { authorization: `Bearer ${cluster.record.rootToken}` },
      body: JSON.stringify(body),
    }).catch(() => null);
    if (response !== null) {
      const answer = await response.json() as unknown;
      if (response.status === status) return answer;
      last = `${response.status} ${JSON.stringify(answer)}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`POST /v1/shards did not answer ${status}: last ${last}`);
}

/**
 * `shard add` after node 3 left and node 4 joined: the new shards are placed on the active
 * members (1, 2 and 4), as the status shows once the move is done (before any repair by the
 * rebalancer: no learner, no replica on node 3) and as each node's log says (it opened its
 * replica with those voters, node 4 too); keys written afterwards land on the new shards too
 * and read back, and the replicas converge.
 */
async function addShardsOnLiveMembers(
  cluster: LocalCluster,
  joiner: JoiningNode,
  lines: readonly string[],
): Promise<void> {
  const answer = await pollShardAdd(cluster, { count: GROWN_SHARDS - SHARDS, dryRun: false }, 202);
  equal((answer as { toCount: number }).toCount, GROWN_SHARDS);
  const client = new AspenClient({ endpoints: [cluster.url(1)], token: cluster.record.rootToken });
  const deadline = performance.now() + SHARD_ADD_TIMEOUT_MS;
  for (;;) {
    const { move } = await client.request<ShardMovesResponse>({
      method: "GET",
      path: "/v1/shards/moves",
    });
    if (move?.phase === "done" && move.toCount === GROWN_SHARDS) break;
    ok(performance.now() < deadline, `the shard add ended: ${JSON.stringify(move)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const status = await waitForStatus(
    cluster,
    1,
    (status) => status.shards.length === GROWN_SHARDS,
  );
  for (const shard of status.shards.filter((item) => item.id >= SHARDS)) {
    const replicas = JSON.stringify(shard.replicas);
    deepEqual(shard.replicas.map((replica) => replica.node).sort(), [1, 2, 4], replicas);
    ok(shard.replicas.every((replica) => replica.role !== "learner"), replicas);
  }
  for (const node of [1, 2, 4]) {
    for (let shard = SHARDS; shard < GROWN_SHARDS; shard++) {
      const opened = lines.some((line) =>
        line.startsWith(`n${node} |`) &&
        new RegExp(`Opened a new shard's replica.* shard=${shard} .*voters=[124],[124],[124]\\b`)
          .test(line)
      );
      ok(opened, `node ${node} opened its replica of shard ${shard} with voters 1, 2 and 4`);
    }
  }
  const onShard = new Set<number>();
  for (let i = 0; i < 60; i++) {
    const key = `${KEY_PREFIX}grown/${i}`;
    await client.put(key, `value ${i}`);
    const got = await client.get(key);
    equal(got.kv?.value, `value ${i}`, key);
    onShard.add(got.shard);
  }
  for (let shard = SHARDS; shard < GROWN_SHARDS; shard++) {
    ok(onShard.has(shard), `some key landed on new shard ${shard}: ${[...onShard]}`);
  }
  await waitForReplicas(cluster, [1, 2], CONVERGE_TIMEOUT_MS, {
    shards: GROWN_SHARDS,
    joined: [joiner],
  });
}

/**
 * Node 4, replaced while it was down, started again with its old data: it asks the members it
 * knew, learns it was removed, exits non-zero naming itself and what to do, and changes no
 * file in its data dir but the new removed mark; a further start is refused by the mark.
 */
async function checkReplacedNodeIsTold(cluster: LocalCluster, lines: string[]) {
  const dir = dataDirOf(cluster, 4);
  const before = await fileHashes(dir);
  ok(
    [...before.keys()].some((path) => path.endsWith("state-machine.db")),
    [...before.keys()].join(),
  );
  const [linesBefore, exitsBefore] = [lines.length, cluster.unexpectedExits.length];
  cluster.start(4);
  await waitFor(() => !cluster.isRunning(4), 20_000, "node 4 learns it was removed and exits");
  const exit = cluster.unexpectedExits[exitsBefore];
  ok(exit !== undefined && exit.node === 4 && exit.code !== 0, JSON.stringify(exit));
  const output = lines.slice(linesBefore).filter((line) => line.startsWith("n4 |")).join("\n");
  ok(
    /Cannot start node 4: the member at http:\/\/\S+ answers that it was removed/.test(output),
    output,
  );
  ok(/wipe the data dir .* start a new node with a new id and --join/.test(output), output);
  const after = await fileHashes(dir);
  ok(after.has("removed.json"), "the removed mark is written");
  after.delete("removed.json");
  deepEqual(after, before, "no other file in the data dir changed");
  cluster.start(4);
  await waitFor(() => !cluster.isRunning(4), 20_000, "node 4 is refused by its mark");
}

/**
 * Node 4 without its mark (deleted by hand) started while nodes 1-3 are down: nobody answers,
 * so it starts; once they are back and refuse it, it asks again, learns it was removed, writes
 * the mark and stops.
 */
async function checkRunningReplacedNodeIsTold(cluster: LocalCluster, lines: string[]) {
  await Deno.remove(`${dataDirOf(cluster, 4)}/removed.json`);
  for (const id of [1, 2, 3]) await cluster.kill(id, "SIGTERM");
  const linesBefore = lines.length;
  cluster.start(4);
  await waitFor(
    () => lines.slice(linesBefore).some((line) => /^n4 \|.*Node started/.test(line)),
    20_000,
    "node 4 starts while no member answers",
  );
  for (const id of [1, 2, 3]) cluster.start(id);
  await waitFor(() => !cluster.isRunning(4), 40_000, "node 4 learns it was removed and stops");
  const output = lines.slice(linesBefore).filter((line) => line.startsWith("n4 |")).join("\n");
  ok(/removed from the cluster while it was down: stopping/.test(output), output);
  ok(await Deno.stat(`${dataDirOf(cluster, 4)}/removed.json`).then(() => true), "the mark");
}

function dataDirOf(cluster: LocalCluster, id: number): string {
  const node = cluster.nodes.find((candidate) => candidate.id === id);
  ok(node !== undefined, `node ${id} is in the cluster`);
  return node.dataDir;
}

/** How many members with an HTTP address the node's known-members.json lists (0: none). */
function knownHttpAddresses(dir: string): number {
  try {
    const record = JSON.parse(Deno.readTextFileSync(`${dir}/known-members.json`)) as {
      members: { httpAddress: string }[];
    };
    return record.members.filter((member) => member.httpAddress !== "").length;
  } catch {
    return 0;
  }
}

/** Every file under `dir` (relative path) with its SHA-256, sorted by path. */
async function fileHashes(dir: string, prefix = ""): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  const entries = [...Deno.readDirSync(`${dir}/${prefix}`)].sort((a, b) =>
    a.name < b.name ? -1 : 1
  );
  for (const entry of entries) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      for (const [inner, hash] of await fileHashes(dir, `${path}/`)) hashes.set(inner, hash);
    } else if (entry.isFile) {
      const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(`${dir}/${path}`));
      hashes.set(
        path,
        [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join(""),
      );
    }
  }
  return hashes;
}

/** Node 4 stopped by itself once removed; started again it exits naming the reason. */
async function checkRemovedNodeRefusesToStart(cluster: LocalCluster, lines: string[]) {
  await waitFor(() => !cluster.isRunning(4), 10_000, "node 4 stops once removed");
  const before = lines.length;
  cluster.start(4);
  await waitFor(() => !cluster.isRunning(4), 20_000, "node 4 refuses to start again");
  const output = lines.slice(before).filter((line) => line.startsWith("n4 |")).join("\n");
  ok(/removed from the cluster/.test(output), output);
}

/** The writers: WRITERS loops under KEY_PREFIX through nodes 1 and 3. */
function writerOptions(cluster: LocalCluster) {
  return { writers: WRITERS, keyPrefix: KEY_PREFIX, endpoints: [cluster.url(1), cluster.url(3)] };
}
