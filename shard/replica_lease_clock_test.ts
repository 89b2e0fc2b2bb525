/**
 * Lease reads with a lease clock (RaftConfig.leaseClock), as nodes run them: three replicas in
 * process on the real SQLite storage and state machine, one fake monotonic clock. A leader that
 * was paused (the clock jumped while none of its timer ticks came) must not answer a read from
 * its lease after the pause: counted in ticks alone, its lease would still hold, and the read
 * would return what it had before a new leader took over.
 */
import { equal, ok } from "node:assert/strict";
import { type Message, replicaId, SeededPrng } from "../raft/mod.ts";
import type { ApplyResult } from "./apply_result.ts";
import { encodeCommand } from "./command_codec.ts";
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

function makeGroup(options: { isLeaseClocked: boolean }): Group {
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
        // Leases alone: an idle group would quiesce, and a woken leader starts without one.
        quiesce: false,
        ...(options.isLeaseClocked
          ? { leaseClock: { nowMs: () => group.nowMs, tickMs: TICK_MS } }
          : {}),
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

Deno.test("ShardReplica with a lease clock serves reads from a lease without a round", async () => {
  const group = makeGroup({ isLeaseClocked: true });
  try {
    const leader = await electOne(group);
    const before = group.heartbeats;
    equal(await leader.read(() => "read"), "read");
    equal(group.heartbeats, before, "no heartbeat round for a read within the lease");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica with a lease clock: a paused leader's lease ends", async () => {
  const group = makeGroup({ isLeaseClocked: true });
  try {
    const leader = await electOne(group);
    // Paused for 5 s: its followers (cut off from it here) would have elected another leader.
    // Its timer fires once on resuming: one tick, not the 100 of the pause.
    group.isolated.add(idOf(group, leader));
    await tick(group);
    group.nowMs += 5_000;
    const before = group.heartbeats;
    const read = leader.read(() => "stale");
    equal(await outcome(read), "pending", "the read was served from a lease the pause ended");
    ok(group.heartbeats > before, "the read waits for a heartbeat round instead");
    equal(leader.status().role, "leader", "by its ticks it still leads");
    leader.close();
    await read.catch(() => {});
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica without a lease clock: a pause keeps the lease (the hazard)", async () => {
  // The same pause with time counted in timer callbacks: the lease still holds, and the read is
  // served at once. This is why nodes give their replicas a lease clock.
  const group = makeGroup({ isLeaseClocked: false });
  try {
    const leader = await electOne(group);
    group.isolated.add(idOf(group, leader));
    await tick(group);
    group.nowMs += 5_000;
    equal(await outcome(leader.read(() => "stale")), "served");
  } finally {
    closeGroup(group);
  }
});
