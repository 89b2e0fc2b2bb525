/**
 * Snapshot tests: the state machine's snapshot carries the whole state to another replica.
 *
 * The main scenario is issue 4's: a follower applies part of the log and goes down; the
 * leader applies much more (and, in a real cluster, compacts its log); the follower catches up
 * by restoring the leader's snapshot and must end with an equal state hash and equal reads;
 * then both apply more entries, with different batch boundaries, and stay equal. Also checked:
 * snapshots are byte-identical for equal state whatever the batching, a restore survives a
 * reopen, bad snapshot bytes are refused without harming the state, and a watcher keeps
 * streaming across a restore, served from the restored history.
 */

import assert from "node:assert/strict";
import { AspenError, StateMachine, type WatchItem } from "../shard/mod.ts";
import { Workload } from "./kv_workload.ts";

function applyRange(sm: StateMachine, workload: Workload, until: number, batch: number): void {
  while (workload.lastIndex < until) {
    sm.apply(workload.entries(Math.min(batch, until - workload.lastIndex)));
  }
}

/** Everything a client can read, for equality checks. */
function readAll(sm: StateMachine): unknown {
  const kvs = [];
  let after: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const result = sm.range({ range: { prefix: "" }, limit: 5, after });
    kvs.push(...result.kvs);
    if (!result.more) break;
    after = result.next;
  }
  const leases = sm.leases().map((lease) => sm.lease(lease.id));
  const meta = ["shardMap", "epoch", "\u00e9"].map((name) => sm.getMeta(name));
  const { watchers: _watchers, ...stats } = sm.stats();
  return { kvs, leases, meta, stats };
}

function withDirectory(body: (directory: string) => void | Promise<void>) {
  return async () => {
    const directory = Deno.makeTempDirSync();
    try {
      await body(directory);
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  };
}

Deno.test(
  "a follower that missed entries catches up by snapshot and stays equal",
  withDirectory((directory) => {
    const leader = StateMachine.open({ path: `${directory}/leader.db`, synchronous: "normal" });
    const follower = StateMachine.open({ path: `${directory}/follower.db`, synchronous: "full" });
    try {
      const leaderLog = new Workload(9);
      const followerLog = new Workload(9);
      applyRange(leader, leaderLog, 500, 1);
      applyRange(follower, followerLog, 500, 50);
      assert.equal(follower.stateHash(), leader.stateHash());
      applyRange(leader, leaderLog, 2000, 1); // The follower is down.
      follower.restore(leader.snapshot());
      assert.equal(follower.appliedIndex(), 2000);
      assert.equal(follower.stateHash(), leader.stateHash());
      assert.deepEqual(readAll(follower), readAll(leader));
      const more = new Workload(9);
      more.entries(2000);
      const after = more.entries(1000);
      const leaderResults = [];
      for (let i = 0; i < after.length; i += 7) {
        leaderResults.push(...leader.apply(after.slice(i, i + 7)));
      }
      const followerResults = follower.apply(after.slice(0, 1000));
      assert.deepEqual(followerResults, leaderResults);
      assert.equal(follower.stateHash(), leader.stateHash());
      assert.deepEqual(readAll(follower), readAll(leader));
    } finally {
      leader.close();
      follower.close();
    }
  }),
);

Deno.test(
  "a snapshot made in a worker holds the state of its call, byte for byte",
  withDirectory(async (directory) => {
    const sm = StateMachine.open({ path: `${directory}/sm.db`, synchronous: "normal" });
    const copy = StateMachine.open({ path: ":memory:", synchronous: "normal" });
    try {
      const workload = new Workload(7);
      applyRange(sm, workload, 1200, 13);
      const expected = sm.snapshot();
      const hash = sm.stateHash();
      const pending = sm.snapshotInBackground();
      // Entries applied while the worker runs are not in it: the state was copied at the call.
      applyRange(sm, workload, 1500, 13);
      const bytes = await pending.bytes;
      assert.deepEqual(bytes, expected);
      copy.restore(bytes);
      assert.equal(copy.appliedIndex(), 1200);
      assert.equal(copy.stateHash(), hash);
      assert.notEqual(sm.stateHash(), hash);
    } finally {
      sm.close();
      copy.close();
    }
  }),
);

Deno.test("a cancelled background snapshot rejects, and the next one still works", async () => {
  const sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    applyRange(sm, new Workload(3), 300, 10);
    const cancelled = sm.snapshotInBackground();
    cancelled.cancel();
    await assert.rejects(cancelled.bytes, /cancelled/);
    cancelled.cancel(); // Twice changes nothing.
    assert.deepEqual(await sm.snapshotInBackground().bytes, sm.snapshot());
  } finally {
    sm.close();
  }
});

Deno.test("snapshots are byte-identical for equal state, whatever the batching", () => {
  const one = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  const many = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  const copy = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    applyRange(one, new Workload(5), 1500, 1);
    applyRange(many, new Workload(5), 1500, 499);
    const snapshot = one.snapshot();
    assert.deepEqual(many.snapshot(), snapshot);
    copy.restore(snapshot);
    assert.deepEqual(copy.snapshot(), snapshot, "a restored snapshot snapshots the same");
    assert.notDeepEqual(new Workload(6).entries(1), new Workload(5).entries(1));
  } finally {
    one.close();
    many.close();
    copy.close();
  }
});

Deno.test(
  "a restored state machine survives a reopen",
  withDirectory((directory) => {
    const source = StateMachine.open({ path: ":memory:", synchronous: "normal" });
    applyRange(source, new Workload(11), 800, 100);
    const path = `${directory}/state-machine.db`;
    const target = StateMachine.open({ path, synchronous: "normal" });
    applyRange(target, new Workload(12), 300, 100);
    target.restore(source.snapshot());
    target.close();
    const reopened = StateMachine.open({ path, synchronous: "normal" });
    try {
      assert.equal(reopened.stateHash(), source.stateHash());
      assert.deepEqual(readAll(reopened), readAll(source));
      assert.deepEqual([...Deno.readDirSync(directory)].map((entry) => entry.name).sort(), [
        "state-machine.db",
        "state-machine.db-wal",
      ]);
    } finally {
      reopened.close();
      source.close();
    }
  }),
);

Deno.test("restore() refuses bad bytes and keeps the state", async (t) => {
  const sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  applyRange(sm, new Workload(3), 200, 50);
  const hash = sm.stateHash();
  const good = sm.snapshot();
  const foreign = new Uint8Array(good.length);
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array()],
    ["not SQLite", new TextEncoder().encode("hello".repeat(100))],
    ["truncated", good.subarray(0, good.length / 2)],
    [
      "zeroed pages",
      (() => {
        const bytes = good.slice();
        bytes.fill(0, 4096, 4096 * 4);
        return bytes;
      })(),
    ],
    ["zeros", foreign],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, () => {
      assert.throws(() => sm.restore(bytes), (error) => {
        return error instanceof AspenError && error.code === "bad_request";
      });
      assert.equal(sm.stateHash(), hash);
    });
  }
  sm.close();
});

Deno.test("a watcher streams across a restore, from the restored history", async () => {
  const leader = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  const follower = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  try {
    const leaderLog = new Workload(21);
    applyRange(leader, leaderLog, 300, 10);
    applyRange(follower, new Workload(21), 100, 10);
    const reference = leader.watch({ prefix: "a" }, { fromRevision: 101 });
    const watcher = follower.watch({ prefix: "a" });
    follower.restore(leader.snapshot());
    applyRange(leader, leaderLog, 310, 10);
    const tail = new Workload(21);
    tail.entries(300);
    follower.apply(tail.entries(10));
    const expected: WatchItem[] = [];
    const actual: WatchItem[] = [];
    while (reference.bufferedEvents > 0) expected.push(await nextItem(reference));
    while (watcher.bufferedEvents > 0 || !watcher.isLive) actual.push(await nextItem(watcher));
    assert.ok(expected.length > 10, "the workload touched the prefix");
    assert.deepEqual(actual, expected);
  } finally {
    leader.close();
    follower.close();
  }
});

async function nextItem(watcher: { next(): Promise<WatchItem | null> }): Promise<WatchItem> {
  const item = await watcher.next();
  assert.ok(item !== null);
  return item;
}
