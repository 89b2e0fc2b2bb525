/**
 * Checks reconnection over real QUIC after one side restarts: in one process (a clean close,
 * so the peer sees a QUIC close frame) for the listener and for the dialer; and with a real
 * node process killed by SIGKILL (no close frame at all), where the survivor must replace or
 * re-dial its dead connection. The restarted process reuses the identity its data dir holds
 * (the certificate file is byte for byte the same), and every identity chains to the one
 * cluster CA, so nothing but addresses is configured. Waits are event-driven (fixture hub),
 * never timed sleeps.
 */

import assert from "node:assert/strict";
import { PEER_CERTIFICATE_FILE } from "../transport/mod.ts";
import { peerStats, TestCluster, TestNode, text, untext } from "./fixtures/peer_cluster.ts";

Deno.test("a dialer reconnects after its listener restarts", async () => {
  const cluster = new TestCluster();
  try {
    const [one, two] = await cluster.startAll([1, 2]);
    assert.ok(one !== undefined && two !== undefined);
    await two.stop();
    await cluster.until(() => !one.transport.isPeerUp(2), "the disconnect");
    // In one process the old port stays bound until the endpoint is garbage collected, so the
    // restarted listener takes a new port (the process test below reuses the same one).
    await two.start({ nodeId: 2 }, []);
    one.transport.setPeer(2, two.endpoint);
    await cluster.until(() => one.transport.isPeerUp(2), "the reconnect");
    assert.equal(peerStats(one, 2).reconnects, 1);
    one.transport.send(2, 1, text("after restart"));
    await cluster.until(() => two.textsFrom(1, 1).length === 1, "the message");
    const answer = await one.transport.request(2, 2, text("q"), { deadlineMs: 10_000 });
    assert.equal(untext(answer), "2/2:q");
  } finally {
    await cluster.close();
  }
});

Deno.test("a listener takes the new connection of a restarted dialer", async () => {
  const cluster = new TestCluster();
  try {
    const [one, two] = await cluster.startAll([1, 2]);
    assert.ok(one !== undefined && two !== undefined);
    await one.stop();
    await cluster.until(() => !two.transport.isPeerUp(1), "the disconnect");
    await one.start({ nodeId: 1 }, [two]);
    await cluster.until(() => two.transport.isPeerUp(1), "the new connection");
    assert.equal(peerStats(two, 1).connectionsOpened, 2);
    two.transport.send(1, 0, text("hello again"));
    await cluster.until(() => one.textsFrom(2, 0).length === 1, "the message");
  } finally {
    await cluster.close();
  }
});

/** A node process that can be killed without any goodbye. */
class NodeProcess {
  #child: Deno.ChildProcess | null = null;
  #drain: Promise<void> | null = null;

  /** Starts the process and resolves with the address it listens on. */
  async start(config: Record<string, unknown>): Promise<string> {
    const fixture = new URL("./fixtures/peer_node_process.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", fixture, JSON.stringify(config)],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let output = "";
    while (!output.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`The node process exited early: ${output}`);
      output += value;
    }
    this.#drain = (async () => {
      while (!(await lines.read()).done) continue;
    })();
    const match = /^listening (\S+)$/m.exec(output);
    if (match === null) throw new Error(`The node process printed "${output}"`);
    return match[1]!;
  }

  async kill(): Promise<void> {
    if (this.#child === null) return;
    this.#child.kill("SIGKILL");
    await this.#child.status;
    await this.#drain;
    this.#child = null;
  }
}

Deno.test("a listener recovers when its dialer process is killed and restarted", async () => {
  const cluster = new TestCluster();
  const directory = await Deno.makeTempDir();
  const process = new NodeProcess();
  try {
    const [two] = await cluster.startAll([2]) as [TestNode];
    const config = {
      nodeId: 1,
      listen: "127.0.0.1:0",
      directory: `${directory}/node-1`,
      caFile: await writeCaFile(cluster, directory),
      peers: [{ nodeId: 2, address: two.transport.listenAddress }],
    };
    await process.start({ ...config, incarnation: "first" });
    await cluster.until(() => two.textsFrom(1, 0).includes("first"), "the first incarnation");
    await process.kill();
    await process.start({ ...config, incarnation: "second" });
    await cluster.until(() => two.textsFrom(1, 0).includes("second"), "the second incarnation");
    assert.equal(
      peerStats(two, 1).connectionsOpened,
      2,
      "the new connection replaced the dead one",
    );
    assert.equal(two.transport.isPeerUp(1), true);
    const answer = await two.transport.request(1, 0, text("who"), { deadlineMs: 10_000 });
    assert.equal(untext(answer), "second");
  } finally {
    await process.kill();
    await cluster.close();
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("a dialer recovers when its listener process is killed and restarted", async () => {
  const cluster = new TestCluster();
  const directory = await Deno.makeTempDir();
  const process = new NodeProcess();
  try {
    const caFile = await writeCaFile(cluster, directory);
    const config = { nodeId: 2, directory: `${directory}/node-2`, caFile, peers: [] };
    const address = await process.start({ ...config, listen: "127.0.0.1:0", incarnation: "first" });
    const certificateFile = `${directory}/node-2/${PEER_CERTIFICATE_FILE}`;
    const firstCertificate = await Deno.readTextFile(certificateFile);
    const one = await cluster.node(1);
    await one.start({ nodeId: 1 }, []);
    one.transport.setPeer(2, { address });
    await cluster.until(() => one.textsFrom(2, 0).includes("first"), "the first incarnation");
    await process.kill();
    // The dead process no longer holds the port, so the new one listens on the same address.
    await process.start({ ...config, listen: address, incarnation: "second" });
    await cluster.until(() => one.textsFrom(2, 0).includes("second"), "the second incarnation");
    assert.equal(await Deno.readTextFile(certificateFile), firstCertificate, "identity reused");
    assert.equal(peerStats(one, 2).reconnects, 1);
    const answer = await one.transport.request(2, 0, text("who"), { deadlineMs: 10_000 });
    assert.equal(untext(answer), "second");
  } finally {
    await process.kill();
    await cluster.close();
    await Deno.remove(directory, { recursive: true });
  }
});

/** Writes the cluster's CA where a node process reads it, standing in for the credentials. */
async function writeCaFile(cluster: TestCluster, directory: string): Promise<string> {
  const ca = await cluster.ca();
  const caFile = `${directory}/ca.json`;
  await Deno.writeTextFile(caFile, JSON.stringify(ca), { mode: 0o600 });
  return caFile;
}
