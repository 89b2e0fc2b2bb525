/**
 * A replica whose Raft time follows the clock (`clockTickMs`) serves lease reads only while the
 * clock says its lease holds: three replicas in process on the real SQLite storage and state
 * machine, lease reads on, one fake monotonic clock. A leader that was paused (the clock jumped
 * while none of its timers ran) must not answer a read from its lease in the first turn after
 * the pause: counted in timer callbacks, its lease would still hold, and the read would return
 * what it had before a new leader took over.
 */
import { equal, notEqual, ok, rejects } from "node:assert/strict";
import { type Message, replicaId, SeededPrng } from "../raft/mod.ts";
import type { ApplyResult } from "./apply_result.ts";
import { encodeCommand } from "./command_codec.ts";
import { AspenError } from "./errors.ts";
import { SqliteLogStorage } from "./raft_log_storage.ts";
import { type ReplicaStateMachine, ShardReplica } from "./replica.ts";
import { StateMachine } from "./state_machine.ts";

const TICK_MS = 50;
const NOOP = encodeCommand({ type: "noop" });

interface Group {
  readonly replicas: Map<number, ShardReplica<ApplyResult>>;
  readonly isolated: Set<number>;
  heartbeats: number;
  /** The fake monotonic clock every replica reads. */
  nowMs: number;
}

function replicaMachine(machine: StateMachine): ReplicaStateMachine<ApplyResult> {
  return {
    appliedIndex: () => machine.appliedIndex(),
    apply: (entries) =>
      machine.apply(
        entries.map((entry) =>
          entry.data.byteLength === 0 ? { index: entry.index, data: NOOP } : entry
        ),
      ),
    snapshot: () => machine.snapshot(),
    restore: (data) => machine.restore(data),
    close: () => machine.close(),
  };
}

function makeGroup(clockTickMs: number | null): Group {
  const group: Group = { replicas: new Map(), isolated: new Set(), heartbeats: 0, nowMs: 1_000 };
  const voters = [1, 2, 3].map(replicaId);
  for (const id of voters) {
    const replica = new ShardReplica<ApplyResult>({
      shard: 0,
      raft: {
        id,
        electionTicks: 10,
        heartbeatTicks: 2,
        prng: new SeededPrng(id),
        preVote: true,
        checkQuorum: true,
        leaseReads: true,
      },
      storage: SqliteLogStorage.open({ path: ":memory:", bootstrap: { voters, learners: [] } }),
      stateMachine: replicaMachine(StateMachine.open({ path: ":memory:", synchronous: "normal" })),
      send: (messages: readonly Message[]) => {
        for (const message of messages) {
          if (message.type === "heartbeat") group.heartbeats++;
          if (group.isolated.has(message.to) || group.isolated.has(message.from)) continue;
          group.replicas.get(message.to)?.deliver(message);
        }
      },
      nowMs: () => group.nowMs,
      tickMs: 0,
      ...(clockTickMs === null ? {} : { clockTickMs }),
    });
    group.replicas.set(id, replica);
  }
  return group;
}

async function settle(rounds = 30): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** One tick of time as the node's timer gives it: the clock moves, every replica turns. */
async function tick(group: Group): Promise<void> {
  group.nowMs += TICK_MS;
  for (const replica of group.replicas.values()) replica.tickNow();
  await settle();
}

/** Ticks until a leader is elected, then until its lease holds; returns it. */
async function electOne(group: Group): Promise<ShardReplica<ApplyResult>> {
  // With lease reads a replica refuses votes for one election timeout after it starts.
  for (let i = 0; i < 100 && leaderOf(group) === null; i++) await tick(group);
  const leader = leaderOf(group);
  ok(leader !== null, "no leader after 100 ticks");
  for (let i = 0; i < 4; i++) await tick(group);
  equal(leader.status().role, "leader");
  return leader;
}

function leaderOf(group: Group): ShardReplica<ApplyResult> | null {
  return [...group.replicas.values()].find((r) => r.status().role === "leader") ?? null;
}

function idOf(group: Group, replica: ShardReplica<ApplyResult>): number {
  return [...group.replicas].find(([, candidate]) => candidate === replica)![0];
}

function closeGroup(group: Group): void {
  for (const replica of group.replicas.values()) replica.close();
}

/** Whether `promise` settled within a few event-loop rounds, and how. */
async function outcome(promise: Promise<unknown>): Promise<"served" | "refused" | "pending"> {
  let state: "served" | "refused" | "pending" = "pending";
  promise.then(() => state = "served", () => state = "refused");
  await settle();
  return state;
}

Deno.test("ShardReplica with clockTickMs serves reads from a lease without a round", async () => {
  const group = makeGroup(TICK_MS);
  try {
    const leader = await electOne(group);
    const before = group.heartbeats;
    equal(await leader.read(() => "read"), "read");
    equal(group.heartbeats, before, "no heartbeat round for a read within the lease");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica with clockTickMs: a paused leader's lease ends", async () => {
  const group = makeGroup(TICK_MS);
  try {
    const leader = await electOne(group);
    // Paused for 5 s: its followers (cut off from it here) would have elected another leader.
    group.isolated.add(idOf(group, leader));
    group.nowMs += 5_000;
    const read = leader.read(() => "stale");
    const result = await outcome(read);
    ok(result !== "served", "the read was served from a lease that the pause ended");
    if (result === "refused") {
      await rejects(read, (error: AspenError) => error.code === "not_leader");
    }
    // Check-quorum saw no follower answer during the pause: it stepped down at once (and, its
    // election timeout run out too, may already seek votes).
    notEqual(leader.status().role, "leader");
    leader.close();
    await read.catch(() => {});
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica without clockTickMs: a pause keeps the lease (the hazard)", async () => {
  // The same pause with time counted in timer callbacks: the lease still holds, and the read is
  // served at once. This is why nodes run their replicas with clockTickMs.
  const group = makeGroup(null);
  try {
    const leader = await electOne(group);
    group.isolated.add(idOf(group, leader));
    group.nowMs += 5_000;
    equal(await outcome(leader.read(() => "stale")), "served");
  } finally {
    closeGroup(group);
  }
});
