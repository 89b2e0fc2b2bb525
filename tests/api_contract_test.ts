/**
 * The drift guard against a real node (one `aspen node` process, one shard): every main
 * request of the API (kv get, put, delete, range, range delete; txn with every op kind;
 * optimistic txn, committed and in conflict; leases; health; cluster status; error answers)
 * is sent with fetch, and the keys of each raw JSON answer must all be named by the contract's
 * key lists in api/contract_keys.ts. A field the server sends but the contract lacks fails
 * here, naming its path (api/contract_keys_test.ts shows the checker catching planted ones).
 */
import { deepEqual, equal, match } from "node:assert/strict";
import {
  ADD_SHARDS_KEYS,
  CLUSTER_STATUS_KEYS,
  CONFLICT_ERROR_KEYS,
  DELETE_KV_KEYS,
  DELETE_RANGE_KEYS,
  ERROR_BODY_KEYS,
  GET_KV_KEYS,
  HEALTH_KEYS,
  keysOutsideContract,
  LEASE_INFO_KEYS,
  LEASE_KEYS,
  LEASE_REVOKE_KEYS,
  MOVED_READ_CONFLICT_KEYS,
  OPTIMISTIC_TXN_KEYS,
  PUT_KV_KEYS,
  RANGE_KEYS,
  type RuntimeShape,
  SHARD_MOVES_KEYS,
  SHARD_SIZES_KEYS,
  TENANT_MOVE_KEYS,
  TENANTS_KEYS,
  TXN_KEYS,
} from "../api/mod.ts";
import { shardForKey } from "../shard/mod.ts";
import { launchTestCluster } from "./_cluster.ts";

Deno.test("a real node's answers stay within the contract's keys", async () => {
  const test = await launchTestCluster({ nodes: 1, shards: 1 });
  try {
    await test.cluster.waitForLeaders();
    const base = test.cluster.url(1);
    const token = test.cluster.record.rootToken;
    const seen: string[] = [];
    const expect = checker({ base, token, seen });
    await runKvRequests(expect);
    await runTxnRequests(expect);
    await runLeaseRequests(expect);
    await runShardRequests(expect, { base, token });
    await runTenantRequests(expect, { base, token });
    await expect({ method: "GET", path: "/v1/health" }, { status: 200, shape: HEALTH_KEYS });
    const status = await expect({ method: "GET", path: "/v1/cluster/status" }, {
      status: 200,
      shape: CLUSTER_STATUS_KEYS,
    });
    equal((status.shards as unknown[]).length, 2, "the status shows both shards");
    equal((status.shardMove as { phase: string }).phase, "done", "and the move");
    equal(seen.length, 35, "every request was checked");
  } catch (error) {
    console.error(test.lines.slice(-40).join("\n"));
    throw error;
  } finally {
    await test.close();
  }
});

/** A dry run, a move from 1 to 2 shards (its record checked once done), the shard sizes. */
async function runShardRequests(
  expect: Expect,
  node: { readonly base: string; readonly token: string },
): Promise<void> {
  const post = (dryRun: boolean) => ({
    method: "POST",
    path: "/v1/shards",
    body: { count: 1, dryRun },
  });
  await expect(post(true), { status: 200, shape: ADD_SHARDS_KEYS });
  // A key the move takes to the new shard, read before it on shard 0.
  const key = Array.from({ length: 100 }, (_, i) => `moving-${i}`)
    .find((name) => shardForKey(name, 2) === 1)!;
  await expect({ method: "PUT", path: `/v1/kv/${key}`, body: { value: "1" } }, {
    status: 200,
    shape: PUT_KV_KEYS,
  });
  const before = await expect({ method: "GET", path: `/v1/kv/${key}` }, {
    status: 200,
    shape: GET_KV_KEYS,
  });
  equal(before.shard, 0);
  const { modRevision } = before.kv as { modRevision: number };
  await expect(post(false), { status: 202, shape: ADD_SHARDS_KEYS });
  for (let poll = 0; poll < 600; poll++) {
    const response = await fetch(`${node.base}/v1/shards/moves`, {
      headers: { authorization: `Bearer ${node.token}` },
    });
    const { move } = await response.json() as { move: { phase: string } | null };
    if (move?.phase === "done") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const moves = await expect({ method: "GET", path: "/v1/shards/moves" }, {
    status: 200,
    shape: SHARD_MOVES_KEYS,
  });
  equal((moves.move as { phase: string }).phase, "done", "the move ended");
  await expect({ method: "GET", path: "/v1/shards" }, { status: 200, shape: SHARD_SIZES_KEYS });
  await expectMovedReads(expect, { key, modRevision });
}

/**
 * A read of `key` made on shard 0 before the move, carried with its shard: the key is on shard 1
 * now, where modRevisions count another log, so an optimistic commit and a compare of it are
 * refused (409, naming both shards); without the shard the read is checked as before. A range
 * answer names each kv's shard.
 */
async function expectMovedReads(
  expect: Expect,
  read: { readonly key: string; readonly modRevision: number },
): Promise<void> {
  const { key, modRevision } = read;
  const writes = [{ op: "set", key, value: "2" }];
  const optimistic = (reads: unknown[]) => ({
    method: "POST",
    path: "/v1/txn/optimistic",
    body: { reads, writes },
  });
  const moved = await expect(optimistic([{ key, modRevision, shard: 0 }]), {
    status: 409,
    shape: MOVED_READ_CONFLICT_KEYS,
  });
  deepEqual(
    { ...(moved.error as Record<string, unknown>), message: "" },
    { code: "conflict", message: "", key, readShard: 0, shard: 1 },
  );
  const compare = [{ key, target: "modRevision", op: "=", value: modRevision, shard: 0 }];
  const txn = { compare, success: [{ put: { key, value: "3" } }], failure: [] };
  const refused = await expect({ method: "POST", path: "/v1/txn", body: txn }, {
    status: 409,
    shape: MOVED_READ_CONFLICT_KEYS,
  });
  equal((refused.error as { readShard: number }).readShard, 0);
  const now = await expect({ method: "GET", path: `/v1/kv/${key}` }, {
    status: 200,
    shape: GET_KV_KEYS,
  });
  equal(now.shard, 1);
  const fresh = (now.kv as { modRevision: number }).modRevision;
  await expect(optimistic([{ key, modRevision: fresh, shard: 1 }]), {
    status: 200,
    shape: OPTIMISTIC_TXN_KEYS,
  });
  const range = await expect({ method: "GET", path: `/v1/kv?prefix=${key}` }, {
    status: 200,
    shape: RANGE_KEYS,
  });
  deepEqual((range.kvs as { shard: number }[]).map((kv) => kv.shard), [1]);
}

/** A tenant created on shard 1 (201 once done), listed, moved to 0 (202), created again (409). */
async function runTenantRequests(
  expect: Expect,
  node: { readonly base: string; readonly token: string },
): Promise<void> {
  const created = await expect(
    { method: "POST", path: "/v1/tenants", body: { name: "acme", shard: 1 } },
    { status: 201, shape: TENANT_MOVE_KEYS },
  );
  equal((created.move as { phase: string }).phase, "done");
  const listed = await expect({ method: "GET", path: "/v1/tenants" }, {
    status: 200,
    shape: TENANTS_KEYS,
  });
  deepEqual(listed.tenants, [{ name: "acme", shard: 1, keys: 0, bytes: 0 }]);
  await expect(
    { method: "POST", path: "/v1/tenants/acme/move", body: { to: 0 } },
    { status: 202, shape: TENANT_MOVE_KEYS },
  );
  const again = { method: "POST", path: "/v1/tenants", body: { name: "acme" } };
  const refused = await expect(again, { status: 409, shape: ERROR_BODY_KEYS });
  match(String((refused.error as { code: string }).code), /tenant_exists|move_in_progress/);
  for (let poll = 0; poll < 600; poll++) {
    const response = await fetch(`${node.base}/v1/shards/moves`, {
      headers: { authorization: `Bearer ${node.token}` },
    });
    const { move } = await response.json() as { move: { phase: string } | null };
    if (move?.phase === "done") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const moves = await expect({ method: "GET", path: "/v1/shards/moves" }, {
    status: 200,
    shape: SHARD_MOVES_KEYS,
  });
  deepEqual((moves.move as { tenant: unknown }).tenant, { name: "acme", to: 0, isNew: false });
}

type Expect = (
  request: { method: string; path: string; body?: unknown },
  answer: { status: number; shape: RuntimeShape },
) => Promise<Record<string, unknown>>;

/** Sends a request with the root token and checks the answer's status and keys. */
function checker(node: { base: string; token: string; seen: string[] }): Expect {
  return async function expect(request, answer) {
    const response = await fetch(`${node.base}${request.path}`, {
      method: request.method,
      headers: { authorization: `Bearer ${node.token}`, "content-type": "application/json" },
      body: request.body === undefined ? null : JSON.stringify(request.body),
    });
    const json = await response.json();
    const where = `${request.method} ${request.path}`;
    equal(response.status, answer.status, `${where}: ${JSON.stringify(json)}`);
    deepEqual(keysOutsideContract(json, answer.shape), [], `${where}: ${JSON.stringify(json)}`);
    node.seen.push(where);
    return json;
  };
}

async function runKvRequests(expect: Expect): Promise<void> {
  const put = { method: "PUT", path: "/v1/kv/a", body: { value: "1" } };
  await expect(put, { status: 200, shape: PUT_KV_KEYS });
  const again = { ...put, body: { value: "2", prevKv: true } };
  const answer = await expect(again, { status: 200, shape: PUT_KV_KEYS });
  equal(typeof answer.prevKv, "object", "prevKv was asked for and sent");
  await expect({ method: "GET", path: "/v1/kv/a" }, { status: 200, shape: GET_KV_KEYS });
  const range = { method: "GET", path: "/v1/kv?prefix=&limit=1" };
  await expect({ method: "PUT", path: "/v1/kv/b", body: { value: "3" } }, {
    status: 200,
    shape: PUT_KV_KEYS,
  });
  const page = await expect(range, { status: 200, shape: RANGE_KEYS });
  equal(page.more, true, "the page has a next cursor to check");
  await expect({ method: "GET", path: "/v1/kv?prefix=&countOnly=true" }, {
    status: 200,
    shape: RANGE_KEYS,
  });
  await expect({ method: "DELETE", path: "/v1/kv/a?prevKv=true" }, {
    status: 200,
    shape: DELETE_KV_KEYS,
  });
  await expect({ method: "GET", path: "/v1/kv/a" }, { status: 404, shape: ERROR_BODY_KEYS });
  await expect({ method: "DELETE", path: "/v1/kv?prefix=b" }, {
    status: 200,
    shape: DELETE_RANGE_KEYS,
  });
}

async function runTxnRequests(expect: Expect): Promise<void> {
  const txn = {
    compare: [{ key: "t", target: "version", op: "=", value: 0 }],
    success: [
      { put: { key: "t", value: "1", prevKv: true } },
      { get: { key: "t" } },
      { range: { prefix: "t" } },
      { delete: { key: "u", prevKv: true } },
    ],
    failure: [],
  };
  const result = await expect({ method: "POST", path: "/v1/txn", body: txn }, {
    status: 200,
    shape: TXN_KEYS,
  });
  equal((result.results as unknown[]).length, 4, "every op kind answered");
  const read = { key: "t", modRevision: 1 };
  const writes = [{ op: "set", key: "t", value: "2" }];
  await expect({ method: "POST", path: "/v1/txn/optimistic", body: { reads: [read], writes } }, {
    status: 409,
    shape: CONFLICT_ERROR_KEYS,
  });
  const current = await expect({ method: "GET", path: "/v1/kv/t" }, {
    status: 200,
    shape: GET_KV_KEYS,
  });
  const modRevision = (current.kv as { modRevision: number }).modRevision;
  const body = { reads: [{ key: "t", modRevision }], writes };
  await expect({ method: "POST", path: "/v1/txn/optimistic", body }, {
    status: 200,
    shape: OPTIMISTIC_TXN_KEYS,
  });
}

async function runLeaseRequests(expect: Expect): Promise<void> {
  const lease = await expect({ method: "POST", path: "/v1/leases", body: { ttl: 60 } }, {
    status: 200,
    shape: LEASE_KEYS,
  });
  const path = `/v1/leases/${lease.id}`;
  await expect({ method: "POST", path: `${path}/keepalive` }, { status: 200, shape: LEASE_KEYS });
  await expect({ method: "GET", path }, { status: 200, shape: LEASE_INFO_KEYS });
  await expect({ method: "DELETE", path }, { status: 200, shape: LEASE_REVOKE_KEYS });
}
