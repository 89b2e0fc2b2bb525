/**
 * @module
 * The `aspen` command line: subcommand dispatch, strict flag parsing and usage text.
 *
 * Allowed dependencies: the rest of server/, shard/ and raft/ through their mod.ts, `node:util`.
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
