/**
 * EarliestTimer: it fires once for the earliest deadline it was armed for, ignores later
 * deadlines while armed, fires no more once disarmed, and can be armed again after firing.
 */
import { deepEqual, equal } from "node:assert/strict";
import { EarliestTimer } from "./earliest_timer.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("EarliestTimer fires for the earliest deadline, once", async () => {
  const fired: number[] = [];
  const start = performance.now();
  const timer = new EarliestTimer(() => performance.now(), () => {
    fired.push(Math.round(performance.now() - start));
  });
  timer.arm(start + 5_000);
  timer.arm(start + 10); // earlier: replaces the later one
  timer.arm(start + 8_000); // later: ignored while armed
  equal(timer.isArmed, true);
  await sleep(60);
  equal(fired.length, 1, "fired once");
  equal(timer.isArmed, false);
  timer.arm(performance.now() + 5);
  await sleep(40);
  equal(fired.length, 2, "fires again once re-armed");
});

Deno.test("EarliestTimer.disarm() stops it", async () => {
  const fired: string[] = [];
  const timer = new EarliestTimer(() => performance.now(), () => fired.push("fired"));
  timer.arm(performance.now() + 5);
  timer.disarm();
  equal(timer.isArmed, false);
  await sleep(30);
  deepEqual(fired, []);
});
