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
 * const code = await runCli(["help"], {
 *   env: {},
 *   stdout: (text) => console.log(text),
 *   stderr: (text) => console.error(text),
 *   readTextFile: (path) => Deno.readTextFile(path),
 *   nowMs: () => Date.now(),
 *   versions: { aspen: "0.1.0", deno: Deno.version.deno },
 * });
 * ```
 */
export { type CliIo, runCli } from "./cli/mod.ts";
export { type Config, formatConfig, loadConfig, SETTINGS, shardCount } from "./config.ts";
export { Logger, type LoggerOptions } from "./log.ts";
export { ASPEN_VERSION } from "./version.ts";
