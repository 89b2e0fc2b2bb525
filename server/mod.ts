/**
 * @module
 * The node runtime: configuration, credentials and tokens, logging, the node (its replicas and
 * cluster router, in node/) and its HTTP API (http/), and `serveNode()`, which runs one node
 * until asked to stop. The `aspen` command line that starts it lives in cli/.
 *
 * Allowed dependencies: transport/, shard/ and raft/ (through their mod.ts), ui/mod.ts (the
 * built console), npm packages from the import map (Hono, smol-toml), `node:` built-ins. Only
 * cli/, main.ts and tests/ import this folder.
 *
 * @example
 * ```ts
 * import { loadConfig, serveNode } from "./mod.ts";
 * // `aspen node` (cli/) gathers the sources from flags, ASPEN_* variables and a config file,
 * // and passes the real logger, clocks and random source as the runtime.
 * declare const sources: Parameters<typeof loadConfig>[0];
 * declare const runtime: Parameters<typeof serveNode>[1];
 * const shutdown = new AbortController();
 * await serveNode(loadConfig(sources), runtime, shutdown.signal);
 * ```
 */
export {
  type ClusterCredentials,
  createCredentials,
  formatCredentials,
  parseCredentials,
  type RandomBytes,
  withoutCaKey,
} from "./auth.ts";
export {
  type Config,
  formatConfig,
  loadConfig,
  type Setting,
  SETTINGS,
  shardCount,
  SHARDS_MAX,
} from "./config.ts";
export { Logger, type LoggerOptions } from "./log.ts";
export { serveNode, TEST_FAULTS_FLAG } from "./serve.ts";
export { ASPEN_VERSION } from "./version.ts";
