/**
 * One timer for the periodic jobs of a node's shards that are due only now and then (the lease
 * timers: a lease deadline, a refused snapshot to look at). Each job says when it is next due,
 * or that it is not; the schedule keeps one timer armed for the earliest due time and, when it
 * fires, runs only the jobs that are due. An idle node whose shards hold no lease and sleep has
 * no job armed and no timer: nothing visits its shards, however many it hosts. (A shared
 * 500 ms interval that called every shard's check used to do that, twice a second.)
 */
import { assert } from "../../raft/mod.ts";
import { EarliestTimer } from "../../transport/mod.ts";

/** A job of a {@linkcode DueSchedule}. */
export interface DueJob {
  /** Runs the job; it arms itself again (DueSchedule.arm) when it has more to do. */
  run(): void;
}

/** Due times of many jobs on one timer. */
export class DueSchedule {
  readonly #nowMs: () => number;
  readonly #timer: EarliestTimer;
  readonly #dueMs = new Map<DueJob, number>();

  /** `nowMs`: the monotonic clock the due times are measured on. */
  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
    this.#timer = new EarliestTimer(nowMs, () => this.#fire());
  }

  /** Jobs armed now (for tests and assertions). */
  get size(): number {
    return this.#dueMs.size;
  }

  /** Runs `job` at `dueMs` (replacing the time it was armed for); null disarms it. */
  arm(job: DueJob, dueMs: number | null): void {
    if (dueMs === null) {
      this.disarm(job);
      return;
    }
    assert(Number.isFinite(dueMs), "DueSchedule.arm: a finite due time");
    this.#dueMs.set(job, dueMs);
    this.#timer.arm(dueMs);
  }

  /** Forgets `job`; the timer stops once no job is armed. */
  disarm(job: DueJob): void {
    this.#dueMs.delete(job);
    if (this.#dueMs.size === 0) this.#timer.disarm();
  }

  /** Runs the jobs that are due (each is disarmed first), then arms for the earliest left. */
  #fire(): void {
    const nowMs = this.#nowMs();
    const due: DueJob[] = [];
    for (const [job, dueMs] of this.#dueMs) {
      if (dueMs <= nowMs) due.push(job);
    }
    for (const job of due) this.#dueMs.delete(job);
    for (const job of due) job.run();
    let earliestMs = Infinity;
    for (const dueMs of this.#dueMs.values()) earliestMs = Math.min(earliestMs, dueMs);
    if (earliestMs < Infinity) this.#timer.arm(earliestMs);
    else this.#timer.disarm();
  }
}
