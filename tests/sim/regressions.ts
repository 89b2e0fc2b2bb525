/**
 * Every seed that ever failed the simulation, kept as a permanent regression case. Each note
 * says what broke. Seeds found before a change to the option draw now replay a different
 * scenario; they stay because they are cheap and still exercise the same features.
 */
export const REGRESSION_SEEDS: readonly { seed: number; note: string }[] = [
  { seed: 4, note: "a joining replica never learned the bootstrap membership" },
  { seed: 11, note: "leader completeness: a joining replica elected itself alone" },
  { seed: 18, note: "two leaders in a term: same cause as seed 11" },
  { seed: 9, note: "liveness: client retries too slow (sim workload)" },
  { seed: 19, note: "liveness: client retries too slow (sim workload)" },
  { seed: 191, note: "liveness: frequent snapshots restarted a snapshot transfer forever" },
  { seed: 524, note: "liveness: election timeout below the network round trip (sim options)" },
  { seed: 1643, note: "liveness: a leader re-elected in the same term fooled the sim client" },
  {
    seed: 100252,
    note: "checker: leader completeness must count commits by the deciding leader's term, " +
      "not the entry's term (a stale leader of term 29 lacked an entry leader 30 committed)",
  },
  {
    seed: 101558,
    note: "liveness: the budget after healing ignored a 1,400-write backlog behind a " +
      "512-byte uncommitted limit (sim budget, not Raft)",
  },
  {
    seed: 1068,
    note: "apply batch bound: without a count bound on committed entries per Ready, a replica " +
      "back from crashes during write bursts got more entries in one Ready than the state " +
      "machine's batch bound and it asserted 'batch is bounded' (issue 12; found with the fix " +
      "of b09cc83 reverted)",
  },
  {
    seed: 1000,
    note: "power loss: a state machine applied past the log's durable commit index (commit-only " +
      "hard states are not synced) and the core refused to start on 'config.applied must not " +
      "pass the commit' (issue 12; found with the fix of b09cc83 reverted)",
  },
  {
    seed: 4489,
    note:
      "leader completeness: a sole voter counted its unsynced entry 346 toward the commit and " +
      "sent that commit to its learner before its own flush; a power loss erased the entry, the " +
      "learner had applied it, and the voter led term 6 with another entry 346 (raft/ " +
      "maybeCommit now counts the leader's persisted entries only)",
  },
  {
    seed: 5953,
    note: "leader completeness: same cause as seed 4489 (leader 1 of term 3 lacked entry 827)",
  },
  {
    seed: 9954,
    note: "checker: a process crash during a flush left a durable commit the checker never " +
      "recorded, and a later power loss kept a log compacted past it (found with the fix of " +
      "seed 4489 reverted; the checker now records the commit index a replica starts from)",
  },
  {
    seed: 2463,
    note: "liveness: a learner that restarted in a quiesced group never learned its leader (a " +
      "learner never campaigns); a peer that connects anew now wakes its quiesced leaders " +
      "(RawNode.reportPeerBack)",
  },
  {
    seed: 20414,
    note: "liveness: a learner promoted before its first append knew no configuration, so it " +
      "did not vote, and the leader that lost check-quorum could never be elected again",
  },
  { seed: 20915, note: "liveness: same cause as seed 20414" },
];
