/**
 * ForwardedRequests with a fake replica: a forwarded request whose work never finishes (a
 * proposal that cannot commit) is answered `timeout` at its caller's deadline instead of
 * holding on; one that finishes in time gets its answer; no time left means no work; a watch
 * poll waits at most half the time left, so its events travel back before the deadline.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { ForwardedRequests, withinDeadline } from "./forwarded_requests.ts";
import type { ShardRequest } from "./shard_request.ts";

const PUT: ShardRequest = {
  kind: "propose",
  command: { type: "put", key: "k", value: "v", lease: 0, prevKv: false },
};

/** A replica whose work is `answer`; records what it was asked to run. */
function fakeShard(answer: () => Promise<unknown>) {
  const executed: ShardRequest[] = [];
  return {
    executed,
    execute: (request: ShardRequest) => {
      executed.push(request);
      return answer();
    },
  };
}

Deno.test("ForwardedRequests.execute() answers timeout at the caller's deadline", async () => {
  const forwarded = new ForwardedRequests(() => performance.now());
  const stuck = fakeShard(() => new Promise<never>(() => {}));
  await rejects(
    forwarded.execute(stuck, PUT, 20),
    (error) => error instanceof AspenError && error.code === "timeout",
  );
  equal(stuck.executed.length, 1);
});

Deno.test("ForwardedRequests.execute() returns what finishes in time", async () => {
  const forwarded = new ForwardedRequests(() => performance.now());
  const quick = fakeShard(() => Promise.resolve({ type: "put", revision: 7 }));
  deepEqual(await forwarded.execute(quick, PUT, 5_000), { type: "put", revision: 7 });
});

Deno.test("ForwardedRequests.execute() starts no work without time left", async () => {
  const forwarded = new ForwardedRequests(() => performance.now());
  const shard = fakeShard(() => Promise.resolve(null));
  await rejects(
    forwarded.execute(shard, PUT, 0),
    (error) => error instanceof AspenError && error.code === "timeout",
  );
  equal(shard.executed.length, 0);
});

Deno.test("withinDeadline() fits a watch poll's wait into the time left", async (t) => {
  const poll = (waitMs: number): ShardRequest => ({
    kind: "watchPoll",
    filter: { key: "k" },
    fromRevision: null,
    waitMs,
  });
  const cases = [
    { name: "a short wait is kept", waitMs: 100, deadlineMs: 2_000, expected: 100 },
    { name: "a long wait is cut to half the time", waitMs: 1_000, deadlineMs: 600, expected: 300 },
    { name: "the wait stays positive", waitMs: 1_000, deadlineMs: 1, expected: 1 },
  ];
  for (const item of cases) {
    await t.step(item.name, () => {
      const fitted = withinDeadline(poll(item.waitMs), item.deadlineMs);
      equal(fitted.kind === "watchPoll" ? fitted.waitMs : null, item.expected);
    });
  }
  await t.step("other requests are unchanged", () => {
    equal(withinDeadline(PUT, 1), PUT);
  });
});
