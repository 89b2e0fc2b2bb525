/**
 * Hostile input against the HTTP API of a real `aspen node` process (1 node, 4 shards, started
 * without `--enable-test-faults`): a seeded, bounded stream of requests that are each invalid
 * by construction (wrong methods and paths, missing, malformed and read-only tokens, invalid
 * JSON, wrong field types, unknown fields, empty and oversized keys, control characters, bad
 * percent-encoding, huge bodies, bad query parameters, the disabled fault endpoint), plus raw
 * TCP requests that no fetch client would send (a body cut short, a garbage request line, bad
 * chunked encoding, a header with control characters, a huge header).
 *
 * Checks: every fetch answer is a 4xx with a JSON error `{code, message}`, never a 5xx; raw
 * requests get a 4xx or a closed connection; the node never logs an internal error and never
 * exits; afterwards it is healthy, every shard's applied index is unchanged (no hostile request
 * reached a Raft log) and a full scan returns exactly the keys written before.
 * `ASPEN_FUZZ_SEED` replays a run; the seed is printed.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { SeededPrng } from "../raft/mod.ts";
import { parseHostPort } from "../transport/mod.ts";
import { ChaosCluster } from "./chaos/cluster.ts";
import { type FuzzRequest, hostileRequests, rawHostileRequests } from "./fixtures/chaos_http.ts";

/** Generated requests per run. */
const FUZZ_REQUESTS = Number(Deno.env.get("ASPEN_FUZZ_REQUESTS") ?? 500);
/** The deadline of one fuzz request. */
const FUZZ_TIMEOUT_MS = 10_000;

Deno.test({
  name: "HTTP fuzz: hostile requests get 4xx JSON errors and change nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const seed = Number(Deno.env.get("ASPEN_FUZZ_SEED") ?? 20_260_801);
    console.log(`HTTP fuzz seed ${seed} (ASPEN_FUZZ_SEED replays it)`);
    const chaos = await ChaosCluster.launch({
      nodes: 1,
      shards: 4,
      isFaultInjectionEnabled: false,
    });
    try {
      const tokens = { root: chaos.token, read: chaos.cluster.record.readToken };
      for (let i = 0; i < 24; i++) {
        const answer = await chaos.call(1, {
          method: "PUT",
          path: `/v1/kv/fuzz%2F${i}`,
          body: { value: `v${i}` },
        });
        equal(answer.status, 200);
      }
      // The node writes its shard map record (shard 0) on its own about a second after it
      // starts; wait until the state holds still so that only hostile requests could move it.
      let before = await snapshot(chaos);
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1_200));
        const again = await snapshot(chaos);
        if (JSON.stringify(again) === JSON.stringify(before)) break;
        before = again;
      }
      const prng = new SeededPrng(seed);
      const failures: string[] = [];
      for (const request of hostileRequests(prng, FUZZ_REQUESTS, tokens)) {
        const problem = await sendFetch(chaos.cluster.url(1), request);
        if (problem !== null) failures.push(problem);
      }
      const address = chaos.cluster.nodes[0]!.httpAddress;
      for (const raw of rawHostileRequests(prng, tokens)) {
        const problem = await sendRaw(address, raw);
        if (problem !== null) failures.push(problem);
      }
      equal(failures.length, 0, `seed ${seed}: mishandled:\n${failures.join("\n")}`);
      equal((await chaos.call(1, { method: "GET", path: "/v1/health" })).status, 200);
      deepEqual(await snapshot(chaos), before, "hostile requests changed the data");
      const internal = chaos.logsOf(1).filter((line) => /Request failed|EXITED/.test(line));
      deepEqual(internal, [], "the node logged internal errors");
      deepEqual(chaos.unexpectedExits, []);
      const write = await chaos.call(1, {
        method: "PUT",
        path: "/v1/kv/after",
        body: { value: "1" },
      });
      equal(write.status, 200, "the node still serves writes");
    } finally {
      await chaos.destroy({ keepDir: false });
    }
  },
});

/** Every shard's applied index and every key with its revisions. */
async function snapshot(chaos: ChaosCluster): Promise<unknown> {
  const state = await chaos.debugState(1);
  const scan = await chaos.call(1, { method: "GET", path: "/v1/kv?prefix=&limit=10000" });
  equal(scan.status, 200);
  return {
    applied: state.map((replica) => [replica.shard, replica.appliedIndex]),
    kvs: scan.json?.kvs,
  };
}

/** Sends one request with fetch; returns a description of what went wrong, or null. */
async function sendFetch(base: string, request: FuzzRequest): Promise<string | null> {
  const what = `${request.method} ${request.path.slice(0, 80)} (${request.label})`;
  let response: Response;
  try {
    response = await fetch(`${base}${request.path}`, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(FUZZ_TIMEOUT_MS),
    });
  } catch (error) {
    return `${what}: no answer: ${error instanceof Error ? error.message : String(error)}`;
  }
  const text = await response.text();
  if (response.status < 400 || response.status >= 500) {
    return `${what}: status ${response.status}: ${text.slice(0, 200)}`;
  }
  let body: { error?: { code?: unknown; message?: unknown } };
  try {
    body = JSON.parse(text);
  } catch {
    return `${what}: status ${response.status} without a JSON body: ${text.slice(0, 200)}`;
  }
  const isErrorBody = typeof body.error?.code === "string" &&
    typeof body.error?.message === "string";
  return isErrorBody ? null : `${what}: not an error body: ${text.slice(0, 200)}`;
}

/**
 * Writes raw bytes on a TCP connection, half-closes it and reads the answer: a 4xx status line
 * or a closed connection are fine; a 2xx, a 5xx, or no answer at all are not.
 */
async function sendRaw(
  address: string,
  raw: { label: string; bytes: Uint8Array },
): Promise<string | null> {
  const { hostname, port } = parseHostPort(address, { what: "the node address", isListen: false });
  const conn = await Deno.connect({ hostname, port });
  const timer = setTimeout(() => closeConnection(conn), FUZZ_TIMEOUT_MS);
  let text = "";
  try {
    // The server may close the connection before it read everything: that is an answer too.
    const isWritten = await conn.write(raw.bytes).then(() => true, () => false);
    if (isWritten) await conn.closeWrite().catch(() => undefined);
    const buffer = new Uint8Array(4096);
    const read = await conn.read(buffer).catch(() => null);
    text = read === null ? "" : new TextDecoder().decode(buffer.subarray(0, read));
  } finally {
    clearTimeout(timer);
    closeConnection(conn);
  }
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
  if (text === "" || (status !== undefined && status.startsWith("4"))) return null;
  return `raw ${raw.label}: answered ${text.slice(0, 120)}`;
}

function closeConnection(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

Deno.test("the hostile request generator is seeded and only makes invalid requests", () => {
  const tokens = { root: "root-token", read: "read-token" };
  const first = hostileRequests(new SeededPrng(5), 200, tokens);
  const second = hostileRequests(new SeededPrng(5), 200, tokens);
  deepEqual(
    first.map((r) => [r.method, r.path, r.label]),
    second.map((r) => [r.method, r.path, r.label]),
  );
  const labels = new Set(first.map((request) => request.label.split(":")[0]));
  ok(labels.size >= 10, `many kinds of hostile input (${[...labels].join(", ")})`);
});
