/**
 * Real clusters of `aspen node` processes for tests, each in a temporary folder of its own.
 */
import { LocalCluster } from "../cli/launcher.ts";
import { PROJECT_ROOT } from "./_source_files.ts";

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
