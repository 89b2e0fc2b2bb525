/**
 * `aspen dev`: a local multi-node cluster in one command. Starts N node processes of this same
 * executable on free loopback ports, waits until every shard has a leader, prints the console
 * URL and the root token, prefixes each node's log lines, and stops everything on Ctrl-C. Run
 * again on the same folder, it resumes the same data.
 */
import { SHARDS_MAX } from "../server/mod.ts";
import { LOCAL_NODES_MAX, LocalCluster } from "./launcher.ts";
import { type CliIo, type Command, type ParsedArgs, UsageError } from "./command.ts";
import { runDevAddNode } from "./dev_add_node.ts";
import { integerFlag } from "./client_commands.ts";

/** `aspen dev`. */
export const DEV_COMMAND: Command = {
  name: "dev",
  summary: "start a local multi-node cluster and print the console URL",
  usage: ["dev [--nodes N] [--shards N] [--dir DIR]", "dev --add-node [--dir DIR]"],
  details: "Writes <dir>/dev-cluster.json (nodes, addresses, pids, console URL, tokens) for\n" +
    "scripts. Ctrl-C stops every node; running it again resumes the same data.\n" +
    "--add-node, from another terminal while the cluster runs, starts one more node that\n" +
    "joins it (a new node id each time), prints its addresses and runs until Ctrl-C.",
  flags: {
    nodes: { type: "string", valueName: "N", help: "number of nodes", defaultText: "3" },
    shards: { type: "string", valueName: "N", help: "number of shards", defaultText: "4" },
    dir: { type: "string", valueName: "DIR", help: "data folder", defaultText: ".aspen-dev" },
    "log-level": {
      type: "string",
      valueName: "debug|info|warn|error",
      help: "the nodes' log level",
      defaultText: "info",
    },
    "add-node": { type: "boolean", help: "add one node to the running dev cluster in DIR" },
    help: { type: "boolean", help: "print this help" },
  },
  positionalsMax: 0,
  run: runDev,
};

async function runDev(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.values["add-node"] === true) {
    for (const flag of ["nodes", "shards"]) {
      if (args.values[flag] !== undefined) {
        throw new UsageError(`flag --${flag} does not go with --add-node`);
      }
    }
    return await runDevAddNode({
      dir: (args.values.dir as string | undefined) ?? ".aspen-dev",
      logLevel: (args.values["log-level"] as string | undefined) ?? "info",
    }, io);
  }
  const nodes = integerFlag(args, "nodes", 1, LOCAL_NODES_MAX) ?? 3;
  const shards = integerFlag(args, "shards", 1, SHARDS_MAX) ?? 4;
  const dir = (args.values.dir as string | undefined) ?? ".aspen-dev";
  const logLevel = (args.values["log-level"] as string | undefined) ?? "info";
  const cluster = await LocalCluster.launch({
    dir,
    nodes,
    shards,
    selfCommand: io.selfCommand,
    randomBytes: io.randomBytes,
    logLevel,
    onLine: (id, line) => io.stderr(`n${id} | ${line}\n`),
    onUnexpectedExit: (exit) =>
      io.stderr(
        `aspen dev: node ${exit.node} (pid ${exit.pid}) exited on its own with ` +
          `${exit.signal ?? `code ${exit.code}`}\n`,
      ),
  });
  try {
    await cluster.waitForLeaders();
    const record = cluster.record;
    io.stdout(
      `\nAspen dev cluster is up: ${nodes} node${nodes === 1 ? "" : "s"}, ${shards} shard` +
        `${shards === 1 ? "" : "s"} (data in ${dir})\n` +
        `  Console:     ${record.consoleUrl}\n` +
        `  Root token:  ${record.rootToken}\n` +
        `  Read token:  ${record.readToken}\n` +
        `  Nodes:       ${cluster.nodes.map((node) => `http://${node.httpAddress}`).join("  ")}\n` +
        devTryLines(io.selfCommand) +
        `Press Ctrl-C to stop.\n\n`,
    );
    await new Promise<void>((resolve) => {
      if (io.shutdown.aborted) resolve();
      io.shutdown.addEventListener("abort", () => resolve(), { once: true });
    });
    io.stderr("Stopping the dev cluster...\n");
  } finally {
    await cluster.stop();
  }
  return 0;
}

/** How to install `aspen` on the PATH from a checkout (README, "The CLI"). */
export const DEV_INSTALL_COMMAND = "deno install -A -g -n aspen --config deno.json main.ts";

/**
 * The banner lines that say how to reach the cluster from the folder `aspen dev` runs in. A
 * fresh checkout has no `aspen` on its PATH: run from source, the command that works there is
 * the `aspen` task of deno.json; a compiled binary names itself.
 *
 * @param selfCommand how this process runs itself ({@linkcode CliIo.selfCommand}): one item
 * for a compiled binary, `deno run ... main.ts` otherwise.
 */
export function devTryLines(selfCommand: readonly string[]): string {
  const binary = selfCommand.length === 1 ? selfCommand[0] : undefined;
  if (binary !== undefined) return `  Try:         ${binary} kv put hello world\n`;
  return `  Try:         deno task aspen kv put hello world   (from this folder)\n` +
    `  On PATH:     ${DEV_INSTALL_COMMAND}   (then: aspen kv get hello)\n`;
}
