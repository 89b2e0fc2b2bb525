/**
 * A follower that was cut off while its shard committed far more entries than one apply batch
 * holds catches up without crashing, on the real SQLite log storage and state machine: three
 * replicas in process, follower 3 isolated while the leader commits more than
 * APPLY_BATCH_ENTRIES_MAX small puts, then healed. The follower must apply every entry in
 * bounded batches and reach the leader's applied index and state hash. (Before the Raft core
 * bounded committed entries per Ready by count, the follower asserted "batch is bounded" and
 * crash-looped on every restart.)
 */
import { equal, ok } from "node:assert/strict";
import { type Message, replicaId, SeededPrng } from "../raft/mod.ts";
import type { ApplyResult } from "./apply_result.ts";
import { encodeCommand } from "./command_codec.ts";
import { APPLY_BATCH_ENTRIES_MAX } from "./limits.ts";
import { SqliteLogStorage } from "./raft_log_storage.ts";
import { type ReplicaStateMachine, ShardReplica } from "./replica.ts";
import { StateMachine } from "./state_machine.ts";

const NOOP = encodeCommand({ type: "noop" });

/** The state machine as a replica drives it: empty entries (no-ops) apply as `noop`. */
function replicaMachine(machine: StateMachine): ReplicaStateMachine<ApplyResult> {
  return {
    appliedIndex: () => machine.appliedIndex(),
    apply: (entries) => {
      ok(entries.length <= APPLY_BATCH_ENTRIES_MAX, `an apply batch of ${entries.length}`);
      return machine.apply(
        entries.map((entry) =>
          entry.data.byteLength === 0 ? { index: entry.index, data: NOOP } : entry
        ),
      );
    },
    snapshot: () => machine.snapshot(),
    restore: (data) => machine.restore(data),
    close: () => machine.close(),
  };
}

interface Group {
  readonly machines: Map<number, StateMachine>;
  readonly replicas: Map<number, ShardReplica<ApplyResult>>;
  /** Replicas whose messages are dropped, both ways. */
  readonly isolated: Set<number>;
}

function makeGroup(
  options: { snapshotIntervalEntries: number; isSnapshotInBackground: boolean },
): Group {
  const voters = [1, 2, 3].map(replicaId);
  const group: Group = { machines: new Map(), replicas: new Map(), isolated: new Set([3]) };
  const { machines, replicas, isolated } = group;
  for (const id of [1, 2, 3]) {
    const machine = StateMachine.open({ path: ":memory:", synchronous: "normal" });
    machines.set(id, machine);
    const stateMachine = replicaMachine(machine);
    replicas.set(
      id,
      new ShardReplica<ApplyResult>({
        shard: 0,
        raft: {
          id: replicaId(id),
          electionTicks: 10,
          heartbeatTicks: 1,
          prng: new SeededPrng(id),
          preVote: true,
          checkQuorum: false,
          leaseReads: false,
        },
        storage: SqliteLogStorage.open({
          path: ":memory:",
          bootstrap: { voters, learners: [] },
        }),
        stateMachine: options.isSnapshotInBackground
          ? { ...stateMachine, snapshot: () => machine.snapshotInBackground() }
          : stateMachine,
        send: (messages: readonly Message[]) => {
          for (const message of messages) {
            if (isolated.has(message.to) || isolated.has(message.from)) continue;
            replicas.get(message.to)?.deliver(message);
          }
        },
        nowMs: () => performance.now(),
        tickMs: 0,
        snapshotIntervalEntries: options.snapshotIntervalEntries,
      }),
    );
  }
  return group;
}

/** Proposes `count` puts through `leader`, 1,000 at a time. */
async function putMany(leader: ShardReplica<ApplyResult>, count: number): Promise<void> {
  for (let start = 0; start < count; start += 1_000) {
    await Promise.all(
      Array.from({ length: Math.min(1_000, count - start) }, (_, i) =>
        leader.propose(
          encodeCommand({ type: "put", key: `k${start + i}`, value: "v", lease: 0, prevKv: false }),
        )),
    );
  }
}

Deno.test("ShardReplica: a follower far behind catches up in bounded apply batches", async () => {
  const { machines, replicas, isolated } = makeGroup({
    snapshotIntervalEntries: 1_000_000,
    isSnapshotInBackground: false,
  });
  try {
    const leader = replicas.get(1)!;
    await leader.campaign();
    await settle(() => leader.status().role === "leader", replicas);
    const followerApplied = machines.get(3)!.appliedIndex();
    const count = APPLY_BATCH_ENTRIES_MAX + 2_000;
    await putMany(leader, count);
    const leaderApplied = machines.get(1)!.appliedIndex();
    ok(leaderApplied > count, "the leader applied every put");
    equal(machines.get(3)!.appliedIndex(), followerApplied, "the isolated follower waited");
    isolated.clear();
    await settle(() => machines.get(3)!.appliedIndex() >= leaderApplied, replicas);
    equal(machines.get(3)!.stateHash(), machines.get(1)!.stateHash());
  } finally {
    for (const replica of replicas.values()) replica.close();
  }
});

Deno.test("ShardReplica: worker-made snapshots compact the log, catch up a follower", async () => {
  const { machines, replicas, isolated } = makeGroup({
    snapshotIntervalEntries: 500,
    isSnapshotInBackground: true,
  });
  try {
    const leader = replicas.get(1)!;
    await leader.campaign();
    await settle(() => leader.status().role === "leader", replicas);
    await putMany(leader, 3_000);
    // The bytes come from a worker: the turn it wakes stores them and compacts the log.
    await settle(() => leader.status().stats.snapshotsCreated >= 3, replicas);
    const leaderApplied = machines.get(1)!.appliedIndex();
    isolated.clear();
    await settle(() => machines.get(3)!.appliedIndex() >= leaderApplied, replicas);
    ok(replicas.get(3)!.status().stats.snapshotsRestored >= 1, "caught up from a snapshot");
    equal(machines.get(3)!.stateHash(), machines.get(1)!.stateHash());
    await putMany(leader, 600);
    await settle(() => replicas.get(3)!.status().stats.snapshotsCreated >= 1, replicas);
    for (const replica of replicas.values()) equal(replica.status().stats.snapshotFailures, 0);
  } finally {
    for (const replica of replicas.values()) replica.close();
  }
});

/** Ticks every replica and yields to the event loop until `isDone()` (bounded). */
async function settle(
  isDone: () => boolean,
  replicas: ReadonlyMap<number, ShardReplica<ApplyResult>>,
): Promise<void> {
  for (let round = 0; round < 2_000; round++) {
    if (isDone()) return;
    for (const replica of replicas.values()) replica.tick();
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  ok(isDone(), "the replicas settled");
}
