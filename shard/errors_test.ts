/**
 * Checks the one `not_leader` error: its code, its message with and without a known leader and
 * with a named action, and the `shard` and `leader` details that clients retry with.
 */
import { deepEqual, equal } from "node:assert/strict";
import { notLeaderError } from "./errors.ts";

Deno.test("notLeaderError() names the shard, the action and the leader", async (t) => {
  const cases = [
    {
      name: "known leader",
      error: notLeaderError(3, 2),
      message: "Cannot serve shard 3 here: this replica is not the leader (node 2 is)",
      shard: 3,
      leader: 2,
    },
    {
      name: "no known leader",
      error: notLeaderError(0, null),
      message: "Cannot serve shard 0 here: this replica is not the leader and no leader is known",
      shard: 0,
      leader: null,
    },
    {
      name: "named action",
      error: notLeaderError(5, 1, "keep lease 7 alive"),
      message:
        "Cannot keep lease 7 alive on shard 5 here: this replica is not the leader (node 1 is)",
      shard: 5,
      leader: 1,
    },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, () => {
      equal(testCase.error.code, "not_leader");
      equal(testCase.error.message, testCase.message);
      deepEqual(testCase.error.details, { shard: testCase.shard, leader: testCase.leader });
    });
  }
});
