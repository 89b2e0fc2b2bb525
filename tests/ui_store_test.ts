/**
 * ConsoleStore without a browser: a fake cluster behind a fake fetch, fake timers that the
 * test fires one at a time, and a fake session storage. Checks the session (sign-in stores the
 * token, a wrong token is refused with a message, a 401 later signs out and forgets the data),
 * the poller (one sample per poll, bounded history, events from successive snapshots), and
 * honest connection states (error before any data, stale only after STALE_AFTER_FAILURES
 * failures in a row with the data kept, live again with a "restored" event).
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { ConsoleStore, TOKEN_STORAGE_KEY } from "../ui/app/store.ts";
import { HISTORY_SAMPLES_MAX, STALE_AFTER_FAILURES } from "../ui/app/limits.ts";
import { FakeCluster } from "./fixtures/ui_cluster.ts";

const TOKEN = "secret-token";

class Harness {
  readonly cluster = new FakeCluster({ nodeCount: 3, shardCount: 4, replicationFactor: 3 });
  readonly stored = new Map<string, string>();
  readonly timers = new Map<number, () => void>();
  /** "frozen" answers without advancing the fake cluster, like a node serving a cache. */
  mode: "up" | "frozen" | "down" | "unauthorized" = "up";
  wallMs = 1_000_000;
  #nextTimer = 1;
  readonly store = new ConsoleStore({
    transport: { fetch: (url, init) => this.#fetch(url, init), baseUrl: "", timeoutMs: 5_000 },
    storage: {
      getItem: (key) => this.stored.get(key) ?? null,
      setItem: (key, value) => void this.stored.set(key, value),
      removeItem: (key) => void this.stored.delete(key),
    },
    nowMs: () => this.wallMs,
    setTimer: (callback) => {
      const id = this.#nextTimer++;
      this.timers.set(id, callback);
      return () => void this.timers.delete(id);
    },
  });

  /** Fires the one pending timer and waits until the poll it starts has scheduled the next. */
  async poll(): Promise<void> {
    equal(this.timers.size, 1, "exactly one poll is pending");
    const [id, callback] = [...this.timers][0]!;
    this.timers.delete(id);
    this.wallMs += 1_000;
    if (this.mode === "up") this.cluster.tick();
    callback();
    for (let turn = 0; turn < 100 && this.#pending() === 0; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (this.store.session.value.kind === "signed-out") return;
    }
  }

  #pending(): number {
    return this.timers.size;
  }

  #fetch(url: string, init: RequestInit): Promise<Response> {
    if (this.mode === "down") return Promise.reject(new TypeError("Failed to fetch"));
    const auth = new Headers(init.headers).get("authorization");
    if (this.mode === "unauthorized" || auth !== `Bearer ${TOKEN}`) {
      const body = { error: { code: "unauthorized", message: "Missing or wrong token" } };
      return Promise.resolve(Response.json(body, { status: 401 }));
    }
    equal(url, "/v1/cluster/status");
    return Promise.resolve(Response.json(this.cluster.status()));
  }
}

Deno.test("ConsoleStore refuses a wrong token and keeps no token", async () => {
  const harness = new Harness();
  await harness.store.signIn("wrong");
  const session = harness.store.session.value;
  equal(session.kind, "signed-out");
  if (session.kind === "signed-out") match(session.message ?? "", /rejected this token/);
  equal(harness.stored.size, 0);
  equal(harness.timers.size, 0);
});

Deno.test("ConsoleStore signs in, polls, and derives events", async () => {
  const harness = new Harness();
  await harness.store.signIn(TOKEN);
  equal(harness.stored.get(TOKEN_STORAGE_KEY), TOKEN);
  equal(harness.store.session.value.kind, "signed-in");
  equal(harness.store.connection.value.kind, "live");
  equal(harness.store.history.value.length, 1);
  await harness.poll();
  await harness.poll();
  equal(harness.store.history.value.length, 3);
  equal(harness.store.latest.value?.atMs, harness.cluster.nowMs);
  harness.cluster.killNode(1);
  await harness.poll();
  const kinds = harness.store.events.value.map((event) => event.kind);
  equal(kinds[kinds.length - 1], "connected");
  ok(kinds.includes("node-down"));
  ok(kinds.includes("leader-elected"));
  const ids = harness.store.events.value.map((event) => event.id);
  deepEqual(ids, [...ids].sort((a, b) => b - a), "newest first");
  harness.store.dispose();
  equal(harness.timers.size, 0);
});

Deno.test("ConsoleStore marks data stale only after repeated failures, then recovers", async () => {
  const harness = new Harness();
  await harness.store.signIn(TOKEN);
  harness.mode = "down";
  for (let i = 1; i < STALE_AFTER_FAILURES; i++) {
    await harness.poll();
    equal(harness.store.connection.value.kind, "live", `still live after ${i} failure(s)`);
  }
  await harness.poll();
  const stale = harness.store.connection.value;
  equal(stale.kind, "stale");
  if (stale.kind === "stale") match(stale.error, /Cannot reach the node: Failed to fetch/);
  equal(harness.store.history.value.length, 1, "the last data stays");
  await harness.poll();
  equal(harness.store.events.value.filter((e) => e.kind === "connection-lost").length, 1);
  harness.mode = "up";
  await harness.poll();
  equal(harness.store.connection.value.kind, "live");
  equal(harness.store.events.value[0]!.kind, "connection-restored");
  const silentSeconds = STALE_AFTER_FAILURES + 2;
  match(harness.store.events.value[0]!.message, new RegExp(`after ${silentSeconds} s without`));
  harness.store.dispose();
});

Deno.test("ConsoleStore shows an error, not stale data, when the first poll fails", async () => {
  const harness = new Harness();
  harness.stored.set(TOKEN_STORAGE_KEY, TOKEN);
  harness.mode = "down";
  harness.store.resume();
  equal(harness.store.session.value.kind, "signed-in");
  await harness.poll();
  const connection = harness.store.connection.value;
  equal(connection.kind, "error");
  if (connection.kind === "error") equal(connection.failures, 1);
  harness.mode = "up";
  await harness.poll();
  equal(harness.store.connection.value.kind, "live");
  harness.store.dispose();
});

Deno.test("ConsoleStore signs out on a 401 and forgets the token and the data", async () => {
  const harness = new Harness();
  await harness.store.signIn(TOKEN);
  harness.mode = "unauthorized";
  await harness.poll();
  const session = harness.store.session.value;
  equal(session.kind, "signed-out");
  if (session.kind === "signed-out") match(session.message ?? "", /sign in again/);
  equal(harness.stored.size, 0);
  equal(harness.store.history.value.length, 0);
  equal(harness.timers.size, 0);
});

Deno.test("ConsoleStore replaces a snapshot served again instead of adding it", async () => {
  const harness = new Harness();
  await harness.store.signIn(TOKEN);
  await harness.poll();
  harness.mode = "frozen";
  await harness.poll();
  await harness.poll();
  equal(harness.store.history.value.length, 2);
  harness.mode = "up";
  await harness.poll();
  equal(harness.store.history.value.length, 3);
  harness.store.dispose();
});

Deno.test("ConsoleStore keeps a bounded history", async () => {
  const harness = new Harness();
  await harness.store.signIn(TOKEN);
  for (let i = 0; i < HISTORY_SAMPLES_MAX + 5; i++) await harness.poll();
  equal(harness.store.history.value.length, HISTORY_SAMPLES_MAX);
  equal(harness.store.latest.value?.atMs, harness.cluster.nowMs);
  harness.store.dispose();
});
