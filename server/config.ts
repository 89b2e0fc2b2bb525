/**
 * Node configuration: one table of settings drives the TOML file, the `ASPEN_*` environment
 * variables, the command-line flags, validation, `--help` text and `--print-config`.
 *
 * Precedence is flags > environment > file > defaults. Every value is validated where it
 * enters, and an error names the source (flag, variable or file key), the bad value and what
 * is allowed, so that a typo never starts a node with a setting the operator did not mean.
 */
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { assert } from "../raft/mod.ts";
import { AspenError, ROUTER_SHARDS_MAX } from "../shard/mod.ts";
import { PEERS_MAX, PORT_MAX, readHostPort } from "../transport/mod.ts";

/** The largest node id; ids are small positive integers that also name Raft replicas. */
export const NODE_ID_MAX = 65_535;
/** The largest number of shards a cluster may be split into. */
export const SHARDS_MAX = ROUTER_SHARDS_MAX;
/** The largest replication factor (replicas per shard). */
export const REPLICATION_FACTOR_MAX = 7;
/** The largest config file read, in bytes. */
export const CONFIG_FILE_BYTES_MAX = 1024 * 1024;
/**
 * The default free space kept on the data folder's file system, in MiB: below it a node
 * refuses writes other than deletes with `no_space` (see server/node/alarms.ts). It must hold
 * what is already accepted when the alarm trips: the Raft log and state machine growth of the
 * writes of one disk check interval, the state machine's WAL, and hard states and heartbeats.
 */
export const DISK_RESERVE_MIB_DEFAULT = 64;
/** The largest free-space reserve, in MiB (1 TiB). */
export const DISK_RESERVE_MIB_MAX = 1024 * 1024;

/** Log verbosity, most verbose first. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** Log line format. */
export type LogFormat = "text" | "json";

/** One member of the cluster as listed in `[cluster] peers` (`"id=host:port"`). */
export interface Peer {
  readonly id: number;
  readonly address: string;
}

/** The effective configuration of one node after all sources are merged and validated. */
export interface Config {
  readonly node: {
    readonly id: number;
    readonly dataDir: string;
    readonly peerListen: string;
    readonly httpListen: string;
    /** Free space kept on the data folder's disk, MiB; 0 keeps none (writes fail when full). */
    readonly diskReserveMib: number;
  };
  readonly sharding: {
    readonly enabled: boolean;
    readonly numShards: number;
    /** Shards this node hosts; `null` lets placement decide from membership. */
    readonly localShards: readonly number[] | null;
    readonly replicationFactor: number;
  };
  readonly cluster: {
    readonly peers: readonly Peer[];
    /** The credentials file; `null` means `<data_dir>/cluster.json`. */
    readonly credentialsFile: string | null;
    /** A file of refused peer certificates and node ids (removed nodes); `null`: none. */
    readonly refusedPeersFile: string | null;
    /** The HTTP URL of a member to join through (a new node); `null`: not joining. */
    readonly join: string | null;
    /** The root token a join authenticates with; set exactly when `join` is. */
    readonly joinToken: string | null;
  };
  readonly auth: { readonly enabled: boolean };
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
}

/** How a setting's text (from a flag or variable) or TOML value becomes a typed value. */
type Kind =
  | { readonly type: "integer"; readonly min: number; readonly max: number }
  | { readonly type: "boolean" }
  | { readonly type: "string" }
  | { readonly type: "address" }
  | { readonly type: "choice"; readonly choices: readonly string[] }
  | { readonly type: "shard_list" }
  | { readonly type: "peer_list" };

type Value = number | boolean | string | readonly number[] | readonly Peer[] | null;

/** One configurable setting: where it lives in every source and what it accepts. */
export interface Setting {
  readonly section: string;
  readonly key: string;
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly defaultValue: Value;
  readonly help: string;
}

/** Every node setting, in the order `--help` and `--print-config` show them. */
export const SETTINGS: readonly Setting[] = [
  {
    section: "node",
    key: "id",
    flag: "node-id",
    env: "ASPEN_NODE_ID",
    kind: { type: "integer", min: 1, max: NODE_ID_MAX },
    defaultValue: 1,
    help: "this node's id, unique in the cluster",
  },
  {
    section: "node",
    key: "data_dir",
    flag: "data-dir",
    env: "ASPEN_DATA_DIR",
    kind: { type: "string" },
    defaultValue: "aspen-data",
    help: "folder for this node's SQLite files, keys and certificates",
  },
  {
    section: "node",
    key: "peer_listen",
    flag: "peer-listen",
    env: "ASPEN_PEER_LISTEN",
    kind: { type: "address" },
    defaultValue: "127.0.0.1:7001",
    help: "host:port of the QUIC peer channel",
  },
  {
    section: "node",
    key: "http_listen",
    flag: "http-listen",
    env: "ASPEN_HTTP_LISTEN",
    kind: { type: "address" },
    defaultValue: "127.0.0.1:8001",
    help: "host:port of the HTTP API and console",
  },
  {
    section: "node",
    key: "disk_reserve_mib",
    flag: "disk-reserve-mib",
    env: "ASPEN_DISK_RESERVE_MIB",
    kind: { type: "integer", min: 0, max: DISK_RESERVE_MIB_MAX },
    defaultValue: DISK_RESERVE_MIB_DEFAULT,
    help: "free MiB kept on the data disk: below it, writes but deletes get no_space",
  },
  {
    section: "sharding",
    key: "enabled",
    flag: "sharding-enabled",
    env: "ASPEN_SHARDING_ENABLED",
    kind: { type: "boolean" },
    defaultValue: false,
    help: "split the keyspace into num_shards shards (off: one shard, 0)",
  },
  {
    section: "sharding",
    key: "num_shards",
    flag: "sharding-num-shards",
    env: "ASPEN_SHARDING_NUM_SHARDS",
    kind: { type: "integer", min: 1, max: SHARDS_MAX },
    defaultValue: 4,
    help: "number of shards when sharding is enabled",
  },
  {
    section: "sharding",
    key: "local_shards",
    flag: "local-shards",
    env: "ASPEN_LOCAL_SHARDS",
    kind: { type: "shard_list" },
    defaultValue: null,
    help: "shard ids this node hosts, e.g. 0,2 (default: placement decides)",
  },
  {
    section: "sharding",
    key: "replication_factor",
    flag: "replication-factor",
    env: "ASPEN_REPLICATION_FACTOR",
    kind: { type: "integer", min: 1, max: REPLICATION_FACTOR_MAX },
    defaultValue: 3,
    help: "replicas per shard under automatic placement",
  },
  {
    section: "cluster",
    key: "peers",
    flag: "peers",
    env: "ASPEN_PEERS",
    kind: { type: "peer_list" },
    defaultValue: [],
    help: "cluster members as id=host:port, comma separated (peer addresses)",
  },
  {
    section: "cluster",
    key: "credentials_file",
    flag: "cluster-file",
    env: "ASPEN_CLUSTER_FILE",
    kind: { type: "string" },
    defaultValue: null,
    help: "cluster credentials from 'aspen cluster init' (default: <data_dir>/cluster.json)",
  },
  {
    section: "cluster",
    key: "join",
    flag: "join",
    env: "ASPEN_JOIN",
    kind: { type: "string" },
    defaultValue: null,
    help: "join a running cluster through this member's HTTP URL (a new node, empty data dir)",
  },
  {
    section: "cluster",
    key: "join_token",
    flag: "join-token",
    env: "ASPEN_JOIN_TOKEN",
    kind: { type: "string" },
    defaultValue: null,
    help: "with --join: a root token of the cluster (not printed by --print-config)",
  },
  {
    section: "cluster",
    key: "refused_peers_file",
    flag: "refused-peers-file",
    env: "ASPEN_REFUSED_PEERS_FILE",
    kind: { type: "string" },
    defaultValue: null,
    help: "peers refused on the peer channel: certificate fingerprints and node ids, one a line",
  },
  {
    section: "auth",
    key: "enabled",
    flag: "auth-enabled",
    env: "ASPEN_AUTH_ENABLED",
    kind: { type: "boolean" },
    defaultValue: true,
    help: "require a bearer token on every request but health",
  },
  {
    section: "log",
    key: "level",
    flag: "log-level",
    env: "ASPEN_LOG_LEVEL",
    kind: { type: "choice", choices: ["debug", "info", "warn", "error"] },
    defaultValue: "info",
    help: "log verbosity",
  },
  {
    section: "log",
    key: "format",
    flag: "log-format",
    env: "ASPEN_LOG_FORMAT",
    kind: { type: "choice", choices: ["text", "json"] },
    defaultValue: "text",
    help: "log line format",
  },
];

/** The raw inputs to {@linkcode loadConfig}: every source as the caller read it. */
export interface ConfigSources {
  /** Flag values by flag name (without `--`), as strings (booleans as "true"/"false"). */
  readonly flags: Readonly<Record<string, string | undefined>>;
  /** The process environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The config file's path and text, when one was given. */
  readonly file: { readonly path: string; readonly text: string } | null;
}

/**
 * Merges flags, environment, file and defaults into a validated {@linkcode Config}.
 *
 * @throws {AspenError} `bad_config` naming the source, the bad value and what is allowed.
 */
export function loadConfig(sources: ConfigSources): Config {
  const fileValues = sources.file === null ? new Map<Setting, Value>() : readFile(sources.file);
  const values = new Map<Setting, Value>();
  for (const setting of SETTINGS) {
    values.set(setting, resolveSetting(setting, sources, fileValues));
  }
  const config = buildConfig(values);
  checkConfig(config);
  return config;
}

/** Renders a config as TOML in the file's own layout, for `aspen node --print-config`. */
export function formatConfig(config: Config): string {
  const sections: Record<string, Record<string, unknown>> = {};
  for (const setting of SETTINGS) {
    const value = settingValue(config, setting);
    if (value === null) continue;
    // A secret: the printed config is for people and logs.
    if (setting.key === "join_token") continue;
    const section = sections[setting.section] ??= {};
    section[setting.key] = setting.kind.type === "peer_list"
      ? (value as readonly Peer[]).map((peer) => `${peer.id}=${peer.address}`)
      : value;
  }
  return stringifyToml(sections) + "\n";
}

/** The number of shards the keyspace is split into: one (shard 0) when sharding is off. */
export function shardCount(config: Config): number {
  return config.sharding.enabled ? config.sharding.numShards : 1;
}

function resolveSetting(
  setting: Setting,
  sources: ConfigSources,
  fileValues: ReadonlyMap<Setting, Value>,
): Value {
  const flagText = sources.flags[setting.flag];
  if (flagText !== undefined) return parseText(setting, flagText, `flag --${setting.flag}`);
  const envText = sources.env[setting.env];
  if (envText !== undefined) return parseText(setting, envText, `environment ${setting.env}`);
  if (fileValues.has(setting)) return fileValues.get(setting) ?? null;
  return setting.defaultValue;
}

function readFile(file: { readonly path: string; readonly text: string }): Map<Setting, Value> {
  if (file.text.length > CONFIG_FILE_BYTES_MAX) {
    throw badConfig(
      `Cannot read config file "${file.path}": it is larger than ${CONFIG_FILE_BYTES_MAX} bytes`,
    );
  }
  let document: Record<string, unknown>;
  try {
    document = parseToml(file.text, { integersAsBigInt: "asNeeded" }) as Record<string, unknown>;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw badConfig(`Cannot parse config file "${file.path}": ${reason}`, error);
  }
  const values = new Map<Setting, Value>();
  for (const [sectionName, section] of Object.entries(document)) {
    const known = SETTINGS.filter((setting) => setting.section === sectionName);
    if (known.length === 0) {
      throw badConfig(
        `Cannot read config file "${file.path}": unknown section [${sectionName}]; ` +
          `expected one of ${sectionNames().map((name) => `[${name}]`).join(", ")}`,
      );
    }
    if (typeof section !== "object" || section === null || Array.isArray(section)) {
      throw badConfig(`Cannot read config file "${file.path}": "${sectionName}" is not a table`);
    }
    readSection(file.path, known, section as Record<string, unknown>, values);
  }
  return values;
}

function readSection(
  path: string,
  known: readonly Setting[],
  section: Record<string, unknown>,
  values: Map<Setting, Value>,
): void {
  for (const [key, raw] of Object.entries(section)) {
    const setting = known.find((candidate) => candidate.key === key);
    if (setting === undefined) {
      const sectionName = known[0]?.section ?? "";
      throw badConfig(
        `Cannot read config file "${path}": unknown key "${key}" in [${sectionName}]; ` +
          `expected one of ${known.map((candidate) => candidate.key).join(", ")}`,
      );
    }
    values.set(
      setting,
      parseTomlValue(setting, raw, `${setting.section}.${setting.key} in "${path}"`),
    );
  }
}

function parseTomlValue(setting: Setting, raw: unknown, source: string): Value {
  const kind = setting.kind;
  if (kind.type === "integer") {
    if (typeof raw === "number" || typeof raw === "bigint") {
      return checkInteger(Number(raw), kind, source, String(raw));
    }
    throw invalid(source, JSON.stringify(raw), describe(kind));
  }
  if (kind.type === "boolean") {
    if (typeof raw === "boolean") return raw;
    throw invalid(source, JSON.stringify(raw), describe(kind));
  }
  if (kind.type === "shard_list" || kind.type === "peer_list") {
    if (!Array.isArray(raw)) throw invalid(source, JSON.stringify(raw), describe(kind));
    return parseText(setting, raw.map((item) => String(item)).join(","), source);
  }
  if (typeof raw !== "string") throw invalid(source, JSON.stringify(raw), describe(kind));
  return parseText(setting, raw, source);
}

function parseText(setting: Setting, text: string, source: string): Value {
  const kind = setting.kind;
  const shown = JSON.stringify(text);
  switch (kind.type) {
    case "integer": {
      if (!/^[0-9]+$/.test(text.trim())) throw invalid(source, shown, describe(kind));
      return checkInteger(Number(text.trim()), kind, source, shown);
    }
    case "boolean": {
      if (text === "true" || text === "1") return true;
      if (text === "false" || text === "0") return false;
      throw invalid(source, shown, describe(kind));
    }
    case "string": {
      if (text.trim() === "") throw invalid(source, shown, describe(kind));
      return text;
    }
    case "address": {
      const read = readHostPort(text, { isListen: true });
      if ("problem" in read) throw invalid(source, shown, `${describe(kind)}: ${read.problem}`);
      return text;
    }
    case "choice":
      if (!kind.choices.includes(text)) throw invalid(source, shown, describe(kind));
      return text;
    case "shard_list":
      return parseShardList(text, source);
    case "peer_list":
      return parsePeerList(text, source);
  }
}

function checkInteger(
  value: number,
  kind: { readonly min: number; readonly max: number },
  source: string,
  shown: string,
): number {
  if (!Number.isSafeInteger(value) || value < kind.min || value > kind.max) {
    throw invalid(source, shown, `an integer from ${kind.min} to ${kind.max}`);
  }
  return value;
}

function parseShardList(text: string, source: string): readonly number[] {
  const expected = `a comma-separated list of shard ids from 0 to ${SHARDS_MAX - 1}`;
  const items = text.split(",").map((item) => item.trim()).filter((item) => item !== "");
  if (items.length === 0 || items.length > SHARDS_MAX) {
    throw invalid(source, JSON.stringify(text), expected);
  }
  const shards: number[] = [];
  for (const item of items) {
    const id = Number(item);
    if (!/^[0-9]+$/.test(item) || id >= SHARDS_MAX) {
      throw invalid(source, JSON.stringify(text), expected);
    }
    if (shards.includes(id)) {
      throw invalid(source, JSON.stringify(text), `${expected}, each listed once`);
    }
    shards.push(id);
  }
  return shards;
}

function parsePeerList(text: string, source: string): readonly Peer[] {
  const expected = `a comma-separated list of id=host:port with ids from 1 to ${NODE_ID_MAX}`;
  const items = text.split(",").map((item) => item.trim()).filter((item) => item !== "");
  if (items.length > PEERS_MAX) {
    throw invalid(source, JSON.stringify(text), `at most ${PEERS_MAX} peers`);
  }
  const peers: Peer[] = [];
  for (const item of items) {
    const match = /^([0-9]+)=(.+)$/.exec(item);
    const id = Number(match?.[1]);
    const address = match?.[2] ?? "";
    if (match === null || id < 1 || id > NODE_ID_MAX) {
      throw invalid(source, JSON.stringify(item), expected);
    }
    // Port 0 is checked once the node id is known: only this node's own entry may use it.
    const read = readHostPort(address, { isListen: true });
    if ("problem" in read) {
      throw invalid(source, JSON.stringify(item), `${expected}: ${read.problem}`);
    }
    if (peers.some((peer) => peer.id === id)) {
      throw invalid(source, JSON.stringify(text), `${expected}, each id listed once`);
    }
    peers.push({ id, address });
  }
  return peers;
}

/** Cross-setting rules, checked once every setting has its final value. */
function checkConfig(config: Config): void {
  const { sharding, node, cluster } = config;
  const count = shardCount(config);
  for (const shard of sharding.localShards ?? []) {
    if (shard >= count) {
      throw badConfig(
        `Invalid config: local_shards lists shard ${shard} but the cluster has ${count} ` +
          `shard${count === 1 ? "" : "s"} (ids 0 to ${count - 1}` +
          `${sharding.enabled ? "" : "; sharding is disabled"})`,
      );
    }
  }
  for (const peer of cluster.peers) {
    const read = readHostPort(peer.address, { isListen: true });
    if (peer.id !== node.id && "hostPort" in read && read.hostPort.port === 0) {
      throw badConfig(
        `Invalid config: peers lists node ${peer.id} at "${peer.address}": port 0 cannot be ` +
          `dialled (only this node's own entry may use it, when peer_listen is at port 0)`,
      );
    }
  }
  checkJoin(cluster);
  const self = cluster.peers.find((peer) => peer.id === node.id);
  if (self !== undefined && self.address !== node.peerListen) {
    throw badConfig(
      `Invalid config: peers lists this node (${node.id}) at "${self.address}" but ` +
        `peer_listen is "${node.peerListen}"`,
    );
  }
}

/** `join` and `join_token` go together, with an http(s) URL and no static peers list. */
function checkJoin(cluster: Config["cluster"]): void {
  if (cluster.join === null) {
    if (cluster.joinToken !== null) badJoin("join_token is set but join is not");
    return;
  }
  if (cluster.joinToken === null) badJoin("join needs join_token (a root token of the cluster)");
  let url: URL | null = null;
  try {
    url = new URL(cluster.join);
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
    badJoin(`join is "${cluster.join}" but must be a member's HTTP URL (http://host:port)`);
  }
  if (cluster.peers.length > 0) {
    badJoin("join and peers exclude each other: a joining node learns the members");
  }
}

function badJoin(message: string): never {
  throw badConfig(`Invalid config: ${message}`);
}

function buildConfig(values: ReadonlyMap<Setting, Value>): Config {
  const get = (section: string, key: string): Value => {
    const setting = SETTINGS.find((item) => item.section === section && item.key === key);
    assert(setting !== undefined, `unknown setting ${section}.${key}`);
    return values.get(setting) ?? null;
  };
  return {
    node: {
      id: get("node", "id") as number,
      dataDir: get("node", "data_dir") as string,
      peerListen: get("node", "peer_listen") as string,
      httpListen: get("node", "http_listen") as string,
      diskReserveMib: get("node", "disk_reserve_mib") as number,
    },
    sharding: {
      enabled: get("sharding", "enabled") as boolean,
      numShards: get("sharding", "num_shards") as number,
      localShards: get("sharding", "local_shards") as readonly number[] | null,
      replicationFactor: get("sharding", "replication_factor") as number,
    },
    cluster: {
      peers: get("cluster", "peers") as readonly Peer[],
      credentialsFile: get("cluster", "credentials_file") as string | null,
      refusedPeersFile: get("cluster", "refused_peers_file") as string | null,
      join: get("cluster", "join") as string | null,
      joinToken: get("cluster", "join_token") as string | null,
    },
    auth: { enabled: get("auth", "enabled") as boolean },
    log: {
      level: get("log", "level") as LogLevel,
      format: get("log", "format") as LogFormat,
    },
  };
}

function settingValue(config: Config, setting: Setting): Value {
  const camel = setting.key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
  const section = (config as unknown as Record<string, Record<string, Value>>)[setting.section];
  return section?.[camel] ?? null;
}

function describe(kind: Kind): string {
  switch (kind.type) {
    case "integer":
      return `an integer from ${kind.min} to ${kind.max}`;
    case "boolean":
      return "true or false";
    case "string":
      return "a non-empty string";
    case "address":
      return `host:port with a port from 0 to ${PORT_MAX}`;
    case "choice":
      return `one of ${kind.choices.join(", ")}`;
    case "shard_list":
      return "a list of shard ids";
    case "peer_list":
      return "a list of id=host:port strings";
  }
}

function sectionNames(): string[] {
  return [...new Set(SETTINGS.map((setting) => setting.section))];
}

function invalid(source: string, shown: string, expected: string): AspenError {
  return badConfig(`Invalid config: ${source} is ${shown} but must be ${expected}`);
}

function badConfig(message: string, cause?: unknown): AspenError {
  return new AspenError("bad_config", message, {}, cause === undefined ? undefined : { cause });
}
