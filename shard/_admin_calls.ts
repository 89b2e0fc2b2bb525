/**
 * Calls into a replica's core on an operator's behalf (private to shard/): leadership
 * transfers and elections, queued like every other input and run by the driver at the start of
 * its next turn, before that turn's messages and proposals change the state they were made
 * against.
 */
import { assert } from "../raft/mod.ts";
import type { AspenError } from "./errors.ts";

interface AdminCall {
  /** Runs the call against the core: null when it took effect, or the refusal. */
  readonly run: () => AspenError | null;
  readonly resolve: () => void;
  readonly reject: (error: AspenError) => void;
}

/** The admin calls waiting for a turn. */
export class AdminCalls {
  readonly #calls: AdminCall[] = [];

  /** How many calls wait. */
  get size(): number {
    return this.#calls.length;
  }

  /** Queues `run`; the promise settles with its outcome once a turn ran it. */
  enqueue(run: () => AspenError | null): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#calls.push({ run, resolve, reject });
    return promise;
  }

  /** Runs every queued call, in order. */
  runAll(): void {
    for (const call of this.#calls.splice(0)) {
      const refusal = call.run();
      if (refusal === null) call.resolve();
      else call.reject(refusal);
    }
    assert(this.#calls.length === 0, "a call never queues another while it runs");
  }

  /** Fails every queued call (the replica closes). */
  rejectAll(error: AspenError): void {
    for (const call of this.#calls.splice(0)) call.reject(error);
  }
}
