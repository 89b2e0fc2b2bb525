/**
 * DeadlineTimer with a fake clock: a promise that settles first wins and leaves no timer
 * behind (the op sanitizer would catch a leaked one); a deadline that passes first rejects
 * with the timeout error and the later outcome is ignored; of many waiters only those past
 * their deadline fail, and the rest still settle normally. The timer fires as soon as the
 * fake clock says a deadline has passed, so nothing waits on real time.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { DeadlineTimer } from "./deadline_timer.ts";

/** Lets a zero-delay timer and the promise callbacks after it run. */
function nextTimer(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("DeadlineTimer: the promise wins and no timer is left", async () => {
  let now = 0;
  const deadlines = new DeadlineTimer(() => now);
  const results = await Promise.all([
    deadlines.race(Promise.resolve(1), 10_000, () => new Error("late")),
    deadlines.race(Promise.resolve(2), 20_000, () => new Error("late")),
  ]);
  deepEqual(results, [1, 2]);
  equal(deadlines.size, 0);
  now = 30_000;
  await rejects(
    deadlines.race(Promise.reject(new Error("own error")), 40_000, () => new Error("late")),
    /own error/,
  );
  equal(deadlines.size, 0);
});

Deno.test("DeadlineTimer: a passed deadline rejects and the late answer is ignored", async () => {
  let now = 0;
  const deadlines = new DeadlineTimer(() => now);
  const { promise, resolve } = Promise.withResolvers<string>();
  const raced = deadlines.race(promise, 100, () => new Error("timed out"));
  now = 100;
  // Re-arm for an earlier deadline: the timer is due at once by the fake clock.
  const other = deadlines.race(new Promise<string>(() => {}), 50, () => new Error("other late"));
  await rejects(other, /other late/);
  await rejects(raced, /timed out/);
  resolve("too late");
  await nextTimer();
  equal(deadlines.size, 0);
});

Deno.test("DeadlineTimer: only the waiters past their deadline fail", async () => {
  const now = 20;
  const deadlines = new DeadlineTimer(() => now);
  const pending = [10, 20, 1_000_000].map((deadline) => {
    const { promise, resolve } = Promise.withResolvers<number>();
    const raced = deadlines.race(promise, deadline, () => new Error(`late ${deadline}`));
    const outcome = raced.then((value) => `ok ${value}`, (error: Error) => error.message);
    return { resolve, outcome };
  });
  await nextTimer();
  equal(deadlines.size, 1, "two deadlines passed; the third waits, re-armed");
  pending[2]!.resolve(3);
  pending[0]!.resolve(1);
  deepEqual(await Promise.all(pending.map((item) => item.outcome)), [
    "late 10",
    "late 20",
    "ok 3",
  ]);
  equal(deadlines.size, 0);
});
