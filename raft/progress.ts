/**
 * What a leader knows about one follower, and the flow control that bounds what it sends.
 *
 * ```text
 *                 append accepted
 *        +-------------------------------+
 *        |                               v
 *    +-------+  need compacted entries  +----------+
 *    | probe | -----------------------> | snapshot |
 *    +-------+                          +----------+
 *      ^   |  append accepted                |  snapshot installed (ack >= its index)
 *      |   v                                 |  or transfer failed: back to probe
 *    +-----------+  <------------------------+
 *    | replicate |   rejected append or unreachable: back to probe
 *    +-----------+
 * ```
 *
 * A snapshot larger than the group's snapshot limit is never sent: the follower would drop it
 * and stay behind for good. The progress then stays in `snapshot` state with nothing in flight
 * and records the refusal (`snapshotTooLarge`); every heartbeat answer looks again, and sending
 * resumes once a snapshot that fits is available.
 *
 * In `probe` the leader sends one append and waits for an answer (or a heartbeat answer) before
 * sending another; in `replicate` it pipelines appends up to the inflight window; in `snapshot`
 * it sends only snapshot chunks, one at a time.
 */
import { assert } from "./assert.ts";
import { INFLIGHT_APPENDS_MAX, INFLIGHT_BYTES_MAX } from "./limits.ts";
import type { LogIndex, Snapshot } from "./types.ts";

/** A snapshot a leader will not send because it is over the group's snapshot limit. */
export interface SnapshotTooLarge {
  /** The index of the snapshot that was refused. */
  readonly index: LogIndex;
  /** Its size, in bytes. */
  readonly bytes: number;
  /** The limit it passes (`RaftLimits.snapshotBytesMax`), in bytes. */
  readonly limit: number;
}

/** The flow-control state of one follower's progress. */
export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * A bounded window of appends sent but not yet acknowledged, as (last index, bytes) pairs in
 * send order; freeing by acknowledged index pops from the front.
 */
export class Inflights {
  #lastIndexes: number[] = [];
  #bytes: number[] = [];
  #start = 0;
  #bytesTotal = 0;

  /** The number of appends in flight. */
  get count(): number {
    return this.#lastIndexes.length - this.#start;
  }

  /** The payload bytes in flight. */
  get bytesTotal(): number {
    return this.#bytesTotal;
  }

  /** Whether another append must wait (count or bytes at their limit). */
  get isFull(): boolean {
    return this.count >= INFLIGHT_APPENDS_MAX || this.#bytesTotal >= INFLIGHT_BYTES_MAX;
  }

  /** Records an append whose last entry is `lastIndex`. */
  add(lastIndex: LogIndex, bytes: number): void {
    assert(!this.isFull, "Inflights.add() called while full");
    const previous = this.#lastIndexes[this.#lastIndexes.length - 1];
    if (this.count > 0 && previous !== undefined) {
      assert(lastIndex > previous, "inflight appends must have increasing last indexes");
    }
    this.#lastIndexes.push(lastIndex);
    this.#bytes.push(bytes);
    this.#bytesTotal += bytes;
  }

  /** Frees every append whose last index is at most `index`. */
  freeLessOrEqual(index: LogIndex): void {
    while (this.#start < this.#lastIndexes.length) {
      const last = this.#lastIndexes[this.#start];
      assert(last !== undefined, "inflight slot must exist");
      if (last > index) break;
      this.#bytesTotal -= this.#bytes[this.#start] ?? 0;
      this.#start++;
    }
    this.#compact();
    assert(this.#bytesTotal >= 0, "inflight bytes must not go negative");
  }

  /** Frees the oldest append, so that a stuck window can make progress after a heartbeat. */
  freeFirst(): void {
    const first = this.#lastIndexes[this.#start];
    if (first !== undefined) this.freeLessOrEqual(first as LogIndex);
  }

  /** Forgets everything in flight. */
  reset(): void {
    this.#lastIndexes = [];
    this.#bytes = [];
    this.#start = 0;
    this.#bytesTotal = 0;
  }

  #compact(): void {
    if (this.#start === this.#lastIndexes.length) {
      this.reset();
    } else if (this.#start > 64 && this.#start * 2 > this.#lastIndexes.length) {
      this.#lastIndexes = this.#lastIndexes.slice(this.#start);
      this.#bytes = this.#bytes.slice(this.#start);
      this.#start = 0;
    }
  }
}

/** A leader's view of one follower (or of itself): match, next, and flow control. */
export class Progress {
  /** The highest index known to be replicated on the follower. Invariant: match < next. */
  match: LogIndex;
  /** The index of the next entry to send. */
  next: LogIndex;
  state: ProgressState = "probe";
  /** In probe state: an append was sent and no answer has come back yet. */
  isProbeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshotIndex = 0 as LogIndex;
  /**
   * In snapshot state: the snapshot being sent. It is kept even when the leader takes a newer
   * one, so that frequent snapshots cannot restart a long transfer forever.
   */
  pendingSnapshot: Snapshot | null = null;
  /** In snapshot state: the bytes of the snapshot the follower has acknowledged. */
  snapshotOffset = 0;
  /** In snapshot state: a chunk was sent and is not yet acknowledged. */
  isChunkInflight = false;
  /** In snapshot state: the latest heartbeat round sent when the chunk in flight was sent. */
  chunkRound = 0;
  /** In snapshot state: the snapshot the follower needs is too large to send; nothing is. */
  snapshotTooLarge: SnapshotTooLarge | null = null;
  /** Whether the follower answered during the current check-quorum period. */
  isRecentActive = false;
  /** The highest heartbeat round this follower has acknowledged (ReadIndex, leases). */
  ackedRound = 0;
  /** The highest commit index sent to the follower in an append or heartbeat. */
  commitSent = 0 as LogIndex;
  readonly inflights = new Inflights();

  constructor(options: { match: LogIndex; next: LogIndex }) {
    assert(options.match < options.next, "progress needs match < next");
    this.match = options.match;
    this.next = options.next;
  }

  /** Whether the leader must hold back appends to this follower for now. */
  get isPaused(): boolean {
    if (this.state === "probe") return this.isProbeSent;
    if (this.state === "replicate") return this.inflights.isFull;
    return true;
  }

  /** Enters probe state: send from `match + 1`, one append at a time. */
  becomeProbe(): void {
    if (this.state === "snapshot") {
      const pending = this.pendingSnapshotIndex;
      this.#reset("probe");
      this.next = Math.max(this.match + 1, pending + 1) as LogIndex;
    } else {
      this.#reset("probe");
      this.next = (this.match + 1) as LogIndex;
    }
    assert(this.match < this.next, "probe keeps match < next");
  }

  /**
   * Takes the match back to `index`, in probe state: for a learner that lost its log (it
   * counts in no quorum, so nothing committed depended on what it lost).
   */
  forgetMatch(index: LogIndex): void {
    assert(index < this.match, "forgetMatch() moves the match back");
    this.match = index;
    this.#reset("probe");
    this.next = (index + 1) as LogIndex;
    assert(this.match < this.next, "forgetMatch() keeps match < next");
  }

  /** Enters replicate state: pipeline appends from `match + 1`. */
  becomeReplicate(): void {
    this.#reset("replicate");
    this.next = (this.match + 1) as LogIndex;
  }

  /** Enters snapshot state to send `snapshot`. */
  becomeSnapshot(snapshot: Snapshot): void {
    assert(snapshot.metadata.index > this.match, "a snapshot must be ahead of the match");
    this.#reset("snapshot");
    this.pendingSnapshotIndex = snapshot.metadata.index;
    this.pendingSnapshot = snapshot;
  }

  /**
   * Enters snapshot state without a transfer: the follower needs `refusal.index` but that
   * snapshot is over the limit. Paused like a transfer; a probe later looks again.
   */
  refuseSnapshot(refusal: SnapshotTooLarge): void {
    assert(refusal.bytes > refusal.limit, "only a snapshot over the limit is refused");
    assert(refusal.index > this.match, "a refused snapshot is ahead of the match");
    this.#reset("snapshot");
    this.snapshotTooLarge = refusal;
    assert(this.pendingSnapshot === null, "a refused snapshot is not being sent");
  }

  /** Records an accepted append up to `index`; returns whether the match moved forward. */
  maybeUpdate(index: LogIndex): boolean {
    let isUpdated = false;
    if (this.match < index) {
      this.match = index;
      isUpdated = true;
      this.isProbeSent = false;
    }
    if (this.next < index + 1) this.next = (index + 1) as LogIndex;
    assert(this.match < this.next, "maybeUpdate() keeps match < next");
    return isUpdated;
  }

  /**
   * Handles a rejected append whose `prevIndex` was `rejectedIndex`; `nextCandidate` is where the
   * leader wants to resume. Returns false when the rejection is stale and was ignored.
   */
  maybeDecrease(rejectedIndex: LogIndex, nextCandidate: LogIndex): boolean {
    if (this.state === "replicate") {
      if (rejectedIndex <= this.match) return false;
    } else if (this.next - 1 !== rejectedIndex) {
      return false;
    }
    this.next = Math.max(Math.min(rejectedIndex, nextCandidate), this.match + 1) as LogIndex;
    this.isProbeSent = false;
    assert(this.match < this.next, "maybeDecrease() keeps match < next");
    return true;
  }

  /** Records that an append ending at `lastIndex` with `bytes` of payload was sent. */
  onAppendSent(entryCount: number, lastIndex: LogIndex, bytes: number): void {
    if (this.state === "replicate") {
      if (entryCount > 0) {
        this.inflights.add(lastIndex, bytes);
        this.next = (lastIndex + 1) as LogIndex;
      }
    } else {
      assert(this.state === "probe", "appends are not sent in snapshot state");
      this.isProbeSent = true;
    }
  }

  #reset(state: ProgressState): void {
    this.state = state;
    this.isProbeSent = false;
    this.pendingSnapshotIndex = 0 as LogIndex;
    this.pendingSnapshot = null;
    this.snapshotOffset = 0;
    this.isChunkInflight = false;
    this.chunkRound = 0;
    this.snapshotTooLarge = null;
    this.inflights.reset();
  }
}
