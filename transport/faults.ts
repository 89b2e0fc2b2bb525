/**
 * Test-only fault injection for the peer channel: drop or delay outbound traffic to chosen
 * peers. It exists for the cluster fault tests of a later issue, and it refuses to change
 * anything unless the transport was started with `faults: { enabled: true }`, so a
 * production node can never be talked into dropping its own traffic.
 *
 * Drops apply per Raft message (at `send()`), per request and per response; a dropped request
 * ends in a `timeout` at its deadline, as a lost packet would. Delays hold every outbound frame
 * for that peer for `delayMs` and keep their order. Handshakes and pings are never touched, so
 * the connection itself stays up and the round-trip time stays truthful.
 */

import { assert } from "../raft/mod.ts";
import { AspenError } from "../shard/mod.ts";

/** The longest injected delay. */
export const FAULT_DELAY_MS_MAX = 60_000;

/** What happens to outbound traffic for one peer. */
export interface PeerFaultRule {
  /** Probability in [0, 1] that each message, request or response is dropped. */
  readonly dropProbability: number;
  /** Extra delay of every outbound frame, 0..FAULT_DELAY_MS_MAX. */
  readonly delayMs: number;
}

/** How to start fault injection. */
export interface PeerFaultOptions {
  /** Must be true for any rule to be set. */
  readonly enabled: boolean;
  /** Seeds the drop decisions so a test run can be replayed; random when absent. */
  readonly seed?: number;
}

/**
 * The fault rules of one transport.
 *
 * @example
 * ```ts
 * transport.faults.set(2, { dropProbability: 1, delayMs: 0 }); // cut traffic to node 2
 * transport.faults.clear();
 * ```
 */
export class PeerFaults {
  readonly #isEnabled: boolean;
  readonly #rules = new Map<number, PeerFaultRule>();
  #prngState: number;

  constructor(options: PeerFaultOptions) {
    this.#isEnabled = options.enabled;
    const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
    assert(Number.isSafeInteger(seed), "fault seed is an integer");
    this.#prngState = seed >>> 0;
  }

  /** True when the transport was started with `faults: { enabled: true }`. */
  get isEnabled(): boolean {
    return this.#isEnabled;
  }

  /**
   * Sets the rule for traffic to `nodeId`.
   *
   * @throws {AspenError} `forbidden` when fault injection is disabled; `bad_request` when the
   *   probability or delay is out of range.
   */
  set(nodeId: number, rule: PeerFaultRule): void {
    this.#checkEnabled();
    const isProbability = rule.dropProbability >= 0 && rule.dropProbability <= 1;
    const isDelay = Number.isSafeInteger(rule.delayMs) && rule.delayMs >= 0 &&
      rule.delayMs <= FAULT_DELAY_MS_MAX;
    if (!isProbability || !isDelay) {
      throw new AspenError(
        "bad_request",
        `Cannot set a fault for node ${nodeId}: dropProbability must be 0..1 and delayMs ` +
          `0..${FAULT_DELAY_MS_MAX}`,
        { node: nodeId },
      );
    }
    this.#rules.set(nodeId, { dropProbability: rule.dropProbability, delayMs: rule.delayMs });
  }

  /**
   * Removes the rule for `nodeId`, or every rule when no node is given.
   *
   * @throws {AspenError} `forbidden` when fault injection is disabled.
   */
  clear(nodeId?: number): void {
    this.#checkEnabled();
    if (nodeId === undefined) this.#rules.clear();
    else this.#rules.delete(nodeId);
  }

  /** The rules in force, by peer node id (for the test endpoint that shows them). */
  list(): { readonly peer: number; readonly rule: PeerFaultRule }[] {
    return [...this.#rules].map(([peer, rule]) => ({ peer, rule }));
  }

  /** Decides whether the next unit of traffic to `nodeId` is dropped. */
  shouldDrop(nodeId: number): boolean {
    const rule = this.#rules.get(nodeId);
    if (rule === undefined || rule.dropProbability === 0) return false;
    if (rule.dropProbability === 1) return true;
    return this.#nextUnit() < rule.dropProbability;
  }

  /** The delay for traffic to `nodeId`, 0 when none. */
  delayMs(nodeId: number): number {
    return this.#rules.get(nodeId)?.delayMs ?? 0;
  }

  #checkEnabled(): void {
    if (!this.#isEnabled) {
      throw new AspenError(
        "forbidden",
        "Cannot change peer faults: fault injection is disabled " +
          "(start the transport with faults: { enabled: true })",
      );
    }
  }

  /** mulberry32: a small, well-mixed 32-bit PRNG; returns a number in [0, 1). */
  #nextUnit(): number {
    this.#prngState = (this.#prngState + 0x6d2b79f5) >>> 0;
    let t = this.#prngState;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
