/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * A live line chart of one metric per shard over the last {@linkcode CHART_WINDOW_MS}, drawn as
 * SVG in a fixed coordinate box. Each poll changes only the lines' path data and the labels, so
 * the chart never flickers or moves the page. With more shards than
 * {@linkcode CHART_SERIES_MAX}, the busiest shards over the window are drawn, in id order, each
 * in its own colour (the stylesheet has one per drawn line). A gap in the data (the node did not
 * answer) is a gap in the lines.
 */
import { linePath, niceScale, project } from "./chart_math.ts";
import { useStore } from "./context.ts";
import { formatCompact, formatLatencyMs, formatPercent } from "./format.ts";
import { CHART_SERIES_MAX, CHART_WINDOW_MS, POLL_INTERVAL_MS } from "./limits.ts";
import { type ChartMetric, type Sample, type SeriesPoint, shardSeries } from "./rates.ts";

const WIDTH = 640;
const HEIGHT = 200;
const PLOT = { left: 52, right: 12, top: 10, bottom: 24 } as const;
/** A step between points longer than this breaks the line. */
const GAP_MS = 3 * POLL_INTERVAL_MS;
const TIME_TICKS_MIN = [5, 4, 3, 2, 1, 0] as const;

interface MetricInfo {
  readonly title: string;
  readonly unit: string;
  readonly format: (value: number | null) => string;
  readonly topMin: number;
}

const METRICS: Readonly<Record<ChartMetric, MetricInfo>> = {
  proposalsPerSecond: {
    title: "Throughput",
    unit: "proposals / s",
    format: formatCompact,
    topMin: 10,
  },
  optimisticTxnsPerSecond: {
    title: "Optimistic transactions",
    unit: "txns / s",
    format: formatCompact,
    topMin: 10,
  },
  conflictRate: {
    title: "Conflict rate",
    unit: "conflicts / optimistic txns",
    format: formatPercent,
    topMin: 0.05,
  },
  applyLatencyP99Ms: {
    title: "p99 apply latency",
    unit: "ms",
    format: formatLatencyMs,
    topMin: 5,
  },
};

interface Series {
  readonly shard: number;
  readonly points: readonly SeriesPoint[];
  readonly latest: number | null;
}

/** The chart of `metric` for the shards in the store's history. */
export function MetricChart(props: { metric: ChartMetric; id: string }) {
  const store = useStore();
  const history = store.history.value;
  const info = METRICS[props.metric];
  const series = pickSeries(history, props.metric);
  const endMs = history.length === 0 ? 0 : history[history.length - 1]!.atMs;
  const valueMax = Math.max(0, ...series.flatMap((line) => line.points.map((p) => p.value ?? 0)));
  const scale = niceScale(valueMax, { tickCount: 4, topMin: info.topMin });
  const x = (atMs: number) =>
    project(atMs, [endMs - CHART_WINDOW_MS, endMs], [PLOT.left, WIDTH - PLOT.right]);
  const y = (value: number) => project(value, [0, scale.top], [HEIGHT - PLOT.bottom, PLOT.top]);
  const summary = series.map((line) => `shard ${line.shard} ${info.format(line.latest)}`);
  const shardCount = history.length === 0 ? 0 : history[history.length - 1]!.status.shards.length;
  const subset = series.length < shardCount ? ` · busiest ${series.length} of ${shardCount}` : "";
  return (
    <figure class="panel chart" aria-labelledby={`${props.id}-title`} data-metric={props.metric}>
      <figcaption class="panel-head">
        <h2 id={`${props.id}-title`}>{info.title}</h2>
        <span class="panel-note">{info.unit}, last 5 minutes{subset}</span>
      </figcaption>
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        class="chart-svg"
        role="img"
        aria-label={`${info.title} per shard; latest: ${summary.join(", ") || "no data"}`}
      >
        {scale.ticks.map((tick) => (
          <g key={tick} class="chart-grid">
            <line x1={PLOT.left} x2={WIDTH - PLOT.right} y1={y(tick)} y2={y(tick)} />
            <text x={PLOT.left - 6} y={y(tick)} class="chart-label" text-anchor="end">
              {info.format(tick)}
            </text>
          </g>
        ))}
        {TIME_TICKS_MIN.map((minutes) => (
          <text
            key={minutes}
            x={x(endMs - minutes * 60_000)}
            y={HEIGHT - 6}
            class="chart-label"
            text-anchor={minutes === 5 ? "start" : minutes === 0 ? "end" : "middle"}
          >
            {minutes === 0 ? "now" : `−${minutes} m`}
          </text>
        ))}
        {series.map((line, i) => (
          <path
            key={line.shard}
            class={`chart-line series-${i}`}
            d={linePath(
              withGaps(line.points).map((p) => ({
                x: x(p.atMs),
                y: p.value === null ? null : y(p.value),
              })),
            )}
          />
        ))}
      </svg>
      <Legend series={series} format={info.format} />
    </figure>
  );
}

function Legend(props: { series: readonly Series[]; format: (value: number | null) => string }) {
  return (
    <ul class="legend" aria-label="Latest value per shard">
      {props.series.map((line, i) => (
        <li key={line.shard} data-shard={line.shard}>
          <span class={`swatch series-${i}`} aria-hidden="true" />
          Shard {line.shard}
          <span class="legend-value num">{props.format(line.latest)}</span>
        </li>
      ))}
    </ul>
  );
}

/** The series to draw: every shard, or the busiest {@linkcode CHART_SERIES_MAX} of them. */
function pickSeries(history: readonly Sample[], metric: ChartMetric): Series[] {
  const endMs = history.length === 0 ? 0 : history[history.length - 1]!.atMs;
  const window = history.filter((sample) => sample.atMs >= endMs - CHART_WINDOW_MS);
  const latest = window.length === 0 ? null : window[window.length - 1]!;
  const shardIds = latest === null ? [] : latest.status.shards.map((shard) => shard.id);
  const all = shardIds.map((shard) => {
    const points = shardSeries(window, shard, metric);
    return { shard, points, latest: points[points.length - 1]?.value ?? null };
  });
  if (all.length <= CHART_SERIES_MAX) return all;
  const weight = (line: Series) => line.points.reduce((sum, p) => sum + (p.value ?? 0), 0);
  const busiest = [...all].sort((a, b) => weight(b) - weight(a)).slice(0, CHART_SERIES_MAX);
  return busiest.sort((a, b) => a.shard - b.shard);
}

/** Inserts a null point where two points are further apart than {@linkcode GAP_MS}. */
function withGaps(points: readonly SeriesPoint[]): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  for (let i = 0; i < points.length; i++) {
    const point = points[i]!;
    if (i > 0 && point.atMs - points[i - 1]!.atMs > GAP_MS) {
      out.push({ atMs: point.atMs, value: null });
    }
    out.push(point);
  }
  return out;
}
