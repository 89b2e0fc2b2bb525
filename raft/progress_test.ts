/**
 * Flow control: the inflight window's bounds and freeing, and the progress state machine
 * (probe, replicate, snapshot) with stale rejections ignored and match < next kept throughout.
 */
import { equal, ok, throws } from "node:assert/strict";
import { AssertionError } from "./assert.ts";
import { INFLIGHT_APPENDS_MAX } from "./limits.ts";
import { Inflights, Progress } from "./progress.ts";
import type { LogIndex, Snapshot, Term } from "./types.ts";

const at = (value: number) => value as LogIndex;

Deno.test("Inflights fills at INFLIGHT_APPENDS_MAX and frees up to an acked index", () => {
  const inflights = new Inflights();
  for (let i = 1; i <= INFLIGHT_APPENDS_MAX; i++) inflights.add(at(i * 10), 5);
  ok(inflights.isFull);
  throws(() => inflights.add(at(100_000), 1), AssertionError);
  inflights.freeLessOrEqual(at(25));
  equal(inflights.count, INFLIGHT_APPENDS_MAX - 2);
  equal(inflights.bytesTotal, (INFLIGHT_APPENDS_MAX - 2) * 5);
  inflights.freeFirst();
  equal(inflights.count, INFLIGHT_APPENDS_MAX - 3);
  inflights.freeLessOrEqual(at(1_000_000));
  equal(inflights.count, 0);
  equal(inflights.bytesTotal, 0);
});

Deno.test("Inflights.add() refuses indexes that do not increase", () => {
  const inflights = new Inflights();
  inflights.add(at(5), 1);
  throws(() => inflights.add(at(5), 1), AssertionError);
});

Deno.test("Progress goes probe -> replicate on an accepted append and pipelines", () => {
  const progress = new Progress({ match: at(0), next: at(6) });
  progress.onAppendSent(2, at(7), 10);
  ok(progress.isPaused, "probe sends one append at a time");
  ok(progress.maybeUpdate(at(7)));
  progress.becomeReplicate();
  equal(progress.next, 8);
  progress.onAppendSent(3, at(10), 30);
  equal(progress.next, 11);
  ok(!progress.isPaused);
});

Deno.test("Progress.maybeDecrease() ignores stale rejections", async (t) => {
  await t.step("replicate: a rejection at or below match is stale", () => {
    const progress = new Progress({ match: at(5), next: at(6) });
    progress.becomeReplicate();
    equal(progress.maybeDecrease(at(4), at(3)), false);
    equal(progress.maybeDecrease(at(8), at(7)), true);
  });
  await t.step("probe: only a rejection of next - 1 counts", () => {
    const progress = new Progress({ match: at(0), next: at(10) });
    equal(progress.maybeDecrease(at(7), at(3)), false);
    equal(progress.maybeDecrease(at(9), at(4)), true);
    equal(progress.next, 4);
  });
  await t.step("next never drops to match or below", () => {
    const progress = new Progress({ match: at(5), next: at(10) });
    progress.maybeDecrease(at(9), at(1));
    equal(progress.next, 6);
  });
});

Deno.test("Progress in snapshot state is paused and resumes probing after the snapshot", () => {
  const snapshot: Snapshot = {
    metadata: { index: at(20), term: 3 as Term, confState: { voters: [], learners: [] } },
    data: new Uint8Array(0),
  };
  const progress = new Progress({ match: at(2), next: at(3) });
  progress.becomeSnapshot(snapshot);
  ok(progress.isPaused);
  progress.becomeProbe();
  equal(progress.next, 21);
  ok(progress.match < progress.next);
});
