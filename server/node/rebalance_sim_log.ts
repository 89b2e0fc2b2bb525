/**
 * The Raft log of the rebalance simulation (rebalance_sim_cluster.ts), reduced to what the
 * driver's bugs depend on: terms, indexes and configuration entries. A log is a list of runs:
 * each run holds the entries from the previous run's last index + 1 to its own `last`, all of
 * term `term`; a configuration entry is a run of one entry with its `config`. Runs are never
 * changed in place, so logs can share them.
 */

/** A configuration: voters and learners, sorted. */
export interface SimConfig {
  readonly voters: readonly number[];
  readonly learners: readonly number[];
}

/** Entries of one term: a data run, or one configuration entry. */
export interface LogRun {
  readonly term: number;
  readonly last: number;
  readonly config: SimConfig | null;
}

/** A log as runs, in index order. */
export type SimLog = readonly LogRun[];

/** The configuration of an empty log. */
export const EMPTY_CONFIG: SimConfig = { voters: [], learners: [] };

/** The log's last index (0 when empty). */
export function lastIndexOf(log: SimLog): number {
  return log.at(-1)?.last ?? 0;
}

/** The term of the entry at `index`: 0 at index 0, -1 past the end. */
export function termAt(log: SimLog, index: number): number {
  if (index === 0) return 0;
  for (const run of log) if (run.last >= index) return run.term;
  return -1;
}

/** The term of the last entry (0 when empty). */
export function lastTermOf(log: SimLog): number {
  return log.at(-1)?.term ?? 0;
}

/** The log up to and including `index`. */
export function truncated(log: SimLog, index: number): LogRun[] {
  const kept: LogRun[] = [];
  for (const run of log) {
    if (run.last <= index) {
      kept.push(run);
      continue;
    }
    const first = (kept.at(-1)?.last ?? 0) + 1;
    if (first <= index) kept.push({ term: run.term, last: index, config: run.config });
    break;
  }
  return kept;
}

/** The log with `count` entries of `term` appended (one when `config` is set). */
export function appended(
  log: SimLog,
  term: number,
  count: number,
  config: SimConfig | null,
): LogRun[] {
  const tail = log.at(-1);
  const last = lastIndexOf(log);
  if (config !== null) return [...log, { term, last: last + 1, config }];
  if (tail !== undefined && tail.term === term && tail.config === null) {
    return [...log.slice(0, -1), { term, last: last + count, config: null }];
  }
  return [...log, { term, last: last + count, config: null }];
}

/** The configuration in force at `index`: the latest configuration entry up to there. */
export function configAt(log: SimLog, index: number): SimConfig {
  let config = EMPTY_CONFIG;
  for (const run of log) {
    if (run.last > index) break;
    if (run.config !== null) config = run.config;
  }
  return config;
}

/** The latest configuration of the log (in force from its append). */
export function latestConfigOf(log: SimLog): SimConfig {
  return configAt(log, lastIndexOf(log));
}

/** The index of the latest configuration entry up to `index` (0 when none). */
export function configIndexAt(log: SimLog, index: number): number {
  let found = 0;
  for (const run of log) {
    if (run.last > index) break;
    if (run.config !== null) found = run.last;
  }
  return found;
}

/**
 * The longest common prefix of two logs. An (index, term) pair is created once, by one
 * leader, so two logs that agree at an index agree before it (Log Matching): a binary search.
 */
export function matchLength(a: SimLog, b: SimLog): number {
  let low = 0;
  let high = Math.min(lastIndexOf(a), lastIndexOf(b));
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (termAt(a, middle) === termAt(b, middle)) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** Whether `candidate` is at least as up to date as `voter` (Raft's vote rule). */
export function isUpToDate(candidate: SimLog, voter: SimLog): boolean {
  const candidateTerm = lastTermOf(candidate);
  const voterTerm = lastTermOf(voter);
  if (candidateTerm !== voterTerm) return candidateTerm > voterTerm;
  return lastIndexOf(candidate) >= lastIndexOf(voter);
}

/** Every node of a configuration. */
export function nodesOf(config: SimConfig): number[] {
  return [...config.voters, ...config.learners];
}
