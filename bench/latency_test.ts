/**
 * LatencyRecorder: exact count, mean and max always; exact percentiles while every sample is
 * kept; and a bounded reservoir past its capacity whose percentiles stay close to the truth on
 * a known uniform distribution (seeded, so the test is deterministic).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { LatencyRecorder } from "./latency.ts";

Deno.test("LatencyRecorder summarises an empty run as zeros", () => {
  deepEqual(new LatencyRecorder(8).summary(), {
    count: 0,
    meanMs: 0,
    p50Ms: 0,
    p90Ms: 0,
    p99Ms: 0,
    maxMs: 0,
  });
});

Deno.test("LatencyRecorder gives exact percentiles while every sample fits", () => {
  const recorder = new LatencyRecorder(1000);
  // 1..100 in a scrambled order: the summary must not depend on the order.
  for (let i = 0; i < 100; i++) recorder.record(((i * 37) % 100) + 1);
  deepEqual(recorder.summary(), {
    count: 100,
    meanMs: 50.5,
    p50Ms: 50,
    p90Ms: 90,
    p99Ms: 99,
    maxMs: 100,
  });
});

Deno.test("LatencyRecorder keeps count, mean and max exact past its capacity", () => {
  const capacity = 1000;
  const recorder = new LatencyRecorder(capacity, 7);
  const total = 200_000;
  let sum = 0;
  for (let i = 0; i < total; i++) {
    const ms = (i * 7919) % 10_000 / 100; // every value of 0..99.99 twice, scrambled
    sum += ms;
    recorder.record(ms);
  }
  recorder.record(500);
  const summary = recorder.summary();
  equal(summary.count, total + 1);
  equal(summary.maxMs, 500);
  ok(Math.abs(summary.meanMs - (sum + 500) / (total + 1)) < 1e-9);
  // A uniform 1000-sample reservoir: percentiles within a few points of the true ones.
  ok(Math.abs(summary.p50Ms - 50) < 5, `p50 ${summary.p50Ms}`);
  ok(Math.abs(summary.p90Ms - 90) < 4, `p90 ${summary.p90Ms}`);
  ok(Math.abs(summary.p99Ms - 99) < 2, `p99 ${summary.p99Ms}`);
});
