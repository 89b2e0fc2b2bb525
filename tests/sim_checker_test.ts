/**
 * The simulation's safety checker (tests/sim/checker.ts) on hand-made histories: an entry that
 * only its creator's lost writes held may be written again differently (a single voter that
 * loses its term and its entries in a power loss leads that term again), while an entry any
 * other replica persisted must never change, and no message may carry a term its sender could
 * still forget.
 */
import { equal, match } from "node:assert/strict";
import { MemoryStorage, replicaId } from "../raft/mod.ts";
import type { Entry, LogIndex, Message, Term } from "../raft/mod.ts";
import { SafetyChecker } from "./sim/checker.ts";

const voters = [replicaId(1)];

function entry(index: number, term: number, text: string): Entry {
  return {
    index: index as LogIndex,
    term: term as Term,
    type: "normal",
    data: new TextEncoder().encode(text),
  };
}

/** A checker that saw replica 1 bootstrap (entry 1 committed) and, if asked, a learner 2. */
function bootstrapped(): { checker: SafetyChecker; bootstrap: MemoryStorage } {
  const checker = new SafetyChecker();
  const bootstrap = new MemoryStorage({ voters, learners: [] });
  const first = bootstrap.entries(1 as LogIndex, 2 as LogIndex, Infinity) ?? [];
  checker.onAppend(1, first);
  checker.onCommit(1, 1 as LogIndex, 1);
  return { checker, bootstrap };
}

Deno.test("checker: an entry only its creator's lost writes held may be written again", () => {
  const { checker, bootstrap } = bootstrapped();
  checker.onAppend(1, [entry(2, 2, ""), entry(3, 2, "lost")]);
  // The power loss keeps only the bootstrap: the term-2 vote and both entries are gone.
  checker.onRestart(1, bootstrap);
  checker.onAppend(1, [entry(2, 2, ""), entry(3, 2, "other")]);
  equal(checker.violation, null);
});

Deno.test("checker: an entry another replica persisted can never change", () => {
  const { checker, bootstrap } = bootstrapped();
  checker.onAppend(1, [entry(2, 2, ""), entry(3, 2, "seen")]);
  checker.onAppend(2, bootstrap.entries(1 as LogIndex, 2 as LogIndex, Infinity) ?? []);
  checker.onAppend(2, [entry(2, 2, ""), entry(3, 2, "seen")]);
  checker.onRestart(1, bootstrap);
  checker.onAppend(1, [entry(2, 2, ""), entry(3, 2, "other")]);
  match(checker.violation ?? "", /log matching broken at 1: index 3 term 2 differs/);
});

Deno.test("checker: no message may carry a term that is not durable at its sender", () => {
  const { checker } = bootstrapped();
  const heartbeat = (term: number): Message => ({
    type: "heartbeat",
    from: replicaId(1),
    to: replicaId(2),
    term: term as Term,
    commit: 1 as LogIndex,
    round: 1,
    quiesce: false,
  });
  const preVote: Message = {
    type: "preVote",
    from: replicaId(1),
    to: replicaId(2),
    term: 3 as Term,
    lastIndex: 1 as LogIndex,
    lastTerm: 1 as Term,
    isTransfer: false,
  };
  checker.onSend(heartbeat(2), 2);
  checker.onSend(preVote, 2);
  equal(checker.violation, null);
  checker.onSend(heartbeat(3), 2);
  match(checker.violation ?? "", /replica 1 sent heartbeat of term 3 before the term was durable/);
});
