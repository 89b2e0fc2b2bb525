/**
 * Config validation: each invalid field is refused by the RawNode constructor with a message
 * that names the field, its value and the allowed range; a valid config passes.
 */
import { APPEND_BYTES_MAX, COMMITTED_ENTRIES_PER_READY_MAX, SNAPSHOT_BYTES_MAX } from "./limits.ts";
import { equal, throws } from "node:assert/strict";
import type { RaftConfig } from "./config.ts";
import { checkRaftConfig, DEFAULT_RAFT_LIMITS, RaftConfigError } from "./config.ts";
import { SeededPrng } from "./prng.ts";
import { RawNode } from "./raw_node.ts";
import { MemoryStorage } from "./storage.ts";
import type { LogIndex, ReplicaId } from "./types.ts";

const VALID: RaftConfig = {
  id: 1 as ReplicaId,
  electionTicks: 10,
  heartbeatTicks: 2,
  prng: new SeededPrng(1),
  preVote: true,
  checkQuorum: true,
  leaseReads: false,
};

Deno.test("checkRaftConfig() accepts a valid config", () => {
  equal(checkRaftConfig(VALID), null);
});

Deno.test("RawNode refuses invalid configs with precise messages", async (t) => {
  const cases: [string, Partial<RaftConfig>, string][] = [
    ["id zero", { id: 0 as ReplicaId }, "Cannot start replica 0: id must be a positive integer"],
    [
      "heartbeat zero",
      { heartbeatTicks: 0 },
      "Cannot start replica 1: heartbeatTicks is 0 but must be an integer in 1..10000",
    ],
    [
      "election not above heartbeat",
      { electionTicks: 3 },
      "Cannot start replica 1: electionTicks is 3 but must be at least 2 * heartbeatTicks (4)",
    ],
    [
      "lease reads without check quorum",
      { leaseReads: true, checkQuorum: false },
      "Cannot start replica 1: leaseReads is true but needs checkQuorum to be true",
    ],
    [
      "a lease clock whose tick is not positive",
      { leaseClock: { nowMs: () => 0, tickMs: 0 } },
      "Cannot start replica 1: leaseClock.tickMs is 0 but must be a positive number",
    ],
    [
      "a negative applied index",
      { applied: -1 as LogIndex },
      "Cannot start replica 1: applied is -1 but must not be negative",
    ],
    [
      "an append limit above the maximum",
      { limits: { ...DEFAULT_RAFT_LIMITS, appendBytesMax: 1e12 } },
      "Cannot start replica 1: limits.appendBytesMax is 1000000000000 but must be an integer " +
      `in 1..${APPEND_BYTES_MAX}`,
    ],
    [
      "a committed entries per Ready limit of zero",
      { limits: { ...DEFAULT_RAFT_LIMITS, committedEntriesPerReadyMax: 0 } },
      "Cannot start replica 1: limits.committedEntriesPerReadyMax is 0 but must be an integer " +
      `in 1..${COMMITTED_ENTRIES_PER_READY_MAX}`,
    ],
    [
      "a snapshot limit above the maximum",
      { limits: { ...DEFAULT_RAFT_LIMITS, snapshotBytesMax: SNAPSHOT_BYTES_MAX + 1 } },
      `Cannot start replica 1: limits.snapshotBytesMax is ${SNAPSHOT_BYTES_MAX + 1} but must ` +
      `be an integer in 1..${SNAPSHOT_BYTES_MAX}`,
    ],
  ];
  for (const [name, change, message] of cases) {
    await t.step(name, () => {
      throws(() => new RawNode({ ...VALID, ...change }, new MemoryStorage()), {
        name: RaftConfigError.name,
        message,
      });
    });
  }
});
