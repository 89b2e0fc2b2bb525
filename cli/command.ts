/**
 * The shape of an `aspen` subcommand and the strict argument parser every subcommand shares.
 *
 * Each command declares its flags once; the same declaration drives `node:util` `parseArgs`
 * (strict: an unknown flag is an error naming it) and the `--help` text, so usage can never
 * forget a flag the parser accepts.
 */
import { parseArgs } from "node:util";

/** Everything a command may touch of the outside world, injected by `main.ts`. */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly readTextFile: (path: string) => Promise<string>;
  /** Reads a file's bytes (`kv put --value-file`). */
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** Writes bytes to a file, replacing it (`kv get --out`). */
  readonly writeFile: (path: string, bytes: Uint8Array) => Promise<void>;
  /** Wall-clock milliseconds, for log timestamps. */
  readonly nowMs: () => number;
  /** Monotonic milliseconds, for deadlines and durations. */
  readonly monotonicMs: () => number;
  /** Aborted when the process is asked to stop (SIGINT, SIGTERM). */
  readonly shutdown: AbortSignal;
  /** The command that runs this same executable (for `aspen dev`'s node processes). */
  readonly selfCommand: readonly string[];
  /** Cryptographically secure random bytes. */
  readonly randomBytes: (count: number) => Uint8Array;
  /**
   * Writes a file readable only by its owner; returns false, writing nothing, when the file
   * exists and `overwrite` is false.
   */
  readonly writeNewFile: (
    path: string,
    text: string,
    options: { readonly overwrite: boolean },
  ) => Promise<boolean>;
  readonly versions: { readonly aspen: string; readonly deno: string };
}

/** One flag of a command. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly help: string;
  /** Placeholder shown in usage for string flags, e.g. `N` in `--nodes N`. */
  readonly valueName?: string;
  /** Default shown in usage (the command applies it). */
  readonly defaultText?: string;
  /** Environment variable that also sets this flag, shown in usage. */
  readonly env?: string;
}

/** Parsed arguments handed to a command. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
}

/** An `aspen` subcommand. */
export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Usage line(s) after `aspen `, e.g. `kv get <key> [flags]`. */
  readonly usage: readonly string[];
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** The most positional arguments accepted; 0 rejects any. */
  readonly positionalsMax: number;
  /** Extra paragraphs for `--help`. */
  readonly details?: string;
  readonly run: (args: ParsedArgs, io: CliIo) => Promise<number>;
}

/** A usage error: the CLI prints it with a pointer to `--help` and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Exit code of a usage error or an unavailable command. */
export const EXIT_USAGE = 2;

/**
 * Exit code of a command that cannot listen on an address because another socket holds it (a
 * node's `--http-listen` or `--peer-listen`): the local-cluster launcher starts such a node
 * again on other ports.
 */
export const EXIT_ADDRESS_IN_USE = 3;

/** Exit code of a command stopped by SIGINT (Ctrl-C), as shells report it: 128 + 2. */
export const EXIT_INTERRUPTED = 130;

/**
 * Parses `argv` strictly against the command's flags.
 *
 * @throws {UsageError} naming the unknown flag, the flag missing its value, or the extra argument.
 */
export function parseCommandArgs(command: Command, argv: readonly string[]): ParsedArgs {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const [name, spec] of Object.entries(command.flags)) options[name] = { type: spec.type };
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options,
      strict: true,
      allowPositionals: command.positionalsMax > 0,
      allowNegative: true,
    });
  } catch (error) {
    throw new UsageError(describeParseError(error), { cause: error });
  }
  if (parsed.positionals.length > command.positionalsMax) {
    const extra = parsed.positionals[command.positionalsMax];
    throw new UsageError(`unexpected argument "${extra}"`);
  }
  return { values: { ...parsed.values }, positionals: parsed.positionals };
}

function describeParseError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? "";
  const flag = quoted.split(" ")[0] ?? quoted;
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag ${flag}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return message.includes("argument missing")
        ? `flag ${flag} needs a value`
        : `flag ${flag} does not take a value`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument "${quoted}"`;
    default:
      return message;
  }
}
