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
import { AspenError } from "./errors.ts";
import { APPLY_BATCH_ENTRIES_MAX } from "./limits.ts";
import { SqliteLogStorage } from "./raft_log_storage.ts";
import { APPLY_ENTRIES_PER_READY_MAX, type ReplicaStateMachine, ShardReplica } from "./replica.ts";
import { StateMachine } from "./state_machine.ts";

const NOOP = encodeCommand({ type: "noop" });

/** The state machine as a replica drives it: empty entries (no-ops) apply as `noop`. */
function replicaMachine(
  machine: StateMachine,
  staging: StagingHooks | null,
  batches: { largest: number },
): ReplicaStateMachine<ApplyResult> {
  return {
    ...(staging === null ? {} : {
      stageRestore: (data: Uint8Array) => {
        staging.calls++;
        if (staging.failures > 0) {
          staging.failures--;
          return Promise.reject(new AspenError("no_space", "the disk is full (injected)"));
        }
        const gate = staging.gate;
        return gate === undefined ? machine.stageRestore(data) : gate.then(() => {
          delete staging.gate;
          return machine.stageRestore(data);
        });
      },
    }),
    appliedIndex: () => machine.appliedIndex(),
    apply: (entries) => {
      ok(entries.length <= APPLY_BATCH_ENTRIES_MAX, `an apply batch of ${entries.length}`);
      batches.largest = Math.max(batches.largest, entries.length);
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

/** What a test does to the state machine's stageRestore() calls. */
interface StagingHooks {
  /** Calls that fail on storage before the rest go through. */
  failures: number;
  calls: number;
  /** The next call that goes through waits for this first. */
  gate?: Promise<void>;
}

interface Group {
  readonly machines: Map<number, StateMachine>;
  readonly replicas: Map<number, ShardReplica<ApplyResult>>;
  /** The most entries each replica's state machine was given in one apply. */
  readonly batches: Map<number, { largest: number }>;
  /** Replicas whose messages are dropped, both ways. */
  readonly isolated: Set<number>;
}

function makeGroup(
  options: {
    snapshotIntervalEntries: number;
    isSnapshotInBackground: boolean;
    /** Real files under this directory (else in memory), and staged installs. */
    dir?: string;
    /** What stagings do (with `dir`). */
    staging?: StagingHooks;
  },
): Group {
  const voters = [1, 2, 3].map(replicaId);
  const group: Group = {
    machines: new Map(),
    replicas: new Map(),
    batches: new Map(),
    isolated: new Set([3]),
  };
  const { machines, replicas, isolated } = group;
  for (const id of [1, 2, 3]) {
    const dir = options.dir === undefined ? null : `${options.dir}/${id}`;
    if (dir !== null) Deno.mkdirSync(dir);
    const machine = StateMachine.open({
      path: dir === null ? ":memory:" : `${dir}/state.db`,
      synchronous: "normal",
    });
    machines.set(id, machine);
    const batches = { largest: 0 };
    group.batches.set(id, batches);
    const stateMachine = replicaMachine(
      machine,
      dir === null ? null : options.staging ?? { failures: 0, calls: 0 },
      batches,
    );
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
          path: dir === null ? ":memory:" : `${dir}/raft-log.db`,
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
  const { machines, replicas, isolated, batches } = makeGroup({
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
    // Each Ready's entries apply in one piece that holds the event loop: the catch-up came in
    // pieces of APPLY_ENTRIES_PER_READY_MAX, not of the Raft core's 4,096.
    equal(batches.get(3)!.largest, APPLY_ENTRIES_PER_READY_MAX);
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

Deno.test("ShardReplica: a follower on files installs a snapshot staged off the loop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-staged-install-" });
  // The first staging fails on storage: the follower stalls, then stages again, and that
  // staging waits for the gate.
  const gate = Promise.withResolvers<void>();
  const staging: StagingHooks = { failures: 1, calls: 0, gate: gate.promise };
  const { machines, replicas, isolated } = makeGroup({
    snapshotIntervalEntries: 500,
    isSnapshotInBackground: true,
    dir,
    staging,
  });
  try {
    const leader = replicas.get(1)!;
    await leader.campaign();
    await settle(() => leader.status().role === "leader", replicas);
    await putMany(leader, 2_000);
    await settle(() => leader.status().stats.snapshotsCreated >= 2, replicas);
    const leaderApplied = machines.get(1)!.appliedIndex();
    const before = machines.get(3)!.appliedIndex();
    isolated.clear();
    await settle(() => staging.calls >= 2, replicas);
    for (let turn = 0; turn < 20; turn++) {
      replicas.get(3)!.tick();
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    equal(machines.get(3)!.appliedIndex(), before, "nothing is restored or applied while staging");
    const match = () => leader.status().progress.find((progress) => progress.id === 3)!.match;
    ok(match() <= before, "and the follower has not acknowledged the snapshot");
    gate.resolve();
    await settle(() => machines.get(3)!.appliedIndex() >= leaderApplied, replicas);
    const follower = replicas.get(3)!.status().stats;
    ok(follower.snapshotsRestored >= 1, "caught up from a snapshot");
    ok(follower.snapshotsStaged >= 2, `staged ${follower.snapshotsStaged} times`);
    ok(follower.storageFailures >= 1, "the failed staging stalled the follower");
    ok(staging.calls >= 2);
    equal(machines.get(3)!.stateHash(), machines.get(1)!.stateHash());
    const left = [...Deno.readDirSync(`${dir}/3`)].map((entry) => entry.name)
      .filter((name) => name.includes(".restore") || name.endsWith(".tmp"));
    equal(left.length, 0, `nothing staged is left behind: ${left.join()}`);
    const snapshotFiles = [...Deno.readDirSync(`${dir}/3`)]
      .filter((entry) => entry.name.includes(".snapshot-"));
    equal(snapshotFiles.length, 1, "one snapshot file, the installed one");
  } finally {
    for (const replica of replicas.values()) replica.close();
    await Deno.remove(dir, { recursive: true });
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
