/**
 * The test-only controls the chaos harness relies on, and that they stay shut in production:
 * - in process (`app.request()` on a started node): without `--enable-test-faults` every
 *   `/v1/test/faults` method and `POST /v1/test/campaign` answer 404 naming the flag;
 *   read-only tokens get 403 and no token 401; `/v1/debug/state` answers the root token only,
 *   with every local shard's applied index and state hash; with fault injection on, rules are
 *   validated, listed and cleared, and a campaign request is validated and makes the replica
 *   start an election.
 * - on a real 3-node cluster: isolating a node through the endpoints really cuts it off (a
 *   write through it fails with 503/504 while the others keep serving), healing lets its
 *   replicas converge to the same state hash, and a node that dies without the launcher's doing
 *   is reported as an unexpected exit.
 */
import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { ChaosCluster } from "./chaos/cluster.ts";
import { awaitConvergence } from "./chaos/verify.ts";
import { type InProcessNode, startInProcessNode } from "./_in_process_node.ts";

/** Starts node 1 in process; `peers` lists a second member that never runs (for rules). */
function startInProcess(isFaultInjectionEnabled: boolean): Promise<InProcessNode> {
  return startInProcessNode({
    shards: 2,
    flags: { peers: isFaultInjectionEnabled ? "1=127.0.0.1:0,2=127.0.0.1:9" : "" },
    isFaultInjectionEnabled,
    waitForLeaders: false,
  });
}

async function call(
  target: InProcessNode,
  request: { method: string; path: string; body?: unknown; token?: string | null },
): Promise<{ status: number; json: Record<string, unknown> }> {
  const token = request.token === undefined ? target.root : request.token;
  const response = await target.app.request(request.path, {
    method: request.method,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    body: request.body === undefined ? null : JSON.stringify(request.body),
  });
  return { status: response.status, json: await response.json() };
}

Deno.test({
  name: "without --enable-test-faults the fault endpoints answer 404 naming the flag",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const target = await startInProcess(false);
    try {
      for (const method of ["GET", "PUT", "DELETE"]) {
        const body = method === "PUT" ? { peer: 2, dropProbability: 1 } : undefined;
        const answer = await call(target, { method, path: "/v1/test/faults", body });
        equal(answer.status, 404, method);
        const error = answer.json.error as { code: string; message: string };
        equal(error.code, "not_found");
        match(error.message, /fault injection is disabled.*--enable-test-faults/);
        const read = await call(target, { method, path: "/v1/test/faults", token: target.read });
        equal(read.status, 403, `${method} with the read token`);
        const none = await call(target, { method, path: "/v1/test/faults", token: null });
        equal(none.status, 401, `${method} without a token`);
      }
      const campaign = await call(target, {
        method: "POST",
        path: "/v1/test/campaign",
        body: { shard: 0 },
      });
      equal(campaign.status, 404, "POST /v1/test/campaign");
      match((campaign.json.error as { message: string }).message, /--enable-test-faults/);
      equal(target.node.transport.faults.isEnabled, false);
    } finally {
      await target.close();
    }
  },
});

Deno.test({
  name: "/v1/debug/state answers the root token with every local shard's index and hash",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const target = await startInProcess(false);
    try {
      const answer = await call(target, { method: "GET", path: "/v1/debug/state" });
      equal(answer.status, 200);
      equal(answer.json.node, 1);
      const shards = answer.json.shards as { shard: number; stateHash: string }[];
      deepEqual(shards.map((shard) => shard.shard), [0, 1]);
      for (const shard of shards) {
        match(shard.stateHash, /^[0-9a-f]{64}$/);
        for (const field of ["appliedIndex", "commitIndex", "term"]) {
          ok(Number.isSafeInteger((shard as unknown as Record<string, number>)[field]), field);
        }
      }
      const cheap = await call(target, { method: "GET", path: "/v1/debug/state?stateHash=false" });
      equal(cheap.status, 200);
      for (const shard of cheap.json.shards as { stateHash: string | null }[]) {
        equal(shard.stateHash, null, "no hash when asked for none");
      }
      const one = await call(target, { method: "GET", path: "/v1/debug/state?shard=1" });
      deepEqual((one.json.shards as { shard: number }[]).map((shard) => shard.shard), [1]);
      const badShard = await call(target, { method: "GET", path: "/v1/debug/state?shard=x" });
      equal(badShard.status, 400);
      const bad = await call(target, { method: "GET", path: "/v1/debug/state?stateHash=no" });
      equal(bad.status, 400);
      match((bad.json.error as { message: string }).message, /"stateHash" is "no"/);
      const read = await call(target, {
        method: "GET",
        path: "/v1/debug/state",
        token: target.read,
      });
      equal(read.status, 403);
      equal((read.json.error as { code: string }).code, "forbidden");
      equal(
        (await call(target, { method: "GET", path: "/v1/debug/state", token: null })).status,
        401,
      );
    } finally {
      await target.close();
    }
  },
});

Deno.test({
  name: "with --enable-test-faults rules are validated, listed and cleared",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const target = await startInProcess(true);
    try {
      const put = (body: unknown) => call(target, { method: "PUT", path: "/v1/test/faults", body });
      const set = await put({ peer: 2, dropProbability: 1, delayMs: 5 });
      equal(set.status, 200);
      deepEqual(set.json, { node: 1, faults: [{ peer: 2, dropProbability: 1, delayMs: 5 }] });
      equal(target.node.transport.faults.shouldDrop(2), true);
      for (
        const bad of [
          { peer: 1, dropProbability: 1 },
          { peer: 7, dropProbability: 1 },
          { peer: "2", dropProbability: 1 },
          { peer: 2, dropProbability: 1.5 },
          { peer: 2, dropProbability: "all" },
          { peer: 2, delayMs: -1 },
          { peer: 2, delayMs: 0.5 },
          { peer: 2, colour: "red" },
        ]
      ) {
        equal((await put(bad)).status, 400, JSON.stringify(bad));
      }
      equal((await put({ peer: 2, dropProbability: 1 })).status, 200);
      const read = await call(target, {
        method: "PUT",
        path: "/v1/test/faults",
        body: { peer: 2, dropProbability: 0 },
        token: target.read,
      });
      equal(read.status, 403);
      const cleared = await call(target, { method: "DELETE", path: "/v1/test/faults?peer=2" });
      deepEqual(cleared.json, { node: 1, faults: [] });
      equal(target.node.transport.faults.shouldDrop(2), false);
      await put({ peer: 2, dropProbability: 0.5, delayMs: 0 });
      const listed = await call(target, { method: "GET", path: "/v1/test/faults" });
      deepEqual(listed.json.faults, [{ peer: 2, dropProbability: 0.5, delayMs: 0 }]);
      const all = await call(target, { method: "DELETE", path: "/v1/test/faults" });
      deepEqual(all.json.faults, []);
    } finally {
      await target.close();
    }
  },
});

Deno.test({
  name: "with --enable-test-faults POST /v1/test/campaign validates and starts an election",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const target = await startInProcess(true);
    try {
      const post = (body: unknown, token: string = target.root) =>
        call(target, { method: "POST", path: "/v1/test/campaign", body, token });
      for (const bad of [{}, { shard: "0" }, { shard: -1 }, { shard: 0.5 }, { shard: 0, x: 1 }]) {
        equal((await post(bad)).status, 400, JSON.stringify(bad));
      }
      const unknown = await post({ shard: 7 });
      equal(unknown.status, 404);
      equal((unknown.json.error as { code: string }).code, "unknown_shard");
      equal((await post({ shard: 0 }, target.read)).status, 403);
      // The route calls the replica's own campaign(): count the calls that reach it.
      const replica = target.node.shards.get(0)!.replica;
      const campaign = replica.campaign.bind(replica);
      let calls = 0;
      replica.campaign = () => {
        calls++;
        return campaign();
      };
      equal(calls, 0, "no rejected request reached the replica");
      const answer = await post({ shard: 0 });
      equal(answer.status, 200);
      deepEqual(answer.json, { node: 1, shard: 0 });
      equal(calls, 1, "the replica was told to campaign");
      // Node 2 never runs: with pre-vote the replica campaigns without moving its term.
      notEqual(replica.status().role, "leader");
    } finally {
      await target.close();
    }
  },
});

Deno.test({
  name: "a real cluster: an isolated node serves no writes, heals, converges; deaths are reported",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const chaos = await ChaosCluster.launch({ nodes: 3, shards: 2 });
    try {
      for (const peer of [1, 2]) {
        await chaos.setFault(3, peer, { dropProbability: 1, delayMs: 0 });
        await chaos.setFault(peer, 3, { dropProbability: 1, delayMs: 0 });
      }
      const cut = await chaos.call(3, {
        method: "PUT",
        path: "/v1/kv/isolated",
        body: { value: "never acknowledged" },
        timeoutMs: 15_000,
      });
      ok(cut.status === 503 || cut.status === 504, `an isolated node cannot write (${cut.status})`);
      await chaos.cluster.waitForLeaders(1, 15_000);
      const write = await chaos.call(1, {
        method: "PUT",
        path: "/v1/kv/majority",
        body: { value: "1" },
        timeoutMs: 15_000,
      });
      equal(write.status, 200, "the majority side keeps serving");
      for (const id of chaos.nodeIds) await chaos.clearFaults(id);
      const read = await chaos.call(3, {
        method: "GET",
        path: "/v1/kv/majority",
        timeoutMs: 15_000,
      });
      equal(read.status, 200, "the healed node reads the majority's write");
      const anomalies = await awaitConvergence(chaos, {
        shards: 2,
        replicasPerShard: 3,
        timeoutMs: 30_000,
        nowMs: () => performance.now(),
      });
      deepEqual(anomalies, []);
      deepEqual(chaos.unexpectedExits, []);
      const pid = chaos.cluster.nodes.find((node) => node.id === 2)!.pid!;
      Deno.kill(pid, "SIGKILL");
      while (chaos.cluster.isRunning(2)) await new Promise((resolve) => setTimeout(resolve, 50));
      deepEqual(chaos.unexpectedExits, [{ node: 2, pid, code: null, signal: "SIGKILL" }]);
      await chaos.cluster.kill(1, "SIGKILL");
      equal(chaos.unexpectedExits.length, 1, "a kill through the launcher is expected");
    } finally {
      await chaos.destroy({ keepDir: false });
    }
  },
});
