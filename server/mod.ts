/**
 * @module
 * The node runtime: CLI, configuration, logging, and (as they land) the HTTP API, the QUIC peer
 * transport and process lifecycle.
 *
 * Allowed dependencies: shard/ and raft/ (through their mod.ts), npm packages from the import
 * map (Hono, smol-toml), `node:` built-ins. Only main.ts and tests/ import this folder.
 *
 * @example
 * ```ts
 * import { runCli } from "./mod.ts";
 * // main.ts passes the real environment, streams, clock and random source as `io`.
 * declare const io: Parameters<typeof runCli>[1];
 * const code = await runCli(["version"], io);
 * ```
 */
export {
  type BenchReport,
  runBench,
  type RunOptions,
  type WorkloadName,
  type WorkloadOptions,
} from "./bench/mod.ts";
export { type CliIo, runCli } from "./cli/mod.ts";
export { type Config, formatConfig, loadConfig, SETTINGS, shardCount } from "./config.ts";
export { type LaunchOptions, LocalCluster } from "./launcher.ts";
export { Logger, type LoggerOptions } from "./log.ts";
export { ASPEN_VERSION } from "./version.ts";
