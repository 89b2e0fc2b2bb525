/**
 * The pure geometry of the console's line charts: a "nice" vertical scale with round tick
 * values, and the SVG path of a line with gaps. Charts are drawn in a fixed coordinate box, so
 * new data changes only path data and labels, never the layout.
 */
import { assert } from "./assert.ts";

/** A vertical scale from 0 to `top`, with ticks at round values. */
export interface NiceScale {
  readonly top: number;
  readonly ticks: readonly number[];
}

const STEP_FACTORS = [1, 2, 2.5, 5, 10] as const;

/**
 * A scale from 0 that holds `valueMax` with about `tickCount` intervals of a round step
 * (1, 2, 2.5 or 5 times a power of ten). `topMin` keeps an idle chart from zooming into noise.
 */
export function niceScale(valueMax: number, options: { tickCount: number; topMin: number }) {
  assert(options.tickCount >= 1, "a scale needs at least one interval");
  assert(options.topMin > 0, "a scale needs a positive minimum top");
  const target = Math.max(valueMax, options.topMin) / options.tickCount;
  const power = 10 ** Math.floor(Math.log10(target));
  const factor = STEP_FACTORS.find((candidate) => candidate * power >= target * (1 - 1e-9)) ??
    10;
  const step = factor * power;
  const intervals = Math.max(1, Math.ceil(Math.max(valueMax, options.topMin) / step - 1e-9));
  const ticks: number[] = [];
  for (let i = 0; i <= intervals; i++) ticks.push(roundTick(i * step));
  const scale: NiceScale = { top: ticks[ticks.length - 1]!, ticks };
  assert(scale.top >= valueMax, "the scale holds the largest value");
  return scale;
}

function roundTick(value: number): number {
  return Number(value.toPrecision(12));
}

/** A point of a line in chart coordinates; null `y` breaks the line. */
export interface PlotPoint {
  readonly x: number;
  readonly y: number | null;
}

/**
 * The SVG path data of a line through `points` (in x order), broken at null values: "M" starts
 * each run, "L" continues it. A run of one point gets a zero-length segment, which a round
 * line cap draws as a dot, so that it shows.
 */
export function linePath(points: readonly PlotPoint[]): string {
  const parts: string[] = [];
  for (let i = 0; i < points.length; i++) {
    const y = points[i]!.y;
    if (y === null) continue;
    const startsRun = i === 0 || points[i - 1]!.y === null;
    const endsRun = i === points.length - 1 || points[i + 1]!.y === null;
    parts.push(`${startsRun ? "M" : "L"}${fixed(points[i]!.x)} ${fixed(y)}`);
    if (startsRun && endsRun) parts.push("h0");
  }
  return parts.join("");
}

function fixed(value: number): string {
  return String(Math.round(value * 10) / 10);
}

/** Maps `value` from `[fromMin, fromMax]` onto `[toMin, toMax]`, clamped to the target range. */
export function project(
  value: number,
  from: readonly [number, number],
  to: readonly [number, number],
): number {
  const [fromMin, fromMax] = from;
  const [toMin, toMax] = to;
  assert(fromMax > fromMin, "a projection needs a non-empty source range");
  const ratio = Math.min(1, Math.max(0, (value - fromMin) / (fromMax - fromMin)));
  return toMin + ratio * (toMax - toMin);
}
