/**
 * The core's view of the log: durable storage plus an unstable tail (entries and possibly a
 * snapshot) that the caller has not persisted yet, and the commit and applied indexes.
 *
 * ```text
 *   storage: [firstIndex ......... storage.lastIndex]
 *   unstable:            [offset ................... lastIndex]   (overrides storage from offset)
 *   Invariant: applied <= committed <= lastIndex
 * ```
 */
import { assert } from "./assert.ts";
import type { LogStorage } from "./storage.ts";
import type { Entry, LogIndex, Snapshot, Term } from "./types.ts";

/** Entries and an optional snapshot that are not yet persisted. */
class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  /** The index of `entries[0]` (or where it would be). */
  offset: LogIndex;

  constructor(offset: LogIndex) {
    this.offset = offset;
  }

  lastIndex(): LogIndex | null {
    if (this.entries.length > 0) return (this.offset + this.entries.length - 1) as LogIndex;
    if (this.snapshot !== null) return this.snapshot.metadata.index;
    return null;
  }

  term(index: LogIndex): Term | null {
    if (index < this.offset) {
      const snapshot = this.snapshot;
      if (snapshot !== null && snapshot.metadata.index === index) return snapshot.metadata.term;
      return null;
    }
    return this.entries[index - this.offset]?.term ?? null;
  }

  truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0];
    assert(first !== undefined, "truncateAndAppend() needs entries");
    if (first.index === this.offset + this.entries.length) {
      for (const entry of entries) this.entries.push(entry);
    } else if (first.index <= this.offset) {
      this.offset = first.index;
      this.entries = entries.slice();
    } else {
      this.entries = this.entries.slice(0, first.index - this.offset);
      for (const entry of entries) this.entries.push(entry);
    }
  }
}

/** The log: storage plus unstable tail, with commit and applied indexes. */
export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: Unstable;
  committed: LogIndex;
  applied: LogIndex;

  constructor(storage: LogStorage) {
    this.storage = storage;
    const snapshotIndex = storage.snapshot().metadata.index;
    this.unstable = new Unstable((storage.lastIndex() + 1) as LogIndex);
    const commit = storage.initialState().hardState.commit;
    this.committed = Math.max(commit, snapshotIndex) as LogIndex;
    this.applied = snapshotIndex;
    assert(this.committed <= this.lastIndex(), "stored commit must not pass the last index");
    assert(snapshotIndex >= this.firstIndex() - 1, "the snapshot must cover compacted entries");
  }

  /** The oldest index whose entry is available (from a pending snapshot or storage). */
  firstIndex(): LogIndex {
    const snapshot = this.unstable.snapshot;
    if (snapshot !== null) return (snapshot.metadata.index + 1) as LogIndex;
    return this.storage.firstIndex();
  }

  lastIndex(): LogIndex {
    return this.unstable.lastIndex() ?? this.storage.lastIndex();
  }

  /**
   * The last index the caller has persisted: the unstable tail past it may still be lost. With
   * a pending snapshot, the commit index (the snapshot's, committed by a quorum already).
   */
  persistedLastIndex(): LogIndex {
    if (this.unstable.snapshot !== null) return this.committed;
    return Math.min(this.lastIndex(), this.unstable.offset - 1) as LogIndex;
  }

  lastTerm(): Term {
    const result = this.term(this.lastIndex());
    assert(result !== null, "the last index always has a term");
    return result;
  }

  /** The term at `index`, or null when it is compacted or past the end. */
  term(index: LogIndex): Term | null {
    if (index > this.lastIndex()) return null;
    const unstableTerm = this.unstable.term(index);
    if (unstableTerm !== null) return unstableTerm;
    if (index >= this.unstable.offset) return null;
    if (this.unstable.snapshot !== null) return null;
    return this.storage.term(index);
  }

  matchTerm(index: LogIndex, expected: Term): boolean {
    return this.term(index) === expected;
  }

  /** Raft §5.4.1: whether a log ending at (`index`, `lastTerm`) is at least as up to date. */
  isAtLeastAsNew(index: LogIndex, lastTerm: Term): boolean {
    const ownTerm = this.lastTerm();
    if (lastTerm !== ownTerm) return lastTerm > ownTerm;
    return index >= this.lastIndex();
  }

  /** Entries in `[low, high)` up to `bytesMax`, or null when `low` is compacted. */
  slice(low: LogIndex, high: LogIndex, bytesMax: number): readonly Entry[] | null {
    assert(low <= high, "slice() needs low <= high");
    assert(high <= this.lastIndex() + 1, "slice() past the last index");
    if (low < this.firstIndex()) return null;
    const result: Entry[] = [];
    const offset = this.unstable.offset;
    if (low < offset) {
      const stored = this.storage.entries(low, Math.min(high, offset) as LogIndex, bytesMax);
      if (stored === null) return null;
      for (const entry of stored) result.push(entry);
      if (result.length < Math.min(high, offset) - low) return result;
    }
    let bytes = 0;
    for (const entry of result) bytes += entry.data.byteLength;
    const start = Math.max(low, offset);
    for (let index = start; index < high; index++) {
      const entry = this.unstable.entries[index - offset];
      assert(entry !== undefined, "unstable entry must exist in range");
      bytes += entry.data.byteLength;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  /** Appends entries (a leader's own, or accepted ones); returns the new last index. */
  append(entries: readonly Entry[]): LogIndex {
    const first = entries[0];
    if (first === undefined) return this.lastIndex();
    assert(first.index - 1 >= this.committed, "append() must not overwrite committed entries");
    assert(first.index <= this.lastIndex() + 1, "append() must not leave a gap");
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /**
   * The first index in `entries` whose term differs from the log's (a conflict or a new entry),
   * or null when the log already has them all (Raft §5.3).
   */
  findConflict(entries: readonly Entry[]): LogIndex | null {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return null;
  }

  /**
   * Fast backtracking: the largest index at or below `index` whose term is at most `atMost`,
   * with that term; stops at the first available index.
   */
  findConflictByTerm(index: LogIndex, atMost: Term): { index: LogIndex; term: Term } {
    let current = Math.min(index, this.lastIndex()) as LogIndex;
    const floor = (this.firstIndex() - 1) as LogIndex;
    for (; current >= floor; current--) {
      const currentTerm = this.term(current);
      if (currentTerm === null) break;
      if (currentTerm <= atMost) return { index: current, term: currentTerm };
    }
    return { index: Math.max(current, 0) as LogIndex, term: 0 as Term };
  }

  commitTo(index: LogIndex): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), "commitTo() past the last index");
    this.committed = index;
  }

  appliedTo(index: LogIndex): void {
    assert(index <= this.committed, "Invariant: applied <= committed");
    assert(index >= this.applied, "applied must not go back");
    this.applied = index;
  }

  /** Replaces the log with `snapshot` (follower restore, Raft §7); commits its index. */
  restore(snapshot: Snapshot): void {
    const index = snapshot.metadata.index;
    assert(index > this.committed, "restore() needs a snapshot past the commit index");
    this.unstable.snapshot = snapshot;
    this.unstable.entries = [];
    this.unstable.offset = (index + 1) as LogIndex;
    this.committed = index;
  }

  /** Marks unstable entries through (`index`, `entryTerm`) as persisted. */
  stableTo(index: LogIndex, entryTerm: Term): void {
    const unstableTerm = this.unstable.term(index);
    if (unstableTerm !== entryTerm || index < this.unstable.offset) return;
    this.unstable.entries = this.unstable.entries.slice(index + 1 - this.unstable.offset);
    this.unstable.offset = (index + 1) as LogIndex;
  }

  /** Marks the unstable snapshot at `index` as persisted. */
  stableSnapshotTo(index: LogIndex): void {
    if (this.unstable.snapshot?.metadata.index === index) this.unstable.snapshot = null;
  }
}
