/**
 * Watch tests: replay from history then live streaming, key and prefix filtering, compaction
 * (at subscribe and under a replaying watcher), slow-watcher cancellation by event count and by
 * bytes, pacing of long replays, the watcher limit, history across a restart, events of bulk
 * deletes, and shutdown. Watchers are driven by applying entries and awaiting `next()`, which
 * resolves at once when an item is buffered; nothing waits on a clock.
 */

import assert from "node:assert/strict";
import {
  AspenError,
  type Command,
  type StateMachineOptions,
  type Watcher,
  type WatchEvent,
  type WatchItem,
} from "../shard/mod.ts";
import { del, Harness, put } from "./kv_harness.ts";

const WATCH = { bufferEventsMax: 8, bufferBytesMax: 1024 * 1024, watchersMax: 4 };

function harness(options: Partial<StateMachineOptions> = {}): Harness {
  return new Harness({ watch: WATCH, ...options });
}

/** Takes every item the watcher can deliver without waiting. */
async function drain(watcher: Watcher): Promise<WatchItem[]> {
  const items: WatchItem[] = [];
  for (;;) {
    const pending = watcher.next();
    const item = await Promise.race([pending, Promise.resolve(undefined)]);
    if (item === undefined) {
      watcher.cancel();
      await pending;
      return items;
    }
    if (item === null) return items;
    items.push(item);
  }
}

function summary(items: WatchItem[]): string[] {
  return items.map((item) => {
    if (item.type === "error") return `error ${item.error.code}`;
    return `${item.type} ${item.kv.key}@${item.revision}`;
  });
}

async function events(watcher: Watcher, count: number): Promise<WatchEvent[]> {
  const list: WatchEvent[] = [];
  for (let i = 0; i < count; i++) {
    const item = await watcher.next();
    assert.ok(item !== null && item.type !== "error", `event ${i}: ${JSON.stringify(item)}`);
    list.push(item);
  }
  return list;
}

Deno.test("a prefix watcher replays history, then streams live events", async () => {
  const h = harness();
  h.apply(put("a", "1"), put("b", "1"), put("a/x", "1"), del("a"));
  const watcher = h.sm.watch({ prefix: "a" }, { fromRevision: 1 });
  const replayed = await events(watcher, 3);
  assert.deepEqual(replayed.map((event) => `${event.type} ${event.kv.key}@${event.revision}`), [
    "put a@1",
    "put a/x@3",
    "delete a@4",
  ]);
  assert.deepEqual(replayed[2]?.prevKv?.value, "1");
  assert.deepEqual(replayed[2]?.kv, {
    key: "a",
    value: "",
    version: 0,
    createRevision: 0,
    modRevision: 4,
    lease: 0,
  });
  const pending = watcher.next();
  h.apply(put("ab", "2"), put("c", "2"));
  const live = await pending;
  assert.ok(live !== null && live.type === "put");
  assert.deepEqual(live.kv, {
    key: "ab",
    value: "2",
    version: 1,
    createRevision: 5,
    modRevision: 5,
    lease: 0,
  });
  assert.equal(watcher.isLive, true);
  assert.deepEqual(summary(await drain(watcher)), []);
  h.close();
});

Deno.test("a key watcher sees only its key; the default start is the next revision", async () => {
  const h = harness();
  h.apply(put("k", "old"));
  const watcher = h.sm.watch({ key: "k" });
  h.apply(put("k2", "1"), put("k", "new"), put("j", "1"), del("k"));
  assert.deepEqual(summary(await drain(watcher)), ["put k@3", "delete k@5"]);
  h.close();
});

Deno.test("a watcher from a future revision starts there", async () => {
  const h = harness();
  const watcher = h.sm.watch({ prefix: "" }, { fromRevision: 3 });
  h.apply(put("a", "1"), put("b", "1"), put("c", "1"), put("d", "1"));
  assert.deepEqual(summary(await drain(watcher)), ["put c@3", "put d@4"]);
  h.close();
});

Deno.test("watching a compacted revision fails with the oldest retained revision", async () => {
  const h = harness({ historyEventsMax: 20 });
  for (let i = 0; i < 30; i++) h.apply(put(`k${i % 5}`, String(i)));
  const compacted = h.sm.stats().compactedRevision;
  assert.ok(compacted > 0, "history was compacted");
  assert.ok(h.sm.stats().historyEvents <= 20);
  let error: unknown;
  try {
    h.sm.watch({ prefix: "" }, { fromRevision: 1 });
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof AspenError && error.code === "compacted");
  assert.deepEqual(error.details, {
    oldestRevision: compacted + 1,
    compactRevision: compacted,
    fromRevision: 1,
  });
  const watcher = h.sm.watch({ prefix: "" }, { fromRevision: compacted + 1 });
  const items = summary(await drain(watcher));
  assert.equal(items.length, 30 - compacted);
  assert.equal(items[0], `put k${compacted % 5}@${compacted + 1}`);
  h.close();
});

Deno.test("a full history is trimmed a sixteenth at a time, so no apply deletes much", () => {
  // A quarter of a full history (12,500 events) deleted in one apply held the loop 50-160 ms.
  const h = harness({ historyEventsMax: 64 });
  for (let i = 0; i < 64; i++) h.apply(put(`k${i}`, "v"));
  assert.equal(h.sm.stats().compactedRevision, 0, "at the limit, nothing is dropped");
  h.apply(put("one-more", "v"));
  assert.equal(h.sm.stats().historyEvents, 60, "65 events, trimmed to 15/16 of 64");
  assert.equal(h.sm.stats().compactedRevision, 5);
  h.close();
});

Deno.test("history compacted under a replaying watcher ends it with compacted", async () => {
  const h = harness({ historyEventsMax: 40 });
  for (let i = 0; i < 30; i++) h.apply(put(`k${i}`, "v"));
  const watcher = h.sm.watch({ prefix: "" }, { fromRevision: 1 });
  assert.equal((await events(watcher, 5)).length, 5);
  for (let i = 0; i < 40; i++) h.apply(put(`m${i}`, "v"));
  const rest = summary(await drain(watcher));
  assert.equal(rest[rest.length - 1], "error compacted");
  assert.equal(h.sm.stats().watchers, 0);
  h.close();
});

Deno.test("a slow watcher is cancelled when its buffer is full, and can resume", async () => {
  const h = harness();
  const watcher = h.sm.watch({ prefix: "" });
  for (let i = 0; i < 20; i++) {
    h.apply(put(`k${i}`, "v"));
    assert.ok(watcher.bufferedEvents <= WATCH.bufferEventsMax, "the buffer is bounded");
  }
  assert.equal(h.sm.stats().watchers, 0, "the hub dropped the slow watcher");
  const items = await drain(watcher);
  assert.equal(items.length, WATCH.bufferEventsMax + 1);
  const last = items[items.length - 1];
  assert.ok(last?.type === "error" && last.error.code === "watch_cancelled");
  assert.equal(last.error.details.reason, "slow_watcher");
  assert.match(last.error.message, /WATCH_BUFFER_EVENTS_MAX/);
  const resume = last.error.details.resumeRevision;
  assert.equal(resume, WATCH.bufferEventsMax + 1);
  const again = h.sm.watch({ prefix: "" }, { fromRevision: Number(resume) });
  assert.equal((await drain(again)).length, 20 - WATCH.bufferEventsMax);
  h.close();
});

Deno.test("a slow watcher is cancelled when its buffer holds too many bytes", async () => {
  const h = harness({ watch: { ...WATCH, bufferBytesMax: 2000 } });
  const watcher = h.sm.watch({ prefix: "" });
  for (let i = 0; i < 6; i++) h.apply(put(`k${i}`, "v".repeat(500)));
  const items = summary(await drain(watcher));
  assert.equal(items[items.length - 1], "error watch_cancelled");
  assert.ok(items.length <= 5, `at most 4 events of ~600 bytes fit: ${items}`);
  h.close();
});

Deno.test("a replay longer than the buffer is paced by the consumer, not cancelled", async () => {
  const h = harness();
  for (let i = 0; i < 50; i++) h.apply(put(`k${i % 7}`, String(i)));
  const watcher = h.sm.watch({ prefix: "" }, { fromRevision: 1 });
  const seen: number[] = [];
  for (let i = 0; i < 50; i++) {
    assert.ok(watcher.bufferedEvents <= WATCH.bufferEventsMax);
    const item = await watcher.next();
    assert.ok(item !== null && item.type !== "error");
    seen.push(item.revision);
  }
  assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i + 1));
  h.apply(put("live", "1"));
  assert.deepEqual(summary(await drain(watcher)), ["put live@51"]);
  h.close();
});

Deno.test("the watcher limit is enforced and freed by cancel", () => {
  const h = harness();
  const watchers = Array.from({ length: WATCH.watchersMax }, () => h.sm.watch({ prefix: "" }));
  assert.throws(() => h.sm.watch({ key: "k" }), (error) => {
    return error instanceof AspenError && error.code === "limit_exceeded";
  });
  watchers[0]?.cancel();
  h.sm.watch({ key: "k" });
  assert.equal(h.sm.stats().watchers, WATCH.watchersMax);
  h.close();
});

Deno.test("closing the state machine ends every watcher, waking a pending next()", async () => {
  const h = harness();
  const watcher = h.sm.watch({ prefix: "" });
  const pending = watcher.next();
  h.close();
  const item = await pending;
  assert.ok(item?.type === "error" && item.error.code === "watch_cancelled");
  assert.equal(item.error.details.reason, "shard_closed");
  assert.equal(await watcher.next(), null);
});

Deno.test("leaving a for-await loop cancels the watcher", async () => {
  const h = harness();
  h.apply(put("a", "1"), put("b", "2"));
  const watcher = h.sm.watch({ prefix: "" }, { fromRevision: 1 });
  for await (const item of watcher) {
    assert.equal(item.type, "put");
    break;
  }
  assert.equal(h.sm.stats().watchers, 0);
  assert.equal(await watcher.next(), null);
  h.close();
});

Deno.test("watch history survives a restart", async () => {
  const directory = Deno.makeTempDirSync();
  const path = `${directory}/state-machine.db`;
  try {
    const first = harness({ path });
    first.apply(put("a", "1"), put("a", "2"), del("a"));
    first.close();
    const second = harness({ path });
    const watcher = second.sm.watch({ key: "a" }, { fromRevision: 2 });
    assert.deepEqual(summary(await drain(watcher)), ["put a@2", "delete a@3"]);
    second.close();
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
});

Deno.test("bulk deletes emit one event per key, in key order, with the previous kv", async () => {
  const h = harness({ watch: { ...WATCH, bufferEventsMax: 64 } });
  h.apply({ type: "leaseGrant", ttlSeconds: 5 }, { type: "leaseGrant", ttlSeconds: 5 });
  const commands: Command[] = [
    put("r/b", "1"),
    put("r/a", "1"),
    put("l/2", "1", 1),
    put("l/1", "1", 1),
    put("e/1", "1", 2),
  ];
  h.apply(...commands);
  const watcher = h.sm.watch({ prefix: "" });
  h.apply(
    { type: "deleteRange", range: { prefix: "r/" } },
    { type: "leaseRevoke", id: 1 },
    { type: "leaseExpire", ids: [2] },
  );
  const items = await drain(watcher);
  assert.deepEqual(summary(items), [
    "delete r/a@8",
    "delete r/b@8",
    "delete l/1@9",
    "delete l/2@9",
    "delete e/1@10",
  ]);
  for (const item of items) {
    assert.ok(item.type === "delete" && item.prevKv !== null);
    assert.equal(item.prevKv.key, item.kv.key);
    assert.equal(item.prevKv.value, "1");
  }
  h.close();
});

Deno.test("history retention is bounded by bytes as well as events", () => {
  const h = harness({ historyBytesMax: 10_000 });
  for (let i = 0; i < 40; i++) {
    h.apply(put(`k${i}`, "v".repeat(400)));
    assert.ok(h.sm.stats().historyBytes <= 10_000, "bytes stay under the retention limit");
  }
  const stats = h.sm.stats();
  assert.ok(stats.compactedRevision > 0, "history was compacted by bytes");
  assert.ok(stats.historyEvents < 40 - stats.compactedRevision + 1);
  h.close();
});

Deno.test("a bulk delete too big for the history compacts it instead of writing it", async () => {
  const h = harness({ historyEventsMax: 20 });
  h.apply(...Array.from({ length: 15 }, (_, i) => put(`r/${i}`, "v")));
  h.apply(...Array.from({ length: 15 }, (_, i) => put(`s/${i}`, "v")));
  const watcher = h.sm.watch({ prefix: "" });
  const [result] = h.apply({ type: "deleteRange", range: { start: "r/", end: "t" } });
  assert.deepEqual(result, { type: "deleteRange", revision: 31, deleted: 30 });
  const stats = h.sm.stats();
  assert.equal(stats.compactedRevision, 31);
  assert.equal(stats.historyEvents, 0);
  const items = await drain(watcher);
  assert.equal(items.length, 1);
  const item = items[0];
  assert.ok(item?.type === "error" && item.error.code === "compacted");
  assert.equal(item.error.details.oldestRevision, 32);
  h.apply(put("after", "1"));
  assert.deepEqual(summary(await drain(h.sm.watch({ prefix: "" }, { fromRevision: 32 }))), [
    "put after@32",
  ]);
  h.close();
});
