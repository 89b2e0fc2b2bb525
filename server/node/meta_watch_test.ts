/**
 * MetaWatch (meta_watch.ts): a changed stamp from any node starts one refresh, an unchanged one
 * none; stamps arriving during a refresh start another after it; a failed refresh leaves the
 * stamps unacknowledged and is tried again, no sooner than META_WATCH_RETRY_MS; and the stamp
 * survives its heartbeat encoding. Driven with a fake clock and hand-resolved refreshes.
 */
import { deepEqual, equal } from "node:assert/strict";
import {
  decodeMetaStamp,
  encodeMetaStamp,
  META_STAMP_BYTES,
  META_WATCH_RETRY_MS,
  MetaWatch,
} from "./meta_watch.ts";

/** A watch whose refreshes wait until the test settles them. */
function harness() {
  let nowMs = 0;
  const pending: ((isDone: boolean) => void)[] = [];
  const watch = new MetaWatch({
    refresh: () => new Promise<boolean>((resolve) => pending.push(resolve)),
    nowMs: () => nowMs,
  });
  return {
    watch,
    pending,
    advance: (ms: number) => nowMs += ms,
    /** Settles the oldest refresh and lets its callbacks run. */
    settle: async (isDone: boolean) => {
      pending.shift()!(isDone);
      for (let i = 0; i < 5; i++) await Promise.resolve();
    },
  };
}

Deno.test("MetaWatch refreshes once per changed stamp and not for a repeated one", async () => {
  const { watch, pending, settle } = harness();
  watch.note(2, { incarnation: 7, version: 1 });
  equal(pending.length, 1, "the first stamp of a node is a change");
  watch.note(2, { incarnation: 7, version: 1 });
  watch.note(3, { incarnation: 9, version: 1 });
  equal(pending.length, 1, "one refresh at a time");
  await settle(true);
  equal(pending.length, 1, "node 3's stamp arrived during the refresh: another one");
  await settle(true);
  equal(pending.length, 0);
  watch.note(2, { incarnation: 7, version: 1 });
  watch.note(3, { incarnation: 9, version: 1 });
  equal(pending.length, 0, "acknowledged stamps start nothing");
  watch.note(3, { incarnation: 9, version: 2 });
  equal(pending.length, 1, "a new version does");
  await settle(true);
  watch.note(3, { incarnation: 10, version: 2 });
  equal(pending.length, 1, "so does a restart (a new incarnation) at the same version");
  await settle(true);
  equal(watch.refreshes, 4);
  watch.close();
});

Deno.test("MetaWatch retries a failed refresh no sooner than META_WATCH_RETRY_MS", async () => {
  const { watch, pending, settle, advance } = harness();
  watch.note(2, { incarnation: 1, version: 5 });
  await settle(false);
  watch.note(2, { incarnation: 1, version: 5 });
  equal(pending.length, 0, "not at once after a failure");
  advance(META_WATCH_RETRY_MS - 1);
  watch.note(2, { incarnation: 1, version: 5 });
  equal(pending.length, 0, "not before the retry pause");
  advance(1);
  watch.note(2, { incarnation: 1, version: 5 });
  equal(pending.length, 1, "the same stamp is still unacknowledged: tried again");
  await settle(true);
  watch.note(2, { incarnation: 1, version: 5 });
  equal(pending.length, 0, "acknowledged once a refresh succeeded");
  watch.close();
  watch.note(2, { incarnation: 1, version: 6 });
  equal(pending.length, 0, "a closed watch starts nothing");
});

Deno.test("MetaWatch treats a rejected refresh as failed", async () => {
  let calls = 0;
  let nowMs = 0;
  const watch = new MetaWatch({
    refresh: () => {
      calls++;
      return Promise.reject(new Error("shard 0 has no leader"));
    },
    nowMs: () => nowMs,
  });
  watch.note(1, { incarnation: 1, version: 1 });
  for (let i = 0; i < 5; i++) await Promise.resolve();
  nowMs += META_WATCH_RETRY_MS;
  watch.note(1, { incarnation: 1, version: 1 });
  equal(calls, 2);
  watch.close();
});

Deno.test("encodeMetaStamp() and decodeMetaStamp() round-trip; other payloads carry none", () => {
  const stamp = { incarnation: 0xdead_beef, version: 42 };
  const bytes = encodeMetaStamp(stamp);
  equal(bytes.byteLength, META_STAMP_BYTES);
  deepEqual(decodeMetaStamp(bytes), stamp);
  deepEqual(decodeMetaStamp(encodeMetaStamp({ incarnation: 1, version: 2 ** 32 + 3 })), {
    incarnation: 1,
    version: 3,
  });
  equal(decodeMetaStamp(new Uint8Array(0)), null, "an empty heartbeat");
  equal(decodeMetaStamp(new Uint8Array(META_STAMP_BYTES + 1)), null, "another size");
  const offset = new Uint8Array(META_STAMP_BYTES + 4);
  offset.set(bytes, 4);
  deepEqual(decodeMetaStamp(offset.subarray(4)), stamp, "a view into a larger buffer");
});
