/**
 * ShardReplica driver, in process: three replicas over in-memory log storage and a list state
 * machine, wired by a message bus that delivers through each replica's own queue. Checks that a
 * leader is elected, proposals resolve with their apply result on every replica in the same
 * order, group commit batches concurrent proposals, reads wait for ReadIndex, followers refuse
 * with a leader hint, snapshots are taken and a lagging replica catches up from one. Admin calls
 * (leadership transfer, campaign) made while a Ready waits for its held flush are queued, take
 * effect after the flush and settle their promises; the queue is bounded and close() fails it.
 * Storage failures are injected at the storage seams (a persist or an apply that throws the
 * error SQLite throws on a full disk): the replica holds the Ready, refuses writes with the
 * failure's code, keeps serving reads, and retries the same write until it succeeds.
 * The same behaviour on real SQLite storage and real processes is covered by the node tests.
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  MemoryStorage,
  type Message,
  replicaId,
  SeededPrng,
  type Snapshot,
  type Term,
} from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import {
  ADMIN_CALLS_PENDING_MAX,
  APPLY_ENTRIES_PER_READY_MAX,
  COMMIT_NOTICE_DELAY_MS,
  COMPACT_ENTRIES_PER_TURN_MAX,
  INBOUND_ENTRIES_PER_TURN_MAX,
  LOG_RETAINED_ENTRIES,
  type PendingSnapshot,
  PROPOSAL_HOLD_MS,
  type ReplicaLogStorage,
  type ReplicaStateMachine,
  ShardReplica,
  SNAPSHOT_RETRY_MS,
  TURN_WORK_MS_MAX,
} from "./replica.ts";

class MemoryLogStorage extends MemoryStorage implements ReplicaLogStorage {
  appendCalls = 0;
  transactions = 0;
  /** Errors the next persist() calls throw, one each, before writing anything. */
  readonly failures: Error[] = [];
  /** The entries of every persist() call, failed ones included. */
  readonly persisted: (readonly Entry[])[] = [];
  /** Errors the next createSnapshot() calls throw, one each, before writing anything. */
  readonly snapshotFailures: Error[] = [];
  override createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): void {
    const failure = this.snapshotFailures.shift();
    if (failure !== undefined) throw failure;
    super.createSnapshot(index, confState, data);
  }
  storeSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): undefined {
    this.createSnapshot(index, confState, data);
  }
  /** Whether a must-sync persist returns a flush promise (see the deferred-flush tests). */
  #isFlushDeferred = false;
  /** While true, those flushes wait until release(). */
  isFlushHeld = false;
  readonly heldFlushes: (() => void)[] = [];
  /** Makes must-sync writes durable through a flush that completes at once or on release(). */
  deferFlushes(): void {
    this.#isFlushDeferred = true;
  }
  release(): void {
    this.isFlushHeld = false;
    for (const resolve of this.heldFlushes.splice(0)) resolve();
  }
  persist(
    write: { hardState: HardState | null; entries: readonly Entry[]; snapshot: Snapshot | null },
    mustSync: boolean,
  ): Promise<void> | undefined {
    this.persisted.push(write.entries);
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    if (write.snapshot !== null) this.applySnapshot(write.snapshot);
    if (write.entries.length > 0) {
      this.appendCalls++;
      this.append(write.entries);
    }
    if (write.hardState !== null) this.setHardState(write.hardState);
    const isWritten = write.snapshot !== null || write.entries.length > 0 ||
      write.hardState !== null;
    if (isWritten) this.transactions++;
    if (!mustSync || !this.#isFlushDeferred) return undefined;
    if (!this.isFlushHeld) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.heldFlushes.push(resolve);
    return promise;
  }
  close(): void {}
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Applies each entry by appending its text to a list; the result is the list's length. */
class ListMachine implements ReplicaStateMachine<number> {
  items: string[] = [];
  applied = 0;
  /** Errors the next apply() calls throw, one each, before applying anything. */
  readonly failures: Error[] = [];
  appliedIndex(): number {
    return this.applied;
  }
  apply(entries: readonly { index: number; data: Uint8Array }[]): number[] {
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    const results: number[] = [];
    for (const entry of entries) {
      if (entry.index > this.applied) {
        if (entry.data.byteLength > 0) this.items.push(decoder.decode(entry.data));
        this.applied = entry.index;
      }
      results.push(this.items.length);
    }
    return results;
  }
  snapshot(): Uint8Array | PendingSnapshot {
    return this.bytes();
  }
  bytes(): Uint8Array {
    return encoder.encode(JSON.stringify({ items: this.items, applied: this.applied }));
  }
  restore(data: Uint8Array, index: number): void {
    const state = JSON.parse(decoder.decode(data));
    this.items = state.items;
    this.applied = index;
  }
  close(): void {}
}

interface Group {
  replicas: Map<number, ShardReplica<number>>;
  machines: Map<number, ListMachine>;
  storages: Map<number, MemoryLogStorage>;
  isolated: Set<number>;
  /** Heartbeats sent, isolated or not: one per follower per ReadIndex round. */
  heartbeats: number;
  /** Every message sent, in order. */
  sent: Message[];
}

/**
 * The Raft settings of the replicas here: pre-vote and check-quorum on, as nodes run them, or
 * both off where a test elects a single voter by hand.
 */
function raftConfig(
  id: number,
  options: { isElectionGuarded: boolean; deferCommitNotices?: boolean } = {
    isElectionGuarded: true,
  },
) {
  return {
    deferCommitNotices: options.deferCommitNotices ?? false,
    id: replicaId(id),
    electionTicks: 10,
    heartbeatTicks: 1,
    prng: new SeededPrng(id),
    preVote: options.isElectionGuarded,
    checkQuorum: options.isElectionGuarded,
    leaseReads: false,
  };
}

function makeGroup(snapshotIntervalEntries = 1000, deferCommitNotices = false): Group {
  const group: Group = {
    replicas: new Map(),
    machines: new Map(),
    storages: new Map(),
    isolated: new Set(),
    heartbeats: 0,
    sent: [],
  };
  const voters = [1, 2, 3].map(replicaId);
  for (const id of [1, 2, 3]) {
    const machine = new ListMachine();
    const storage = new MemoryLogStorage({ voters, learners: [] });
    group.storages.set(id, storage);
    const replica = new ShardReplica<number>({
      shard: 0,
      raft: raftConfig(id, { isElectionGuarded: true, deferCommitNotices }),
      storage,
      stateMachine: machine,
      send: (messages: readonly Message[]) => {
        for (const message of messages) {
          group.sent.push(message);
          if (message.type === "heartbeat") group.heartbeats++;
          if (group.isolated.has(message.to) || group.isolated.has(message.from)) continue;
          group.replicas.get(message.to)?.deliver(message);
        }
      },
      nowMs: () => performance.now(),
      tickMs: 0,
      snapshotIntervalEntries,
    });
    group.replicas.set(id, replica);
    group.machines.set(id, machine);
  }
  return group;
}

/** Lets queued turns and message deliveries run. */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

async function electOne(group: Group): Promise<ShardReplica<number>> {
  await group.replicas.get(1)!.campaign();
  await settle();
  const leader = group.replicas.get(1)!;
  equal(leader.status().role, "leader");
  return leader;
}

function closeGroup(group: Group): void {
  for (const replica of group.replicas.values()) replica.close();
}

Deno.test("ShardReplica elects, replicates and resolves proposals with their results", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    const results = await Promise.all(
      ["a", "b", "c"].map((item) => leader.propose(encoder.encode(item))),
    );
    deepEqual(results, [1, 2, 3]);
    await settle();
    for (const machine of group.machines.values()) deepEqual(machine.items, ["a", "b", "c"]);
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica, deferred commit notices: a lone write reaches followers", async () => {
  const group = makeGroup(1000, true);
  try {
    const leader = await electOne(group);
    const emptyAppends = () =>
      group.sent.filter((message) => message.type === "append" && message.entries.length === 0)
        .length;
    equal(await leader.propose(encoder.encode("a")), 1);
    // No tick ever runs here (tickMs 0), so no heartbeat can carry the commit: the replica's
    // notice, COMMIT_NOTICE_DELAY_MS after the commit, is what tells the followers.
    const before = emptyAppends();
    const noticesBefore = leader.status().stats.commitNotices;
    await new Promise((resolve) => setTimeout(resolve, COMMIT_NOTICE_DELAY_MS * 3));
    await settle();
    for (const machine of group.machines.values()) deepEqual(machine.items, ["a"]);
    equal(emptyAppends() - before <= 2, true, "one notice per follower at most");
    equal(leader.status().stats.commitNotices - noticesBefore, 1, "the notice is counted");

    // A follower read's leader tells the commit at once (noticeCommitNow), without the delay.
    equal(await leader.propose(encoder.encode("b")), 2);
    leader.noticeCommitNow();
    await settle(4);
    for (const machine of group.machines.values()) deepEqual(machine.items, ["a", "b"]);
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica commits proposals of one turn together (group commit)", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    const before = leader.status().lastIndex;
    const appendsBefore = group.storages.get(1)!.appendCalls;
    const proposals = Array.from({ length: 200 }, (_, i) => leader.propose(encoder.encode(`${i}`)));
    await Promise.all(proposals);
    equal(leader.status().lastIndex - before, 200);
    const appends = group.storages.get(1)!.appendCalls - appendsBefore;
    ok(appends <= 2, `200 proposals of one turn took ${appends} appends`);
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica holds a held proposal for the next one, or PROPOSAL_HOLD_MS", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    const log = group.storages.get(1)!;
    // Held, then a proposal that is not: both go in one append, the held one first.
    const appendsBefore = log.appendCalls;
    const indexBefore = leader.status().lastIndex;
    const held = leader.propose(encoder.encode("held"), { isHeld: true });
    await settle(2); // a few turns, well within PROPOSAL_HOLD_MS
    equal(leader.status().lastIndex, indexBefore, "nothing proposed while the proposal is held");
    const next = leader.propose(encoder.encode("next"));
    deepEqual(await Promise.all([held, next]), [1, 2]);
    equal(log.appendCalls - appendsBefore, 1, "one append for both");
    deepEqual(group.machines.get(1)!.items, ["held", "next"]);

    // Alone: proposed once its hold ended, with no other proposal and no tick (tickMs 0).
    const started = performance.now();
    equal(await leader.propose(encoder.encode("alone"), { isHeld: true }), 3);
    ok(performance.now() - started >= PROPOSAL_HOLD_MS - 1, "held for PROPOSAL_HOLD_MS");

    // Released: proposed at the next turn; releaseHeld() settles once it applied.
    const released = leader.propose(encoder.encode("released"), { isHeld: true });
    await leader.releaseHeld();
    deepEqual(group.machines.get(1)!.items, ["held", "next", "alone", "released"]);
    equal(await released, 4);

    // A follower holds nothing: it refuses at once with the leader's hint.
    const follower = group.replicas.get(2)!;
    await rejects(
      follower.propose(encoder.encode("x"), { isHeld: true }),
      (error: AspenError) => error.code === "not_leader",
    );
    // Closing fails a held proposal.
    const orphan = leader.propose(encoder.encode("orphan"), { isHeld: true });
    leader.close();
    await rejects(orphan, (error: AspenError) => error.code === "shard_unavailable");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica followers refuse proposals and reads with a leader hint", async () => {
  const group = makeGroup();
  try {
    await electOne(group);
    const follower = group.replicas.get(2)!;
    await rejects(follower.propose(encoder.encode("x")), (error: AspenError) => {
      equal(error.code, "not_leader");
      equal(error.details.leader, 1);
      return true;
    });
    await rejects(follower.read(() => 1), (error: AspenError) => error.code === "not_leader");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica.read() sees every write acknowledged before it", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    await leader.propose(encoder.encode("w1"));
    const machine = group.machines.get(1)!;
    const seen = await leader.read(() => [...machine.items]);
    deepEqual(seen, ["w1"]);
    equal(leader.status().stats.readsServed, 1);
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica keeps one ReadIndex round in flight; later reads share one", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    await leader.propose(encoder.encode("w1"));
    group.isolated.add(2);
    group.isolated.add(3);
    const before = group.heartbeats;
    const first = leader.read(() => "first");
    await settle();
    equal(group.heartbeats - before, 2, "one round for the first read");
    const later = [];
    for (let i = 0; i < 5; i++) {
      later.push(leader.read(() => `later ${i}`));
      await settle();
    }
    equal(group.heartbeats - before, 2, "no round while the first is unanswered");
    group.isolated.clear();
    leader.tick();
    await settle();
    equal(await first, "first");
    deepEqual(await Promise.all(later), [0, 1, 2, 3, 4].map((i) => `later ${i}`));
    ok(group.heartbeats - before <= 2 + 2 + 2, "the later reads shared one round");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica fails the reads of a leader that stepped down", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    group.isolated.add(1);
    let outcome = "pending";
    leader.read(() => "never").then(
      () => outcome = "served",
      (error: AspenError) => outcome = error.code,
    );
    await settle();
    // Check-quorum: without answers for an election timeout, the leader steps down.
    for (let i = 0; i < 25 && leader.status().role === "leader"; i++) {
      leader.tick();
      await settle(2);
    }
    equal(leader.status().role, "follower");
    await settle();
    equal(outcome, "not_leader", "the read waiting on the old round fails at once");
    await rejects(leader.read(() => "after"), (error: AspenError) => error.code === "not_leader");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica snapshots, compacts, and a lagging replica catches up", async () => {
  const group = makeGroup(50);
  try {
    const leader = await electOne(group);
    group.isolated.add(3);
    for (let i = 0; i < 120; i++) await leader.propose(encoder.encode(`${i}`));
    ok(leader.status().stats.snapshotsCreated >= 2);
    ok(leader.status().firstIndex > 1, "the log was compacted");
    group.isolated.delete(3);
    for (let i = 0; i < 30; i++) {
      leader.tick();
      await settle(5);
    }
    const lagging = group.replicas.get(3)!;
    ok(lagging.status().stats.snapshotsRestored >= 1, "caught up by snapshot");
    deepEqual(group.machines.get(3)!.items, group.machines.get(1)!.items);
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica.close() fails pending proposals", async () => {
  const group = makeGroup();
  const leader = await electOne(group);
  group.isolated.add(2);
  group.isolated.add(3);
  const pending = leader.propose(encoder.encode("never"));
  await settle();
  closeGroup(group);
  await rejects(pending, (error: AspenError) => error.code === "shard_unavailable");
});

Deno.test("ShardReplica, deferred flushes: a follower answers after its flush", async () => {
  const group = makeGroup();
  for (const storage of group.storages.values()) storage.deferFlushes();
  try {
    const leader = await electOne(group);
    const follower = group.storages.get(2)!;
    follower.isFlushHeld = true;
    group.isolated.add(3);
    const sentBefore = group.sent.length;
    let isResolved = false;
    const pending = leader.propose(encoder.encode("x")).then((result) => {
      isResolved = true;
      return result;
    });
    await settle();
    const lastIndex = leader.status().lastIndex;
    equal(follower.lastIndex(), lastIndex, "the follower wrote the entry");
    equal(follower.heldFlushes.length, 1, "and waits for its flush");
    const answers = group.sent.slice(sentBefore).filter((message) => message.from === 2);
    deepEqual(answers, [], "nothing leaves the follower before its flush");
    group.replicas.get(2)!.tickNow(); // a tick while flushing waits for the flush
    equal(isResolved, false, "nothing commits on an unflushed acknowledgement");
    equal(group.machines.get(2)!.items.length, 0);
    follower.release();
    equal(await pending, 1);
    const acks = group.sent.slice(sentBefore).filter((message) =>
      message.from === 2 && message.type === "appendResponse"
    );
    ok(acks.length >= 1, "the follower acknowledged after its flush");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica, deferred flushes: leader appends leave before its flush", async () => {
  const group = makeGroup();
  for (const storage of group.storages.values()) storage.deferFlushes();
  try {
    const leader = await electOne(group);
    const storage = group.storages.get(1)!;
    storage.isFlushHeld = true;
    let isResolved = false;
    const pending = leader.propose(encoder.encode("y")).then(() => isResolved = true);
    await settle();
    equal(storage.heldFlushes.length, 1, "the leader waits for its flush");
    const lastIndex = storage.lastIndex();
    equal(group.storages.get(2)!.lastIndex(), lastIndex, "the followers have the entry already");
    equal(group.storages.get(3)!.lastIndex(), lastIndex);
    // Both followers acknowledged, but the leader steps nothing until its own flush is done.
    equal(isResolved, false, "nothing commits before the leader's own entries are durable");
    equal(leader.status().commit < lastIndex, true);
    storage.release();
    await pending;
    equal(isResolved, true);
    await settle();
    for (const machine of group.machines.values()) deepEqual(machine.items, ["y"]);
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica with deferred flushes: close() while a flush runs", async () => {
  const group = makeGroup();
  for (const storage of group.storages.values()) storage.deferFlushes();
  const leader = await electOne(group);
  const storage = group.storages.get(1)!;
  storage.isFlushHeld = true;
  const pending = leader.propose(encoder.encode("z"));
  await settle();
  equal(storage.heldFlushes.length, 1);
  closeGroup(group);
  await rejects(pending, (error: AspenError) => error.code === "shard_unavailable");
  storage.release(); // the flush finishing after close changes nothing
  await settle();
});

Deno.test("ShardReplica, deferred flushes: a new term's messages wait for the flush", async () => {
  // A single voter elects itself in one step: the Ready that makes it leader also changes its
  // term and vote, so even its appends (to the learner) must wait until they are durable.
  const storage = new MemoryLogStorage({ voters: [replicaId(1)], learners: [replicaId(2)] });
  storage.deferFlushes();
  storage.isFlushHeld = true;
  const sent: Message[] = [];
  const replica = new ShardReplica<number>({
    shard: 0,
    raft: raftConfig(1, { isElectionGuarded: false }),
    storage,
    stateMachine: new ListMachine(),
    send: (messages) => sent.push(...messages),
    nowMs: () => performance.now(),
    tickMs: 0,
  });
  try {
    const campaigned = replica.campaign();
    replica.runTurn();
    await campaigned;
    equal(replica.status().role, "leader");
    equal(storage.heldFlushes.length, 1, "the new term waits for its flush");
    deepEqual(sent, [], "no message of an unflushed term left");
  } finally {
    replica.close();
  }
});

/**
 * Makes replica `id` hold a Ready that waits for its flush: a write reaches it and its flush is
 * held. Until release(), the core has handed out a Ready that is not advanced yet.
 */
async function holdFlushOn(group: Group, leader: ShardReplica<number>, id: number) {
  const storage = group.storages.get(id)!;
  storage.isFlushHeld = true;
  const written = watch(leader.propose(encoder.encode(`held on ${id}`)));
  await settle();
  equal(storage.heldFlushes.length, 1, `replica ${id} waits for its flush`);
  return { storage, written };
}

/** A promise's outcome as it happens: "pending", "ok", or the code of its error. */
interface Watched {
  outcome: string;
  error: AspenError | null;
  readonly done: Promise<void>;
}

function watch(promise: Promise<unknown>): Watched {
  const watched: Watched = {
    outcome: "pending",
    error: null,
    done: promise.then(
      () => {
        watched.outcome = "ok";
      },
      (error: AspenError) => {
        watched.outcome = error.code;
        watched.error = error;
      },
    ),
  };
  return watched;
}

Deno.test("ShardReplica.transferLeadership() answers with the leader once it moved", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    const moved = leader.transferLeadership(replicaId(2));
    await settle();
    equal(await moved, 2, "resolves with the new leader");
    equal(group.replicas.get(2)!.status().role, "leader");
    equal(leader.status().role, "follower");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica.transferLeadership() to an unreachable replica fails in time", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    group.isolated.add(3);
    const transfer = watch(leader.transferLeadership(replicaId(3)));
    await settle();
    equal(transfer.outcome, "pending", "the core waits for replica 3 to catch up");
    equal(leader.status().leadTransferee, 3);
    for (let i = 0; i < 12 && transfer.outcome === "pending"; i++) {
      leader.tick();
      await settle(2);
    }
    equal(transfer.outcome, "timeout", "abandoned after an election timeout");
    equal(transfer.error?.details.leader, 1, "and it says who still leads");
    equal(leader.status().role, "leader");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica.transferLeadership() while a Ready waits for its flush", async () => {
  const group = makeGroup();
  for (const storage of group.storages.values()) storage.deferFlushes();
  try {
    const leader = await electOne(group);
    const { storage, written } = await holdFlushOn(group, leader, 1);
    const transfer = watch(leader.transferLeadership(replicaId(2)));
    const toNonVoter = watch(leader.transferLeadership(replicaId(9)));
    const onFollower = watch(group.replicas.get(3)!.transferLeadership(replicaId(2)));
    await settle();
    equal(transfer.outcome, "pending", "the transfer waits for the leader's turn");
    equal(toNonVoter.outcome, "pending");
    equal(leader.status().leadTransferee, null);
    equal(onFollower.outcome, "not_leader", "a follower refuses in its next turn");
    equal(onFollower.error?.details.leader, 1);
    storage.release();
    await Promise.all([transfer.done, toNonVoter.done, written.done]);
    equal(transfer.outcome, "ok");
    equal(toNonVoter.outcome, "bad_request");
    ok(toNonVoter.error?.message.includes("not a voter"), toNonVoter.error?.message);
    equal(written.outcome, "ok", "the write made before the transfer commits");
    await settle();
    equal(group.replicas.get(2)!.status().role, "leader", "leadership moved to replica 2");
    equal(leader.status().role, "follower");
    for (const machine of group.machines.values()) deepEqual(machine.items, ["held on 1"]);
  } finally {
    closeGroup(group);
  }
});

/** The error node:sqlite throws when a write finds the disk full. */
function diskFullError(): Error {
  return Object.assign(new Error("database or disk is full"), { code: "ERR_SQLITE_ERROR" });
}

function isCode(code: string): (error: AspenError) => boolean {
  return (error) => {
    equal(error.code, code, error.message);
    return true;
  };
}

/** A group of one voter, elected, ticked by hand. */
function singleVoter<Machine extends ListMachine = ListMachine>(
  options: { nowMs?: () => number; snapshotIntervalEntries?: number; machine?: Machine } = {},
): {
  replica: ShardReplica<number>;
  storage: MemoryLogStorage;
  machine: ListMachine;
} {
  const storage = new MemoryLogStorage({ voters: [replicaId(1)], learners: [] });
  const machine = options.machine ?? new ListMachine();
  const replica = new ShardReplica<number>({
    shard: 7,
    raft: raftConfig(1, { isElectionGuarded: false }),
    storage,
    stateMachine: machine,
    send: () => {},
    nowMs: options.nowMs ?? (() => performance.now()),
    tickMs: 0,
    snapshotIntervalEntries: options.snapshotIntervalEntries ?? 1000,
  });
  replica.campaign();
  replica.runTurn();
  equal(replica.status().role, "leader");
  return { replica, storage, machine };
}

Deno.test("ShardReplica holds a Ready whose log write failed and retries it", async () => {
  const { replica, storage, machine } = singleVoter();
  try {
    equal(await replica.propose(encoder.encode("a")), 1);
    const lastIndex = storage.lastIndex();
    storage.failures.push(diskFullError(), diskFullError());
    const firstAttempt = storage.persisted.length;
    const pending = replica.propose(encoder.encode("b"));
    await settle();
    const stall = replica.status().stall;
    equal(stall?.kind, "no_space");
    equal(stall?.stage, "persist");
    equal(stall?.attempts, 1);
    equal(storage.lastIndex(), lastIndex, "nothing was written");
    await rejects(replica.propose(encoder.encode("c")), isCode("no_space"));
    equal(await replica.read(() => machine.items.join()), "a", "a sole voter still reads");
    replica.tick();
    await settle();
    equal(replica.status().stall?.attempts, 2, "the first retry failed too");
    replica.tick();
    await settle();
    equal(replica.status().stall?.attempts, 2, "the wait doubled: no retry after one tick");
    replica.tick();
    await settle();
    equal(replica.status().stall, null, "the second retry succeeded");
    equal(await pending, 2, "the proposal in the held Ready committed");
    deepEqual(machine.items, ["a", "b"]);
    // The sole voter commits "b" in the Ready after the one that wrote it.
    const attempts = storage.persisted.slice(firstAttempt, firstAttempt + 3);
    equal(attempts[2]?.length, 1, "the held Ready writes b");
    deepEqual(attempts[0], attempts[2], "the retries wrote the same Ready");
    deepEqual(attempts[1], attempts[2]);
    equal(await replica.propose(encoder.encode("d")), 3, "writes resume");
    equal(replica.status().stats.storageFailures, 2);
    equal(replica.status().stats.proposalsDropped, 1, "the refused proposal is counted");
  } finally {
    replica.close();
  }
});

Deno.test("ShardReplica holds a Ready whose apply failed and retries only the apply", async () => {
  const group = makeGroup();
  try {
    const leader = await electOne(group);
    const machine = group.machines.get(1)!;
    machine.failures.push(diskFullError());
    const pending = leader.propose(encoder.encode("x"));
    await settle();
    equal(leader.status().stall?.stage, "apply");
    equal(machine.items.length, 0);
    await rejects(leader.propose(encoder.encode("y")), isCode("no_space"));
    await rejects(leader.read(() => 0), isCode("no_space"), "no ReadIndex round while stalled");
    leader.tick();
    await settle();
    equal(leader.status().stall, null);
    equal(await pending, 1);
    for (let i = 0; i < 3; i++) {
      leader.tick();
      await settle();
    }
    for (const replica of group.machines.values()) deepEqual(replica.items, ["x"]);
    equal(new Set(group.sent).size, group.sent.length, "no message was sent twice");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica.campaign() while a Ready waits for its flush", async () => {
  const group = makeGroup();
  for (const storage of group.storages.values()) storage.deferFlushes();
  try {
    const leader = await electOne(group);
    const { storage, written } = await holdFlushOn(group, leader, 3);
    const replica = group.replicas.get(3)!;
    const sentBefore = group.sent.length;
    const campaigned = watch(replica.campaign());
    await settle();
    equal(campaigned.outcome, "pending", "the election waits for the replica's turn");
    equal(replica.status().role, "follower");
    storage.release();
    await Promise.all([campaigned.done, written.done]);
    equal(campaigned.outcome, "ok");
    equal(written.outcome, "ok");
    const requests = group.sent.slice(sentBefore).filter((message) =>
      message.from === 3 && message.type === "preVote"
    );
    equal(requests.length, 2, "replica 3 asked both peers for a pre-vote");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica: a stalled follower refuses with not_leader; others go on", async () => {
  const group = makeGroup();
  try {
    await electOne(group);
    const leader = group.replicas.get(1)!;
    group.storages.get(2)!.failures.push(diskFullError());
    equal(await leader.propose(encoder.encode("p")), 1, "replica 3 makes the quorum");
    const follower = group.replicas.get(2)!;
    equal(follower.status().stall?.kind, "no_space");
    await rejects(follower.propose(encoder.encode("q")), (error: AspenError) => {
      equal(error.code, "not_leader");
      equal(error.details.leader, 1);
      return true;
    });
    follower.tick();
    await settle();
    equal(follower.status().stall, null);
    for (let i = 0; i < 3; i++) {
      leader.tick();
      await settle();
    }
    deepEqual(group.machines.get(2)!.items, ["p"], "the follower caught up");
  } finally {
    closeGroup(group);
  }
});

Deno.test("ShardReplica admin calls are bounded and fail on close()", async () => {
  const group = makeGroup();
  for (const storage of group.storages.values()) storage.deferFlushes();
  const leader = await electOne(group);
  const { written } = await holdFlushOn(group, leader, 1);
  const queued: Watched[] = [];
  for (let i = 0; i < ADMIN_CALLS_PENDING_MAX; i++) {
    queued.push(watch(i % 2 === 0 ? leader.transferLeadership(replicaId(2)) : leader.campaign()));
  }
  const refused = watch(leader.transferLeadership(replicaId(3)));
  await refused.done;
  equal(refused.outcome, "too_many_requests");
  ok(refused.error?.message.includes(`limit is ${ADMIN_CALLS_PENDING_MAX}`));
  closeGroup(group);
  const afterClose = watch(leader.campaign());
  await Promise.all([...queued, written, afterClose].map((call) => call.done));
  for (const call of [...queued, written, afterClose]) equal(call.outcome, "shard_unavailable");
});

Deno.test("ShardReplica: a snapshot that failed on storage is tried again later", async () => {
  let nowMs = 0;
  const { replica, storage } = singleVoter({ nowMs: () => nowMs, snapshotIntervalEntries: 5 });
  try {
    storage.snapshotFailures.push(diskFullError());
    for (let i = 0; i < 5; i++) await replica.propose(encoder.encode(`${i}`));
    await settle();
    const stats = replica.status().stats;
    equal(stats.snapshotFailures, 1, "the snapshot failed once");
    equal(stats.snapshotsCreated, 0);
    equal(replica.status().stall, null, "a failed snapshot stalls nothing");
    await replica.propose(encoder.encode("more"));
    equal(replica.status().stats.snapshotFailures, 1, "not tried again at once");
    nowMs += SNAPSHOT_RETRY_MS;
    await replica.propose(encoder.encode("later"));
    equal(replica.status().stats.snapshotsCreated, 1, "tried again once the wait passed");
    ok(storage.snapshot().metadata.index > 0);
  } finally {
    replica.close();
  }
});

Deno.test("ShardReplica compacts a long log behind a snapshot over several turns", async () => {
  // Deleting ~100,000 entries in one transaction held the node's event loop for 200-500 ms.
  const interval = LOG_RETAINED_ENTRIES + 3 * COMPACT_ENTRIES_PER_TURN_MAX;
  const { replica, storage } = singleVoter({ snapshotIntervalEntries: interval });
  const steps: number[] = [];
  const compact = storage.compact.bind(storage);
  storage.compact = (index) => {
    steps.push(index - storage.firstIndex() + 1);
    compact(index);
  };
  try {
    const proposals = [];
    for (let i = 0; i < interval; i++) proposals.push(replica.propose(encoder.encode(`${i}`)));
    await Promise.all(proposals);
    await settle();
    const snapshotIndex = storage.snapshot().metadata.index;
    ok(snapshotIndex >= interval, "a snapshot was taken");
    equal(storage.firstIndex(), snapshotIndex - LOG_RETAINED_ENTRIES + 1, "compacted in full");
    ok(steps.length >= 3, `in steps: ${steps.join()}`);
    ok(steps.every((count) => count <= COMPACT_ENTRIES_PER_TURN_MAX), steps.join());
  } finally {
    replica.close();
  }
});

/** A ListMachine whose snapshots are made "in the background": the test settles each one. */
class BackgroundListMachine extends ListMachine {
  readonly pending: {
    readonly bytes: Uint8Array;
    /** The applied index when it was asked for. */
    readonly index: number;
    resolve(bytes: Uint8Array): void;
    reject(error: Error): void;
    isCancelled: boolean;
  }[] = [];
  override snapshot(): PendingSnapshot {
    const bytes = this.bytes();
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    const entry = { bytes, index: this.applied, resolve, reject, isCancelled: false };
    this.pending.push(entry);
    return {
      bytes: promise,
      cancel: () => {
        entry.isCancelled = true;
        reject(new Error("cancelled"));
      },
    };
  }
}

Deno.test("ShardReplica: a background snapshot is stored at its own index", async () => {
  let nowMs = 0;
  const machine = new BackgroundListMachine();
  const { replica, storage } = singleVoter({
    nowMs: () => nowMs,
    snapshotIntervalEntries: 5,
    machine,
  });
  try {
    for (let i = 0; i < 5; i++) await replica.propose(encoder.encode(`${i}`));
    await settle();
    equal(machine.pending.length, 1, "one snapshot is being made");
    for (let i = 0; i < 6; i++) await replica.propose(encoder.encode(`more ${i}`));
    equal(machine.pending.length, 1, "one at a time");
    equal(replica.status().stats.snapshotsCreated, 0);
    const first = machine.pending[0]!;
    first.resolve(first.bytes);
    await settle();
    equal(replica.status().stats.snapshotsCreated, 1, "the bytes woke a turn that stored them");
    equal(storage.snapshot().metadata.index, first.index, "the index of the captured state");
    ok(first.index < machine.applied, "entries were applied while it was made");
    deepEqual(storage.snapshot().data, first.bytes);
    await replica.propose(encoder.encode("next"));
    await settle();
    equal(machine.pending.length, 2, "the next interval started the next one");
    machine.pending[1]!.reject(new Error("the worker died"));
    await settle();
    equal(replica.status().stats.snapshotFailures, 1);
    await replica.propose(encoder.encode("after the failure"));
    equal(machine.pending.length, 2, "not tried again before SNAPSHOT_RETRY_MS");
    nowMs += SNAPSHOT_RETRY_MS;
    await replica.propose(encoder.encode("later"));
    equal(machine.pending.length, 3, "tried again once the wait passed");
  } finally {
    replica.close();
  }
  ok(machine.pending[2]!.isCancelled, "closing the replica stops the snapshot it was making");
});

Deno.test("ShardReplica: an error that is no storage failure still ends the turn", async () => {
  const { replica, storage } = singleVoter();
  storage.failures.push(new Error("boom"));
  const pending = replica.propose(encoder.encode("z"));
  throws(() => replica.runTurn(), /boom/);
  equal(replica.status().stall, null, "not held as a stall");
  replica.close();
  await rejects(pending, isCode("shard_unavailable"));
});

/** A replica of a three-voter group, ticked by hand, with the clock and storage given. */
function lonelyReplica(id: number, storage: MemoryLogStorage, nowMs: () => number) {
  const machine = new ListMachine();
  const replica = new ShardReplica<number>({
    shard: 0,
    raft: raftConfig(id),
    storage,
    stateMachine: machine,
    send: () => {},
    nowMs,
    tickMs: 0,
    snapshotIntervalEntries: 1_000_000,
  });
  return { replica, machine };
}

function entriesFrom(first: number, count: number): Entry[] {
  return Array.from({ length: count }, (_, i) => ({
    index: (first + i) as LogIndex,
    term: 1 as Term,
    type: "normal" as const,
    data: encoder.encode(`e${first + i}`),
  }));
}

Deno.test("ShardReplica steps at most INBOUND_ENTRIES_PER_TURN_MAX entries a turn", () => {
  // A leader pipelines many full appends to a follower that catches up; stepped at once they
  // made one huge log write that held the node's event loop.
  const voters = [1, 2, 3].map(replicaId);
  const storage = new MemoryLogStorage({ voters, learners: [] });
  const { replica } = lonelyReplica(2, storage, () => performance.now());
  try {
    const perMessage = 1024;
    const messages = 2 * INBOUND_ENTRIES_PER_TURN_MAX / perMessage;
    const first = storage.lastIndex(); // after the bootstrap entries (term 1, committed)
    for (let i = 0; i < messages; i++) {
      const prevIndex = first + i * perMessage;
      replica.deliver({
        type: "append",
        from: replicaId(1),
        to: replicaId(2),
        term: 1 as Term,
        prevIndex: prevIndex as LogIndex,
        prevTerm: 1 as Term,
        entries: entriesFrom(prevIndex + 1, perMessage),
        commit: first,
      });
    }
    replica.runTurn();
    equal(storage.lastIndex() - first, INBOUND_ENTRIES_PER_TURN_MAX, "the first turn stops");
    replica.runTurn();
    equal(storage.lastIndex() - first, 2 * INBOUND_ENTRIES_PER_TURN_MAX, "the next goes on");
  } finally {
    replica.close();
  }
});

Deno.test("ShardReplica yields after TURN_WORK_MS_MAX of Ready rounds", () => {
  // A replica with a long backlog of committed entries applies one Ready's worth a turn once
  // the turn has run for TURN_WORK_MS_MAX, instead of up to READY_ROUNDS_PER_TURN_MAX rounds.
  const storage = new MemoryLogStorage({ voters: [replicaId(1)], learners: [] });
  const count = 3 * APPLY_ENTRIES_PER_READY_MAX;
  storage.append(entriesFrom(1, count));
  storage.setHardState({ term: 1 as Term, vote: replicaId(1), commit: count as LogIndex });
  let nowMs = 0;
  const clock = () => (nowMs += TURN_WORK_MS_MAX);
  const { replica, machine } = lonelyReplica(1, storage, clock);
  try {
    replica.runTurn();
    equal(machine.applied, APPLY_ENTRIES_PER_READY_MAX, "one Ready's worth in the turn");
    replica.runTurn();
    replica.runTurn();
    equal(machine.applied, count, "the next turns go on");
  } finally {
    replica.close();
  }
});

Deno.test("ShardReplica.changeMembership() proposes one change at a time", async () => {
  const group = makeGroup();
  const codeOf = (error: unknown) => error instanceof AspenError ? error.code : String(error);
  try {
    const leader = await electOne(group);
    await leader.propose(encoder.encode("a"));
    const follower = group.replicas.get(2)!;
    await rejects(
      follower.changeMembership({ type: "removeReplica", replicaId: replicaId(3) }),
      (error) => codeOf(error) === "not_leader",
    );
    await rejects(
      leader.changeMembership({ type: "addVoter", replicaId: replicaId(2) }),
      (error) => codeOf(error) === "bad_request",
    );
    // Two changes in one turn: the second finds the first uncommitted.
    const [first, second] = await Promise.allSettled([
      leader.changeMembership({ type: "addLearner", replicaId: replicaId(4) }),
      leader.changeMembership({ type: "removeReplica", replicaId: replicaId(3) }),
    ]);
    equal(first.status, "fulfilled");
    equal(second.status === "rejected" && codeOf(second.reason), "conflict");
    await settle();
    deepEqual(leader.status().confState, { voters: [1, 2, 3], learners: [4] });
    const index = await leader.changeMembership({
      type: "removeReplica",
      replicaId: replicaId(3),
    });
    ok(index > 0);
    await settle();
    deepEqual(leader.status().confState, { voters: [1, 2], learners: [4] });
    deepEqual(group.replicas.get(2)!.status().confState, { voters: [1, 2], learners: [4] });
  } finally {
    closeGroup(group);
  }
});
