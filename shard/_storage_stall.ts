/**
 * The bookkeeping of a replica stalled on storage (private to shard/): the Ready it holds, the
 * step that failed, and when to try it again. The control flow (what is retried, what is
 * refused meanwhile) stays in replica.ts; this file only counts and describes.
 *
 * ```text
 *   write ok ──▶ (no stall)
 *   write fails on storage ──▶ stalled: hold the Ready, refuse proposals at once
 *        ▲                          │ ticks count down: 1, 2, 4 ... STORAGE_RETRY_TICKS_MAX
 *        └──── fails again ◀── retry the failed step ──▶ succeeds ──▶ (no stall)
 * ```
 */
import { assert, type Ready } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { describeStorageFailure, type StorageFailureKind } from "./storage_failure.ts";

/** Ticks before the first retry of a write that failed on storage (a node's tick is 50 ms). */
export const STORAGE_RETRY_TICKS_MIN = 1;
/**
 * The most ticks between two retries of a write that failed on storage (1 s on a node): the
 * wait doubles after each failure up to this, so a stalled replica resumes within about this
 * long once space returns, and a failing disk is not hammered.
 */
export const STORAGE_RETRY_TICKS_MAX = 20;

assert(STORAGE_RETRY_TICKS_MIN >= 1, "a retry waits at least one tick");
assert(STORAGE_RETRY_TICKS_MIN <= STORAGE_RETRY_TICKS_MAX, "retry bounds are ordered");

/** The step of a Ready that failed, and is retried. */
export type StallStage = "persist" | "restore" | "apply";

/**
 * A replica whose log write or apply failed on storage (a full disk, an I/O error). It holds
 * the Ready that failed and retries the same step until it succeeds; meanwhile it refuses
 * proposals at once with `kind` as the error code.
 */
export interface StorageStallStatus {
  readonly kind: StorageFailureKind;
  /** What failed: the Raft log write, or the state machine restore or apply. */
  readonly stage: StallStage;
  /** The last failure, as the storage described it. */
  readonly reason: string;
  /** When the stall began, in the replica's monotonic milliseconds. */
  readonly sinceMs: number;
  /** Failed attempts so far, the first included. */
  readonly attempts: number;
}

/** A held Ready whose storage write failed, and when to try it again. */
export class StorageStall {
  readonly ready: Ready;
  readonly stage: StallStage;
  readonly kind: StorageFailureKind;
  readonly reason: string;
  #sinceMs: number;
  #attempts = 1;
  /** Ticks between attempts: doubles after each failure, up to STORAGE_RETRY_TICKS_MAX. */
  #backoffTicks = STORAGE_RETRY_TICKS_MIN;
  #ticksLeft = STORAGE_RETRY_TICKS_MIN;

  constructor(options: {
    readonly ready: Ready;
    readonly stage: StallStage;
    readonly kind: StorageFailureKind;
    readonly error: unknown;
    readonly nowMs: number;
  }) {
    this.ready = options.ready;
    this.stage = options.stage;
    this.kind = options.kind;
    this.reason = describeStorageFailure(options.error);
    this.#sinceMs = options.nowMs;
  }

  /** Counts `ticks` more ticks; true once the next attempt is due. */
  countTicks(ticks: number): boolean {
    assert(Number.isSafeInteger(ticks) && ticks >= 0, "ticks are a count");
    this.#ticksLeft -= ticks;
    return this.#ticksLeft <= 0;
  }

  /**
   * Makes `next` (the failure of a retry, perhaps at a later step of the same Ready) continue
   * this stall: same start, one more attempt, twice the wait.
   */
  continueAs(next: StorageStall): void {
    assert(next.ready === this.ready, "a stall continues with the same Ready");
    assert(next.#attempts === 1, "a stall is continued once");
    next.#sinceMs = this.#sinceMs;
    next.#attempts = this.#attempts + 1;
    next.#backoffTicks = Math.min(this.#backoffTicks * 2, STORAGE_RETRY_TICKS_MAX);
    next.#ticksLeft = next.#backoffTicks;
  }

  /** What status and alarms show. */
  status(): StorageStallStatus {
    return {
      kind: this.kind,
      stage: this.stage,
      reason: this.reason,
      sinceMs: this.#sinceMs,
      attempts: this.#attempts,
    };
  }

  /** The error for a request a stalled leader refuses: the storage failure's own code. */
  refusal(shard: number, action: string): AspenError {
    const what = this.kind === "no_space" ? "its disk is full" : "its storage is failing";
    return new AspenError(
      this.kind,
      `Cannot ${action} shard ${shard} on this node: ${what} (${this.reason}); ` +
        "writes resume by themselves once the storage accepts them again",
      { shard },
    );
  }
}
