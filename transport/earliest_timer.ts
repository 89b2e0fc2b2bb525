/**
 * One timer for many deadlines: armed for the earliest deadline it was asked for, never
 * re-armed for a later one, cleared on demand. Its owner keeps the deadlines themselves; when
 * the timer fires, the owner expires what is due and arms it again for the earliest one left.
 * Under load the timer stays armed and a new deadline costs a comparison, not a setTimeout.
 */

/**
 * A re-armable timer for the earliest of many deadlines.
 *
 * @example
 * ```ts
 * const timer = new EarliestTimer(() => performance.now(), () => expireDue());
 * timer.arm(performance.now() + 5_000);
 * timer.disarm();
 * ```
 */
export class EarliestTimer {
  readonly #nowMs: () => number;
  readonly #onFire: () => void;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #atMs = Infinity;

  /** `nowMs` is the monotonic clock of the deadlines; `onFire` runs when the timer fires. */
  constructor(nowMs: () => number, onFire: () => void) {
    this.#nowMs = nowMs;
    this.#onFire = onFire;
  }

  /** Whether the timer is armed. */
  get isArmed(): boolean {
    return this.#timer !== null;
  }

  /** Makes sure the timer fires no later than `deadlineAtMs`. */
  arm(deadlineAtMs: number): void {
    if (this.#timer !== null && this.#atMs <= deadlineAtMs) return;
    this.disarm();
    this.#atMs = deadlineAtMs;
    const delayMs = Math.max(0, Math.ceil(deadlineAtMs - this.#nowMs()));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#atMs = Infinity;
      this.#onFire();
    }, delayMs);
  }

  /** Clears the timer (nothing waits any more). */
  disarm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#atMs = Infinity;
  }
}
