/**
 * The chart geometry (ui/app/chart_math.ts): nice scales hold the largest value with round
 * steps and respect the minimum top; line paths break at gaps and mark lone points; projection
 * clamps to its target range.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { linePath, niceScale, project } from "../ui/app/chart_math.ts";

Deno.test("niceScale() picks round steps that hold the largest value", async (t) => {
  const cases: [number, number, number[]][] = [
    [0, 1, [0, 0.25, 0.5, 0.75, 1]],
    [7, 1, [0, 2, 4, 6, 8]],
    [10, 1, [0, 2.5, 5, 7.5, 10]],
    [93, 1, [0, 25, 50, 75, 100]],
    [1_234, 1, [0, 500, 1_000, 1_500]],
    [0.034, 0.01, [0, 0.01, 0.02, 0.03, 0.04]],
  ];
  for (const [valueMax, topMin, ticks] of cases) {
    await t.step(`${valueMax} (min ${topMin})`, () => {
      const scale = niceScale(valueMax, { tickCount: 4, topMin });
      deepEqual(scale.ticks, ticks);
      equal(scale.top, ticks[ticks.length - 1]);
    });
  }
  throws(() => niceScale(1, { tickCount: 0, topMin: 1 }));
});

Deno.test("linePath() breaks at gaps and marks lone points", () => {
  const path = linePath([
    { x: 0, y: 10 },
    { x: 1, y: 12.345 },
    { x: 2, y: null },
    { x: 3, y: 5 },
    { x: 4, y: null },
    { x: 5, y: 1 },
    { x: 6, y: 2 },
  ]);
  equal(path, "M0 10L1 12.3M3 5h0M5 1L6 2");
  equal(linePath([]), "");
  equal(linePath([{ x: 0, y: null }]), "");
});

Deno.test("project() maps linearly and clamps", () => {
  equal(project(5, [0, 10], [100, 0]), 50);
  equal(project(-3, [0, 10], [0, 200]), 0);
  equal(project(30, [0, 10], [0, 200]), 200);
  throws(() => project(1, [2, 2], [0, 1]));
});
