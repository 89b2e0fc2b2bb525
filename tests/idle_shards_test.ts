/**
 * An idle node visits only the shards with something due (issue 16: idle work flat in the
 * shard count), and nothing is forgotten for it: on an in-process node with IDLE_SHARDS shards,
 * all but shard 0 quiesced first,
 * - a lease with a key on one of them expires within its TTL plus EXPIRY_SLACK_MS, though its
 *   shard quiesced long before (the lease timer is armed for the lease's deadline, not run by
 *   a visit of every shard nor only while the replica is awake);
 * - after a restart, a lease granted before it gets its full TTL again from the restart and
 *   then expires (the timer is armed by the leadership the restarted replica wins);
 * - the intents of a transaction abandoned before a restart are swept by the restarted node
 *   (the shards report the intents they open with to the sweeper, which visits only those);
 * - the status views a node sends the rebalance driver for the shards it leads (one request
 *   per node, not per shard) are those the per-shard status request answers.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { INTENT_SWEEP_MS } from "../server/node/intent_sweeper.ts";
import { leaderViews } from "../server/node/membership_wiring.ts";
import type { ShardStatusView } from "../server/node/mod.ts";
import { type ApplyResult, shardForKey } from "../shard/mod.ts";
import { callInProcess, type InProcessNode, startInProcessNode } from "./_in_process_node.ts";

const IDLE_SHARDS = 32;
/** How long past its TTL a lease on an idle shard may take to be gone. */
const EXPIRY_SLACK_MS = 1_000;
/** How long the shards get to quiesce before the test starts. */
const QUIESCE_WAIT_MS = 15_000;
/** The leases' TTL: long enough for their shard to quiesce first. */
const TTL_SECONDS = 3;
const POLL_MS = 25;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A key named `prefix` + a number on a shard other than shard 0 (which node-level reads of the
 * meta records wake now and then) and not on `taken`.
 */
function idleKey(prefix: string, taken: readonly number[] = []): string {
  for (let i = 0;; i++) {
    const shard = shardForKey(`${prefix}${i}`, IDLE_SHARDS);
    if (shard !== 0 && !taken.includes(shard)) return `${prefix}${i}`;
  }
}

async function waitQuiesced(harness: InProcessNode): Promise<void> {
  const deadline = Date.now() + QUIESCE_WAIT_MS;
  const awake = () =>
    [...harness.node.shards.values()].filter((local) =>
      local.shard !== 0 && !local.replica.isQuiesced()
    ).length;
  while (awake() > 0 && Date.now() < deadline) await sleep(100);
  equal(awake(), 0, "every shard but shard 0 quiesced");
}

/** Asserts that `key`'s shard quiesces while the lease TTL_SECONDS from `sinceMs` runs. */
async function quiescesBeforeExpiry(harness: InProcessNode, key: string, sinceMs: number) {
  const local = harness.node.shards.get(shardForKey(key, IDLE_SHARDS))!;
  const deadline = sinceMs + TTL_SECONDS * 1_000 - 500;
  while (!local.replica.isQuiesced() && Date.now() < deadline) await sleep(POLL_MS);
  ok(local.replica.isQuiesced(), "the lease's shard quiesced before the lease ran out");
}

/** Grants a lease of TTL_SECONDS on `key`'s shard and puts `key` under it. */
async function leasedKey(harness: InProcessNode, key: string): Promise<void> {
  const grant = await callInProcess(harness, "POST", "/v1/leases", { ttl: TTL_SECONDS, key });
  equal(grant.status, 200, JSON.stringify(grant.json));
  const put = await callInProcess(harness, "PUT", `/v1/kv/${key}`, {
    value: "v",
    lease: grant.json.id,
  });
  equal(put.status, 200, JSON.stringify(put.json));
}

/** Reads `key` serializably: a linearizable read would wake its shard. */
async function isPresent(harness: InProcessNode, key: string): Promise<boolean> {
  const { status } = await callInProcess(harness, "GET", `/v1/kv/${key}?consistency=serializable`);
  ok(status === 200 || status === 404, `GET ${key}: ${status}`);
  return status === 200;
}

/** Polls until `key` is gone; returns when (Date.now()), or null at `deadline`. */
async function goneAt(harness: InProcessNode, key: string, deadline: number) {
  while (Date.now() < deadline) {
    if (!await isPresent(harness, key)) return Date.now();
    await sleep(POLL_MS);
  }
  return null;
}

/** Plants the home prepare of a transaction over a key of two shards, overdue: abandoned. */
async function plantAbandoned(harness: InProcessNode, txnId: string): Promise<number[]> {
  const first = idleKey("abandoned/");
  const keys = [first, idleKey("abandoned/", [shardForKey(first, IDLE_SHARDS)])];
  const shards = keys.map((key) => shardForKey(key, IDLE_SHARDS));
  const participants = [...new Set(shards)].sort((a, b) => a - b);
  ok(participants.length >= 2, "the keys span two shards");
  const home = shards[0]!;
  const result = await harness.node.service.run<ApplyResult>(home, {
    kind: "propose",
    command: {
      type: "txnPrepare",
      txnId,
      shard: home,
      home,
      participants,
      deadlineMs: Date.now() - 1,
      leases: [],
      compare: [],
      reads: [],
      success: keys.filter((_, i) => shards[i] === home).map((key) => ({
        type: "put",
        key,
        value: "abandoned",
        lease: 0,
        prevKv: false,
      })),
      failure: [],
    },
  });
  ok(result.type === "txnPrepared" && result.ok, JSON.stringify(result));
  return participants;
}

Deno.test({
  name: "idle shards: leases expire on time and abandoned intents are swept, restart included",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "aspen-idle-shards-" });
    let harness = await startInProcessNode({ shards: IDLE_SHARDS, dir });
    try {
      await waitQuiesced(harness);

      await t.step("a node's leader views are its shards' status answers", async () => {
        const views = leaderViews(harness.node.shards);
        deepEqual(views.map((view) => view.id).sort((a, b) => a - b), [
          ...Array(IDLE_SHARDS).keys(),
        ]);
        const view = views.find((item) => item.id === 5)!;
        const answer = await harness.node.service.run<ShardStatusView>(5, { kind: "status" });
        deepEqual(
          [view.leader, view.term, view.replicas, view.committedReplicas],
          [answer.leader, answer.term, answer.replicas, answer.committedReplicas],
        );
      });

      await t.step("a lease on one idle shard among many expires on time", async () => {
        const key = idleKey("idle/leased/");
        const grantedAt = Date.now();
        await leasedKey(harness, key);
        await quiescesBeforeExpiry(harness, key, grantedAt);
        const ttlMs = TTL_SECONDS * 1_000;
        const gone = await goneAt(harness, key, grantedAt + ttlMs + EXPIRY_SLACK_MS);
        ok(gone !== null, `the key outlived its lease by more than ${EXPIRY_SLACK_MS} ms`);
        ok(gone - grantedAt >= ttlMs - POLL_MS, `gone after ${gone - grantedAt} ms: too early`);
      });

      await t.step("after a restart a lease gets its TTL again, then expires", async () => {
        const key = idleKey("idle/restarted/");
        await leasedKey(harness, key);
        const participants = await plantAbandoned(harness, "1.1.7001");
        await harness.close();
        harness = await startInProcessNode({ shards: IDLE_SHARDS, dir, restart: harness });
        const restartedAt = Date.now();
        ok(await isPresent(harness, key), "a new leader gives the lease its TTL");
        await quiescesBeforeExpiry(harness, key, restartedAt);
        const ttlMs = TTL_SECONDS * 1_000;
        const gone = await goneAt(harness, key, restartedAt + ttlMs + EXPIRY_SLACK_MS);
        ok(gone !== null, "the key outlived its lease's TTL after the restart");

        const intents = () =>
          participants.reduce(
            (sum, id) => sum + harness.node.shards.get(id)!.stateMachine.intentCount(),
            0,
          );
        const deadline = Date.now() + 4 * INTENT_SWEEP_MS + 2_000;
        while (intents() > 0 && Date.now() < deadline) await sleep(100);
        equal(intents(), 0, "the abandoned intents were swept after the restart");
        const record = await callInProcess(harness, "GET", "/v1/txn/1.1.7001");
        equal(record.json.status, "aborted", JSON.stringify(record.json));
      });
    } finally {
      await harness.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
