/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The metrics page: the four per-shard time series side by side.
 */
import { MetricChart } from "./chart.tsx";

/** The metrics page. */
export function MetricsPage() {
  return (
    <div class="chart-grid">
      <MetricChart metric="proposalsPerSecond" id="chart-throughput" />
      <MetricChart metric="optimisticTxnsPerSecond" id="chart-txns" />
      <MetricChart metric="conflictRate" id="chart-conflicts" />
      <MetricChart metric="applyLatencyP99Ms" id="chart-latency" />
    </div>
  );
}
