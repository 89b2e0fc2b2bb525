/**
 * The newest entries of a Raft log, kept in memory by {@linkcode SqliteLogStorage} (private to
 * shard/).
 *
 * Entries are read back soon after they are written: by every replica to apply them once they
 * commit, and by a leader to send them to followers. Profiles of a 3-node cluster under a put
 * load showed those SQLite reads (a SELECT per term lookup, a row-by-row scan per slice) at
 * 3-5% of each node's busy time. The cache holds a contiguous run of the last written entries,
 * bounded by {@linkcode ENTRY_CACHE_ENTRIES_MAX} and {@linkcode ENTRY_CACHE_BYTES_MAX}; a read
 * it cannot fully serve goes to SQLite as before.
 */
import { assert, type Entry, type LogIndex, type Term } from "../raft/mod.ts";

/** The most entries the cache holds. */
export const ENTRY_CACHE_ENTRIES_MAX = 8_192;
/** The most payload bytes the cache holds. */
export const ENTRY_CACHE_BYTES_MAX = 16 * 1024 * 1024;

/** A contiguous run of recent entries. Invariant: entries[i].index === first + i. */
export class EntryCache {
  #entries: Entry[] = [];
  #first = 0;
  #bytes = 0;

  /** How many entries are cached. */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * Records entries just written at the end of the log: they replace any cached entry at or
   * after the first one's index (a conflicting suffix was overwritten). A gap before them
   * restarts the cache.
   */
  append(entries: readonly Entry[]): void {
    const head = entries[0];
    if (head === undefined) return;
    const end = this.#first + this.#entries.length;
    if (this.#entries.length === 0 || head.index < this.#first || head.index > end) {
      this.clear();
      this.#first = head.index;
    } else {
      this.#truncateFrom(head.index);
    }
    for (const entry of entries) {
      assert(entry.index === this.#first + this.#entries.length, "cached entries are contiguous");
      this.#entries.push(entry);
      this.#bytes += entry.data.byteLength;
    }
    this.#trim();
  }

  /** Forgets entries at or below `index` (compacted). */
  dropThrough(index: number): void {
    const count = Math.min(this.#entries.length, Math.max(0, index - this.#first + 1));
    for (const entry of this.#entries.splice(0, count)) this.#bytes -= entry.data.byteLength;
    this.#first += count;
    assert(this.#bytes >= 0, "cached bytes never go negative");
  }

  /** Forgets everything (a snapshot replaced the log, or a write rolled back). */
  clear(): void {
    this.#entries = [];
    this.#first = 0;
    this.#bytes = 0;
  }

  /** The term of entry `index`, or null when it is not cached. */
  term(index: number): Term | null {
    const entry = this.#entries[index - this.#first];
    return index >= this.#first && entry !== undefined ? entry.term : null;
  }

  /**
   * Entries [low, high) under the storage's byte rule (the first entry always, then stop before
   * passing `bytesMax`), or null unless the whole range is cached.
   */
  slice(low: LogIndex, high: LogIndex, bytesMax: number): Entry[] | null {
    const end = this.#first + this.#entries.length;
    if (this.#entries.length === 0 || low < this.#first || high > end) return null;
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = low; index < high; index++) {
      const entry = this.#entries[index - this.#first]!;
      bytes += entry.data.byteLength;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  #truncateFrom(index: number): void {
    const keep = index - this.#first;
    for (const entry of this.#entries.splice(keep)) this.#bytes -= entry.data.byteLength;
  }

  /** Past a bound, drops the oldest entries down to three quarters of both bounds at once. */
  #trim(): void {
    const length = this.#entries.length;
    if (length <= ENTRY_CACHE_ENTRIES_MAX && this.#bytes <= ENTRY_CACHE_BYTES_MAX) return;
    const entriesTarget = Math.floor(ENTRY_CACHE_ENTRIES_MAX * 3 / 4);
    const bytesTarget = Math.floor(ENTRY_CACHE_BYTES_MAX * 3 / 4);
    let drop = 0;
    let bytes = this.#bytes;
    while (drop < length - 1) {
      const isOver = length - drop > entriesTarget || bytes > bytesTarget;
      if (!isOver) break;
      bytes -= this.#entries[drop]!.data.byteLength;
      drop++;
    }
    this.dropThrough(this.#first + drop - 1);
    assert(this.#entries.length <= ENTRY_CACHE_ENTRIES_MAX, "the cache stays bounded");
  }
}
