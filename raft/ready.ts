/**
 * The single output of the core. See {@linkcode Ready} for the contract every caller follows.
 */
import type { Entry, HardState, Message, ReadState, Snapshot } from "./types.ts";

/**
 * Everything the core needs the caller to do, as one value.
 *
 * The contract (STYLE §1.6), in this order:
 * 1. Persist `hardState` (when not null), append `entries` (truncating any conflicting stored
 *    suffix) and apply `snapshot` (when not null) to storage, durably (fsync) when `mustSync`.
 * 2. Only then send `messages`: votes and acks in them promise that step 1 is durable. One
 *    exception: a leader's Ready whose `hardState` keeps the term and vote already durable may
 *    send its messages (appends, heartbeats) before its writes are durable (Raft thesis
 *    §10.2.1), since a leader counts its own entries toward a commit only after `advance()`.
 * 3. Restore the state machine from `snapshot` when there is one, then apply `committed` in
 *    index order, and serve `readStates` once the applied index reaches each one's index.
 * 4. Call `advance(ready)`. Never ask for the next Ready before that, and never call any other
 *    RawNode method between `ready()` and `advance()`.
 */
export interface Ready {
  /** The hard state to persist, or null when it did not change. */
  readonly hardState: HardState | null;
  /** Entries to append before sending messages. */
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader, to persist and restore; null when none. */
  readonly snapshot: Snapshot | null;
  /** Committed entries to apply, in index order. */
  readonly committed: readonly Entry[];
  /** Messages to send after the writes above are durable. */
  readonly messages: readonly Message[];
  /** Linearizable reads now allowed once the state machine has applied `index`. */
  readonly readStates: readonly ReadState[];
  /** Whether the writes must be synced to disk before the messages go out. */
  readonly mustSync: boolean;
}
