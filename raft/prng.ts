/**
 * The injected source of randomness (STYLE §1.4). The core draws election jitter from a `Prng`
 * passed in through its config; it never owns a random source of its own.
 */
import { assert } from "./assert.ts";

/** A source of uniformly distributed integers. */
export interface Prng {
  /** Returns an integer in `[0, bound)`; `bound` is a positive safe integer up to 2^32. */
  nextInt(bound: number): number;
}

/**
 * A small seeded generator (SFC32, a public-domain design): fast, 128 bits of state, and the
 * same sequence for the same seed on every platform. Not for secrets.
 *
 * @example
 * ```ts
 * const prng = new SeededPrng(42);
 * const jitter = prng.nextInt(10); // 0..9, the same for every run seeded with 42
 * ```
 */
export class SeededPrng implements Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Seeds the generator from any safe integer. */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), "seed must be a safe integer");
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = (seed >>> 0) ^ 0x5bd1e995;
    this.#b ^= Math.floor(seed / 0x1_0000_0000) >>> 0;
    for (let i = 0; i < 16; i++) this.nextUint32();
  }

  /** Returns the next 32-bit unsigned integer of the sequence. */
  nextUint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Returns an integer in `[0, bound)`. */
  nextInt(bound: number): number {
    assert(Number.isSafeInteger(bound), "bound must be a safe integer");
    assert(bound > 0 && bound <= 0x1_0000_0000, "bound must be in 1..2^32");
    const value = Math.floor((this.nextUint32() / 0x1_0000_0000) * bound);
    assert(value >= 0 && value < bound, "nextInt() result must be below the bound");
    return value;
  }

  /** Returns a float in `[0, 1)`. */
  nextFloat(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }
}
