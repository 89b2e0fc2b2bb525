/**
 * @module
 * Benchmarks of a running cluster, in one tree. This module is the `aspen bench` runner (cli/
 * calls it): the workloads against the HTTP API (workload.ts), the runner (runner.ts), its lean
 * pipelined HTTP/1.1 client (http_connection.ts) and latency recording (latency.ts). Beside it,
 * `deno task bench:cluster` (cluster.ts, a script) starts local clusters with cli/'s launcher,
 * runs the standard workloads of plan.ts with this runner, and writes BENCHMARKS.md and
 * BENCHMARKS.json (report.ts, machine.ts; NOTES.md is the analysis it quotes), with an etcd
 * cluster beside Aspen's when etcd is installed (etcd.ts; the workloads speak etcd's JSON
 * gateway through etcd_requests.ts).
 *
 * Allowed dependencies: the web platform, Deno's TCP API and the client contract (api/mod.ts,
 * a leaf: answers are read with its types and error codes); nothing else of ours, so that cli/
 * may import it. Only the script cluster.ts imports cli/ (for LocalCluster), and nothing
 * imports the script.
 *
 * @example
 * ```ts
 * import { runBench } from "./mod.ts";
 * declare const options: Parameters<typeof runBench>[0];
 * const report = await runBench(options);
 * ```
 */
export { LATENCY_SAMPLES_MAX, LatencyRecorder, type LatencySummary } from "./latency.ts";
export {
  type BenchReport,
  locateKeys,
  POPULATE_KEYS_MAX,
  type Progress,
  runBench,
  type RunOptions,
} from "./runner.ts";
export {
  BENCH_PREFIX,
  BENCH_TXN_KEYS_MAX,
  type BenchRequest,
  BenchSetupError,
  needsKeyShards,
  WorkloadClient,
  type WorkloadName,
  type WorkloadOptions,
  WORKLOADS,
} from "./workload.ts";
