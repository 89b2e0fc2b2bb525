/**
 * What `deno task bench:cluster` runs: the cluster shapes, the standard workloads (modelled on
 * etcd's published benchmark: 8-byte keys, 256-byte values, 1 client and many clients), and
 * the shapes of the results it writes.
 */
import type { BenchReport } from "./runner.ts";
import type { WorkloadName } from "./workload.ts";

/** One dev cluster to launch. */
export interface ClusterShape {
  readonly nodes: number;
  readonly shards: number;
  /** Set for the etcd cluster measured beside Aspen's (nodes = members, shards = 1). */
  readonly system?: "etcd";
}

/** The clusters of the standard run. */
export const STANDARD_CLUSTERS: readonly ClusterShape[] = [
  { nodes: 1, shards: 1 },
  { nodes: 3, shards: 1 },
  { nodes: 3, shards: 4 },
];

/** One row of the table: a workload and its client count. */
export interface RowSpec {
  readonly id: string;
  readonly title: string;
  readonly workload: WorkloadName;
  readonly clients: number;
  readonly serializable: boolean;
  /** Shards each transaction's keys fall on; a cluster with fewer shards skips the row. */
  readonly shardsPerTxn: number;
  /** A key space of its own (one client learns each key's revision in the warm-up), or null. */
  readonly keyspace: number | null;
}

/** The key space of the single-client transaction rows. */
export const SINGLE_CLIENT_TXN_KEYSPACE = 100;

/** The clients of the many-clients rows (etcd publishes 1 and 1000; 256 fits 2 cores). */
export const MANY_CLIENTS = 256;

/** Whether etcd can run a row: it has no optimistic transaction and one Raft group. */
export function isEtcdRow(spec: RowSpec): boolean {
  return spec.workload !== "txn" && spec.shardsPerTxn === 1;
}

/** The standard rows, in the order they run. */
export const STANDARD_ROWS: readonly RowSpec[] = [
  row("put-1", "put", 1, "put"),
  row(`put-${MANY_CLIENTS}`, "put", MANY_CLIENTS, "put"),
  row("get-1", "get, linearizable", 1, "get"),
  row(`get-${MANY_CLIENTS}`, "get, linearizable", MANY_CLIENTS, "get"),
  {
    ...row(`get-ser-${MANY_CLIENTS}`, "get, serializable", MANY_CLIENTS, "get"),
    serializable: true,
  },
  row(`mixed-${MANY_CLIENTS}`, "mixed, 50% linearizable reads", MANY_CLIENTS, "mixed"),
  row(`cas-${MANY_CLIENTS}`, "cas (txn, 1 compare + put)", MANY_CLIENTS, "cas"),
  row(`txn-${MANY_CLIENTS}`, "txn (optimistic, 1 read + set)", MANY_CLIENTS, "txn"),
  {
    ...row("cas-1", `cas, ${SINGLE_CLIENT_TXN_KEYSPACE} keys`, 1, "cas"),
    keyspace: SINGLE_CLIENT_TXN_KEYSPACE,
  },
  {
    ...row("cas-2sh-1", `cas over 2 shards, ${SINGLE_CLIENT_TXN_KEYSPACE} keys`, 1, "cas"),
    shardsPerTxn: 2,
    keyspace: SINGLE_CLIENT_TXN_KEYSPACE,
  },
  {
    ...row(
      `cas-2sh-${MANY_CLIENTS}`,
      "cas over 2 shards (2 compares + 2 puts)",
      MANY_CLIENTS,
      "cas",
    ),
    shardsPerTxn: 2,
  },
];

function row(id: string, title: string, clients: number, workload: WorkloadName): RowSpec {
  return { id, title, workload, clients, serializable: false, shardsPerTxn: 1, keyspace: null };
}

/** The fixed parameters of a run. */
export interface RunParameters {
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly keyspace: number;
  /** Clients share connections only when there are more clients than this. */
  readonly connsMax: number;
  readonly endpoints: "all" | "leader";
  readonly casTxnRounds: number;
  readonly casTxnRoundSeconds: number;
}

/** CPU used during a timed run, from /proc. */
export interface CpuUse {
  /** The benchmark client's share of one core, percent. */
  readonly clientPercent: number | null;
  /** Each node's share of one core, percent, by node id order. */
  readonly nodePercents: readonly (number | null)[];
  /** CPU time of all nodes together per operation, microseconds. */
  readonly nodesUsPerOp: number | null;
}

/** One measured row. */
export interface RowResult {
  readonly cluster: ClusterShape;
  readonly id: string;
  readonly title: string;
  readonly report: BenchReport;
  readonly cpu: CpuUse;
  /** The 1-minute load average when the row started (other work on the machine). */
  readonly loadAverage: number;
}

/** CAS against the equivalent optimistic transaction, measured in alternating rounds. */
export interface CasTxnComparison {
  readonly cluster: ClusterShape;
  readonly casOpsPerSecond: readonly number[];
  readonly txnOpsPerSecond: readonly number[];
  readonly casNodesUsPerOp: readonly number[];
  readonly txnNodesUsPerOp: readonly number[];
  /** Failed compares and conflicts over all rounds (each client owns its keys: few). */
  readonly casConflicts: number;
  readonly txnConflicts: number;
  /** Operations of all rounds, both sides. */
  readonly operations: number;
  /** Median over rounds of 1 - txn/cas throughput, percent (negative: txn was faster). */
  readonly throughputOverheadPercent: number;
  /** Median over rounds of txn/cas node CPU per operation - 1, percent. */
  readonly cpuOverheadPercent: number | null;
}

/**
 * A cas on one shard against a cas over two (1 client, their own key spaces) in alternating
 * rounds on one cluster: issue 13's bar is the ratio of their p50s.
 */
export interface CrossShardComparison {
  readonly cluster: ClusterShape;
  /** The p50 of each round, ms. */
  readonly oneShardP50Ms: readonly number[];
  readonly twoShardP50Ms: readonly number[];
  readonly oneShardNodesUsPerOp: readonly (number | null)[];
  readonly twoShardNodesUsPerOp: readonly (number | null)[];
  /** Median over rounds of the 2-shard p50 / 1-shard p50. */
  readonly p50Ratio: number;
}

/** Everything one run produced. */
export interface RunResult {
  readonly startedAt: string;
  readonly parameters: RunParameters;
  readonly rows: readonly RowResult[];
  readonly comparisons: readonly CasTxnComparison[];
  /** 1-shard against 2-shard cas by rounds, per cluster with 2 shards or more (absent before). */
  readonly crossShard?: readonly CrossShardComparison[];
  /** The etcd version of the etcd rows; null when etcd was not found (absent in older runs). */
  readonly etcdVersion?: string | null;
}

/** "3 nodes / 4 shards", or "etcd, 3 members". */
export function clusterName(shape: ClusterShape): string {
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;
  if (shape.system === "etcd") return `etcd, ${plural(shape.nodes, "member")}`;
  return `${plural(shape.nodes, "node")} / ${plural(shape.shards, "shard")}`;
}
