/**
 * Membership changes: one replica at a time, effective as soon as the entry is in the log.
 *
 * Why one at a time (Raft thesis §4.1) and not joint consensus: adding or removing a single
 * voter changes the configuration so little that every majority of the old configuration
 * overlaps every majority of the new one, so no extra phase is needed. Joint consensus is only
 * required for arbitrary changes, which a sharded store never needs: it moves replicas one by
 * one anyway. One phase means fewer states, fewer messages and a smaller proof surface.
 *
 * Why effective on append, not on apply: each replica uses the latest configuration in its own
 * log, committed or not (thesis §4.1). That keeps the configuration a pure function of the
 * durable log, so a replica that restarts, lags, or holds several uncommitted changes can never
 * fall back to a configuration two changes old, which is the case where apply-time activation
 * lets two disjoint majorities form. Truncating a change out of the log reverts to the previous
 * configuration.
 *
 * The rules that keep it safe:
 * - a leader accepts a change only when every earlier change in its log is committed, and
 * - only after it has committed an entry of its own term (the fix for the single-server change
 *   bug reported on raft-dev in 2015: a new leader could otherwise commit a change based on a
 *   configuration that a concurrent, uncommitted change had already superseded).
 * - A leader that removes itself keeps leading (without counting itself) until the change
 *   commits, then steps down and hands leadership to the most caught-up voter (thesis §4.2.2).
 * - Learners receive the log but never vote or campaign; promotion is `addVoter` on a learner.
 */
import { assert } from "./assert.ts";
import { REPLICAS_MAX } from "./limits.ts";
import type { ConfChange, ConfState, LogIndex, ReplicaId } from "./types.ts";
import { replicaId } from "./types.ts";

/** Why a membership change cannot be applied to a configuration, or null when it can. */
export function checkConfChange(confState: ConfState, change: ConfChange): string | null {
  const isVoter = confState.voters.includes(change.replicaId);
  const isLearner = confState.learners.includes(change.replicaId);
  const size = confState.voters.length + confState.learners.length;
  if (change.type === "addVoter") {
    if (isVoter) return `replica ${change.replicaId} is already a voter`;
    if (!isLearner && size >= REPLICAS_MAX) return `the group already has ${size} replicas`;
    return null;
  }
  if (change.type === "addLearner") {
    if (isVoter) return `replica ${change.replicaId} is a voter; demotion is not supported`;
    if (isLearner) return `replica ${change.replicaId} is already a learner`;
    if (size >= REPLICAS_MAX) return `the group already has ${size} replicas`;
    return null;
  }
  if (!isVoter && !isLearner) return `replica ${change.replicaId} is not a member`;
  if (isVoter && confState.voters.length === 1) return "the last voter cannot be removed";
  return null;
}

/**
 * Applies one membership change to a configuration and returns the new one (sorted lists).
 *
 * @example
 * ```ts
 * applyConfChange({ voters: [1], learners: [2] }, { type: "addVoter", replicaId: 2 });
 * // { voters: [1, 2], learners: [] }
 * ```
 */
export function applyConfChange(confState: ConfState, change: ConfChange): ConfState {
  const problem = checkConfChange(confState, change);
  assert(problem === null, `applyConfChange() on an invalid change: ${problem}`);
  const id = change.replicaId;
  const voters = confState.voters.filter((voter) => voter !== id);
  const learners = confState.learners.filter((learner) => learner !== id);
  if (change.type === "addVoter") voters.push(id);
  if (change.type === "addLearner") learners.push(id);
  voters.sort((a, b) => a - b);
  learners.sort((a, b) => a - b);
  return { voters, learners };
}

/** Encodes a membership change as an entry payload: one type byte, then the id as 8 bytes. */
export function encodeConfChange(change: ConfChange): Uint8Array {
  const bytes = new Uint8Array(9);
  const view = new DataView(bytes.buffer);
  bytes[0] = CONF_CHANGE_TYPES.indexOf(change.type);
  view.setFloat64(1, change.replicaId);
  return bytes;
}

/** Decodes an entry payload written by {@linkcode encodeConfChange}; null when malformed. */
export function decodeConfChange(bytes: Uint8Array): ConfChange | null {
  if (bytes.byteLength !== 9) return null;
  const type = CONF_CHANGE_TYPES[bytes[0] ?? 255];
  if (type === undefined) return null;
  const id = new DataView(bytes.buffer, bytes.byteOffset, 9).getFloat64(1);
  if (!Number.isSafeInteger(id) || id <= 0) return null;
  return { type, replicaId: replicaId(id) };
}

const CONF_CHANGE_TYPES: readonly ConfChange["type"][] = [
  "addVoter",
  "addLearner",
  "removeReplica",
];

/**
 * The configurations in force along the log: the base (from the snapshot) and one point per
 * membership-change entry after it. The current configuration is the last point.
 */
export class ConfigHistory {
  #baseIndex: LogIndex;
  #base: ConfState;
  #points: { index: LogIndex; confState: ConfState }[] = [];

  constructor(baseIndex: LogIndex, base: ConfState) {
    this.#baseIndex = baseIndex;
    this.#base = base;
  }

  /** The configuration in force now: the one of the latest change in the log. */
  current(): ConfState {
    return this.#points[this.#points.length - 1]?.confState ?? this.#base;
  }

  /** The index of the latest change in the log (or of the base snapshot). */
  lastChangeIndex(): LogIndex {
    return this.#points[this.#points.length - 1]?.index ?? this.#baseIndex;
  }

  /** The configuration in force at `index` (which must not precede the base). */
  at(index: LogIndex): ConfState {
    assert(index >= this.#baseIndex, "ConfigHistory.at() before the base");
    let result = this.#base;
    for (const point of this.#points) {
      if (point.index > index) break;
      result = point.confState;
    }
    return result;
  }

  /** Records a change entry appended at `index`. */
  append(index: LogIndex, change: ConfChange): void {
    assert(index > this.lastChangeIndex(), "changes are appended in index order");
    this.#points.push({ index, confState: applyConfChange(this.current(), change) });
  }

  /** Forgets changes at or after `index` (a truncated log suffix); true when any was dropped. */
  truncateFrom(index: LogIndex): boolean {
    const before = this.#points.length;
    while ((this.#points[this.#points.length - 1]?.index ?? 0) >= index) this.#points.pop();
    return this.#points.length !== before;
  }

  /** Replaces everything with a snapshot's configuration. */
  reset(baseIndex: LogIndex, base: ConfState): void {
    this.#baseIndex = baseIndex;
    this.#base = base;
    this.#points = [];
  }

  /** Folds the points at or before `index` into the base, keeping the history small. */
  compactTo(index: LogIndex): void {
    if (index <= this.#baseIndex) return;
    this.#base = this.at(index);
    this.#baseIndex = index;
    this.#points = this.#points.filter((point) => point.index > index);
  }
}

/** Whether `id` is a voter in `confState`. */
export function isVoter(confState: ConfState, id: ReplicaId): boolean {
  return confState.voters.includes(id);
}
