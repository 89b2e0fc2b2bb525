/**
 * The simulated disk under one replica's Raft log: a working storage (what the running
 * replica reads and writes, in memory or in SQLite) and a durable image (what a power loss
 * leaves). Every write goes to the working storage at once and joins a queue of volatile
 * writes; a sync makes the whole queue durable, as an fsync of SQLite's write-ahead log covers
 * every transaction committed before it. A Ready whose `mustSync` is false (a hard state that
 * only moves the commit index) therefore stays volatile until a later synced write.
 *
 * A process crash loses nothing that was written (the operating system holds it). A power
 * loss keeps the durable image plus the first `keep` volatile writes, as SQLite's recovery
 * stops at the first write-ahead log frame whose checksum fails, and loses the rest; the
 * working storage is then rebuilt from what survived.
 */
import { assert, MemoryStorage } from "../../raft/mod.ts";
import type {
  ConfState,
  Entry,
  HardState,
  LogIndex,
  Snapshot,
  WritableLogStorage,
} from "../../raft/mod.ts";

/** One write to a log storage, as the durable image replays it. */
type Write =
  | { readonly kind: "append"; readonly entries: readonly Entry[] }
  | { readonly kind: "hardState"; readonly hardState: HardState }
  | { readonly kind: "applySnapshot"; readonly snapshot: Snapshot }
  | {
    readonly kind: "createSnapshot";
    readonly index: LogIndex;
    readonly confState: ConfState;
    readonly data: Uint8Array;
  }
  | { readonly kind: "compact"; readonly index: LogIndex };

/** Opens an empty storage of the run's kind (in memory or SQLite). */
export type OpenStorage = () => WritableLogStorage;

/** A replica's log disk: a working storage, a durable image and the writes in between. */
export class SimDisk {
  #working: WritableLogStorage;
  readonly #durable: MemoryStorage;
  #volatile: Write[] = [];
  readonly #open: OpenStorage;

  /** A disk holding `working` as it is now (bootstrapped with `bootstrap`, or empty). */
  constructor(working: WritableLogStorage, bootstrap: ConfState | null, open: OpenStorage) {
    this.#working = working;
    this.#durable = new MemoryStorage(bootstrap ?? undefined);
    this.#open = open;
    assert(working.lastIndex() === this.#durable.lastIndex(), "a new disk starts synced");
  }

  /** The storage the running replica uses. */
  get storage(): WritableLogStorage {
    return this.#working;
  }

  /** The term a power loss keeps now. */
  get durableTerm(): number {
    return this.#durable.initialState().hardState.term;
  }

  /** The number of writes a power loss could lose now. */
  get volatileCount(): number {
    return this.#volatile.length;
  }

  /** Writes one Ready's snapshot, entries and hard state (volatile until a sync). */
  persist(write: {
    readonly snapshot: Snapshot | null;
    readonly entries: readonly Entry[];
    readonly hardState: HardState | null;
  }): void {
    if (write.snapshot !== null) this.#write({ kind: "applySnapshot", snapshot: write.snapshot });
    if (write.entries.length > 0) this.#write({ kind: "append", entries: write.entries });
    if (write.hardState !== null) this.#write({ kind: "hardState", hardState: write.hardState });
  }

  /** Records a state machine snapshot in the log and compacts it to `compactTo`; synced. */
  snapshot(
    options: { index: LogIndex; confState: ConfState; data: Uint8Array; compactTo: LogIndex },
  ): void {
    const { index, confState, data, compactTo } = options;
    this.#write({ kind: "createSnapshot", index, confState, data });
    if (compactTo >= this.#working.firstIndex()) this.#write({ kind: "compact", index: compactTo });
    this.sync();
  }

  /** Makes every write so far durable (an fsync). */
  sync(): void {
    for (const write of this.#volatile) replay(this.#durable, write);
    this.#volatile = [];
  }

  /**
   * A power loss: the first `keep` volatile writes survive, the others are lost, and the
   * working storage restarts from the durable image.
   */
  losePower(keep: number): void {
    assert(keep >= 0 && keep <= this.#volatile.length, "a power loss keeps a prefix");
    for (const write of this.#volatile.slice(0, keep)) replay(this.#durable, write);
    const isLost = keep < this.#volatile.length;
    this.#volatile = [];
    if (!isLost) return;
    this.#working = this.#open();
    copyStorage(this.#durable, this.#working);
    assert(this.#working.lastIndex() === this.#durable.lastIndex(), "the copy is complete");
  }

  #write(write: Write): void {
    replay(this.#working, write);
    this.#volatile.push(write);
  }
}

function replay(storage: WritableLogStorage, write: Write): void {
  switch (write.kind) {
    case "append":
      storage.append(write.entries);
      break;
    case "hardState":
      storage.setHardState(write.hardState);
      break;
    case "applySnapshot":
      storage.applySnapshot(write.snapshot);
      break;
    case "createSnapshot":
      storage.createSnapshot(write.index, write.confState, write.data);
      break;
    case "compact":
      storage.compact(write.index);
      break;
  }
}

/**
 * Copies `from` into the empty storage `to` through the public write interface: the compacted
 * prefix (as a snapshot at the compaction point), the entries, the snapshot and the hard state.
 */
function copyStorage(from: MemoryStorage, to: WritableLogStorage): void {
  assert(to.lastIndex() === 0, "copyStorage() needs an empty target");
  const offset = (from.firstIndex() - 1) as LogIndex;
  const snapshot = from.snapshot();
  const { index, confState } = snapshot.metadata;
  if (offset > 0) {
    const offsetTerm = from.term(offset);
    assert(offsetTerm !== null, "the compaction point has a known term");
    const base = index === offset
      ? snapshot
      : { metadata: { index: offset, term: offsetTerm, confState }, data: new Uint8Array(0) };
    to.applySnapshot(base);
  }
  const last = from.lastIndex();
  if (last > offset) {
    const entries = from.entries((offset + 1) as LogIndex, (last + 1) as LogIndex, Infinity);
    assert(entries !== null, "stored entries are readable");
    to.append(entries);
  }
  if (index > offset) to.createSnapshot(index, confState, snapshot.data);
  to.setHardState(from.initialState().hardState);
  assert(to.snapshot().metadata.index === index, "the copy keeps the snapshot");
}
