/**
 * LoopStalls: the node timer's lateness becomes the longest stall, counts over each threshold
 * and a warning for a stall as long as an election timeout. The real node's timer feeds it; a
 * paused node process shows it in `/metrics` (tests/loop_stall_e2e_test.ts).
 */
import { deepEqual, equal, match } from "node:assert/strict";
import { LoopStalls, STALL_THRESHOLDS_MS, STALL_WARN_MS } from "./loop_stalls.ts";

Deno.test("LoopStalls keeps the longest stall, counts over thresholds, warns on long ones", () => {
  const warned: number[] = [];
  const stalls = new LoopStalls((ms) => warned.push(ms));
  for (const lateMs of [-3, 0, 2, 99, 100, 480, STALL_WARN_MS, 2_345]) stalls.note(lateMs);
  equal(stalls.maxMs, 2_345);
  deepEqual(STALL_THRESHOLDS_MS, [100, 500]);
  deepEqual(stalls.over, [4, 2]);
  deepEqual(warned, [STALL_WARN_MS, 2_345]);
  const text = stalls.format('node="2"').join("\n");
  match(text, /^aspen_node_event_loop_stall_ms_max\{node="2"\} 2345$/m);
  match(text, /^aspen_node_event_loop_stalls_total\{node="2",over_ms="100"\} 4$/m);
  match(text, /^aspen_node_event_loop_stalls_total\{node="2",over_ms="500"\} 2$/m);
  match(text, /^# TYPE aspen_node_event_loop_stalls_total counter$/m);
});
