/**
 * Safety checkers for the simulator, fed after every persisted Ready and every step:
 * - election safety: at most one leader per term (Raft §5.2);
 * - log matching: two logs with an entry of the same index and term agree on every entry up to
 *   it (Raft §5.3), checked through prefix hashes of persisted logs;
 * - committed entries are never lost or changed, and never truncated from a log;
 * - leader completeness: a leader's log holds every entry committed in an earlier term (§5.4);
 * - state machine safety: every replica applies the same sequence (running hash per index);
 * - durability: after a power loss, the log a replica kept holds exactly the committed entries
 *   up to its stored commit index, and its state machine one of the committed states.
 * The first violation is recorded with the simulated time; checking stops there.
 */
import type {
  Entry,
  LogIndex,
  LogStorage,
  Message,
  SnapshotMetadata,
  Term,
} from "../../raft/mod.ts";
import { hashBytes, mix } from "./hash.ts";

/** Prefix hashes of one replica's persisted log. */
class LogTracker {
  base = 0;
  baseHash = 0;
  hashes: number[] = [];
  terms: number[] = [];
  checkedCommit = 0;

  get lastIndex(): number {
    return this.base + this.hashes.length;
  }

  hashAt(index: number): number | null {
    if (index === this.base) return this.baseHash;
    if (index < this.base || index > this.lastIndex) return null;
    return this.hashes[index - this.base - 1] ?? null;
  }

  termAt(index: number): number | null {
    if (index <= this.base || index > this.lastIndex) return null;
    return this.terms[index - this.base - 1] ?? null;
  }
}

/** Entry fingerprint chained onto the previous prefix hash. */
export function chainHash(previous: number, entry: Entry): number {
  return mix(mix(mix(mix(previous, entry.index), entry.term), hashBytes(entry.data)), 7);
}

/**
 * An entry (index and term) some replica persisted: its prefix hash, the replica that first
 * persisted it (the leader of its term, which created it) and whether another replica has
 * persisted it too.
 */
interface SeenEntry {
  readonly hash: number;
  readonly owner: number;
  isShared: boolean;
}

/** The key of an entry's index and term in the log matching record. */
function entryKey(index: number, term: number): number {
  return index * 1_048_576 + term;
}

/** The global record of what the run has committed and applied, and its checks. */
export class SafetyChecker {
  violation: string | null = null;
  now = 0;
  #trackers = new Map<number, LogTracker>();
  #leaders = new Map<number, number>();
  /** committedHashes[i], committedTerms[i]: the committed entry at index i (index 0 unused). */
  #committedHashes: number[] = [0];
  #committedTerms: number[] = [0];
  /**
   * decidedTerms[i]: an upper bound on the term of the leader that committed index i (the
   * lowest term of any replica seen holding the commit). Kept non-decreasing in i, since a
   * prefix is always committed no later than what follows it.
   */
  #decidedTerms: number[] = [0];
  /** Every entry persisted anywhere, by index and term (log matching); see SeenEntry. */
  #seenEntries = new Map<number, SeenEntry>();
  #stateHashes: number[] = [0];

  get committedIndex(): number {
    return this.#committedHashes.length - 1;
  }

  fail(message: string): void {
    if (this.violation === null) this.violation = `t=${this.now}: ${message}`;
  }

  tracker(id: number): LogTracker {
    let tracker = this.#trackers.get(id);
    if (tracker === undefined) {
      tracker = new LogTracker();
      this.#trackers.set(id, tracker);
    }
    return tracker;
  }

  /** A replica is leader in `term` (election safety). */
  onLeader(id: number, term: number): void {
    const existing = this.#leaders.get(term);
    if (existing === undefined) {
      this.#leaders.set(term, id);
    } else if (existing !== id) {
      this.fail(`two leaders in term ${term}: ${existing} and ${id}`);
    }
  }

  /** A replica persisted `entries` (which may overwrite a suffix of its log). */
  onAppend(id: number, entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    const tracker = this.tracker(id);
    if (first.index <= tracker.base) {
      this.fail(`replica ${id} appended ${first.index} at or below its snapshot ${tracker.base}`);
      return;
    }
    if (first.index > tracker.lastIndex + 1) {
      this.fail(`replica ${id} appended ${first.index} after a gap (last ${tracker.lastIndex})`);
      return;
    }
    this.#checkTruncation(id, tracker, entries);
    tracker.hashes.length = first.index - tracker.base - 1;
    tracker.terms.length = first.index - tracker.base - 1;
    let previous = tracker.hashAt(first.index - 1) ?? 0;
    for (const entry of entries) {
      const hash = chainHash(previous, entry);
      tracker.hashes.push(hash);
      tracker.terms.push(entry.term);
      this.#checkLogMatching(id, entry, hash);
      previous = hash;
    }
  }

  /**
   * A replica lost power: its log is now what `storage` kept. Its record restarts from there,
   * and every entry up to the stored commit index must be the committed one.
   */
  onRestart(id: number, storage: LogStorage): void {
    const lost = this.tracker(id);
    const tracker = new LogTracker();
    const offset = storage.firstIndex() - 1;
    const baseHash = offset === 0 ? 0 : this.#committedHashes[offset];
    if (baseHash === undefined) {
      this.fail(`replica ${id} kept a log compacted to ${offset}, which is not committed`);
      return;
    }
    tracker.base = offset;
    tracker.baseHash = baseHash;
    tracker.checkedCommit = offset;
    this.#trackers.set(id, tracker);
    const last = storage.lastIndex();
    const entries = storage.entries((offset + 1) as LogIndex, (last + 1) as LogIndex, Infinity);
    this.onAppend(id, entries ?? []);
    this.#forgetLost(id, lost, tracker);
    const { hardState } = storage.initialState();
    this.onCommit(id, hardState.commit, hardState.term);
  }

  /**
   * Forgets the entries that only the lost suffix of replica `id`'s log ever held: it created
   * them (as leader of their term) and no other replica persisted them. Such an entry was
   * never seen: a leader sends no message of a term before that term is durable (checked by
   * onSend), so when it loses an entry together with its term (a single voter elects itself
   * and appends in one Ready, which a power loss undoes) nobody saw either, and the replica
   * may legitimately lead the same term again and write a different entry at that index. If
   * it kept the term, it cannot lead that term again, so forgetting hides nothing: a copy
   * still in flight is recorded again when a replica persists it.
   */
  #forgetLost(id: number, lost: LogTracker, kept: LogTracker): void {
    for (let index = lost.base + 1; index <= lost.lastIndex; index++) {
      const hash = lost.hashAt(index);
      const term = lost.termAt(index);
      if (hash === null || term === null || kept.hashAt(index) === hash) continue;
      const key = entryKey(index, term);
      const seen = this.#seenEntries.get(key);
      if (seen !== undefined && seen.owner === id && !seen.isShared && seen.hash === hash) {
        this.#seenEntries.delete(key);
      }
    }
  }

  /**
   * Replica `from` sends `message` while its durable term is `durableTerm`: no message may
   * carry a term its sender could still forget (a pre-vote asks about a future term).
   */
  onSend(message: Message, durableTerm: number): void {
    if (message.type === "preVote" || message.type === "preVoteResponse") return;
    if (message.term > durableTerm) {
      this.fail(
        `replica ${message.from} sent ${message.type} of term ${message.term} before the term ` +
          `was durable (durable ${durableTerm})`,
      );
    }
  }

  /** A replica persisted a snapshot received from the leader: its log restarts there. */
  onSnapshot(id: number, metadata: SnapshotMetadata): void {
    const tracker = this.tracker(id);
    const hash = this.#committedHashes[metadata.index];
    if (hash === undefined) {
      this.fail(`replica ${id} installed snapshot ${metadata.index}, which is not committed`);
      return;
    }
    if (this.#committedTerms[metadata.index] !== metadata.term) {
      this.fail(`snapshot ${metadata.index} has term ${metadata.term}, committed differs`);
    }
    tracker.base = metadata.index;
    tracker.baseHash = hash;
    tracker.hashes = [];
    tracker.terms = [];
    tracker.checkedCommit = Math.max(tracker.checkedCommit, metadata.index);
  }

  /**
   * A replica at term `observerTerm` persisted commit index `commit`: everything up to it is
   * committed for good, by a leader of term `observerTerm` or earlier.
   */
  onCommit(id: number, commit: LogIndex, observerTerm: number): void {
    this.#lowerDecidedTerms(Math.min(commit, this.committedIndex), observerTerm);
    const tracker = this.tracker(id);
    for (let index = tracker.checkedCommit + 1; index <= commit; index++) {
      if (index <= tracker.base) continue;
      const hash = tracker.hashAt(index);
      const entryTerm = tracker.termAt(index);
      if (hash === null || entryTerm === null) {
        this.fail(`replica ${id} commits ${commit} past its persisted log ${tracker.lastIndex}`);
        return;
      }
      const known = this.#committedHashes[index];
      if (known === undefined) {
        if (index !== this.#committedHashes.length) {
          this.fail(`commit record has a gap before ${index}`);
          return;
        }
        this.#committedHashes.push(hash);
        this.#committedTerms.push(entryTerm);
        this.#decidedTerms.push(observerTerm);
      } else if (known !== hash) {
        this.fail(`replica ${id} committed a different entry at ${index} (term ${entryTerm})`);
        return;
      }
    }
    tracker.checkedCommit = Math.max(tracker.checkedCommit, commit);
  }

  /**
   * A leader of `term` persisted a Ready: it must hold every entry committed by a leader of an
   * earlier term (Raft §5.4 leader completeness).
   */
  onLeaderPersisted(id: number, term: Term): void {
    const tracker = this.tracker(id);
    let low = 0;
    let high = this.committedIndex;
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if ((this.#decidedTerms[middle] ?? 0) < term) low = middle;
      else high = middle - 1;
    }
    if (low <= tracker.base) return;
    if (tracker.hashAt(low) !== this.#committedHashes[low]) {
      this.fail(`leader ${id} of term ${term} lacks committed entry ${low}`);
    }
  }

  /** A replica's state machine reached `index` with running hash `hash`. */
  onStateMachine(id: number, index: number, hash: number): void {
    const known = this.#stateHashes[index];
    if (known === undefined) {
      if (index === this.#stateHashes.length) this.#stateHashes.push(hash);
    } else if (known !== hash) {
      this.fail(`replica ${id} applied a different sequence through ${index}`);
    }
  }

  #lowerDecidedTerms(through: number, observerTerm: number): void {
    for (let index = through; index > 0; index--) {
      if ((this.#decidedTerms[index] ?? 0) <= observerTerm) break;
      this.#decidedTerms[index] = observerTerm;
    }
  }

  #checkTruncation(id: number, tracker: LogTracker, entries: readonly Entry[]): void {
    const first = entries[0]!;
    const end = Math.min(tracker.lastIndex, this.committedIndex);
    for (let index = first.index; index <= end; index++) {
      if (tracker.hashAt(index) !== this.#committedHashes[index]) continue;
      const replacement = entries[index - first.index];
      if (replacement === undefined || replacement.term !== this.#committedTerms[index]) {
        this.fail(`replica ${id} truncated committed entry ${index}`);
        return;
      }
    }
  }

  #checkLogMatching(id: number, entry: Entry, hash: number): void {
    const key = entryKey(entry.index, entry.term);
    const known = this.#seenEntries.get(key);
    if (known === undefined) {
      this.#seenEntries.set(key, { hash, owner: id, isShared: false });
    } else if (known.hash !== hash) {
      this.fail(`log matching broken at ${id}: index ${entry.index} term ${entry.term} differs`);
    } else if (known.owner !== id) {
      known.isShared = true;
    }
  }
}
