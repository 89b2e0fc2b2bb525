/**
 * The `aspen` entry point: picks the subcommand named by the first word, parses its flags
 * strictly and runs it, turning usage and config errors into a message and exit code 2.
 */
import { AspenError, isAddressInUseError } from "../shard/mod.ts";
import {
  type CliIo,
  EXIT_ADDRESS_IN_USE,
  EXIT_USAGE,
  parseCommandArgs,
  UsageError,
} from "./command.ts";
import { COMMANDS } from "./commands.ts";
import { formatCommandUsage, formatMainUsage } from "./usage.ts";

/**
 * Runs one `aspen` invocation and returns its exit code.
 *
 * @example
 * ```ts
 * const code = await runCli(["version"], io);
 * ```
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    io.stdout(formatMainUsage(COMMANDS));
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (command === undefined) {
    io.stderr(`aspen: unknown command "${name}"\n\n${formatMainUsage(COMMANDS)}`);
    return EXIT_USAGE;
  }
  try {
    const args = parseCommandArgs(command, rest);
    if (args.values.help === true) {
      io.stdout(formatCommandUsage(command));
      return 0;
    }
    return await command.run(args, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`aspen ${name}: ${error.message} (see 'aspen ${name} --help')\n`);
      return EXIT_USAGE;
    }
    if (isAddressInUseError(error)) {
      io.stderr(`aspen ${name}: ${(error as AspenError).message}\n`);
      return EXIT_ADDRESS_IN_USE;
    }
    if (error instanceof AspenError && error.code === "bad_config") {
      io.stderr(`aspen ${name}: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof AspenError) {
      // An expected failure (a damaged data file, a port in use): say what, without a trace.
      io.stderr(`aspen ${name}: ${error.code}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
