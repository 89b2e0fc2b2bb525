/**
 * The durable log as the core sees it (STYLE §1.7): a small synchronous read interface, and an
 * in-memory implementation for tests and simulation.
 *
 * Layout of a storage, by log index:
 *
 * ```text
 *   ... compacted ... | C | C+1 ... S ... L
 *                       ^   ^       ^     ^
 *        firstIndex()-1 |   |       |     lastIndex()
 *      term(C) is known     |       snapshot().metadata.index (S >= C)
 *                           firstIndex(): the oldest stored entry
 * ```
 *
 * A snapshot is created at an applied index without discarding entries, so that followers a
 * little behind still get entries; `compact(index)` later drops entries up to an index no higher
 * than the snapshot's. A fresh storage holds the empty snapshot at index 0.
 *
 * Bootstrap: the founding members of a group each start with the same log, one membership
 * change per member at term 1, all committed ({@linkcode bootstrapEntries}). Keeping the
 * initial membership in the log (not only in a snapshot) means a replica added later learns it
 * from the log like any other change. A replica that joins an existing group starts empty.
 */
import { assert } from "./assert.ts";
import { encodeConfChange } from "./membership.ts";
import type { ConfState, Entry, HardState, LogIndex, Snapshot, Term } from "./types.ts";
import { EMPTY_HARD_STATE } from "./types.ts";

/** The state a replica starts from: its hard state and the membership of its snapshot. */
export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/** The synchronous read interface the core uses for durable log state. */
export interface LogStorage {
  /** The persisted hard state and the membership stored with the snapshot. */
  initialState(): InitialState;
  /** The index of the oldest entry still stored; `firstIndex() - 1` has a known term. */
  firstIndex(): LogIndex;
  /** The index of the newest stored entry, or `firstIndex() - 1` when none is stored. */
  lastIndex(): LogIndex;
  /** The term at `index`, or null when it is compacted or beyond the last index. */
  term(index: LogIndex): Term | null;
  /**
   * Entries in `[low, high)`, stopping once their payload passes `bytesMax` (always at least
   * one entry when `low < high`). Returns null when `low` is compacted.
   */
  entries(low: LogIndex, high: LogIndex, bytesMax: number): readonly Entry[] | null;
  /**
   * The most recent snapshot (the empty index-0 snapshot before any was made). Its `data` may
   * be read from disk each time it is asked for: the core reads it only to send a snapshot.
   */
  snapshot(): Snapshot;
}

/** The writes a runtime performs on a storage while it drains Readys. */
export interface WritableLogStorage extends LogStorage {
  /** Appends entries, first truncating any stored suffix from `entries[0].index` on. */
  append(entries: readonly Entry[]): void;
  /** Replaces the hard state. */
  setHardState(hardState: HardState): void;
  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void;
  /** Records a snapshot of the state machine at an applied `index`; keeps the entries. */
  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): void;
  /** Drops stored entries up to `index`, which must not pass the snapshot's index. */
  compact(index: LogIndex): void;
}

/** The initial (index 0) snapshot for a storage whose group starts with `confState`. */
export function initialSnapshot(confState: ConfState): Snapshot {
  return {
    metadata: { index: 0 as LogIndex, term: 0 as Term, confState },
    data: new Uint8Array(0),
  };
}

/** The membership of a replica that waits to be added to an existing group. */
export const EMPTY_CONF_STATE: ConfState = { voters: [], learners: [] };

/** The identical first entries of every founding member: one change per member, term 1. */
export function bootstrapEntries(confState: ConfState): Entry[] {
  const changes = [
    ...confState.voters.map((id) => ({ type: "addVoter" as const, replicaId: id })),
    ...confState.learners.map((id) => ({ type: "addLearner" as const, replicaId: id })),
  ];
  return changes.map((change, i) => ({
    term: 1 as Term,
    index: (i + 1) as LogIndex,
    type: "confChange" as const,
    data: encodeConfChange(change),
  }));
}

/** The hard state that goes with {@linkcode bootstrapEntries}: term 1, all of them committed. */
export function bootstrapHardState(confState: ConfState): HardState {
  const count = confState.voters.length + confState.learners.length;
  return { term: 1 as Term, vote: null, commit: count as LogIndex };
}

/**
 * An in-memory {@linkcode WritableLogStorage} for tests and the simulator.
 *
 * @example
 * ```ts
 * const storage = new MemoryStorage({ voters: [replicaId(1)], learners: [] });
 * storage.lastIndex(); // 0
 * ```
 */
export class MemoryStorage implements WritableLogStorage {
  #hardState: HardState = EMPTY_HARD_STATE;
  #snapshot: Snapshot;
  /** The index before the first stored entry (C in the module diagram). */
  #offset: LogIndex;
  #offsetTerm: Term;
  #entries: Entry[] = [];

  /** A storage for a founding member of a group with `confState`, or an empty one. */
  constructor(confState: ConfState = EMPTY_CONF_STATE) {
    this.#snapshot = initialSnapshot(EMPTY_CONF_STATE);
    this.#offset = 0 as LogIndex;
    this.#offsetTerm = 0 as Term;
    const entries = bootstrapEntries(confState);
    if (entries.length > 0) {
      this.append(entries);
      this.setHardState(bootstrapHardState(confState));
    }
  }

  initialState(): InitialState {
    return { hardState: this.#hardState, confState: this.#snapshot.metadata.confState };
  }

  firstIndex(): LogIndex {
    return (this.#offset + 1) as LogIndex;
  }

  lastIndex(): LogIndex {
    return (this.#offset + this.#entries.length) as LogIndex;
  }

  term(index: LogIndex): Term | null {
    if (index === this.#offset) return this.#offsetTerm;
    if (index < this.#offset) return null;
    const entry = this.#entries[index - this.#offset - 1];
    if (entry === undefined) return null;
    assert(entry.index === index, "MemoryStorage entries must be contiguous");
    return entry.term;
  }

  entries(low: LogIndex, high: LogIndex, bytesMax: number): readonly Entry[] | null {
    assert(low <= high, "entries() needs low <= high");
    assert(high <= this.lastIndex() + 1, "entries() past the last index");
    assert(bytesMax >= 0, "entries() needs a non-negative byte limit");
    if (low <= this.#offset) return null;
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = low; index < high; index++) {
      const entry = this.#entries[index - this.#offset - 1];
      assert(entry !== undefined, "a stored entry must exist in range");
      bytes += entry.data.byteLength;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  snapshot(): Snapshot {
    return this.#snapshot;
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    checkAppendable(this, entries);
    const keep = Math.max(0, first.index - this.#offset - 1);
    const fresh = entries.filter((entry) => entry.index > this.#offset);
    this.#entries.length = Math.min(this.#entries.length, keep);
    for (const entry of fresh) this.#entries.push(entry);
    assert(this.lastIndex() === entries[entries.length - 1]?.index, "append() sets lastIndex");
  }

  setHardState(hardState: HardState): void {
    assert(hardState.term >= this.#hardState.term, "the persisted term must not go back");
    this.#hardState = hardState;
  }

  applySnapshot(snapshot: Snapshot): void {
    const index = snapshot.metadata.index;
    assert(index > this.#snapshot.metadata.index, "applySnapshot() needs a newer snapshot");
    this.#snapshot = snapshot;
    this.#offset = index;
    this.#offsetTerm = snapshot.metadata.term;
    this.#entries = [];
  }

  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): void {
    assert(index > this.#snapshot.metadata.index, "createSnapshot() needs a newer index");
    assert(index <= this.lastIndex(), "createSnapshot() past the last index");
    const snapshotTerm = this.term(index);
    assert(snapshotTerm !== null, "createSnapshot() at a compacted index");
    this.#snapshot = { metadata: { index, term: snapshotTerm, confState }, data };
  }

  compact(index: LogIndex): void {
    assert(index <= this.#snapshot.metadata.index, "compact() must not pass the snapshot");
    if (index <= this.#offset) return;
    const compactedTerm = this.term(index);
    assert(compactedTerm !== null, "compact() index must be stored");
    this.#entries = this.#entries.slice(index - this.#offset);
    this.#offset = index;
    this.#offsetTerm = compactedTerm;
    assert(this.firstIndex() === index + 1, "compact() moves the first index");
  }
}

/**
 * Asserts that `entries` are contiguous with non-decreasing terms and can follow the stored log:
 * the first must not leave a gap, and its term must not be below its predecessor's.
 */
export function checkAppendable(storage: LogStorage, entries: readonly Entry[]): void {
  const first = entries[0];
  assert(first !== undefined, "checkAppendable() needs entries");
  assert(first.index <= storage.lastIndex() + 1, "append() must not leave a gap");
  let previous: Entry = first;
  for (const entry of entries.slice(1)) {
    assert(entry.index === previous.index + 1, "appended entries must be contiguous");
    assert(entry.term >= previous.term, "appended entry terms must not decrease");
    previous = entry;
  }
  const before = storage.term((first.index - 1) as LogIndex);
  if (before !== null) assert(first.term >= before, "an entry's term must not drop below");
}
