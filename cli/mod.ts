/**
 * @module
 * The `aspen` command line: subcommand dispatch, strict flag parsing, usage text and every
 * command (`node`, `dev`, `cluster`, `shard`, `kv`, `bench`, ...), and the local-cluster
 * launcher ({@linkcode LocalCluster}) behind `aspen dev`, which the tests and the cluster
 * benchmarks use too.
 *
 * Allowed dependencies: server/ (the node runtime and its client), transport/, shard/, raft/
 * and bench/ (the `aspen bench` runner) through their mod.ts, `node:` built-ins. Only main.ts,
 * the bench:cluster script and tests/ import this folder.
 *
 * @example
 * ```ts
 * import { runCli } from "./mod.ts";
 * // main.ts passes the real environment, streams, clock and random source as `io`.
 * declare const io: Parameters<typeof runCli>[1];
 * const code = await runCli(["version"], io);
 * ```
 */
export { runCli } from "./run_cli.ts";
export type { CliIo } from "./command.ts";
export {
  type LaunchOptions,
  LocalCluster,
  type LocalClusterRecord,
  type LocalNode,
  type UnexpectedExit,
} from "./launcher.ts";
