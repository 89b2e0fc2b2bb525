/**
 * Online resharding on a real 3-node cluster (issue 14): writers overwrite KEYS keys through
 * every node while `aspen shard add` grows the cluster from 2 to 3 shards. Afterwards every
 * key holds its last acknowledged value, read through every node; about a third of the keys
 * answer from the new shard (a GET names its shard); a prefix scan returns every key exactly
 * once; the replicas converge. The second test kills (SIGKILL) the node leading shard 0, which
 * drives the move, in the middle of it and restarts it: the move resumes from its record.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  ApiError,
  AspenClient,
  type ClusterStatus,
  type LeaseInfoResponse,
  type LeaseResponse,
  type ShardMovesResponse,
} from "../api/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import { runCli } from "../cli/run_cli.ts";
import { captureCliIo } from "../cli/_capture_io.ts";
import { launchTestCluster, waitForConvergence } from "./_cluster.ts";

const KEYS = 3_000;
const WRITERS = 12;
const PREFIX = "reshard-e2e/";
const WATCH_PREFIX = "reshard-watch/";
const WATCHED_KEYS = 30;
const LEASE_PREFIX = "reshard-lease/";
const LEASED_KEYS = 30;
/** The longest `shard add` may take here. */
const SHARD_ADD_TIMEOUT_MS = 120_000;
const CONVERGE_TIMEOUT_MS = 20_000;
/** The longest the fence may last here: the nodes' request deadline (5 s) and no more. */
const FENCE_MS_MAX = 5_000;

/** What a key may hold: its last acknowledged value, or a later write of unknown outcome. */
interface KeyState {
  acked: string;
  unsure: string[];
}

Deno.test("shard add under writes: every key keeps its last value and a third moves", async () => {
  await withCluster(async (cluster, lines) => {
    const states = await preload(cluster);
    const leased = await attachLeased(cluster);
    const watch = startWatch(cluster);
    const writers = startWriters(cluster, states);
    try {
      await shardAdd(cluster, ["--count", "1"]);
    } finally {
      await writers.stop();
    }
    ok(writers.acked() > 0, "the writers were acknowledged during the move");
    // Writes to moving keys wait from the fence to the flip: well within a request's deadline.
    const fenced = lines.map((line) => /fenceMs[=":]+(\d+)/.exec(line)?.[1]).find(Boolean);
    ok(fenced !== undefined, "the driver logged its fence");
    ok(Number(fenced) < FENCE_MS_MAX, `the fence lasted ${fenced} ms`);
    await checkKeys(cluster, states);
    await watch.check();
    await leased.check();
  });
});

Deno.test("shard add with the driving node killed mid-move: the move resumes", async () => {
  await withCluster(async (cluster) => {
    const states = await preload(cluster);
    await checkDryRun(cluster);
    const writers = startWriters(cluster, states);
    try {
      const adding = shardAdd(cluster, ["--count", "1"]);
      await checkSecondMoveRefused(cluster);
      const phase = await killDriverMidMove(cluster);
      await adding;
      ok(phase !== null, "the move was seen running before the kill");
    } finally {
      await writers.stop();
    }
    await checkKeys(cluster, states);
    const list = await cli(cluster, ["shard", "list"]);
    match(list, /^SHARD\s+KEYS\s+BYTES\s+LEADER/);
    equal(list.trim().split("\n").length, 4, list);
  });
});

async function withCluster(
  run: (cluster: LocalCluster, lines: readonly string[]) => Promise<void>,
): Promise<void> {
  const test = await launchTestCluster({ nodes: 3, shards: 2 });
  try {
    await test.cluster.waitForLeaders();
    await run(test.cluster, test.lines);
    equal(test.cluster.unexpectedExits.length, 0, "no node exited on its own");
  } catch (error) {
    console.error(test.lines.filter((line) => !/"level":"debug"/.test(line)).slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
}

function clientOf(cluster: LocalCluster, nodes = cluster.nodes.map((node) => node.id)) {
  return new AspenClient({
    endpoints: nodes.map((id) => cluster.url(id)),
    token: cluster.record.rootToken,
  });
}

/** Writes every key once. */
async function preload(cluster: LocalCluster): Promise<Map<string, KeyState>> {
  const states = new Map<string, KeyState>();
  const client = clientOf(cluster);
  const keys = Array.from({ length: KEYS }, (_, i) => `${PREFIX}${i}`);
  for (let start = 0; start < keys.length; start += 50) {
    await Promise.all(
      keys.slice(start, start + 50).map(async (key) => {
        await client.put(key, `${key}=0`);
        states.set(key, { acked: `${key}=0`, unsure: [] });
      }),
    );
  }
  return states;
}

/** WRITERS loops, each overwriting its own keys in turn through one node. */
function startWriters(cluster: LocalCluster, states: Map<string, KeyState>) {
  let isStopped = false;
  let acked = 0;
  const loops = Array.from({ length: WRITERS }, async (_, writer) => {
    const client = clientOf(cluster, [(writer % cluster.nodes.length) + 1]);
    for (let round = 1; !isStopped; round++) {
      for (let i = writer; i < KEYS && !isStopped; i += WRITERS * 7) {
        const key = `${PREFIX}${i}`;
        const value = `${key}=${round}`;
        const state = states.get(key)!;
        try {
          await client.put(key, value);
          state.acked = value;
          state.unsure = [];
          acked++;
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          state.unsure.push(value);
          if (error.code === "unreachable") await sleep(100);
        }
      }
    }
  });
  return {
    acked: () => acked,
    stop: async () => {
      isStopped = true;
      await Promise.all(loops);
    },
  };
}

/**
 * LEASED_KEYS keys on every shard attached to one lease before the move: after it, the lease
 * lists them all, and revoking it deletes them all, those on the new shard too.
 */
async function attachLeased(cluster: LocalCluster) {
  const client = clientOf(cluster);
  const keys = Array.from({ length: LEASED_KEYS }, (_, i) => `${LEASE_PREFIX}${i}`);
  const { id } = await client.request<LeaseResponse>({
    method: "POST",
    path: "/v1/leases",
    body: { ttl: 600, key: keys[0] },
  });
  for (const key of keys) await client.put(key, "leased", { lease: id });
  return {
    async check(): Promise<void> {
      const info = await client.request<LeaseInfoResponse>({
        method: "GET",
        path: `/v1/leases/${id}`,
      });
      deepEqual([...info.keys].sort(), [...keys].sort());
      const onNewShard = await Promise.all(keys.map(async (key) => (await client.get(key)).shard));
      ok(onNewShard.includes(2), "some leased key moved");
      await client.request({ method: "DELETE", path: `/v1/leases/${id}` });
      for (const key of keys) equal((await client.get(key)).kv, null, `${key} is revoked`);
    },
  };
}

/**
 * A prefix watch started through node 3 before the move: after it, WATCHED_KEYS puts under its
 * prefix all arrive, those of the new shard too.
 */
function startWatch(cluster: LocalCluster) {
  const stop = new AbortController();
  const seen = new Map<string, number>();
  const reading = (async () => {
    const events = clientOf(cluster, [3]).watch({ prefix: WATCH_PREFIX }, stop.signal);
    for await (const event of events) {
      if (event.type === "put") seen.set(event.kv.key, event.shard);
    }
  })().catch((error: unknown) => {
    if (!stop.signal.aborted) throw error;
  });
  return {
    async check(): Promise<void> {
      const client = clientOf(cluster, [1]);
      for (let i = 0; i < WATCHED_KEYS; i++) await client.put(`${WATCH_PREFIX}${i}`, "w");
      for (let wait = 0; wait < 100 && seen.size < WATCHED_KEYS; wait++) await sleep(100);
      stop.abort();
      await reading;
      equal(seen.size, WATCHED_KEYS, `the watch saw every put: ${[...seen.keys()]}`);
      ok([...seen.values()].includes(2), "and puts on the new shard");
    },
  };
}

/** Runs `aspen shard add` in process against every node; fails past SHARD_ADD_TIMEOUT_MS. */
async function shardAdd(cluster: LocalCluster, flags: readonly string[]): Promise<void> {
  const endpoints = cluster.nodes.map((node) => cluster.url(node.id)).join(",");
  const captured = captureCliIo({ env: { ASPEN_TOKEN: cluster.record.rootToken } });
  const run = runCli(["shard", "add", ...flags, "--endpoints", endpoints], captured.io);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("shard add did not finish")), SHARD_ADD_TIMEOUT_MS);
  });
  try {
    const code = await Promise.race([run, timeout]);
    equal(code, 0, captured.err());
  } finally {
    clearTimeout(timer);
  }
  ok(captured.out().includes("the cluster has 3 shards (was 2)"), captured.out());
  ok(/2 -> 3 shards, (copy|delta|done)/.test(captured.err()), captured.err());
}

/** Runs the CLI in process against every node; returns what it printed (exit 0). */
async function cli(cluster: LocalCluster, args: readonly string[]): Promise<string> {
  const endpoints = cluster.nodes.map((node) => cluster.url(node.id)).join(",");
  const captured = captureCliIo({ env: { ASPEN_TOKEN: cluster.record.rootToken } });
  const code = await runCli([...args, "--endpoints", endpoints], captured.io);
  equal(code, 0, captured.err());
  return captured.out();
}

/**
 * `shard add --dry-run` names what would leave each shard and changes nothing; a count above
 * the limit is 400 naming it.
 */
async function checkDryRun(cluster: LocalCluster): Promise<void> {
  const out = await cli(cluster, ["shard", "add", "--count", "1", "--dry-run"]);
  match(out, /dry run: 2 -> 3 shards; nothing changed/);
  const rows = out.trim().split("\n").slice(2).map((line) => line.trim().split(/\s+/));
  equal(rows.length, 2, out);
  const moving = rows.reduce((sum, row) => sum + Number(row[1]), 0);
  ok(moving > KEYS * 0.25 && moving < KEYS * 0.42, out);
  const client = clientOf(cluster);
  const tooMany = await client.request({
    method: "POST",
    path: "/v1/shards",
    body: { count: 5_000, dryRun: true },
  }).catch((error: unknown) => error);
  ok(tooMany instanceof ApiError, String(tooMany));
  equal(tooMany.code, "bad_request");
  match(tooMany.message, /at most 1024/);
  const status = await statusOf(client);
  equal(status.shardMap.numShards, 2);
}

/** While a move runs, another is 409 `move_in_progress`. */
async function checkSecondMoveRefused(cluster: LocalCluster): Promise<void> {
  const client = clientOf(cluster);
  for (let wait = 0; wait < 200; wait++) {
    const { move } = await client.request<ShardMovesResponse>({
      method: "GET",
      path: "/v1/shards/moves",
    });
    if (move !== null) break;
    await sleep(10);
  }
  const second = await client.request({ method: "POST", path: "/v1/shards", body: { count: 1 } })
    .catch((error: unknown) => error);
  ok(second instanceof ApiError, String(second));
  equal(second.code, "move_in_progress", second.message);
}

/**
 * Waits for the move to copy, kills the node leading shard 0 (SIGKILL), and starts it again a
 * second later. Returns the phase the move was in, or null when it was never seen running.
 */
async function killDriverMidMove(cluster: LocalCluster): Promise<string | null> {
  const client = clientOf(cluster);
  for (let poll = 0; poll < 2_000; poll++) {
    const { move } = await client.request<ShardMovesResponse>({
      method: "GET",
      path: "/v1/shards/moves",
    });
    // In the copy once it measured what moves (its pages follow), or any later phase.
    const isCopying = move?.phase === "copy" && move.sources.some((source) => source.keysTotal > 0);
    if (move !== null && move.phase !== "done" && (move.phase !== "copy" || isCopying)) {
      const status = await statusOf(client);
      const leader = status.shards.find((shard) => shard.id === 0)?.leader ?? 1;
      await cluster.kill(leader, "SIGKILL");
      await sleep(1_000);
      cluster.start(leader);
      return move.phase;
    }
    await sleep(10);
  }
  return null;
}

/** The checks of the issue, through every node. */
async function checkKeys(cluster: LocalCluster, states: Map<string, KeyState>): Promise<void> {
  await cluster.waitForLeaders(1, 20_000);
  let onNewShard = 0;
  for (const node of cluster.nodes) {
    const client = clientOf(cluster, [node.id]);
    onNewShard = 0;
    for (const [key, state] of states) {
      const got = await client.get(key);
      const value = got.kv?.value ?? "(none)";
      const isKnown = value === state.acked || state.unsure.includes(value);
      ok(isKnown, `${key} via node ${node.id}: ${value}, acked ${state.acked}`);
      if (got.shard === 2) onNewShard++;
    }
    const scanned = await scanAll(client);
    equal(scanned.length, KEYS, `a prefix scan via node ${node.id} returns every key once`);
    deepEqual([...new Set(scanned)].sort(), [...states.keys()].sort());
  }
  const share = onNewShard / KEYS;
  ok(share > 0.25 && share < 0.42, `about a third of the keys moved: ${onNewShard}`);
  const status = await statusOf(clientOf(cluster));
  equal(status.shardMap.numShards, 3);
  equal(status.shardMove?.phase, "done");
  await waitForConvergence(cluster, { shards: 3, replicasPerShard: 3 }, CONVERGE_TIMEOUT_MS);
}

function statusOf(client: AspenClient): Promise<ClusterStatus> {
  return client.request<ClusterStatus>({ method: "GET", path: "/v1/cluster/status" });
}

async function scanAll(client: AspenClient): Promise<string[]> {
  const keys: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 100; page++) {
    const result = await client.range({ prefix: PREFIX, limit: 1_000, after, keysOnly: true });
    keys.push(...result.kvs.map((kv) => kv.key));
    if (!result.more) return keys;
    after = result.next;
  }
  throw new Error("more than 100 pages");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
