/**
 * The pure parts of the chaos harness, table-driven: how an HTTP answer counts for the history
 * (2xx ok, 4xx not applied, 5xx and no answer unknown), and
 * how replica reports are compared (settled only when every replica of every shard reports one
 * applied index; equal indexes with different state hashes are divergence).
 */
import { deepEqual, equal } from "node:assert/strict";
import { compareReplicas } from "./chaos/verify.ts";
import { classifyAnswer } from "./chaos/workload.ts";
import type { ReplicaDebugState } from "../server/http/mod.ts";

Deno.test("classifyAnswer() maps statuses to outcomes", async (t) => {
  const cases: [number | null, string][] = [
    [200, "ok"],
    [204, "ok"],
    [400, "failed"],
    [404, "failed"],
    [409, "failed"],
    [412, "failed"],
    [429, "failed"],
    [500, "unknown"],
    [503, "unknown"],
    [504, "unknown"],
    [null, "unknown"],
  ];
  for (const [status, expected] of cases) {
    await t.step(`${status} is ${expected}`, () => equal(classifyAnswer(status), expected));
  }
});

function replica(shard: number, appliedIndex: number, stateHash = "h"): ReplicaDebugState {
  return {
    shard,
    role: "follower",
    term: 2,
    leader: 1,
    commitIndex: appliedIndex,
    appliedIndex,
    stateHash,
  };
}

Deno.test("compareReplicas() settles, waits and finds divergence", async (t) => {
  const shape = { shards: 2, replicasPerShard: 2 };
  await t.step("equal indexes and hashes: settled", () => {
    const states = new Map([[1, [replica(0, 9), replica(1, 4)]], [2, [
      replica(0, 9),
      replica(1, 4),
    ]]]);
    deepEqual(compareReplicas(states, shape), { isSettled: true, divergences: [], pending: [] });
  });
  await t.step("different indexes: pending", () => {
    const states = new Map([[1, [replica(0, 9), replica(1, 4)]], [2, [
      replica(0, 8),
      replica(1, 4),
    ]]]);
    const verdict = compareReplicas(states, shape);
    equal(verdict.isSettled, false);
    deepEqual(verdict.divergences, []);
    deepEqual(verdict.pending, ["shard 0: applied indexes differ (n1@9 n2@8)"]);
  });
  await t.step("a missing replica or shard: pending", () => {
    const states = new Map([[1, [replica(0, 9)]], [2, [replica(0, 9)]]]);
    const verdict = compareReplicas(states, shape);
    equal(verdict.isSettled, false);
    deepEqual(verdict.pending, ["shard 1: 0 of 2 replicas answer"]);
  });
  await t.step("equal indexes, different hashes: divergence", () => {
    const states = new Map([[1, [replica(0, 9, "aaaa"), replica(1, 4)]], [2, [
      replica(0, 9, "bbbb"),
      replica(1, 4),
    ]]]);
    const verdict = compareReplicas(states, shape);
    deepEqual(verdict.divergences, [
      "shard 0: replicas at applied index 9 differ: n1=aaaa n2=bbbb",
    ]);
  });
});
