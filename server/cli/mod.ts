/**
 * @module
 * The `aspen` command line: subcommand dispatch, strict flag parsing and usage text.
 *
 * Allowed dependencies: the rest of server/, shard/ and raft/ through their mod.ts, `node:util`.
 *
 * @example
 * ```ts
 * import { runCli } from "./mod.ts";
 * const code = await runCli(["version"], {
 *   env: {},
 *   stdout: (text) => console.log(text),
 *   stderr: (text) => console.error(text),
 *   readTextFile: (path) => Deno.readTextFile(path),
 *   nowMs: () => Date.now(),
 *   versions: { aspen: "0.1.0", deno: "2.9.6" },
 * });
 * ```
 */
export { runCli } from "./run_cli.ts";
export type { CliIo } from "./command.ts";
