/**
 * Latency recording for benchmarks: exact count, sum and max, and percentiles from a uniform
 * reservoir sample (Vitter's algorithm R) bounded by {@linkcode LATENCY_SAMPLES_MAX}, so a long
 * run never grows memory without bound.
 */

/** The most latency samples kept for percentiles. */
export const LATENCY_SAMPLES_MAX = 1_000_000;

/** Percentiles and totals of a set of latencies, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** A bounded latency recorder. */
export class LatencyRecorder {
  readonly #samples: Float64Array;
  #count = 0;
  #sumMs = 0;
  #maxMs = 0;
  #seed: number;

  constructor(capacity = LATENCY_SAMPLES_MAX, seed = 0x2545f491) {
    this.#samples = new Float64Array(capacity);
    this.#seed = seed >>> 0 || 1;
  }

  /** Records one latency. */
  record(ms: number): void {
    this.#count++;
    this.#sumMs += ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
    const capacity = this.#samples.length;
    if (this.#count <= capacity) {
      this.#samples[this.#count - 1] = ms;
      return;
    }
    const slot = this.#next() % this.#count;
    if (slot < capacity) this.#samples[slot] = ms;
  }

  /** How many latencies were recorded. */
  get count(): number {
    return this.#count;
  }

  /** The summary of everything recorded so far. */
  summary(): LatencySummary {
    const kept = Math.min(this.#count, this.#samples.length);
    const sorted = this.#samples.slice(0, kept).sort();
    const at = (p: number) => kept === 0 ? 0 : sorted[Math.min(kept - 1, Math.ceil(p * kept) - 1)]!;
    return {
      count: this.#count,
      meanMs: this.#count === 0 ? 0 : this.#sumMs / this.#count,
      p50Ms: at(0.5),
      p90Ms: at(0.9),
      p99Ms: at(0.99),
      maxMs: this.#maxMs,
    };
  }

  #next(): number {
    // xorshift32: cheap, seeded, good enough to pick reservoir slots.
    let x = this.#seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#seed = x >>> 0;
    return this.#seed;
  }
}
