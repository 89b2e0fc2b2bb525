/**
 * DueSchedule on the real timer with short due times: a fire runs only the jobs that are due,
 * each once per arming; a job that arms itself again runs again; a disarmed job never runs; and
 * no timer is left once no job is armed (the test sanitizers would report one).
 */
import { deepEqual, equal } from "node:assert/strict";
import { type DueJob, DueSchedule } from "./due_schedule.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("DueSchedule runs each job at its due time, and only the jobs that are due", async () => {
  const schedule = new DueSchedule(() => performance.now());
  const ran: string[] = [];
  const job = (name: string): DueJob => ({ run: () => ran.push(name) });
  const early = job("early");
  const late = job("late");
  const never = job("never");
  const start = performance.now();
  schedule.arm(late, start + 250);
  schedule.arm(early, start + 10);
  schedule.arm(never, start + 20);
  schedule.disarm(never);
  equal(schedule.size, 2);
  await sleep(80);
  deepEqual(ran, ["early"], "the late job is not due yet");
  await sleep(250);
  deepEqual(ran, ["early", "late"]);
  equal(schedule.size, 0, "a job runs once per arming");
});

Deno.test("DueSchedule: a job re-armed from its run runs again; null disarms", async () => {
  const schedule = new DueSchedule(() => performance.now());
  let runs = 0;
  const again: DueJob = {
    run() {
      runs++;
      schedule.arm(again, runs < 3 ? performance.now() + 5 : null);
    },
  };
  schedule.arm(again, performance.now());
  await sleep(80);
  equal(runs, 3);
  equal(schedule.size, 0);
});

Deno.test("DueSchedule: arming a job again replaces its due time", async () => {
  const schedule = new DueSchedule(() => performance.now());
  let runs = 0;
  const job: DueJob = { run: () => runs++ };
  schedule.arm(job, performance.now() + 10);
  schedule.arm(job, performance.now() + 250);
  await sleep(80);
  equal(runs, 0, "the earlier time was replaced (the timer fired and found nothing due)");
  await sleep(250);
  equal(runs, 1);
});
