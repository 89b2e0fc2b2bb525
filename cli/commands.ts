/**
 * The table of `aspen` subcommands. The first word of the command line picks one; the rest is
 * parsed strictly against its flags.
 */
import { AspenError, SNAPSHOT_INTERVAL_ENTRIES } from "../shard/mod.ts";
import {
  type Config,
  formatConfig,
  loadConfig,
  Logger,
  serveNode,
  type Setting,
  SETTINGS,
  TEST_FAULTS_FLAG,
} from "../server/mod.ts";
import { type CliIo, type Command, EXIT_USAGE, type FlagSpec, type ParsedArgs } from "./command.ts";
import { BENCH_COMMAND } from "./bench_command.ts";
import { CLUSTER_COMMAND, SHARD_COMMAND } from "./cluster_command.ts";
import { TENANT_COMMAND } from "./tenant_command.ts";
import { DEV_COMMAND } from "./dev_command.ts";
import { KV_COMMAND } from "./kv_command.ts";
import { TXN_COMMAND } from "./txn_command.ts";
import { formatCommandUsage, formatMainUsage } from "./usage.ts";

const HELP_FLAG: FlagSpec = { type: "boolean", help: "print this help" };

/** Flags of `aspen node`: one per setting, plus the config file and `--print-config`. */
function nodeFlags(): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {
    config: { type: "string", valueName: "FILE", help: "TOML config file", env: "ASPEN_CONFIG" },
  };
  for (const setting of SETTINGS) {
    flags[setting.flag] = settingFlag(setting);
  }
  flags["print-config"] = { type: "boolean", help: "print the effective config as TOML and exit" };
  // A flag only, never a config-file key or variable: a test harness must ask for it each run.
  flags[TEST_FAULTS_FLAG] = {
    type: "boolean",
    help: "TESTS ONLY: accept PUT/DELETE /v1/test/faults, which drop or delay peer traffic, " +
      "and POST /v1/test/campaign",
  };
  flags[TEST_SNAPSHOT_FLAG] = {
    type: "string",
    valueName: "N",
    help: `TESTS ONLY: snapshot every N applied entries (${TEST_SNAPSHOT_ENTRIES_MIN}..` +
      `${TEST_SNAPSHOT_ENTRIES_MAX}; default ${SNAPSHOT_INTERVAL_ENTRIES}) to exercise ` +
      "compaction and snapshot installs, or to keep snapshots out of a test",
  };
  flags.help = HELP_FLAG;
  return flags;
}

function settingFlag(setting: Setting): FlagSpec {
  const kind = setting.kind;
  const value = setting.defaultValue;
  const hasDefault = value !== null && !(Array.isArray(value) && value.length === 0);
  const common = {
    env: setting.env,
    ...(hasDefault ? { defaultText: String(value) } : {}),
  };
  if (kind.type === "boolean") {
    return {
      type: "boolean",
      help: `${setting.help}; --no-${setting.flag} turns it off`,
      ...common,
    };
  }
  const valueName = kind.type === "integer"
    ? "N"
    : kind.type === "address"
    ? "HOST:PORT"
    : kind.type === "choice"
    ? kind.choices.join("|")
    : kind.type === "peer_list"
    ? "ID=HOST:PORT,..."
    : kind.type === "shard_list"
    ? "ID,..."
    : "PATH";
  return { type: "string", valueName, help: setting.help, ...common };
}

/** The test flag that lowers the snapshot interval (a flag only, never a setting). */
const TEST_SNAPSHOT_FLAG = "test-snapshot-interval-entries";
/** The smallest snapshot interval the test flag accepts. */
const TEST_SNAPSHOT_ENTRIES_MIN = 10;
/**
 * The largest: far above the default, so that a chaos run can keep snapshots out of a long
 * outage (its node then catches up from the log alone).
 */
export const TEST_SNAPSHOT_ENTRIES_MAX = 100 * SNAPSHOT_INTERVAL_ENTRIES;

/**
 * Parses `--test-snapshot-interval-entries`.
 *
 * @throws {AspenError} `bad_config` naming the flag, the value and the range.
 */
function testSnapshotInterval(
  value: string | boolean | undefined,
): { snapshotIntervalEntries?: number } {
  if (value === undefined) return {};
  const entries = Number(value);
  const isValid = typeof value === "string" && /^[0-9]+$/.test(value) &&
    entries >= TEST_SNAPSHOT_ENTRIES_MIN && entries <= TEST_SNAPSHOT_ENTRIES_MAX;
  if (!isValid) {
    throw new AspenError(
      "bad_config",
      `Invalid --${TEST_SNAPSHOT_FLAG} "${value}": must be an integer from ` +
        `${TEST_SNAPSHOT_ENTRIES_MIN} to ${TEST_SNAPSHOT_ENTRIES_MAX}`,
    );
  }
  return { snapshotIntervalEntries: entries };
}

/**
 * Reads the config file named by `--config` or `ASPEN_CONFIG` and merges every source.
 *
 * @throws {AspenError} `bad_config` for an unreadable file or an invalid value.
 */
export async function loadNodeConfig(args: ParsedArgs, io: CliIo): Promise<Config> {
  const path = (args.values.config as string | undefined) ?? io.env.ASPEN_CONFIG;
  let file = null;
  if (path !== undefined) {
    try {
      file = { path, text: await io.readTextFile(path) };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new AspenError("bad_config", `Cannot read config file "${path}": ${reason}`, {}, {
        cause: error,
      });
    }
  }
  const flags: Record<string, string> = {};
  for (const setting of SETTINGS) {
    const value = args.values[setting.flag];
    if (value !== undefined) flags[setting.flag] = String(value);
  }
  return loadConfig({ flags, env: io.env, file });
}

/** Every `aspen` subcommand, in the order `aspen help` lists them. */
export const COMMANDS: readonly Command[] = [
  {
    name: "node",
    summary: "run one Aspen node",
    usage: ["node [--config FILE] [flags]", "node --print-config [--config FILE] [flags]"],
    details: "Settings come from flags, then ASPEN_* variables, then the config file, then " +
      "defaults.\nConfig file sections: [node] [sharding] [cluster] [auth] [log].",
    flags: nodeFlags(),
    positionalsMax: 0,
    async run(args, io) {
      const config = await loadNodeConfig(args, io);
      if (args.values["print-config"] === true) {
        io.stdout(formatConfig(config));
        return 0;
      }
      const logger = new Logger({
        level: config.log.level,
        format: config.log.format,
        write: (line) => io.stderr(line + "\n"),
        nowMs: io.nowMs,
      }).child({ node: config.node.id });
      const seedBytes = io.randomBytes(4);
      await serveNode(config, {
        logger,
        nowMs: io.monotonicMs,
        wallMs: io.nowMs,
        randomBytes: io.randomBytes,
        version: io.versions.aspen,
        seed: new DataView(seedBytes.buffer, seedBytes.byteOffset, 4).getUint32(0),
        isFaultInjectionEnabled: args.values[TEST_FAULTS_FLAG] === true,
        ...testSnapshotInterval(args.values[TEST_SNAPSHOT_FLAG]),
      }, io.shutdown);
      return 0;
    },
  },
  DEV_COMMAND,
  KV_COMMAND,
  TXN_COMMAND,
  SHARD_COMMAND,
  TENANT_COMMAND,
  CLUSTER_COMMAND,
  BENCH_COMMAND,
  {
    name: "version",
    summary: "print the version",
    usage: ["version"],
    flags: { help: HELP_FLAG },
    positionalsMax: 0,
    run(_args, io) {
      io.stdout(`aspen ${io.versions.aspen} (deno ${io.versions.deno})\n`);
      return Promise.resolve(0);
    },
  },
  {
    name: "help",
    summary: "print help for aspen or one command",
    usage: ["help [command]"],
    flags: { help: HELP_FLAG },
    positionalsMax: 1,
    run(args, io) {
      const name = args.positionals[0];
      if (name === undefined) {
        io.stdout(formatMainUsage(COMMANDS));
        return Promise.resolve(0);
      }
      const command = COMMANDS.find((candidate) => candidate.name === name);
      if (command === undefined) {
        io.stderr(`aspen help: unknown command "${name}"\n\n${formatMainUsage(COMMANDS)}`);
        return Promise.resolve(EXIT_USAGE);
      }
      io.stdout(formatCommandUsage(command));
      return Promise.resolve(0);
    },
  },
];
