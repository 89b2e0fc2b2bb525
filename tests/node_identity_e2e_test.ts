/**
 * Real `aspen node` processes with per-node identities: a 3-node cluster starts from the full
 * credentials file of `aspen cluster init` (CA key and secret, the format every existing
 * cluster has). Node 3 is then stopped, loses its peer identity, and is given the credentials
 * without the CA key: it refuses to start, naming what is missing. Once `aspen cluster
 * issue-node` has written its identity from the full file, it starts with the key-less
 * credentials, proves its node id to the others, catches up on the writes it missed over the
 * peer channel, and serves reads and writes through its own HTTP API. And a cluster whose
 * nodes are started with `--refused-peers-file` listing `node 1` refuses node 1's handshakes
 * (logged as such) while nodes 2 and 3 serve every shard.
 */

import { equal, match, ok } from "node:assert/strict";
import { AspenClient } from "../api/mod.ts";
import { PEER_CERTIFICATE_FILE, PEER_KEY_FILE } from "../transport/mod.ts";
import { ASPEN_COMMAND, launchTestCluster, waitForConvergence } from "./_cluster.ts";

const SHARDS = 2;
const WAIT_MS = 30_000;

Deno.test("a node with an issued identity and no CA key joins and serves", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: SHARDS });
  const { cluster } = test;
  try {
    await cluster.waitForLeaders();
    const clusterFile = cluster.record.credentialsFile;
    const fullFile = clusterFile.replace(/cluster\.json$/, "full.json");
    await Deno.copyFile(clusterFile, fullFile);
    const three = cluster.nodes.find((node) => node.id === 3)!;
    await cluster.stopNode(3);
    await Deno.remove(`${three.dataDir}/${PEER_KEY_FILE}`);
    await Deno.remove(`${three.dataDir}/${PEER_CERTIFICATE_FILE}`);
    // Nodes 1 and 2 read the full file at start; from now on the shared file has no CA key.
    await aspen([
      "cluster",
      "credentials",
      `--cluster-file=${fullFile}`,
      "--without-ca-key",
      `--out=${clusterFile}`,
      "--force",
    ]);
    equal((await Deno.readTextFile(clusterFile)).includes("caKeyPem"), false);

    cluster.start(3);
    await until(() => !cluster.isRunning(3), "node 3 to refuse to start");
    match(test.lines.join("\n"), /n3 \| .*Cannot start node 3: there is no peer identity/);

    const clients = (ids: number[]) =>
      new AspenClient({
        endpoints: ids.map((id) => cluster.url(id)),
        token: cluster.record.rootToken,
      });
    for (let i = 0; i < 20; i += 1) await clients([1, 2]).put(`missed/${i}`, `v${i}`);

    const issued = await aspen([
      "cluster",
      "issue-node",
      "--node-id=3",
      `--data-dir=${three.dataDir}`,
      `--cluster-file=${fullFile}`,
    ]);
    const fingerprint = /fingerprint: ([0-9a-f]{64})/.exec(issued)?.[1];
    ok(fingerprint !== undefined, issued);
    cluster.start(3);
    await cluster.waitForLeaders(3, WAIT_MS);
    await waitForConvergence(cluster, { shards: SHARDS, replicasPerShard: 3 }, WAIT_MS);
    const started = test.lines.filter((line) => line.startsWith("n3 | "));
    ok(started.some((line) => line.includes(fingerprint) && line.includes("absent")));

    for (let i = 0; i < 10; i += 1) await clients([3]).put(`from-3/${i}`, `w${i}`);
    equal((await clients([1]).get("from-3/9")).kv?.value, "w9");
    equal((await clients([3]).get("missed/19")).kv?.value, "v19");
    await waitForConvergence(cluster, { shards: SHARDS, replicasPerShard: 3 }, WAIT_MS);
  } catch (error) {
    console.error(test.lines.slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

Deno.test("nodes started with a refused peers file refuse that node", async () => {
  const refusedFile = await Deno.makeTempFile({ prefix: "aspen-refused-" });
  await Deno.writeTextFile(refusedFile, "# node 1 was removed\nnode 1\n");
  const test = await launchTestCluster({
    nodes: 3,
    shards: SHARDS,
    extraNodeArgs: [`--refused-peers-file=${refusedFile}`],
  });
  const { cluster } = test;
  try {
    await cluster.waitForLeaders(2, WAIT_MS);
    for (const listener of [2, 3]) {
      const refusal = new RegExp(`^n${listener} \\| .*Refused node 1`);
      await until(() => test.lines.some((line) => refusal.test(line)), `${listener} to refuse 1`);
    }
    const client = new AspenClient({
      endpoints: [cluster.url(2)],
      token: cluster.record.rootToken,
    });
    for (let i = 0; i < 5; i += 1) await client.put(`k/${i}`, `v${i}`);
    equal((await client.get("k/4")).kv?.value, "v4");
    const status = await client.request<{ nodes: { id: number; status: string }[] }>({
      method: "GET",
      path: "/v1/cluster/status",
    });
    equal(status.nodes.find((node) => node.id === 1)?.status, "down");
    equal(status.nodes.find((node) => node.id === 3)?.status, "up");
  } catch (error) {
    console.error(test.lines.slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
    await Deno.remove(refusedFile);
  }
});

async function aspen(args: string[]): Promise<string> {
  const [program, ...prefix] = ASPEN_COMMAND;
  const output = await new Deno.Command(program!, {
    args: [...prefix, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  equal(output.code, 0, `aspen ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  return stdout;
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
