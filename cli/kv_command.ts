/**
 * `aspen kv get|put|del|scan|txn|watch`: the key-value client on the command line.
 */
import {
  base64Of,
  bytesOfBase64,
  type Kv,
  type TxnRequest,
  type WatchEvent,
  type WatchQuery,
} from "../api/mod.ts";
import { type CliIo, type Command, type FlagSpec, type ParsedArgs, UsageError } from "./command.ts";
import {
  clientFrom,
  formatTable,
  integerFlag,
  onlyFlags,
  positional,
  withClientErrors,
} from "./client_commands.ts";

/** The most keys `kv scan` asks for at once. */
export const SCAN_LIMIT_MAX = 10_000;

/** Flags every client command shares. */
export const CLIENT_FLAGS: Readonly<Record<string, FlagSpec>> = {
  endpoints: {
    type: "string",
    valueName: "URLS",
    help: "comma-separated HTTP addresses of nodes",
    defaultText: "http://127.0.0.1:8001",
    env: "ASPEN_ENDPOINTS",
  },
  token: { type: "string", valueName: "TOKEN", help: "bearer token", env: "ASPEN_TOKEN" },
  json: { type: "boolean", help: "print JSON for scripts instead of tables" },
  help: { type: "boolean", help: "print this help" },
};

const KV_COLUMNS = ["KEY", "VALUE", "VERSION", "CREATE", "MOD", "LEASE"];

function kvRow(kv: Kv): unknown[] {
  return [kv.key, kv.value, kv.version, kv.createRevision, kv.modRevision, kv.lease];
}

/** `aspen kv`. */
export const KV_COMMAND: Command = {
  name: "kv",
  summary: "read, write and watch keys (get, put, del, scan, txn, watch)",
  usage: [
    "kv get <key> [--serializable] [--base64 | --out FILE]",
    "kv put <key> (<value> [--base64] | --value-file FILE) [--lease ID] [--prev-kv]",
    "kv del <key> [--prev-kv]",
    "kv scan [--prefix P | --start S --end E] [--limit N] [--after K] [--keys-only]" +
    " [--count-only] [--reverse]",
    "kv txn --file FILE   (a JSON body of POST /v1/txn; keys may span shards)",
    "kv watch (<key> [--from-revision N] | --prefix P [--from-revisions S:N,...]) [--count N]",
  ],
  flags: {
    ...CLIENT_FLAGS,
    serializable: { type: "boolean", help: "get: read the local replica, maybe stale" },
    lease: { type: "string", valueName: "ID", help: "put: attach the key to a lease" },
    "prev-kv": { type: "boolean", help: "put, del: also print the previous kv" },
    prefix: { type: "string", valueName: "P", help: "scan, watch: keys starting with P" },
    "from-revision": {
      type: "string",
      valueName: "N",
      help: "watch <key>: start at revision N of the key's shard (replays history)",
    },
    "from-revisions": {
      type: "string",
      valueName: "S:N,...",
      help: "watch --prefix: start shard S at revision N (revisions are per shard)",
    },
    count: { type: "string", valueName: "N", help: "watch: exit after N events" },
    start: { type: "string", valueName: "S", help: "scan: keys from S (inclusive)" },
    end: { type: "string", valueName: "E", help: "scan: keys up to E (exclusive)" },
    limit: { type: "string", valueName: "N", help: "scan: at most N keys", defaultText: "100" },
    after: { type: "string", valueName: "K", help: "scan: continue after key K" },
    "keys-only": { type: "boolean", help: "scan: keys without values" },
    "count-only": { type: "boolean", help: "scan: only the count" },
    reverse: { type: "boolean", help: "scan: descending key order" },
    file: { type: "string", valueName: "FILE", help: "txn: JSON request body" },
    base64: {
      type: "boolean",
      help: "put: <value> is base64 of the bytes; get: print the value's bytes as base64",
    },
    "value-file": { type: "string", valueName: "FILE", help: "put: the value is FILE's bytes" },
    out: { type: "string", valueName: "FILE", help: "get: write the value's bytes to FILE" },
  },
  positionalsMax: 3,
  run(args, io) {
    const action = args.positionals[0];
    const actions: Record<string, (args: ParsedArgs, io: CliIo) => Promise<number>> = {
      get: kvGet,
      put: kvPut,
      del: kvDelete,
      scan: kvScan,
      txn: kvTxn,
      watch: kvWatch,
    };
    const run = action === undefined ? undefined : actions[action];
    if (run === undefined) {
      throw new UsageError(
        `${action === undefined ? "missing action" : `unknown action "${action}"`}; ` +
          "expected get, put, del, scan, txn or watch",
      );
    }
    return withClientErrors("kv", io, () => run(args, io));
  },
};

async function kvGet(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "kv get", ["serializable", "base64", "out"]);
  const key = positional(args, 1, "key", "kv get <key>");
  const out = args.values.out as string | undefined;
  const isBase64 = args.values.base64 === true;
  if (out !== undefined && isBase64) {
    throw new UsageError("kv get: give --base64 or --out, not both");
  }
  const isBytes = out !== undefined || isBase64;
  const client = await clientFrom(args, io);
  const consistency = args.values.serializable === true ? "serializable" : "linearizable";
  const result = await client.get(key, { consistency, encoding: isBytes ? "base64" : "text" });
  if (isBytes && result.kv !== null) {
    const bytes = bytesOfBase64(result.kv.valueBase64 ?? "");
    if (bytes === null) throw new Error(`kv get: the node sent no valueBase64 for "${key}"`);
    if (out === undefined) io.stdout(`${base64Of(bytes)}\n`);
    else await io.writeFile(out, bytes);
  } else if (args.values.json === true) {
    io.stdout(JSON.stringify(result) + "\n");
  } else if (result.kv === null) {
    io.stderr(`aspen kv: key "${key}" not found\n`);
  } else {
    io.stdout(formatTable([...KV_COLUMNS, "SHARD"], [[...kvRow(result.kv), result.shard]]));
  }
  return result.kv === null ? 1 : 0;
}

async function kvPut(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "kv put", ["lease", "prev-kv", "base64", "value-file"]);
  const key = positional(args, 1, "key", "kv put <key> <value>");
  const value = await putValue(args, io);
  const lease = integerFlag(args, "lease", 1, Number.MAX_SAFE_INTEGER);
  const client = await clientFrom(args, io);
  const result = await client.put(key, value, {
    ...(lease === undefined ? {} : { lease }),
    ...(args.values["prev-kv"] === true ? { prevKv: true } : {}),
  });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(result) + "\n");
  } else {
    io.stdout(`OK shard=${result.shard} revision=${result.revision} version=${result.version}\n`);
    if (result.prevKv !== undefined) io.stdout(formatTable(KV_COLUMNS, [kvRow(result.prevKv)]));
  }
  return 0;
}

/** The value of `kv put`: the argument (text, or base64 with --base64) or --value-file. */
async function putValue(args: ParsedArgs, io: CliIo): Promise<string | Uint8Array> {
  const file = args.values["value-file"] as string | undefined;
  const argument = args.positionals[2];
  if (file !== undefined) {
    if (argument !== undefined) {
      throw new UsageError(`kv put: give <value> or --value-file, not both ("${argument}")`);
    }
    if (args.values.base64 === true) {
      throw new UsageError("kv put: --base64 applies to <value>, not to --value-file");
    }
    return await io.readFile(file);
  }
  const value = positional(args, 2, "value", "kv put <key> <value> (or --value-file FILE)");
  if (args.values.base64 !== true) return value;
  const bytes = bytesOfBase64(value);
  if (bytes === null) {
    throw new UsageError(`kv put: with --base64, <value> must be padded base64, not "${value}"`);
  }
  return bytes;
}

async function kvDelete(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "kv del", ["prev-kv"]);
  const key = positional(args, 1, "key", "kv del <key>");
  const client = await clientFrom(args, io);
  const result = await client.delete(key, { prevKv: args.values["prev-kv"] === true });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(result) + "\n");
  } else {
    io.stdout(`deleted=${result.deleted} shard=${result.shard} revision=${result.revision}\n`);
    if (result.prevKv !== undefined) io.stdout(formatTable(KV_COLUMNS, [kvRow(result.prevKv)]));
  }
  return 0;
}

async function kvScan(args: ParsedArgs, io: CliIo): Promise<number> {
  const flags = ["prefix", "start", "end", "limit", "after", "keys-only", "count-only", "reverse"];
  onlyFlags(args, "kv scan", flags);
  if (args.positionals.length > 1) throw new UsageError("kv scan takes no arguments; use --prefix");
  const hasPrefix = args.values.prefix !== undefined;
  const hasRange = args.values.start !== undefined || args.values.end !== undefined;
  if (hasPrefix && hasRange) {
    throw new UsageError("flag --prefix cannot be used with --start/--end");
  }
  const limit = integerFlag(args, "limit", 1, SCAN_LIMIT_MAX) ?? 100;
  const client = await clientFrom(args, io);
  const result = await client.range({
    prefix: args.values.prefix as string | undefined ?? (hasRange ? undefined : ""),
    start: args.values.start as string | undefined,
    end: args.values.end as string | undefined,
    after: args.values.after as string | undefined,
    limit,
    keysOnly: args.values["keys-only"] === true ? true : undefined,
    countOnly: args.values["count-only"] === true ? true : undefined,
    reverse: args.values.reverse === true ? true : undefined,
  });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(result) + "\n");
    return 0;
  }
  if (args.values["count-only"] !== true) {
    io.stdout(formatTable(KV_COLUMNS, result.kvs.map(kvRow)));
  }
  io.stdout(`count=${result.count}${result.more ? ` more, next: --after ${result.next}` : ""}\n`);
  return 0;
}

async function kvTxn(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "kv txn", ["file"]);
  const path = args.values.file;
  if (typeof path !== "string") throw new UsageError("kv txn needs --file FILE with the JSON body");
  let body: unknown;
  try {
    body = JSON.parse(await io.readTextFile(path));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`flag --file "${path}" is not a readable JSON file: ${reason}`);
  }
  const client = await clientFrom(args, io);
  const result = await client.txn(body as TxnRequest);
  io.stdout(JSON.stringify(result, null, args.values.json === true ? 0 : 2) + "\n");
  return result.succeeded ? 0 : 1;
}

/** The most events `kv watch --count` waits for. */
export const WATCH_COUNT_MAX = 1_000_000;

async function kvWatch(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "kv watch", ["prefix", "from-revision", "from-revisions", "count"]);
  const query = watchQuery(args);
  const count = integerFlag(args, "count", 1, WATCH_COUNT_MAX);
  const client = await clientFrom(args, io);
  const stop = new AbortController();
  const onShutdown = () => stop.abort();
  io.shutdown.addEventListener("abort", onShutdown, { once: true });
  let seen = 0;
  let failed = false;
  try {
    for await (const event of client.watch(query, stop.signal)) {
      io.stdout(args.values.json === true ? `${JSON.stringify(event)}\n` : watchLine(event));
      if (event.type === "error") failed = true;
      if (count !== undefined && ++seen >= count) break;
    }
  } finally {
    io.shutdown.removeEventListener("abort", onShutdown);
    stop.abort();
  }
  return failed ? 1 : 0;
}

/** The watch the flags ask for. */
function watchQuery(args: ParsedArgs): WatchQuery {
  const key = args.positionals[1];
  const prefix = args.values.prefix as string | undefined;
  if ((key === undefined) === (prefix === undefined)) {
    throw new UsageError("kv watch needs a <key> or --prefix P (one of them)");
  }
  if (args.positionals.length > 2) throw new UsageError("kv watch takes one <key>");
  if (key !== undefined) {
    if (args.values["from-revisions"] !== undefined) {
      throw new UsageError("flag --from-revisions is for --prefix; a key takes --from-revision");
    }
    const fromRevision = integerFlag(args, "from-revision", 1, Number.MAX_SAFE_INTEGER);
    return fromRevision === undefined ? { key } : { key, fromRevision };
  }
  if (args.values["from-revision"] !== undefined) {
    throw new UsageError(
      "flag --from-revision needs a <key>: revisions are per shard, so a prefix takes " +
        "--from-revisions S:N,...",
    );
  }
  const text = args.values["from-revisions"] as string | undefined;
  if (text === undefined) return { prefix: prefix! };
  const fromRevisions: Record<number, number> = {};
  for (const item of text.split(",")) {
    const match = /^([0-9]+):([1-9][0-9]*)$/.exec(item.trim());
    const shard = Number(match?.[1]);
    const revision = Number(match?.[2]);
    if (match === null || !Number.isSafeInteger(revision) || shard in fromRevisions) {
      throw new UsageError(
        `flag --from-revisions is "${text}" but must be shard:revision pairs such as 0:12,3:40 ` +
          "(each shard once, revisions from 1)",
      );
    }
    fromRevisions[shard] = revision;
  }
  return { prefix: prefix!, fromRevisions };
}

/** One line per event: what happened, to which key, at which shard revision. */
function watchLine(event: WatchEvent): string {
  if (event.type === "error") {
    return `ERROR ${event.code} shard=${event.shard ?? "?"}: ${event.message ?? ""}\n`;
  }
  const value = event.type === "put" ? ` ${event.kv.valueBase64 ?? event.kv.value}` : "";
  return `${event.type.toUpperCase()} ${event.kv.key}${value} ` +
    `shard=${event.shard} revision=${event.revision}\n`;
}
