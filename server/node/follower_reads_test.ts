/**
 * FollowerReads, the batching of read index requests for follower reads: a read never uses a
 * request sent before it arrived (reads arriving while one is in flight share the next one,
 * sent when it settles), a failed request fails only its own reads, the latest known leader is
 * asked, and the number of waiting reads is bounded. The leader is a fake with manual answers.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { FOLLOWER_READS_WAITING_MAX, FollowerReads } from "./follower_reads.ts";

interface Asked {
  readonly leader: number;
  readonly shard: number;
  readonly resolve: (index: number) => void;
  readonly reject: (error: unknown) => void;
}

function fakeLeader(): { asked: Asked[]; reads: FollowerReads } {
  const asked: Asked[] = [];
  const reads = new FollowerReads({
    askReadIndex: (leader, shard) => {
      const { promise, resolve, reject } = Promise.withResolvers<number>();
      asked.push({ leader, shard, resolve, reject });
      return promise;
    },
  });
  return { asked, reads };
}

/** Lets promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

Deno.test("FollowerReads: reads arriving during a request share the next one", async () => {
  const { asked, reads } = fakeLeader();
  const first = reads.readIndex(0, 2);
  equal(asked.length, 1, "the first read asks at once");
  const second = reads.readIndex(0, 2);
  const third = reads.readIndex(0, 2);
  equal(asked.length, 1, "reads during a request do not use it and do not ask yet");
  asked[0]!.resolve(5);
  equal(await first, 5);
  await settle();
  equal(asked.length, 2, "the next request leaves when the first settles");
  asked[1]!.resolve(7);
  deepEqual(await Promise.all([second, third]), [7, 7]);
  await settle();
  equal(asked.length, 2, "nobody waits, so nothing more is asked");
  const later = reads.readIndex(0, 2);
  equal(asked.length, 3, "an idle shard asks at once again");
  asked[2]!.resolve(9);
  equal(await later, 9);
});

Deno.test("FollowerReads: a failed request fails its reads only", async () => {
  const { asked, reads } = fakeLeader();
  const first = reads.readIndex(0, 2);
  const second = reads.readIndex(0, 2);
  asked[0]!.reject(new AspenError("not_leader", "Not the leader", { leader: 3 }));
  await rejects(first, /Not the leader/);
  await settle();
  equal(asked.length, 2);
  asked[1]!.resolve(4);
  equal(await second, 4);
});

Deno.test("FollowerReads: shards are independent and the latest leader is asked", async () => {
  const { asked, reads } = fakeLeader();
  const a = reads.readIndex(0, 2);
  const b = reads.readIndex(1, 3);
  deepEqual(asked.map((item) => [item.shard, item.leader]), [[0, 2], [1, 3]]);
  const c = reads.readIndex(0, 3);
  asked[0]!.resolve(1);
  asked[1]!.resolve(2);
  await settle();
  deepEqual(asked.map((item) => [item.shard, item.leader]), [[0, 2], [1, 3], [0, 3]]);
  asked[2]!.resolve(6);
  deepEqual(await Promise.all([a, b, c]), [1, 2, 6]);
});

Deno.test("FollowerReads: the reads waiting for one shard are bounded", async () => {
  const { asked, reads } = fakeLeader();
  const first = reads.readIndex(0, 2);
  const waiting = Array.from({ length: FOLLOWER_READS_WAITING_MAX }, () => reads.readIndex(0, 2));
  await rejects(reads.readIndex(0, 2), (error: unknown) => {
    return error instanceof AspenError && error.code === "too_many_requests";
  });
  asked[0]!.resolve(1);
  await first;
  await settle();
  asked[1]!.resolve(2);
  equal((await Promise.all(waiting)).every((index) => index === 2), true);
});
