/**
 * Deferred commit notices (RaftConfig.deferCommitNotices): a leader whose commit index moved
 * sends no empty append to say so; the next append or heartbeat carries the commit index, or
 * sendCommitNotices() sends it to the followers that could use it. Without the option every
 * commit costs each follower an empty append and its answer, as in etcd's raft.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { SeededPrng } from "./prng.ts";
import { RawNode } from "./raw_node.ts";
import { MemoryStorage } from "./storage.ts";
import type { ConfState, Message, ReplicaId } from "./types.ts";

interface Member {
  readonly node: RawNode;
  readonly storage: MemoryStorage;
}

function makeGroup(deferCommitNotices: boolean): Map<number, Member> {
  const voters = [1, 2, 3] as ReplicaId[];
  const confState: ConfState = { voters, learners: [] };
  const members = new Map<number, Member>();
  for (const voter of voters) {
    const storage = new MemoryStorage(confState);
    const node = new RawNode({
      id: voter,
      electionTicks: 10,
      heartbeatTicks: 1,
      prng: new SeededPrng(voter),
      preVote: false,
      checkQuorum: false,
      leaseReads: false,
      quiesce: false,
      deferCommitNotices,
    }, storage);
    members.set(voter, { node, storage });
  }
  return members;
}

/** Drains every Ready and delivers messages until quiet; returns every message sent. */
function settle(members: Map<number, Member>, isCut: (id: number) => boolean): Message[] {
  const sent: Message[] = [];
  for (let round = 0; round < 50; round++) {
    const outbox: Message[] = [];
    for (const { node, storage } of members.values()) {
      if (!node.hasReady()) continue;
      const ready = node.ready();
      storage.append(ready.entries);
      if (ready.hardState !== null) storage.setHardState(ready.hardState);
      outbox.push(...ready.messages);
      node.advance(ready);
    }
    if (outbox.length === 0) return sent;
    sent.push(...outbox);
    for (const message of outbox) {
      if (isCut(message.from) || isCut(message.to)) continue;
      members.get(message.to)?.node.step(message);
    }
  }
  throw new Error("the group did not settle");
}

const nobodyCut = () => false;

/** Elects replica 1 and lets every follower learn the commit of its first entry. */
function electOne(members: Map<number, Member>): RawNode {
  const leader = members.get(1)!.node;
  leader.campaign();
  settle(members, nobodyCut);
  leader.tick();
  settle(members, nobodyCut);
  equal(leader.status().role, "leader");
  for (const { node } of members.values()) equal(node.status().commit, leader.status().commit);
  return leader;
}

function propose(members: Map<number, Member>, text: string): Message[] {
  const leader = members.get(1)!.node;
  equal(leader.propose(new TextEncoder().encode(text)).kind, "ok");
  return settle(members, nobodyCut);
}

function commits(members: Map<number, Member>): number[] {
  return [...members.values()].map(({ node }) => node.status().commit);
}

Deno.test("commit notices: without deferral, 8 messages per write, every commit moves", () => {
  const members = makeGroup(false);
  const leader = electOne(members);
  const sent = propose(members, "a");
  equal(sent.length, 8, "2 appends, 2 answers, 2 empty appends with the commit, 2 answers");
  const commit = leader.status().commit;
  deepStrictEqual(commits(members), [commit, commit, commit]);
  equal(leader.hasCommitNoticesDue, false);
});

Deno.test("commit notices: deferred, a write costs 4 messages and the leader owes a notice", () => {
  const members = makeGroup(true);
  const leader = electOne(members);
  const before = leader.status().commit;
  const sent = propose(members, "a");
  equal(sent.length, 4, "2 appends and 2 answers");
  ok(sent.every((message) => message.type !== "append" || message.entries.length === 1));
  const commit = leader.status().commit;
  equal(commit, before + 1);
  deepStrictEqual(commits(members), [commit, before, before]);
  equal(leader.hasCommitNoticesDue, true);

  leader.sendCommitNotices();
  const notices = settle(members, nobodyCut);
  const appends = notices.filter((message) => message.type === "append");
  equal(appends.length, 2);
  ok(appends.every((message) => message.type === "append" && message.entries.length === 0));
  deepStrictEqual(commits(members), [commit, commit, commit]);
  equal(leader.hasCommitNoticesDue, false);
  leader.sendCommitNotices();
  equal(settle(members, nobodyCut).length, 0, "nothing is owed twice");
});

Deno.test("commit notices: deferred, the next append carries the last commit", () => {
  const members = makeGroup(true);
  const leader = electOne(members);
  propose(members, "a");
  const first = leader.status().commit;
  const sent = propose(members, "b");
  equal(sent.length, 4);
  const second = leader.status().commit;
  // The followers learned the first write's commit from the second write's append.
  deepStrictEqual(commits(members), [second, first, first]);
});

Deno.test("commit notices: deferred, a heartbeat carries the commit", () => {
  const members = makeGroup(true);
  const leader = electOne(members);
  propose(members, "a");
  const commit = leader.status().commit;
  leader.tick();
  settle(members, nobodyCut);
  deepStrictEqual(commits(members), [commit, commit, commit]);
  equal(leader.hasCommitNoticesDue, false);
});

Deno.test("commit notices: a follower behind on its log is owed no notice", () => {
  const members = makeGroup(true);
  const leader = electOne(members);
  const cutBefore = members.get(3)!.node.status().commit;
  equal(leader.propose(new TextEncoder().encode("a")).kind, "ok");
  settle(members, (id) => id === 3);
  const commit = leader.status().commit;
  equal(members.get(2)!.node.status().commit, cutBefore);
  leader.sendCommitNotices();
  const sent = settle(members, (id) => id === 3);
  // Replica 2 is told; replica 3 lacks the entry, and its append (still in flight) brings it.
  equal(sent.filter((message) => message.type === "append" && message.to === 2).length, 1);
  equal(sent.filter((message) => message.type === "append" && message.to === 3).length, 0);
  equal(members.get(2)!.node.status().commit, commit);
  equal(members.get(3)!.node.status().commit, cutBefore);
});
