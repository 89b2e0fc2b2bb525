/**
 * Quiescence (CockroachDB's quiesced ranges): a group with nothing to do stops ticking.
 *
 * A leader whose every follower has matched its last index, answered its latest heartbeat round
 * and can learn the commit index from one more heartbeat, with no read, proposal or transfer
 * pending, sends that heartbeat with `quiesce` set and stops: no heartbeats, no check-quorum,
 * no lease clock. A follower that gets it while its log ends at the commit index stops its
 * election timer. Neither is a new role: a quiesced replica answers every input as before.
 *
 * ```text
 *   leader:   idle + all caught up + all acked ──quiesce heartbeat──▶ quiesced
 *   quiesced ──propose / read / transfer / any message but a heartbeat answer──▶ awake
 *   follower: quiesce heartbeat at its last index ──▶ quiesced ──any other message──▶ awake
 *             quiesced + reportLeaderDown(leader) ──▶ awake, its election due within jitter
 * ```
 *
 * Liveness comes from outside: the driver watches its peers' nodes and calls
 * RawNode.reportLeaderDown for a quiesced follower whose leader's node went quiet, which then
 * campaigns (pre-vote first) as if its election timeout had passed.
 *
 * Safety: a quiesced leader serves nothing by itself. Every request wakes it first, and a read
 * still needs a heartbeat round acked by a quorum; lease rounds sent before the sleep are
 * forgotten when it wakes (its lease clock stood still). A follower that a lease round woke is
 * no longer quiesced, so reportLeaderDown cannot cut short a lease that a quorum granted.
 */
import type { RaftCore } from "./raft_core.ts";
import type { LogIndex } from "./types.ts";

/** Whether a leader may quiesce now (see the module comment). */
export function canQuiesce(raft: RaftCore): boolean {
  if (raft.role !== "leader" || raft.quiesced || raft.leadTransferee !== null) return false;
  if (raft.config.quiesce === false) return false;
  const log = raft.log;
  const lastIndex = log.lastIndex();
  if (log.committed !== lastIndex || log.term(lastIndex) !== raft.term) return false;
  if (log.unstable.entries.length > 0 || log.unstable.snapshot !== null) return false;
  const readOnly = raft.readOnly;
  if (readOnly.pendingCount > 0 || readOnly.isRoundNeeded) return false;
  if (raft.quietCommit !== log.committed || raft.quietRound > readOnly.round) return false;
  for (const progress of raft.progress.values()) {
    if (progress.state !== "replicate" || progress.match !== lastIndex) return false;
    if (progress.ackedRound < raft.quietRound) return false;
  }
  return true;
}

/**
 * Before a leader's heartbeat round that does not quiesce: when the commit index moved since
 * the last one, this round is the first that tells every follower the new commit, and the
 * leader may quiesce once each follower answered it or a later one (answers to older rounds
 * would not show that a follower is still there). Rounds may take longer than a heartbeat
 * interval to come back, so it does not wait for an answer to the latest one.
 */
export function noteRound(raft: RaftCore): void {
  if (raft.quietCommit === raft.log.committed) return;
  raft.quietCommit = raft.log.committed;
  raft.quietRound = raft.readOnly.round + 1;
}

/** Sends the quiescing heartbeat round and stops the leader's clock. */
export function quiesce(raft: RaftCore): void {
  const round = raft.readOnly.nextRound(raft.leaderTicks, raft.config.leaseClock?.nowMs() ?? null);
  for (const id of raft.progress.keys()) {
    raft.send({
      type: "heartbeat",
      from: raft.id,
      to: id,
      term: raft.term,
      commit: raft.log.committed,
      round,
      quiesce: true,
    });
  }
  raft.quiesced = true;
}

/**
 * A follower's answer to a quiescing heartbeat (after it applied the commit): it quiesces if its
 * log ends at the leader's commit and the heartbeat is not older than one it already got.
 */
export function maybeQuiesceFollower(raft: RaftCore, commit: LogIndex, round: number): void {
  if (round < raft.leaderRound) return;
  const log = raft.log;
  if (log.committed !== commit || log.lastIndex() !== commit) return;
  raft.quiesced = true;
}
