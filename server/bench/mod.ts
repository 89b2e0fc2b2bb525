/**
 * @module
 * `aspen bench`: workloads against the HTTP API, the runner and latency recording.
 *
 * Allowed dependencies: the web platform (`fetch`, `Deno.createHttpClient`).
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
  POPULATE_KEYS_MAX,
  type Progress,
  runBench,
  type RunOptions,
} from "./runner.ts";
export {
  BENCH_PREFIX,
  type BenchRequest,
  WorkloadClient,
  type WorkloadName,
  type WorkloadOptions,
  WORKLOADS,
} from "./workload.ts";
