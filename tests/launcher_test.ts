/**
 * LocalCluster.waitForLeaders() explains a cluster that does not come up: a node that exits on
 * its own fails the wait at once (not after the whole timeout), naming the node, its exit code
 * and its last output lines. LocalCluster.join() starts a node that joins a running cluster
 * (it serves HTTP and the members record lists it), and retire() takes a node out of `nodes`,
 * refuses to start it again, and does not count its exit as unexpected. A launch survives ports
 * that another process takes between their choice and the node's bind (the test holds them):
 * it starts the cluster again with new ports, LAUNCH_BIND_ATTEMPTS times at most.
 */
import { deepEqual, equal, match, notEqual, ok, rejects, throws } from "node:assert/strict";
import {
  freeAddresses,
  LAUNCH_BIND_ATTEMPTS,
  LocalCluster,
  type NodeAddresses,
} from "../cli/launcher.ts";
import type { AspenError } from "../shard/mod.ts";
import { ASPEN_COMMAND } from "./_cluster.ts";

Deno.test("waitForLeaders() fails at once with the output of a node that exited", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-launcher-" });
  const cluster = await LocalCluster.launch({
    dir,
    nodes: 1,
    shards: 1,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: () => {},
    extraNodeArgs: ["--no-such-flag"],
  });
  try {
    const started = Date.now();
    await rejects(cluster.waitForLeaders(1, 30_000), (error: AspenError) => {
      match(error.message, /node 1 exited \(code 2/);
      match(error.message, /n1 \| .*no-such-flag/);
      return Date.now() - started < 20_000;
    });
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("join() adds a node through a member; retire() takes it out for good", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-launcher-join-" });
  const cluster = await LocalCluster.launch({
    dir,
    nodes: 3,
    shards: 2,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: () => {},
  });
  try {
    await cluster.waitForLeaders();
    const joined = cluster.join(cluster.url(2));
    equal(joined.id, 4);
    equal(joined.joinUrl, cluster.url(2));
    deepEqual(cluster.nodes.map((node) => node.id), [1, 2, 3, 4]);
    await waitForMember(cluster, 4);
    cluster.retire(4);
    deepEqual(cluster.nodes.map((node) => node.id), [1, 2, 3]);
    await cluster.kill(4, "SIGTERM");
    throws(() => cluster.start(4), /Cannot start node 4: it was removed/);
    deepEqual(cluster.unexpectedExits, []);
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launch() starts nodes again on new ports when theirs were taken", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-launcher-ports-" });
  // Taken after the choice, as a concurrent process would: node 1's HTTP port (TCP) and node
  // 2's peer port (UDP, where QUIC listens).
  const httpHolder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peerHolder = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const held = (holder: { addr: Deno.Addr }) => `127.0.0.1:${(holder.addr as Deno.NetAddr).port}`;
  const handedOut: NodeAddresses[] = [];
  const pickAddresses = (taken: ReadonlySet<number>): NodeAddresses => {
    const fresh = freeAddresses(taken);
    const picked = handedOut.length === 0
      ? { ...fresh, httpAddress: held(httpHolder) }
      : handedOut.length === 1
      ? { ...fresh, peerAddress: held(peerHolder) }
      : fresh;
    handedOut.push(picked);
    return picked;
  };
  const lines: string[] = [];
  const cluster = await LocalCluster.launch({
    dir,
    nodes: 3,
    shards: 1,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: (id, line) => lines.push(`n${id} | ${line}`),
    pickAddresses,
  });
  try {
    await cluster.waitForLeaders();
    deepEqual(cluster.unexpectedExits, []);
    equal(handedOut.length, 5, "nodes 1 and 2 get new ports once");
    notEqual(cluster.nodes[0]!.httpAddress, held(httpHolder));
    notEqual(cluster.nodes[1]!.peerAddress, held(peerHolder));
    equal(cluster.record.consoleUrl, `${cluster.url(1)}/`);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/dev-cluster.json`));
    equal(record.nodes[1].peerAddress, cluster.nodes[1]!.peerAddress);
    ok(lines.some((line) => /n1 \| .*Cannot serve HTTP .*the address is in use/.test(line)));
    ok(lines.some((line) => /n2 \| .*Cannot listen for peers .*the address is in use/.test(line)));
  } finally {
    httpHolder.close();
    peerHolder.close();
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launch() gives up on taken ports after LAUNCH_BIND_ATTEMPTS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-launcher-ports-" });
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const address = `127.0.0.1:${(holder.addr as Deno.NetAddr).port}`;
  let picks = 0;
  const cluster = await LocalCluster.launch({
    dir,
    nodes: 1,
    shards: 1,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    onLine: () => {},
    pickAddresses: (taken) => {
      picks++;
      return { ...freeAddresses(taken), httpAddress: address };
    },
  });
  try {
    equal(picks, LAUNCH_BIND_ATTEMPTS);
    await rejects(cluster.waitForLeaders(1, 30_000), (error: AspenError) => {
      match(error.message, /node 1 exited \(code 3/);
      match(error.message, /the address is in use/);
      return true;
    });
  } finally {
    holder.close();
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Polls node 1's status until the members record lists `id`. */
async function waitForMember(cluster: LocalCluster, id: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const response = await fetch(`${cluster.url(1)}/v1/cluster/status`, {
      headers: { authorization: `Bearer ${cluster.record.rootToken}` },
    }).catch(() => null);
    const status = await response?.json() as { members?: { id: number }[] } | undefined;
    if (status?.members?.some((member) => member.id === id) === true) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`Node ${id} is not a member after 60 s`);
}
