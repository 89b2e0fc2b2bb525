/**
 * Regressions found while building the fault tests, each replayed on real SQLite files.
 *
 * An interrupted snapshot install: a follower persists a received snapshot in its Raft log
 * (which drops the entries the snapshot covers) and only then replaces its state machine. A
 * crash between the two left, on restart, a state machine behind the log's snapshot: with a
 * few entries applied the replica died on an assertion at every start; with none applied it
 * started and served an empty state as if it were the snapshot's. The shard is built here
 * exactly as such a crash leaves it (log compacted at index 61, state machine at 0 or 20), and
 * opening it must finish the restore: applied index 61 and the snapshot's exact state hash.
 */
import { equal } from "node:assert/strict";
import { type Entry, type LogIndex, replicaId, SeededPrng, type Term } from "../raft/mod.ts";
import { encodeCommand, SqliteLogStorage, StateMachine } from "../shard/mod.ts";
import { Logger } from "../server/log.ts";
import { LocalShard } from "../server/node/mod.ts";

const SNAPSHOT_INDEX = 61;

/** Entry 1 is the bootstrap membership (applied as a no-op); 2..61 put keys. */
function commandAt(index: number): Uint8Array {
  if (index === 1) return encodeCommand({ type: "noop" });
  return encodeCommand({
    type: "put",
    key: `k${index % 7}`,
    value: `v${index}`,
    lease: 0,
    prevKv: false,
  });
}

function applyThrough(machine: StateMachine, last: number): void {
  const entries = [];
  for (let index = 1; index <= last; index++) entries.push({ index, data: commandAt(index) });
  if (entries.length > 0) machine.apply(entries);
}

/** Writes shard 0 as a crash between the two halves of a snapshot install leaves it. */
async function buildInterruptedInstall(dir: string, appliedBefore: number): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const source = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  applyThrough(source, SNAPSHOT_INDEX);
  const expectedHash = source.stateHash();
  const snapshotData = source.snapshot();
  source.close();
  const confState = { voters: [replicaId(1)], learners: [] };
  const log = SqliteLogStorage.open({ path: `${dir}/raft-log.db`, bootstrap: confState });
  const entries: Entry[] = [];
  for (let index = 2; index <= SNAPSHOT_INDEX; index++) {
    entries.push({
      term: 1 as Term,
      index: index as LogIndex,
      type: "normal",
      data: commandAt(index),
    });
  }
  log.append(entries);
  log.setHardState({ term: 1 as Term, vote: replicaId(1), commit: SNAPSHOT_INDEX as LogIndex });
  log.createSnapshot(SNAPSHOT_INDEX as LogIndex, confState, snapshotData);
  log.compact(SNAPSHOT_INDEX as LogIndex);
  log.close();
  const behind = StateMachine.open({ path: `${dir}/state-machine.db`, synchronous: "normal" });
  applyThrough(behind, appliedBefore);
  behind.close();
  return expectedHash;
}

for (const appliedBefore of [0, 20]) {
  Deno.test({
    name: `a replica finishes an interrupted snapshot install (state machine at ${appliedBefore})`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "aspen-regression-" });
      try {
        const expectedHash = await buildInterruptedInstall(`${dir}/shard-0`, appliedBefore);
        const shard = await LocalShard.open({
          shard: 0,
          nodeId: 1,
          dir: `${dir}/shard-0`,
          voters: [1],
          raft: {
            electionTicks: 10,
            heartbeatTicks: 2,
            prng: new SeededPrng(1),
            preVote: true,
            checkQuorum: true,
            leaseReads: false,
          },
          tickMs: 0,
          send: () => {},
          nowMs: () => performance.now(),
          isPeerUp: () => false,
          logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now }),
        });
        try {
          equal(shard.stateMachine.appliedIndex(), SNAPSHOT_INDEX);
          equal(shard.stateMachine.stateHash(), expectedHash);
          equal(shard.stateMachine.get("k3")?.value, "v59");
        } finally {
          shard.close();
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
