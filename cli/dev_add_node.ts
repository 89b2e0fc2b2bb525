/**
 * `aspen dev --add-node`: one more node for a running dev cluster. It reads the cluster's
 * `dev-cluster.json`, takes the next unused node id (never one a node of the folder had), picks
 * free loopback ports, and runs the node in the foreground with `--join` through the first
 * node that answers, printing its addresses; Ctrl-C stops it. The node then joins as any node
 * does (README, "Membership"): the rebalancer moves replicas onto it.
 */
import { AspenError } from "../shard/mod.ts";
import type { CliIo } from "./command.ts";
import { freeAddresses, LOCAL_NODES_MAX, nodeDir, pipeLines, readRecord } from "./launcher.ts";

/** How long the node may take to answer its health route after it started. */
export const ADD_NODE_READY_TIMEOUT_MS = 60_000;

/**
 * Runs one joining node for the dev cluster in `dir` until shutdown.
 *
 * @throws {AspenError} `bad_config` when `dir` holds no dev cluster, or no node of it answers.
 */
export async function runDevAddNode(
  options: { readonly dir: string; readonly logLevel: string },
  io: CliIo,
): Promise<number> {
  const record = await readRecord(options.dir);
  if (record === null) {
    throw new AspenError(
      "bad_config",
      `Cannot add a node: flag --dir "${options.dir}" holds no dev cluster; start one with ` +
        "'aspen dev' first",
    );
  }
  const join = await firstAnsweringNode(record.nodes.map((node) => node.httpAddress));
  const id = await nextNodeId(options.dir, record.nodes.map((node) => node.id));
  const { httpAddress, peerAddress } = freeAddresses();
  const [program, ...prefix] = io.selfCommand;
  const child = new Deno.Command(program!, {
    args: [
      ...prefix,
      "node",
      `--node-id=${id}`,
      `--data-dir=${nodeDir(options.dir, id)}`,
      `--peer-listen=${peerAddress}`,
      `--http-listen=${httpAddress}`,
      ...(record.shards === 1
        ? []
        : ["--sharding-enabled", `--sharding-num-shards=${record.shards}`]),
      `--join=http://${join}`,
      `--join-token=${record.rootToken}`,
      `--log-level=${options.logLevel}`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const onLine = (line: string) => io.stderr(`n${id} | ${line}\n`);
  const done = Promise.all([pipeLines(child.stdout, onLine), pipeLines(child.stderr, onLine)]);
  io.stdout(
    `\nAdding node ${id} to the dev cluster in ${options.dir} (joining through ${join})\n` +
      `  HTTP:  http://${httpAddress}\n  Peer:  ${peerAddress}\n` +
      "It becomes active and receives replicas; 'aspen cluster status' shows the move.\n" +
      "Press Ctrl-C to stop it (remove it for good with 'aspen cluster remove-node " +
      `${id}').\n\n`,
  );
  const onShutdown = () => child.kill("SIGTERM");
  io.shutdown.addEventListener("abort", onShutdown, { once: true });
  const status = await child.status;
  io.shutdown.removeEventListener("abort", onShutdown);
  await done;
  return status.success || io.shutdown.aborted ? 0 : 1;
}

/** The first node whose health route answers. */
async function firstAnsweringNode(addresses: readonly string[]): Promise<string> {
  for (const address of addresses) {
    const response = await fetch(`http://${address}/v1/health`, {
      signal: AbortSignal.timeout(2_000),
    }).catch(() => null);
    await response?.body?.cancel();
    if (response?.status === 200) return address;
  }
  throw new AspenError(
    "bad_config",
    `Cannot add a node: no node of the dev cluster answers (${addresses.join(", ")}); is ` +
      "'aspen dev' running?",
  );
}

/** One past the largest id of the record's nodes and of the node folders in `dir`. */
async function nextNodeId(dir: string, ids: readonly number[]): Promise<number> {
  let largest = Math.max(0, ...ids);
  for await (const entry of Deno.readDir(dir)) {
    const match = /^node-([1-9][0-9]{0,4})$/.exec(entry.name);
    if (match !== null) largest = Math.max(largest, Number(match[1]));
  }
  if (largest >= LOCAL_NODES_MAX * 8) {
    throw new AspenError("bad_config", `Cannot add a node: ${largest} node ids are used`);
  }
  return largest + 1;
}
