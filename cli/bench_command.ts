/**
 * `aspen bench <workload>`: measures a running cluster the way etcd's benchmark tool does, and
 * prints ops/s, latency percentiles and errors by code (or `--json`).
 */
import {
  BENCH_TXN_KEYS_MAX,
  type BenchReport,
  BenchSetupError,
  runBench,
  type WorkloadName,
  WORKLOADS,
} from "../bench/mod.ts";
import { type CliIo, type Command, type ParsedArgs, UsageError } from "./command.ts";
import { clientEndpoints, formatTable, integerFlag } from "./client_commands.ts";
import { CLIENT_FLAGS } from "./kv_command.ts";

/** The most concurrent benchmark clients. */
export const BENCH_CLIENTS_MAX = 10_000;
/** The most HTTP connection pools. */
export const BENCH_CONNS_MAX = 1_000;
/** The longest benchmark run, in seconds. */
export const BENCH_SECONDS_MAX = 3_600;

/** `aspen bench`. */
export const BENCH_COMMAND: Command = {
  name: "bench",
  summary: "measure a running cluster (put, get, mixed, cas, txn, scan, read-txn)",
  usage: [`bench <${WORKLOADS.join("|")}> [flags]`],
  details: "Keys are bench/<n> padded to --key-size; read workloads first write the key space.\n" +
    "cas, txn and read-txn with --shards-per-txn N name keys on N different shards (cross-shard\n" +
    "transactions); the key space is located first (each key's shard, asked of the cluster).",
  flags: {
    ...CLIENT_FLAGS,
    clients: { type: "string", valueName: "N", help: "concurrent clients", defaultText: "1" },
    conns: { type: "string", valueName: "N", help: "HTTP connection pools", defaultText: "1" },
    duration: { type: "string", valueName: "SECONDS", help: "run time", defaultText: "10" },
    total: { type: "string", valueName: "N", help: "stop after N operations instead" },
    warmup: {
      type: "string",
      valueName: "SECONDS",
      help: "run the workload this long first, untimed (cas and txn learn their keys)",
      defaultText: "0",
    },
    "key-size": { type: "string", valueName: "BYTES", help: "key size", defaultText: "8" },
    "value-size": { type: "string", valueName: "BYTES", help: "value size", defaultText: "256" },
    keyspace: { type: "string", valueName: "N", help: "distinct keys", defaultText: "10000" },
    "sequential-keys": { type: "boolean", help: "walk keys in order instead of at random" },
    "client-keys": {
      type: "boolean",
      help: "each client uses its own slice of the key space (no conflicts between clients)",
    },
    "read-ratio": {
      type: "string",
      valueName: "R",
      help: "mixed: share of reads, 0..1",
      defaultText: "0.5",
    },
    consistency: {
      type: "string",
      valueName: "linearizable|serializable",
      help: "get and mixed reads",
      defaultText: "linearizable",
    },
    "shards-per-txn": {
      type: "string",
      valueName: "N",
      help: "cas, txn, read-txn: each transaction's keys fall on N different shards",
      defaultText: "1",
    },
    "keys-per-txn": {
      type: "string",
      valueName: "N",
      help: "cas, txn, read-txn: keys in each transaction, dealt over its shards",
      defaultText: "--shards-per-txn",
    },
    api: {
      type: "string",
      valueName: "aspen|etcd",
      help: "etcd: the --endpoints are etcd 3.4+ members (its JSON gateway), to compare with the " +
        "same client; no token is sent, and txn is refused",
      defaultText: "aspen",
    },
    "scan-limit": {
      type: "string",
      valueName: "N",
      help: "scan: keys per range read",
      defaultText: "100",
    },
  },
  positionalsMax: 1,
  run: runBenchCommand,
};

async function runBenchCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const workload = args.positionals[0];
  if (workload === undefined || !(WORKLOADS as readonly string[]).includes(workload)) {
    throw new UsageError(`<workload> must be one of ${WORKLOADS.join(", ")}`);
  }
  const ratioText = (args.values["read-ratio"] as string | undefined) ?? "0.5";
  const readRatio = Number(ratioText);
  if (!/^(0(\.\d+)?|1(\.0+)?)$/.test(ratioText)) {
    throw new UsageError(`flag --read-ratio is "${ratioText}" but must be a number from 0 to 1`);
  }
  const consistency = (args.values.consistency as string | undefined) ?? "linearizable";
  if (consistency !== "linearizable" && consistency !== "serializable") {
    throw new UsageError(
      `flag --consistency is "${consistency}"; expected linearizable or serializable`,
    );
  }
  const api = (args.values.api as string | undefined) ?? "aspen";
  if (api !== "aspen" && api !== "etcd") {
    throw new UsageError(`flag --api is "${api}"; expected aspen or etcd`);
  }
  const txnShape = parseTxnShape(args, workload);
  const { endpoints, token } = await clientEndpoints(args, io);
  const total = integerFlag(args, "total", 1, Number.MAX_SAFE_INTEGER) ?? null;
  const report = await runBench({
    endpoints,
    token: api === "etcd" ? null : token,
    clients: integerFlag(args, "clients", 1, BENCH_CLIENTS_MAX) ?? 1,
    conns: integerFlag(args, "conns", 1, BENCH_CONNS_MAX) ?? 1,
    durationMs: (integerFlag(args, "duration", 1, BENCH_SECONDS_MAX) ?? 10) * 1000,
    total,
    warmupMs: (integerFlag(args, "warmup", 0, BENCH_SECONDS_MAX) ?? 0) * 1000,
    workload: {
      api,
      workload: workload as WorkloadName,
      keySize: integerFlag(args, "key-size", 1, 4096) ?? 8,
      valueSize: integerFlag(args, "value-size", 0, 1024 * 1024) ?? 256,
      keyspace: integerFlag(args, "keyspace", 1, 100_000_000) ?? 10_000,
      isSequential: args.values["sequential-keys"] === true,
      isClientKeys: args.values["client-keys"] === true,
      readRatio,
      serializable: consistency === "serializable",
      scanLimit: integerFlag(args, "scan-limit", 1, 10_000) ?? 100,
      ...txnShape,
    },
    nowMs: io.monotonicMs,
    onProgress: (progress) =>
      io.stderr(
        `\r${(progress.elapsedMs / 1000).toFixed(1)}s  ${progress.operations} ops  ` +
          `${Math.round(progress.operationsPerSecond)} ops/s  ${progress.errors} errors   `,
      ),
  }).catch((error: unknown) => {
    // Too few shards or keys for the transactions asked: the flags are at fault.
    if (error instanceof BenchSetupError) throw new UsageError(error.message);
    throw error;
  });
  io.stderr("\n");
  io.stdout(args.values.json === true ? JSON.stringify(report) + "\n" : formatReport(report));
  return Object.keys(report.errors).length === 0 ? 0 : 1;
}

/** --keys-per-txn and --shards-per-txn, checked against each other and the workload. */
function parseTxnShape(
  args: ParsedArgs,
  workload: string,
): { keysPerTxn: number; shardsPerTxn: number } {
  const shardsPerTxn = integerFlag(args, "shards-per-txn", 1, BENCH_TXN_KEYS_MAX) ?? 1;
  const keysPerTxn = integerFlag(args, "keys-per-txn", 1, BENCH_TXN_KEYS_MAX) ?? shardsPerTxn;
  if (keysPerTxn < shardsPerTxn) {
    throw new UsageError(
      `flag --keys-per-txn is ${keysPerTxn} but must be at least --shards-per-txn ` +
        `(${shardsPerTxn}): each shard gets one key or more`,
    );
  }
  const isTxn = workload === "cas" || workload === "txn" || workload === "read-txn";
  if (!isTxn && (keysPerTxn > 1 || shardsPerTxn > 1)) {
    throw new UsageError(
      `flags --keys-per-txn and --shards-per-txn apply to cas, txn and read-txn, not ${workload}`,
    );
  }
  return { keysPerTxn, shardsPerTxn };
}

/** The human-readable report. */
export function formatReport(report: BenchReport): string {
  const ms = (value: number) => value.toFixed(2);
  const latency = report.latency;
  let text =
    `${report.workload}: ${report.operations} ops in ${(report.elapsedMs / 1000).toFixed(1)}s` +
    ` with ${report.clients} clients over ${report.conns} connections` +
    ` (${txnText(report)}key ${report.keySize} B, value ${report.valueSize} B, ` +
    `keyspace ${report.keyspace})\n\n`;
  text += formatTable(
    ["OPS/S", "MEAN MS", "P50 MS", "P90 MS", "P99 MS", "MAX MS", "CONFLICTS", "ERRORS"],
    [[
      report.operationsPerSecond,
      ms(latency.meanMs),
      ms(latency.p50Ms),
      ms(latency.p90Ms),
      ms(latency.p99Ms),
      ms(latency.maxMs),
      report.conflicts,
      Object.values(report.errors).reduce((sum, count) => sum + count, 0),
    ]],
  );
  if (report.workload === "cas" || report.workload === "txn") {
    const percent = 100 * report.conflicts / Math.max(1, report.operations);
    text += `  conflict rate: ${percent.toFixed(1)}% (${report.conflicts} of ${report.operations}` +
      ` failed a compare or met a conflict; ${report.aborts} aborted with 409 conflict)\n`;
  }
  for (const [code, count] of Object.entries(report.errors)) text += `  error ${code}: ${count}\n`;
  return text;
}

/** "2 keys on 2 shards per txn, " for multi-key transactions; "" otherwise. */
function txnText(report: BenchReport): string {
  const keys = report.keysPerTxn;
  const shards = report.shardsPerTxn;
  if (keys === 1 && shards === 1) return "";
  return `${keys} keys on ${shards} shard${shards === 1 ? "" : "s"} per txn, `;
}
