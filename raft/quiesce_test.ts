/**
 * Quiescence transitions (quiesce.ts): when a leader and its followers go quiet, what wakes
 * them, and that waking keeps check-quorum, pre-vote and ReadIndex intact. Three replicas are
 * wired by an in-test loop that persists each Ready to MemoryStorage and delivers messages at
 * once, except to replicas the test marks as down.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { SeededPrng } from "./prng.ts";
import { RawNode } from "./raw_node.ts";
import type { Ready } from "./ready.ts";
import { MemoryStorage } from "./storage.ts";
import type { ConfState, Message, ReplicaId } from "./types.ts";

const id = (value: number) => value as ReplicaId;
const ELECTION_TICKS = 10;

interface Harness {
  readonly nodes: Map<number, RawNode>;
  readonly storages: Map<number, MemoryStorage>;
  readonly down: Set<number>;
  /** Every message delivered or dropped, in order. */
  readonly sent: Message[];
  readonly readStates: Map<number, number[]>;
}

function makeHarness(options: { leaseReads?: boolean } = {}): Harness {
  const voters = [id(1), id(2), id(3)];
  const confState: ConfState = { voters, learners: [] };
  const harness: Harness = {
    nodes: new Map(),
    storages: new Map(),
    down: new Set(),
    sent: [],
    readStates: new Map(),
  };
  for (const voter of voters) {
    const storage = new MemoryStorage(confState);
    harness.storages.set(voter, storage);
    harness.nodes.set(
      voter,
      new RawNode({
        id: voter,
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: 2,
        prng: new SeededPrng(voter),
        preVote: true,
        checkQuorum: true,
        leaseReads: options.leaseReads ?? false,
      }, storage),
    );
    harness.readStates.set(voter, []);
  }
  return harness;
}

function persist(storage: MemoryStorage, ready: Ready): void {
  if (ready.snapshot !== null) storage.applySnapshot(ready.snapshot);
  storage.append(ready.entries);
  if (ready.hardState !== null) storage.setHardState(ready.hardState);
}

/** Runs Ready rounds until nothing moves; messages to or from a down replica are lost. */
function settle(harness: Harness): void {
  for (let round = 0; round < 100; round++) {
    const outbox: Message[] = [];
    for (const [replica, node] of harness.nodes) {
      if (harness.down.has(replica) || !node.hasReady()) continue;
      const ready = node.ready();
      persist(harness.storages.get(replica)!, ready);
      outbox.push(...ready.messages);
      for (const read of ready.readStates) harness.readStates.get(replica)!.push(read.requestId);
      node.advance(ready);
    }
    if (outbox.length === 0) return;
    for (const message of outbox) {
      harness.sent.push(message);
      if (!harness.down.has(message.to)) harness.nodes.get(message.to)!.step(message);
    }
  }
}

/** Ticks every live replica `count` times, settling after each tick. */
function tick(harness: Harness, count: number): void {
  for (let i = 0; i < count; i++) {
    for (const [replica, node] of harness.nodes) {
      if (!harness.down.has(replica)) node.tick();
    }
    settle(harness);
  }
}

function leaders(harness: Harness): number[] {
  return [...harness.nodes].filter(([replica, node]) =>
    !harness.down.has(replica) && node.role === "leader"
  ).map(([replica]) => replica);
}

/** Replica 3 restarts from its storage: a fresh follower that knows no leader. */
function restartReplica3(harness: Harness): RawNode {
  const node3 = new RawNode({
    id: id(3),
    electionTicks: ELECTION_TICKS,
    heartbeatTicks: 2,
    prng: new SeededPrng(33),
    preVote: true,
    checkQuorum: true,
    leaseReads: false,
  }, harness.storages.get(3)!);
  harness.nodes.set(3, node3);
  return node3;
}

/** Elects replica 1 and lets the group go quiet. */
function quietGroup(options: { leaseReads?: boolean } = {}): Harness {
  const harness = makeHarness(options);
  // With leases, replicas refuse votes for an election timeout after they start.
  if (options.leaseReads === true) tick(harness, ELECTION_TICKS);
  harness.nodes.get(1)!.campaign();
  settle(harness);
  equal(harness.nodes.get(1)!.role, "leader");
  tick(harness, 10);
  for (const node of harness.nodes.values()) ok(node.isQuiesced, "the idle group quiesced");
  return harness;
}

Deno.test("quiesce: an idle group goes quiet and then sends nothing, however long it ticks", () => {
  const harness = quietGroup();
  const quiesceBeats = harness.sent.filter((m) => m.type === "heartbeat" && m.quiesce);
  equal(quiesceBeats.length, 2, "one quiescing heartbeat per follower");
  const before = harness.sent.length;
  tick(harness, 1_000);
  equal(harness.sent.length, before, "no message in 1,000 ticks");
  deepStrictEqual(leaders(harness), [1]);
  ok(harness.nodes.get(2)!.status().quiesced);
});

Deno.test("quiesce: a proposal wakes the group, commits, and the group goes quiet again", () => {
  const harness = quietGroup();
  const leader = harness.nodes.get(1)!;
  const result = leader.propose(new Uint8Array([7]));
  equal(result.kind, "ok");
  equal(leader.isQuiesced, false, "a proposal wakes the leader");
  settle(harness);
  const index = result.kind === "ok" ? result.index : 0;
  equal(leader.status().commit, index, "the proposal committed");
  equal(harness.nodes.get(2)!.isQuiesced, false, "the append woke the follower");
  tick(harness, 10);
  for (const node of harness.nodes.values()) ok(node.isQuiesced, "quiet again");
  for (const replica of [2, 3]) equal(harness.nodes.get(replica)!.status().commit, index);
});

Deno.test("quiesce: a read wakes the leader and still needs a quorum's round", () => {
  const harness = quietGroup();
  const leader = harness.nodes.get(1)!;
  harness.down.add(2);
  harness.down.add(3);
  equal(leader.readIndex(5).kind, "ok");
  equal(leader.isQuiesced, false);
  tick(harness, ELECTION_TICKS + 1);
  deepStrictEqual(harness.readStates.get(1), [], "no read without a quorum");
  ok(leader.role !== "leader", "check-quorum deposed the partitioned leader once awake");
});

Deno.test("quiesce: a read at a woken leader with its followers up is served", () => {
  const harness = quietGroup();
  equal(harness.nodes.get(1)!.readIndex(9).kind, "ok");
  settle(harness);
  deepStrictEqual(harness.readStates.get(1), [9]);
});

Deno.test("quiesce: without a report, a dead leader's quiesced followers wait forever", () => {
  const harness = quietGroup();
  harness.down.add(1);
  tick(harness, 500);
  deepStrictEqual(leaders(harness), [], "nobody campaigns: the timers stopped");
  ok(harness.nodes.get(2)!.isQuiesced);
});

Deno.test("quiesce: reportLeaderDown makes the followers elect a new leader within jitter", () => {
  const harness = quietGroup();
  harness.down.add(1);
  equal(harness.nodes.get(2)!.reportLeaderDown(id(1)), true);
  equal(harness.nodes.get(3)!.reportLeaderDown(id(1)), true);
  let ticks = 0;
  while (leaders(harness).length === 0 && ticks < 4 * ELECTION_TICKS) {
    tick(harness, 1);
    ticks++;
  }
  equal(leaders(harness).length, 1, "a new leader");
  ok(ticks <= 2 * ELECTION_TICKS, `elected after ${ticks} ticks`);
  const leader = harness.nodes.get(leaders(harness)[0]!)!;
  ok(leader.term > 1);
  const result = leader.propose(new Uint8Array([1]));
  equal(result.kind, "ok");
  settle(harness);
  equal(leader.status().commit, result.kind === "ok" ? result.index : -1, "it commits");
});

Deno.test("quiesce: one follower's report alone wakes the other by its pre-vote", () => {
  const harness = quietGroup();
  harness.down.add(1);
  ok(harness.nodes.get(2)!.reportLeaderDown(id(1)));
  tick(harness, 6 * ELECTION_TICKS);
  equal(harness.nodes.get(3)!.isQuiesced, false, "the pre-vote woke replica 3");
  equal(leaders(harness).length, 1, "and an election followed");
});

Deno.test("quiesce: reportLeaderDown is ignored for another leader or an awake follower", () => {
  const harness = quietGroup();
  const follower = harness.nodes.get(2)!;
  equal(follower.reportLeaderDown(id(3)), false, "not its leader");
  ok(follower.isQuiesced);
  equal(harness.nodes.get(1)!.reportLeaderDown(id(1)), false, "a leader ignores it");
  harness.nodes.get(1)!.propose(new Uint8Array([1]));
  settle(harness);
  equal(follower.isQuiesced, false);
  equal(follower.reportLeaderDown(id(1)), false, "an awake follower ignores it");
});

Deno.test("quiesce: a restarted replica's pre-vote does not depose a live quiet leader", () => {
  const harness = quietGroup();
  const node3 = restartReplica3(harness);
  const term = harness.nodes.get(1)!.term;
  tick(harness, 6 * ELECTION_TICKS);
  deepStrictEqual(leaders(harness), [1], "replica 1 still leads");
  equal(harness.nodes.get(1)!.term, term, "in the same term");
  equal(node3.leader, 1, "the restarted replica found the leader");
});

Deno.test("quiesce: a pending read or a lagging follower keeps the leader awake", () => {
  const harness = makeHarness();
  harness.nodes.get(1)!.campaign();
  settle(harness);
  harness.down.add(3);
  harness.nodes.get(1)!.propose(new Uint8Array([1]));
  tick(harness, 40);
  equal(harness.nodes.get(1)!.isQuiesced, false, "replica 3 lags: no quiescing");
  harness.down.delete(3);
  tick(harness, 20);
  ok(harness.nodes.get(1)!.isQuiesced, "quiet once it caught up");
});

Deno.test("quiesce: a woken leader serves no lease read from before it slept", () => {
  const harness = quietGroup({ leaseReads: true });
  const leader = harness.nodes.get(1)!;
  harness.down.add(2);
  harness.down.add(3);
  equal(leader.readIndex(4).kind, "ok");
  settle(harness);
  deepStrictEqual(harness.readStates.get(1), [], "no lease from the rounds before the sleep");
  harness.down.clear();
  tick(harness, 2);
  deepStrictEqual(harness.readStates.get(1), [4], "served after a fresh round");
});

Deno.test("quiesce: a quiescing heartbeat older than one heard does not quiesce", () => {
  const harness = quietGroup();
  const follower = harness.nodes.get(2)!;
  const stale = harness.sent.filter((m) => m.type === "heartbeat" && m.quiesce && m.to === 2);
  // A read's round reaches the follower after the quiescing one (a reordering network).
  equal(harness.nodes.get(1)!.readIndex(1).kind, "ok");
  settle(harness);
  equal(follower.isQuiesced, false, "the read's round woke the follower");
  follower.step(stale[0]!);
  equal(follower.isQuiesced, false, "a reordered old quiescing heartbeat is ignored");
});

Deno.test("quiesce: reportPeerBack wakes a quiet leader, so a restarted replica learns it", () => {
  const harness = quietGroup();
  const leader = harness.nodes.get(1)!;
  // A learner would never campaign to find its leader.
  const node3 = restartReplica3(harness);
  equal(harness.nodes.get(2)!.reportPeerBack(id(3)), false, "a follower ignores it");
  equal(leader.reportPeerBack(id(9)), false, "not a member of the group");
  ok(leader.isQuiesced);
  equal(leader.reportPeerBack(id(3)), true);
  equal(leader.isQuiesced, false);
  // One heartbeat interval: well within replica 3's election timeout.
  tick(harness, 2);
  equal(node3.leader, 1, "the restarted replica learned its leader from the heartbeat");
  tick(harness, 10);
  for (const node of harness.nodes.values()) ok(node.isQuiesced, "the group is quiet again");
  equal(leader.reportPeerBack(id(3)), true, "a later connection wakes it again");
});
