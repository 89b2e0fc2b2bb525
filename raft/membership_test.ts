/**
 * Membership changes, one at a time: which changes are valid, how they apply, their entry
 * encoding, and the history that makes the latest change in the log the one in force (and
 * reverts when a change is truncated away).
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { AssertionError } from "./assert.ts";
import {
  applyConfChange,
  checkConfChange,
  ConfigHistory,
  decodeConfChange,
  encodeConfChange,
} from "./membership.ts";
import type { ConfChange, ConfState, LogIndex, ReplicaId } from "./types.ts";

const ids = (...values: number[]) => values as ReplicaId[];
const BASE: ConfState = { voters: ids(1, 2, 3), learners: ids(4) };
const change = (type: ConfChange["type"], id: number): ConfChange => ({
  type,
  replicaId: id as ReplicaId,
});

Deno.test("checkConfChange() accepts valid changes and names the problem", async (t) => {
  const cases: [string, ConfChange, string | null][] = [
    ["add a new voter", change("addVoter", 5), null],
    ["promote a learner", change("addVoter", 4), null],
    ["add a new learner", change("addLearner", 6), null],
    ["remove a voter", change("removeReplica", 2), null],
    ["remove a learner", change("removeReplica", 4), null],
    ["add an existing voter", change("addVoter", 1), "replica 1 is already a voter"],
    ["demote a voter", change("addLearner", 2), "replica 2 is a voter; demotion is not supported"],
    ["remove a stranger", change("removeReplica", 9), "replica 9 is not a member"],
  ];
  for (const [name, item, expected] of cases) {
    await t.step(name, () => equal(checkConfChange(BASE, item), expected));
  }
  equal(
    checkConfChange({ voters: ids(1), learners: [] }, change("removeReplica", 1)),
    "the last voter cannot be removed",
  );
});

Deno.test("applyConfChange() returns sorted lists and refuses invalid changes", () => {
  deepStrictEqual(applyConfChange(BASE, change("addVoter", 4)), {
    voters: ids(1, 2, 3, 4),
    learners: [],
  });
  deepStrictEqual(applyConfChange(BASE, change("removeReplica", 1)), {
    voters: ids(2, 3),
    learners: ids(4),
  });
  throws(() => applyConfChange(BASE, change("addVoter", 1)), AssertionError);
});

Deno.test("encodeConfChange()/decodeConfChange() round-trip and reject malformed payloads", () => {
  for (const type of ["addVoter", "addLearner", "removeReplica"] as const) {
    deepStrictEqual(decodeConfChange(encodeConfChange(change(type, 77))), change(type, 77));
  }
  equal(decodeConfChange(new Uint8Array(3)), null);
  const bad = encodeConfChange(change("addVoter", 1));
  bad[0] = 9;
  equal(decodeConfChange(bad), null);
});

Deno.test("ConfigHistory uses the latest change in the log and reverts on truncation", () => {
  const history = new ConfigHistory(10 as LogIndex, BASE);
  history.append(12 as LogIndex, change("addVoter", 4));
  history.append(15 as LogIndex, change("removeReplica", 1));
  deepStrictEqual(history.current().voters, ids(2, 3, 4));
  equal(history.lastChangeIndex(), 15);
  deepStrictEqual(history.at(13 as LogIndex).voters, ids(1, 2, 3, 4));
  ok(history.truncateFrom(14 as LogIndex));
  deepStrictEqual(history.current().voters, ids(1, 2, 3, 4));
  equal(history.truncateFrom(20 as LogIndex), false);
  history.compactTo(13 as LogIndex);
  deepStrictEqual(history.at(13 as LogIndex).voters, ids(1, 2, 3, 4));
  throws(() => history.at(11 as LogIndex), AssertionError);
});
