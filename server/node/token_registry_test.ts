/**
 * TokenRegistry over an in-memory record store with a compare-and-swap (the node uses shard 0's
 * meta record through the router; the cluster tests in tests/runtime_tokens_e2e_test.ts use the
 * real one) and hand-driven clocks: bootstrap tokens need no read; a created token works on the
 * node that made it and, after one re-read, on another; a revoke reaches another node at its
 * next refresh; an expired token is answered as expired; a copy older than TOKENS_STALE_MS_MAX
 * refuses runtime tokens; concurrent changes from two nodes both land; unknown tokens cause at
 * most one re-read per TOKENS_MISS_REFRESH_MS_MIN.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { AspenError } from "../../shard/mod.ts";
import { createCredentials } from "../auth.ts";
import { Logger } from "../log.ts";
import {
  type TokenRecordStore,
  TokenRegistry,
  TOKENS_MISS_REFRESH_MS_MIN,
  TOKENS_STALE_MS_MAX,
} from "./token_registry.ts";

const random = (count: number) => new Uint8Array(randomBytes(count));
const fakeCa = () => Promise.resolve({ certificatePem: "", keyPem: "" });

/** One replicated record, shared by the registries of a test (one per "node"). */
class MemoryStore implements TokenRecordStore {
  text: string | null = null;
  reads = 0;
  /** The test clock at each read. */
  readonly readAtMs: number[] = [];
  isFailing = false;

  constructor(readonly clock: { nowMs: number }) {}

  read(): Promise<string | null> {
    this.reads++;
    this.readAtMs.push(this.clock.nowMs);
    if (this.isFailing) return Promise.reject(new AspenError("shard_unavailable", "down"));
    return Promise.resolve(this.text);
  }

  swap(expected: string | null, value: string) {
    if (this.isFailing) return Promise.reject(new AspenError("shard_unavailable", "down"));
    if (this.text !== expected) return Promise.resolve({ isSwapped: false, value: this.text });
    this.text = value;
    return Promise.resolve({ isSwapped: true, value });
  }
}

async function setup() {
  const created = await createCredentials(random, fakeCa);
  const clock = { nowMs: 0, wallMs: 1_700_000_000_000 };
  const store = new MemoryStore(clock);
  const registry = () =>
    new TokenRegistry({
      credentials: created.credentials,
      store,
      nowMs: () => clock.nowMs,
      wallMs: () => clock.wallMs,
      randomBytes: random,
      sleep: (ms: number) => {
        clock.nowMs += ms;
        return Promise.resolve();
      },
      logger: new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 }),
    });
  return { created, store, clock, nodeA: registry(), nodeB: registry() };
}

Deno.test("TokenRegistry.verify() accepts bootstrap tokens without a read", async () => {
  const { created, store, nodeA } = await setup();
  equal((await nodeA.verify(created.rootToken)).kind, "accepted");
  const read = await nodeA.verify(created.readToken);
  equal(read.kind === "accepted" && read.role, "read");
  equal((await nodeA.verify("Bearer nonsense")).kind, "unknown");
  equal(store.reads, 0);
});

Deno.test("a created token works at once on its node, on another after a re-read", async () => {
  const { store, nodeA, nodeB } = await setup();
  await nodeB.refresh();
  const created = await nodeA.create({ role: "read", name: "ci", ttlSeconds: null });
  ok(store.text !== null && !store.text.includes(created.token), "only the hash is stored");
  const onA = await nodeA.verify(created.token);
  equal(onA.kind === "accepted" && onA.role, "read");
  const readsBefore = store.reads;
  const onB = await nodeB.verify(created.token);
  equal(onB.kind === "accepted" && onB.role, "read");
  equal(store.reads, readsBefore + 1, "node B read the record once");
  equal(nodeB.cachedRole(created.token), "read");
});

Deno.test("a revoke on one node reaches another at its next refresh", async () => {
  const { nodeA, nodeB } = await setup();
  const created = await nodeA.create({ role: "root", name: null, ttlSeconds: null });
  equal((await nodeB.verify(created.token)).kind, "accepted");
  await nodeA.revoke(created.id);
  equal((await nodeA.verify(created.token)).kind, "unknown", "refused at once where revoked");
  equal(nodeB.cachedRole(created.token), "root", "node B has not read the record yet");
  await nodeB.refresh();
  equal(nodeB.cachedRole(created.token), null);
  equal((await nodeB.verify(created.token)).kind, "unknown");
  await rejects(nodeA.revoke(created.id), (error: unknown) => {
    return error instanceof AspenError && error.code === "token_not_found";
  });
});

Deno.test("an expired token is answered as expired, with its expiry time", async () => {
  const { clock, nodeA } = await setup();
  const created = await nodeA.create({ role: "read", name: null, ttlSeconds: 60 });
  equal((await nodeA.verify(created.token)).kind, "accepted");
  clock.wallMs += 60_000;
  const verdict = await nodeA.verify(created.token);
  equal(verdict.kind, "expired");
  equal(
    verdict.kind === "expired" && new Date(verdict.expiresAtMs).toISOString(),
    created.expiresAt,
  );
  equal((await nodeA.list())[0]?.isExpired, true);
});

Deno.test("a copy past TOKENS_STALE_MS_MAX refuses runtime tokens but not bootstrap", async () => {
  const { created: bootstrap, store, clock, nodeA } = await setup();
  const created = await nodeA.create({ role: "root", name: null, ttlSeconds: null });
  await nodeA.refresh();
  store.isFailing = true;
  clock.nowMs += TOKENS_STALE_MS_MAX;
  await nodeA.refresh();
  equal((await nodeA.verify(created.token)).kind, "accepted", "at the bound it is still trusted");
  clock.nowMs += 1;
  await rejects(nodeA.verify(created.token), (error: unknown) => {
    return error instanceof AspenError && error.code === "shard_unavailable";
  });
  equal(nodeA.cachedRole(created.token), null);
  equal((await nodeA.verify(bootstrap.rootToken)).kind, "accepted");
  store.isFailing = false;
  await nodeA.refresh();
  equal((await nodeA.verify(created.token)).kind, "accepted");
});

Deno.test("changes made on two nodes at once both land (compare-and-swap)", async () => {
  const { nodeA, nodeB } = await setup();
  const made = await Promise.all([
    nodeA.create({ role: "read", name: "a", ttlSeconds: null }),
    nodeB.create({ role: "read", name: "b", ttlSeconds: null }),
    nodeA.create({ role: "root", name: "c", ttlSeconds: null }),
  ]);
  const listed = (await nodeB.list()).map((token) => token.id).sort();
  equal(JSON.stringify(listed), JSON.stringify(made.map((token) => token.id).sort()));
});

Deno.test("unknown tokens share re-reads, at least TOKENS_MISS_REFRESH_MS_MIN apart", async () => {
  const { store, nodeA } = await setup();
  await nodeA.refresh();
  const before = store.reads;
  const verdicts = await Promise.all(
    Array.from({ length: 10 }, (_, index) => nodeA.verify(`aspen_wrong${index}`)),
  );
  ok(verdicts.every((verdict) => verdict.kind === "unknown"));
  equal(store.reads, before + 1, "ten concurrent misses, one read");
  for (let round = 0; round < 3; round++) {
    equal((await nodeA.verify(`aspen_wrong${round}`)).kind, "unknown");
  }
  const missReads = store.readAtMs.slice(before);
  equal(missReads.length, 4);
  for (let index = 1; index < missReads.length; index++) {
    ok(missReads[index]! - missReads[index - 1]! >= TOKENS_MISS_REFRESH_MS_MIN, `${missReads}`);
  }
});
