/**
 * RawNode's contract with its caller: what a Ready holds and when it must be synced, that the
 * ready()/advance() handshake is enforced, and every typed refusal of propose(),
 * proposeConfChange(), readIndex() and transferLeadership(). Replicas here are wired by a
 * tiny in-test loop that persists each Ready to MemoryStorage and delivers messages at once.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { AssertionError } from "./assert.ts";
import type { RaftLimits } from "./config.ts";
import { DEFAULT_RAFT_LIMITS } from "./config.ts";
import { COMMITTED_ENTRIES_PER_READY_MAX, ENTRY_BYTES_MAX } from "./limits.ts";
import { SeededPrng } from "./prng.ts";
import { RawNode } from "./raw_node.ts";
import type { Ready } from "./ready.ts";
import { MemoryStorage } from "./storage.ts";
import type { ConfState, LogIndex, Message, ReplicaId, Term } from "./types.ts";

const id = (value: number) => value as ReplicaId;

interface Replica {
  node: RawNode;
  storage: MemoryStorage;
}

function makeCluster(count: number, options: Partial<RaftLimits> = {}, learnerCount = 0) {
  const voters = Array.from({ length: count }, (_, i) => id(i + 1));
  const learners = Array.from({ length: learnerCount }, (_, i) => id(count + i + 1));
  const confState: ConfState = { voters, learners };
  const replicas = new Map<number, Replica>();
  for (const member of [...voters, ...learners]) {
    const storage = new MemoryStorage(confState);
    replicas.set(member, { node: startNode(member, storage, options), storage });
  }
  return replicas;
}

/** A RawNode on `storage`, as a (re)started process builds it. */
function startNode(member: ReplicaId, storage: MemoryStorage, options: Partial<RaftLimits>) {
  return new RawNode({
    id: member,
    electionTicks: 10,
    heartbeatTicks: 1,
    prng: new SeededPrng(member),
    preVote: false,
    checkQuorum: false,
    leaseReads: false,
    limits: {
      ...DEFAULT_RAFT_LIMITS,
      appendBytesMax: 1024 * 1024,
      appendEntriesMax: 64,
      uncommittedBytesMax: 1024 * 1024,
      ...options,
    },
  }, storage);
}

function persist(replica: Replica, ready: Ready): void {
  if (ready.snapshot !== null) replica.storage.applySnapshot(ready.snapshot);
  replica.storage.append(ready.entries);
  if (ready.hardState !== null) replica.storage.setHardState(ready.hardState);
}

function settle(
  replicas: Map<number, Replica>,
  observe: (replicaId: ReplicaId, ready: Ready) => void = () => {},
): void {
  for (let round = 0; round < 50; round++) {
    const outbox: Message[] = [];
    for (const [replicaId, replica] of replicas) {
      if (!replica.node.hasReady()) continue;
      const ready = replica.node.ready();
      observe(id(replicaId), ready);
      persist(replica, ready);
      outbox.push(...ready.messages);
      replica.node.advance(ready);
    }
    if (outbox.length === 0) return;
    for (const message of outbox) replicas.get(message.to)?.node.step(message);
  }
}

function elect(replicas: Map<number, Replica>, leader = 1): RawNode {
  const node = replicas.get(leader)!.node;
  node.campaign();
  settle(replicas);
  equal(node.status().role, "leader");
  return node;
}

Deno.test("RawNode: a single voter elects itself and commits its no-op once it is written", () => {
  const replicas = makeCluster(1);
  const replica = replicas.get(1)!;
  const node = replica.node;
  node.campaign();
  const ready = node.ready();
  deepStrictEqual(ready.hardState, { term: 2, vote: 1, commit: 1 });
  deepStrictEqual(ready.entries.map((entry) => [entry.index, entry.term]), [[2, 2]]);
  deepStrictEqual(ready.committed.map((entry) => entry.index), [1]);
  ok(ready.mustSync, "a new term, a vote and entries must be synced");
  persist(replica, ready);
  node.advance(ready);
  const commit = node.ready();
  deepStrictEqual(commit.hardState, { term: 2, vote: 1, commit: 2 });
  deepStrictEqual(commit.committed.map((entry) => entry.index), [2]);
  equal(commit.mustSync, false);
  node.advance(commit);
  equal(node.status().applied, 2);
  equal(node.hasReady(), false);
});

Deno.test("RawNode: a single voter reveals a commit only once its entries are persisted", () => {
  // Drivers send a leader's messages before its own flush when its term and vote are durable
  // (shard/replica.ts). A single voter's entry is committed only once it is persisted: an
  // earlier commit index would reach the learner, which would apply an entry that a power loss
  // at the leader erases and its next term replaces (sim seeds 132-like: leader completeness).
  const replicas = makeCluster(1, {}, 1);
  elect(replicas);
  const leader = replicas.get(1)!;
  settle(replicas);
  const before = leader.node.status().commit;
  equal(leader.node.propose(new Uint8Array([7])).kind, "ok");
  const written = leader.node.ready();
  const index = written.entries[0]?.index ?? 0;
  ok(index > before, "the Ready writes the new entry");
  equal(written.hardState?.commit ?? before, before, "not committed before it is persisted");
  deepStrictEqual(written.committed, []);
  for (const message of written.messages) {
    if (message.type === "append" || message.type === "heartbeat") {
      ok(message.commit < index, `${message.type} to ${message.to} reveals commit ${index}`);
    }
  }
  persist(leader, written);
  leader.node.advance(written);
  const committed = leader.node.ready();
  equal(committed.hardState?.commit, index);
  equal(committed.mustSync, false);
  deepStrictEqual(committed.committed.map((entry) => entry.index), [index]);
  ok(committed.messages.some((message) => message.type === "append" && message.commit === index));
  persist(leader, committed);
  leader.node.advance(committed);
});

Deno.test("RawNode: a learner never applies what a power loss takes from its sole voter", () => {
  // The scenario end to end: the leader's appends leave before its flush (as drivers send
  // them), the learner persists them, the leader loses power before its flush, and it leads
  // the next term with a different entry at the same index, which the learner must take.
  const replicas = makeCluster(1, {}, 1);
  elect(replicas);
  settle(replicas);
  const leader = replicas.get(1)!;
  const learner = replicas.get(2)!;
  const applied: string[] = [];
  const observe = (replicaId: ReplicaId, ready: Ready) => {
    if (replicaId !== 2) return;
    for (const entry of ready.committed) applied.push(new TextDecoder().decode(entry.data));
  };
  equal(leader.node.propose(new TextEncoder().encode("lost")).kind, "ok");
  const written = leader.node.ready();
  for (const message of written.messages) learner.node.step(message);
  while (learner.node.hasReady()) {
    const ready = learner.node.ready();
    observe(id(2), ready);
    persist(learner, ready);
    learner.node.advance(ready);
  }
  // The power loss: the leader's Ready never reached its disk; a new process starts.
  leader.node = startNode(id(1), leader.storage, {});
  leader.node.campaign();
  equal(leader.node.propose(new TextEncoder().encode("kept")).kind, "ok");
  settle(replicas, observe);
  equal(applied.includes("lost"), false, "the learner applied an entry no voter kept");
  ok(applied.includes("kept"));
  equal(learner.node.status().applied, leader.node.status().commit);
});

Deno.test("RawNode enforces the ready()/advance() handshake", () => {
  const replicas = makeCluster(1);
  const node = replicas.get(1)!.node;
  node.campaign();
  const ready = node.ready();
  throws(() => node.ready(), AssertionError);
  throws(() => node.tick(), AssertionError);
  throws(() => node.propose(new Uint8Array(1)), AssertionError);
  throws(() => node.advance({ ...ready }), AssertionError);
  node.advance(ready);
  throws(() => node.advance(ready), AssertionError);
});

Deno.test("RawNode: a Ready that only moves the commit index does not need a sync", () => {
  const replicas = makeCluster(3);
  const leader = elect(replicas);
  equal(leader.propose(new Uint8Array([1])).kind, "ok");
  const kinds: string[] = [];
  settle(replicas, (replicaId, ready) => {
    if (replicaId !== 2) return;
    if (ready.entries.length > 0) kinds.push(`entries:${ready.mustSync}`);
    else if (ready.hardState !== null) kinds.push(`commit:${ready.mustSync}`);
  });
  deepStrictEqual(kinds, ["entries:true", "commit:false"]);
});

Deno.test("RawNode.propose() returns each refusal as a typed result", async (t) => {
  const replicas = makeCluster(3, { uncommittedBytesMax: 100 });
  const leader = elect(replicas);
  const follower = replicas.get(2)!.node;
  await t.step("not_leader with a hint", () => {
    deepStrictEqual(follower.propose(new Uint8Array(1)), { kind: "not_leader", leader: 1 });
  });
  await t.step("entry_too_large", () => {
    const result = leader.propose(new Uint8Array(ENTRY_BYTES_MAX + 1));
    deepStrictEqual(result, {
      kind: "entry_too_large",
      bytes: ENTRY_BYTES_MAX + 1,
      bytesMax: ENTRY_BYTES_MAX,
    });
  });
  await t.step("uncommitted_too_large", () => {
    equal(leader.propose(new Uint8Array(80)).kind, "ok");
    deepStrictEqual(leader.propose(new Uint8Array(30)), {
      kind: "uncommitted_too_large",
      bytes: 110,
      bytesMax: 100,
    });
    settle(replicas);
    equal(leader.propose(new Uint8Array(30)).kind, "ok", "commit frees the budget");
  });
  await t.step("dropped while leadership moves", () => {
    replicas.get(3)!.node.tick();
    equal(leader.transferLeadership(id(3)).kind, "ok");
    equal(leader.propose(new Uint8Array(1)).kind, "dropped");
    settle(replicas);
    equal(replicas.get(3)!.node.status().role, "leader");
  });
});

Deno.test("RawNode.proposeConfChange() allows one change at a time", () => {
  const replicas = makeCluster(3);
  const leader = elect(replicas);
  const add = { type: "addLearner" as const, replicaId: id(4) };
  equal(leader.proposeConfChange(add).kind, "ok");
  equal(
    leader.proposeConfChange({ type: "removeReplica", replicaId: id(3) }).kind,
    "conf_change_pending",
  );
  settle(replicas);
  deepStrictEqual(leader.status().confState.learners, [4]);
  deepStrictEqual(leader.proposeConfChange(add), {
    kind: "invalid_conf_change",
    reason: "replica 4 is already a learner",
  });
  equal(replicas.get(2)!.node.proposeConfChange(add).kind, "not_leader");
});

Deno.test("RawNode.proposeConfChange() promotes no replica that has stored none of the log", () => {
  // A voter that knows no configuration does not vote, so promoting one before its first
  // append could leave a quorum that no candidate can win (sim seeds 20414, 20915).
  const replicas = makeCluster(1);
  const leader = elect(replicas);
  equal(leader.proposeConfChange({ type: "addLearner", replicaId: id(2) }).kind, "ok");
  settle(replicas); // Replica 2 does not exist yet: the appends to it are lost.
  deepStrictEqual(leader.status().confState.learners, [2]);
  const promote = { type: "addVoter" as const, replicaId: id(2) };
  deepStrictEqual(leader.proposeConfChange(promote), {
    kind: "conf_change_pending",
    reason: "replica 2 has stored none of the log yet, so it could not vote (add it as a " +
      "learner, promote it once it has)",
  });
  equal(
    leader.proposeConfChange({ type: "addVoter", replicaId: id(3) }).kind,
    "conf_change_pending",
    "nor a new replica added as a voter at once",
  );
  const storage = new MemoryStorage();
  replicas.set(2, { node: startNode(id(2), storage, {}), storage });
  leader.tick(); // The next heartbeat finds replica 2 and the leader sends it the log.
  settle(replicas);
  ok(replicas.get(2)!.node.status().confState.voters.length > 0, "it knows the voters now");
  equal(leader.proposeConfChange(promote).kind, "ok");
  settle(replicas);
  deepStrictEqual(leader.status().confState.voters, [1, 2]);
});

Deno.test("RawNode status: a change is in confState on append, committed on commit", () => {
  const replicas = makeCluster(3);
  const leader = elect(replicas);
  equal(leader.proposeConfChange({ type: "removeReplica", replicaId: id(3) }).kind, "ok");
  // Appended, not yet sent or committed: the leader already uses the new configuration.
  deepStrictEqual(leader.status().confState.voters, [1, 2]);
  deepStrictEqual(leader.status().committedConfState.voters, [1, 2, 3]);
  settle(replicas);
  deepStrictEqual(leader.status().committedConfState.voters, [1, 2]);
  deepStrictEqual(replicas.get(2)!.node.status().committedConfState.voters, [1, 2]);
});

Deno.test("RawNode.readIndex() releases a batch of reads after one heartbeat round", () => {
  const replicas = makeCluster(3);
  const leader = elect(replicas);
  equal(replicas.get(2)!.node.readIndex(7).kind, "not_leader");
  equal(leader.readIndex(7).kind, "ok");
  equal(leader.readIndex(8).kind, "ok");
  let heartbeats = 0;
  const reads: unknown[] = [];
  settle(replicas, (replicaId, ready) => {
    if (replicaId !== 1) return;
    heartbeats += ready.messages.filter((message) => message.type === "heartbeat").length;
    reads.push(...ready.readStates);
  });
  equal(heartbeats, 2, "both reads share one round: one heartbeat per follower");
  deepStrictEqual(reads, [{ requestId: 7, index: 4 }, { requestId: 8, index: 4 }]);
});

Deno.test("RawNode.transferLeadership() refuses non-voters and itself", () => {
  const replicas = makeCluster(3);
  const leader = elect(replicas);
  equal(leader.transferLeadership(id(1)).kind, "invalid_target");
  equal(leader.transferLeadership(id(9)).kind, "invalid_target");
  equal(replicas.get(2)!.node.transferLeadership(id(3)).kind, "not_leader");
});

Deno.test("RawNode leader, role and term match status() on every replica", () => {
  const replicas = makeCluster(3);
  const check = () => {
    for (const { node } of replicas.values()) {
      const status = node.status();
      deepStrictEqual([node.leader, node.role, node.term], [
        status.leader,
        status.role,
        status.term,
      ]);
    }
  };
  check();
  elect(replicas, 2);
  check();
  equal(replicas.get(1)!.node.leader, 2);
  replicas.get(3)!.node.campaign();
  check();
  equal(replicas.get(3)!.node.role === "leader", false, "a campaign alone elects nobody");
  settle(replicas);
  check();
});

Deno.test("RawNode.proposeBatch sends one append per follower for many commands", () => {
  const replicas = makeCluster(3);
  const leader = elect(replicas, 1);
  const commands = Array.from({ length: 20 }, (_, i) => new TextEncoder().encode(`c${i}`));
  const results = leader.proposeBatch(commands);
  equal(results.length, 20);
  const first = leader.status().lastIndex - 19;
  results.forEach((result, i) =>
    deepStrictEqual(result, { kind: "ok", index: first + i, term: 2 })
  );
  const ready = leader.ready();
  const appends = ready.messages.filter((message) => message.type === "append");
  deepStrictEqual(appends.map((message) => message.to).sort(), [2, 3], "one per follower");
  for (const append of appends) {
    if (append.type !== "append") continue;
    deepStrictEqual(append.entries.map((entry) => entry.data), commands);
  }
  persist(replicas.get(1)!, ready);
  leader.advance(ready);
  for (const message of ready.messages) replicas.get(message.to)!.node.step(message);
  settle(replicas);
  for (const { node } of replicas.values()) equal(node.status().commit, first + 19);
});

Deno.test("RawNode.proposeBatch refuses one command without stopping the others", () => {
  const replicas = makeCluster(1);
  const leader = elect(replicas, 1);
  const small = new Uint8Array(8);
  const results = leader.proposeBatch([small, new Uint8Array(ENTRY_BYTES_MAX + 1), small]);
  deepStrictEqual(results.map((result) => result.kind), ["ok", "entry_too_large", "ok"]);
  const [a, , b] = results;
  ok(a?.kind === "ok" && b?.kind === "ok" && b.index === a.index + 1, "no gap is left");
  deepStrictEqual(makeCluster(3).get(2)!.node.proposeBatch([small]), [{
    kind: "not_leader",
    leader: null,
  }]);
});

/** A single voter whose storage holds `count` one-byte entries, committed up to `commit`. */
function storedReplica(options: { count: number; commit: number; applied?: number }): RawNode {
  const storage = new MemoryStorage({ voters: [id(1)], learners: [] });
  const entries = Array.from({ length: options.count }, (_, i) => ({
    index: (i + 1) as LogIndex,
    term: 1 as Term,
    type: "normal" as const,
    data: new Uint8Array([i % 256]),
  }));
  storage.append(entries);
  storage.setHardState({ term: 1 as Term, vote: id(1), commit: options.commit as LogIndex });
  return new RawNode({
    id: id(1),
    electionTicks: 10,
    heartbeatTicks: 1,
    prng: new SeededPrng(1),
    preVote: false,
    checkQuorum: false,
    leaseReads: false,
    ...(options.applied === undefined ? {} : { applied: options.applied as LogIndex }),
  }, storage);
}

Deno.test("RawNode.ready() bounds its committed entries by COMMITTED_ENTRIES_PER_READY_MAX", () => {
  // A follower back from a long outage learns of far more small committed entries than one
  // apply batch holds; each Ready must stay within the count bound, in order, with no gap.
  const count = 2 * COMMITTED_ENTRIES_PER_READY_MAX + 5;
  const node = storedReplica({ count, commit: count });
  let applied = 0;
  let readies = 0;
  while (node.hasReady()) {
    const ready = node.ready();
    readies++;
    ok(ready.committed.length <= COMMITTED_ENTRIES_PER_READY_MAX, "bounded by count");
    for (const entry of ready.committed) equal(entry.index, ++applied);
    node.advance(ready);
  }
  equal(applied, count);
  equal(readies, 3);
});

Deno.test("RawNode starts from an applied index past the stored commit (power loss)", () => {
  // The state machine's writes are durable on their own while a commit-only hard state is not
  // synced: after a power loss the machine may be ahead of the stored commit index.
  const node = storedReplica({ count: 10, commit: 4, applied: 7 });
  equal(node.status().commit, 7);
  equal(node.status().applied, 7);
  ok(node.hasReady(), "the raised commit index is persisted by the next Ready");
  const ready = node.ready();
  equal(ready.hardState?.commit, 7);
  deepStrictEqual(ready.committed, []);
  node.advance(ready);
});

Deno.test("RawNode refuses an applied index past the last stored entry", () => {
  throws(() => storedReplica({ count: 5, commit: 5, applied: 6 }), AssertionError);
});

Deno.test("RawNode: a replica that knows no configuration does not vote until filled", () => {
  const replicas = makeCluster(3);
  // Replica 4 was just hosted empty (to come back as a learner): no log, no configuration.
  const emptyStorage = new MemoryStorage();
  const empty = { node: startNode(id(4), emptyStorage, {}), storage: emptyStorage };
  const ask = (type: "vote" | "preVote", term: number): Message[] => {
    empty.node.step({
      type,
      from: id(1),
      to: id(4),
      term: term as Term,
      lastIndex: 0 as LogIndex,
      lastTerm: 0 as Term,
      isTransfer: false,
    });
    const ready = empty.node.ready();
    empty.node.advance(ready);
    return ready.messages.filter((message) => message.to === id(1));
  };
  for (const [type, term] of [["preVote", 1], ["vote", 1]] as const) {
    const [answer] = ask(type, term);
    ok(answer !== undefined && "isRejected" in answer && answer.isRejected, `${type} refused`);
  }
  // Once a leader's log (with its configuration) reached it, it votes like any replica.
  const leader = elect(replicas);
  equal(leader.proposeConfChange({ type: "addLearner", replicaId: id(4) }).kind, "ok");
  replicas.set(4, { node: empty.node, storage: empty.storage });
  settle(replicas);
  deepStrictEqual(empty.node.status().confState.learners, [4]);
  const term = empty.node.status().term + 1;
  const lastIndex = empty.node.status().lastIndex;
  empty.node.step({
    type: "vote",
    from: id(2),
    to: id(4),
    term: term as Term,
    lastIndex,
    lastTerm: empty.node.status().term as Term,
    isTransfer: false,
  });
  const ready = empty.node.ready();
  empty.node.advance(ready);
  const answer = ready.messages.find((message) => message.to === id(2));
  ok(
    answer !== undefined && "isRejected" in answer && !answer.isRejected,
    "a filled replica votes",
  );
});

Deno.test("RawNode: a learner hosted again empty catches up; a voter keeps its match", () => {
  const replicas = makeCluster(3, {}, 1);
  const leader = elect(replicas);
  for (let i = 0; i < 5; i++) equal(leader.propose(new Uint8Array([i])).kind, "ok");
  settle(replicas);
  const lastIndex = leader.status().lastIndex;
  equal(replicas.get(4)!.node.status().lastIndex, lastIndex);
  // Learner 4's files are dropped and it is hosted again empty, at the current term.
  const storage = new MemoryStorage();
  storage.setHardState({ term: leader.status().term, vote: null, commit: 0 as LogIndex });
  replicas.set(4, { node: startNode(id(4), storage, {}), storage });
  // The leader's progress still says 4 holds everything: its heartbeat carries that commit.
  leader.tick();
  settle(replicas);
  equal(replicas.get(4)!.node.status().lastIndex, lastIndex, "the learner is filled again");
  deepStrictEqual(replicas.get(4)!.node.status().confState.learners, [4]);
  // A voter hosted again empty has lost entries that counted in commits: its leader does not
  // take its match back (that would hide the loss), it only stops being fed a past commit.
  const voterStorage = new MemoryStorage();
  voterStorage.setHardState({ term: leader.status().term, vote: null, commit: 0 as LogIndex });
  const voter = startNode(id(3), voterStorage, {});
  voter.step({
    type: "heartbeat",
    from: id(1),
    to: id(3),
    term: leader.status().term,
    commit: lastIndex,
    round: 1,
    quiesce: false,
  });
  // Knows no configuration: not a voter in its own eyes, so it answers with its log's end.
  const ready = voter.ready();
  const answer = ready.messages.find((message) => message.type === "appendResponse");
  ok(answer !== undefined && answer.type === "appendResponse" && answer.rejectHintIndex === 0);
  leader.step(answer);
  const progress = leader.status().progress.find((item) => item.id === id(3));
  equal(progress?.match, lastIndex, "a voter's match never goes back");
});
