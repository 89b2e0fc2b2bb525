/**
 * Tenants on a real 3-node, 2-shard cluster (issue 14). Keys under "acme/" are written first,
 * placed by hash on both shards; `aspen tenant create acme --shard 0` moves those of shard 1
 * to shard 0. Then writers overwrite tenant keys and other keys through every node while
 * `aspen tenant move acme --to 1` moves the tenant. Afterwards every key holds its last
 * acknowledged value through every node, every tenant key answers from shard 1, the other keys
 * from their hash shard, a prefix scan returns each tenant key once, and `tenant list` shows
 * the tenant with its keys. Bad requests are 4xx naming the problem and change nothing. A
 * whole-keyspace scanner runs during the move; leased tenant keys move away from their lease's
 * shard and back, and revoking the lease deletes them all. The second test kills (SIGKILL) the
 * node leading shard 0, which drives the move, in the middle of a 3 MB tenant's move under
 * writers, and restarts it: the move resumes and every acknowledged value is kept.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  ApiError,
  AspenClient,
  type ClusterStatus,
  type LeaseInfoResponse,
  type LeaseResponse,
  type ShardMovesResponse,
  type TenantsResponse,
} from "../api/mod.ts";
import { shardForKey } from "../shard/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import { runCli } from "../cli/run_cli.ts";
import { captureCliIo } from "../cli/_capture_io.ts";
import { launchTestCluster, waitForConvergence } from "./_cluster.ts";

const TENANT = "acme";
const TENANT_KEYS = 400;
const OTHER_KEYS = 200;
const WRITERS = 6;
const LEASED_KEYS = 10;
/** The killed-driver test's tenant: enough keys and bytes that its copy takes a while. */
const KILL_TENANT_KEYS = 3_000;
const KILL_VALUE_PAD = "p".repeat(1_000);
/** The longest a tenant command may take here. */
const TENANT_COMMAND_TIMEOUT_MS = 120_000;
const CONVERGE_TIMEOUT_MS = 20_000;

/** What a key may hold: its last acknowledged value, or a later write of unknown outcome. */
interface KeyState {
  acked: string;
  unsure: string[];
}

Deno.test("tenant create and move under writes: values kept, keys on its shard", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: 2 });
  const cluster = test.cluster;
  try {
    await cluster.waitForLeaders();
    const keys = [
      ...Array.from({ length: TENANT_KEYS }, (_, i) => `${TENANT}/${i}`),
      ...Array.from({ length: OTHER_KEYS }, (_, i) => `other/${i}`),
    ];
    ok(keys.some((key) => key.startsWith(`${TENANT}/`) && shardForKey(key, 2) === 1));
    const states = await preload(cluster, keys);
    const created = await cli(cluster, ["tenant", "create", TENANT, "--shard", "0"]);
    match(created, /tenant "acme" is on shard 0/);
    await checkKeys(cluster, states, 0);
    await checkBadRequests(cluster);
    const writers = startWriters(cluster, states);
    const scanner = startScanner(cluster);
    try {
      const moving = cli(cluster, ["tenant", "move", TENANT, "--to", "1"]);
      await checkSecondMoveRefused(cluster);
      match(await moving, /tenant "acme" is on shard 1/);
    } finally {
      await writers.stop();
      await scanner.stop();
    }
    ok(writers.acked() > 0, "the writers were acknowledged during the move");
    ok(scanner.scans() > 0, "range reads were answered during the move");
    await checkKeys(cluster, states, 1);
    const list = await cli(cluster, ["tenant", "list"]);
    match(list, /^TENANT\s+SHARD\s+KEYS\s+BYTES\n/);
    match(list, new RegExp(`\\n${TENANT}\\s+1\\s+${TENANT_KEYS}\\s`));
    await checkLeaseAcrossMoves(cluster);
    await waitForConvergence(cluster, { shards: 2, replicasPerShard: 3 }, CONVERGE_TIMEOUT_MS);
    equal(cluster.unexpectedExits.length, 0, "no node exited on its own");
  } catch (error) {
    console.error(test.lines.filter((line) => !/"level":"debug"/.test(line)).slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

Deno.test("a tenant move with its driving node killed mid-move resumes", async () => {
  const test = await launchTestCluster({ nodes: 3, shards: 2 });
  const cluster = test.cluster;
  try {
    await cluster.waitForLeaders();
    const keys = Array.from({ length: KILL_TENANT_KEYS }, (_, i) => `${TENANT}/${i}`);
    match(await cli(cluster, ["tenant", "create", TENANT, "--shard", "0"]), /is on shard 0/);
    const states = await preload(cluster, keys, KILL_VALUE_PAD);
    const writers = startWriters(cluster, states);
    try {
      const moving = cli(cluster, ["tenant", "move", TENANT, "--to", "1"]);
      const phase = await killDriverMidMove(cluster);
      ok(phase !== null, "the move was seen running before the kill");
      match(await moving, /tenant "acme" is on shard 1/);
    } finally {
      await writers.stop();
    }
    await cluster.waitForLeaders(1, 20_000);
    await checkKeys(cluster, states, 1);
    await waitForConvergence(cluster, { shards: 2, replicasPerShard: 3 }, CONVERGE_TIMEOUT_MS);
  } catch (error) {
    console.error(test.lines.filter((line) => !/"level":"debug"/.test(line)).slice(-80).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

/**
 * Waits for the tenant move to copy, kills the node leading shard 0 (SIGKILL), and starts it
 * again a second later. Returns the phase the move was in, or null when never seen running.
 */
async function killDriverMidMove(cluster: LocalCluster): Promise<string | null> {
  const client = clientOf(cluster);
  for (let poll = 0; poll < 2_000; poll++) {
    const { move } = await client.request<ShardMovesResponse>({
      method: "GET",
      path: "/v1/shards/moves",
    });
    const isOurs = move?.tenant?.isNew === false && move.phase !== "done";
    const isCopying = move?.phase === "copy" && move.sources.some((source) => source.keysTotal > 0);
    if (move !== null && isOurs && (move.phase !== "copy" || isCopying)) {
      const status = await client.request<ClusterStatus>({
        method: "GET",
        path: "/v1/cluster/status",
      });
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

function clientOf(cluster: LocalCluster, nodes = cluster.nodes.map((node) => node.id)) {
  return new AspenClient({
    endpoints: nodes.map((id) => cluster.url(id)),
    token: cluster.record.rootToken,
  });
}

async function preload(
  cluster: LocalCluster,
  keys: string[],
  pad = "",
): Promise<Map<string, KeyState>> {
  const states = new Map<string, KeyState>();
  const client = clientOf(cluster);
  for (let start = 0; start < keys.length; start += 50) {
    await Promise.all(
      keys.slice(start, start + 50).map(async (key) => {
        await client.put(key, `${key}=0${pad}`);
        states.set(key, { acked: `${key}=0${pad}`, unsure: [] });
      }),
    );
  }
  return states;
}

/** WRITERS loops, each overwriting its share of the keys in turn through one node. */
function startWriters(cluster: LocalCluster, states: Map<string, KeyState>) {
  let isStopped = false;
  let acked = 0;
  const keys = [...states.keys()];
  const loops = Array.from({ length: WRITERS }, async (_, writer) => {
    const client = clientOf(cluster, [(writer % cluster.nodes.length) + 1]);
    for (let round = 1; !isStopped; round++) {
      for (let i = writer; i < keys.length && !isStopped; i += WRITERS * 3) {
        const key = keys[i]!;
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
 * Scans the whole keyspace in a loop through every node while the tenant moves: each scan is
 * answered (the new shard leaves out the keys it holds but does not own yet) and holds every
 * key exactly once.
 */
function startScanner(cluster: LocalCluster) {
  let isStopped = false;
  let scans = 0;
  const loop = (async () => {
    for (let node = 0; !isStopped; node++) {
      const client = clientOf(cluster, [(node % cluster.nodes.length) + 1]);
      const page = await client.range({ prefix: "", limit: 1_000, keysOnly: true });
      const keys = page.kvs.map((kv) => kv.key);
      const distinct = new Set(keys).size;
      equal(keys.length, TENANT_KEYS + OTHER_KEYS, `a scan holds every key (${distinct} distinct)`);
      equal(distinct, keys.length, "and each once");
      scans++;
    }
  })();
  return {
    scans: () => scans,
    stop: async () => {
      isStopped = true;
      await loop;
    },
  };
}

/** Every key through every node: its value, and its shard (the tenant's, or by hash). */
async function checkKeys(
  cluster: LocalCluster,
  states: Map<string, KeyState>,
  tenantShard: number,
): Promise<void> {
  for (const node of cluster.nodes) {
    const client = clientOf(cluster, [node.id]);
    for (const [key, state] of states) {
      const got = await client.get(key);
      const value = got.kv?.value ?? "(none)";
      const isKnown = value === state.acked || state.unsure.includes(value);
      ok(isKnown, `${key} via node ${node.id}: ${value}, acked ${state.acked}`);
      const shard = key.startsWith(`${TENANT}/`) ? tenantShard : shardForKey(key, 2);
      equal(got.shard, shard, `${key} via node ${node.id} answers from shard ${shard}`);
    }
    const scanned = await scanAll(client, `${TENANT}/`);
    const expected = [...states.keys()].filter((key) => key.startsWith(`${TENANT}/`));
    deepEqual(scanned.sort(), expected.sort(), `a scan via node ${node.id} holds each key once`);
  }
}

/**
 * Keys of the tenant attached to a lease of its shard (1) keep their lease through a move away
 * (held there under a stand-in) and back (the home's own lease again): the lease lists them,
 * and revoking it deletes them all.
 */
async function checkLeaseAcrossMoves(cluster: LocalCluster): Promise<void> {
  const client = clientOf(cluster);
  const keys = Array.from({ length: LEASED_KEYS }, (_, i) => `${TENANT}/leased-${i}`);
  const { id } = await client.request<LeaseResponse>({
    method: "POST",
    path: "/v1/leases",
    body: { ttl: 600, key: keys[0] },
  });
  for (const key of keys) await client.put(key, "leased", { lease: id });
  const leaseKeys = async () =>
    (await client.request<LeaseInfoResponse>({ method: "GET", path: `/v1/leases/${id}` }))
      .keys;
  match(await cli(cluster, ["tenant", "move", TENANT, "--to", "0"]), /is on shard 0/);
  deepEqual([...await leaseKeys()].sort(), [...keys].sort(), "the lease holds them on shard 0");
  match(await cli(cluster, ["tenant", "move", TENANT, "--to", "1"]), /is on shard 1/);
  deepEqual([...await leaseKeys()].sort(), [...keys].sort(), "and back on its home");
  await client.request({ method: "DELETE", path: `/v1/leases/${id}` });
  for (const key of keys) equal((await client.get(key)).kv, null, `${key} is revoked`);
}

/** Bad requests: 4xx naming the problem; the tenant list is unchanged. */
async function checkBadRequests(cluster: LocalCluster): Promise<void> {
  const client = clientOf(cluster);
  const before = await client.request<TenantsResponse>({ method: "GET", path: "/v1/tenants" });
  const cases: [string, string, unknown, number, string, RegExp][] = [
    ["an existing tenant", "/v1/tenants", { name: TENANT }, 409, "tenant_exists", /exists/],
    ["a name with '/'", "/v1/tenants", { name: "a/b" }, 400, "bad_request", /'\/'/],
    ["an empty name", "/v1/tenants", { name: "" }, 400, "bad_request", /non-empty/],
    ["no such shard", "/v1/tenants", { name: "zeta", shard: 7 }, 400, "bad_request", /shard 7/],
    ["an unknown tenant", "/v1/tenants/zeta/move", { to: 1 }, 404, "tenant_not_found", /zeta/],
    ["the same shard", "/v1/tenants/acme/move", { to: 0 }, 400, "bad_request", /already/],
    ["no target", "/v1/tenants/acme/move", {}, 400, "bad_request", /"to"/],
  ];
  for (const [name, path, body, status, code, message] of cases) {
    const error = await client.request({ method: "POST", path, body })
      .catch((caught: unknown) => caught);
    ok(error instanceof ApiError, `${name}: ${String(error)}`);
    equal(error.httpStatus, status, name);
    equal(error.code, code, name);
    match(error.message, message, name);
  }
  const after = await client.request<TenantsResponse>({ method: "GET", path: "/v1/tenants" });
  deepEqual(after.tenants.map((tenant) => [tenant.name, tenant.shard]), [[TENANT, 0]]);
  equal(after.epoch, before.epoch, "nothing changed the map");
  const captured = captureCliIo({ env: { ASPEN_TOKEN: cluster.record.rootToken } });
  const code = await runCli(
    ["tenant", "move", TENANT, "--to", "x", "--endpoints", cluster.url(1)],
    captured.io,
  );
  equal(code, 2);
  match(captured.err(), /--to/);
}

/** While the tenant moves, another move (a tenant create, a shard add) is 409. */
async function checkSecondMoveRefused(cluster: LocalCluster): Promise<void> {
  const client = clientOf(cluster);
  for (let wait = 0; wait < 500; wait++) {
    const { move } = await client.request<ShardMovesResponse>({
      method: "GET",
      path: "/v1/shards/moves",
    });
    if (move?.tenant?.isNew === false && move.phase !== "done") break;
    await sleep(10);
  }
  for (const [path, body] of [["/v1/tenants", { name: "beta" }], ["/v1/shards", { count: 1 }]]) {
    const error = await client.request({ method: "POST", path: path as string, body })
      .catch((caught: unknown) => caught);
    ok(error instanceof ApiError, String(error));
    equal(error.code, "move_in_progress", error.message);
  }
}

/** Runs the CLI in process against every node; returns what it printed (exit 0). */
async function cli(cluster: LocalCluster, args: readonly string[]): Promise<string> {
  const endpoints = cluster.nodes.map((node) => cluster.url(node.id)).join(",");
  const captured = captureCliIo({ env: { ASPEN_TOKEN: cluster.record.rootToken } });
  const run = runCli([...args, "--endpoints", endpoints], captured.io);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${args.join(" ")} did not finish`)),
      TENANT_COMMAND_TIMEOUT_MS,
    );
  });
  try {
    const code = await Promise.race([run, timeout]);
    equal(code, 0, captured.err());
  } finally {
    clearTimeout(timer);
  }
  return captured.out();
}

async function scanAll(client: AspenClient, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 100; page++) {
    const result = await client.range({ prefix, limit: 1_000, after, keysOnly: true });
    keys.push(...result.kvs.map((kv) => kv.key));
    if (!result.more) return keys;
    after = result.next;
  }
  throw new Error("more than 100 pages");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
