/**
 * WorkloadClient, the request generator of `aspen bench`: key naming and padding, keys inside
 * the key space (random and sequential, clients starting apart), the read ratio of `mixed`,
 * the request shape of every workload, and how cas and txn learn each key's version from the
 * answers so that their compares keep succeeding.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  BENCH_PREFIX,
  BenchSetupError,
  needsKeyShards,
  WorkloadClient,
  type WorkloadOptions,
} from "./workload.ts";

const BASE: WorkloadOptions = {
  workload: "put",
  keySize: 8,
  valueSize: 4,
  keyspace: 100,
  isSequential: false,
  isClientKeys: false,
  readRatio: 0.5,
  serializable: false,
  scanLimit: 10,
};

function keyOf(path: string): string {
  return decodeURIComponent(path.slice("/v1/kv/".length).split("?")[0]!);
}

Deno.test("WorkloadClient.key pads numbers to the key size", () => {
  equal(WorkloadClient.key(7, 8), "bench/07");
  equal(WorkloadClient.key(7, 12), "bench/000007");
  equal(WorkloadClient.key(12345, 8), "bench/12345");
  equal(WorkloadClient.key(12345, 8).startsWith(BENCH_PREFIX), true);
});

Deno.test("WorkloadClient picks random keys inside the key space", () => {
  const client = new WorkloadClient(BASE, 0, 1);
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const request = client.next();
    equal(request.method, "PUT");
    equal(request.body, '{"value":"vvvv"}');
    seen.add(keyOf(request.path));
  }
  const valid = new Set(Array.from({ length: 100 }, (_, i) => WorkloadClient.key(i, 8)));
  for (const key of seen) ok(valid.has(key), `key ${key} is in the key space`);
  ok(seen.size > 90, `random keys cover the key space (${seen.size} of 100)`);
});

Deno.test("WorkloadClient walks keys in order, each client from its own start", () => {
  const options = { ...BASE, isSequential: true };
  const first = new WorkloadClient(options, 0, 4);
  const third = new WorkloadClient(options, 2, 4);
  deepEqual([0, 1, 2].map(() => keyOf(first.next().path)), ["bench/00", "bench/01", "bench/02"]);
  equal(keyOf(third.next().path), "bench/50");
  const wrapping = new WorkloadClient(options, 3, 4);
  const keys = Array.from({ length: 26 }, () => keyOf(wrapping.next().path));
  equal(keys[0], "bench/75");
  equal(keys[25], "bench/00", "the walk wraps around the key space");
});

Deno.test("WorkloadClient with client keys: no two clients touch one key", () => {
  const clients = 8;
  for (const isSequential of [false, true]) {
    const options = { ...BASE, workload: "cas" as const, isClientKeys: true, isSequential };
    const owner = new Map<string, number>();
    for (let index = 0; index < clients; index++) {
      const client = new WorkloadClient(options, index, clients);
      const mine = new Set<string>();
      for (let i = 0; i < 500; i++) {
        const key = JSON.parse(client.next().body!).compare[0].key as string;
        equal(owner.get(key) ?? index, index, `${key} belongs to one client`);
        owner.set(key, index);
        mine.add(key);
      }
      const slice = Math.floor(100 * (index + 1) / clients) - Math.floor(100 * index / clients);
      equal(mine.size, slice, `client ${index} covers its slice`);
    }
    equal(owner.size, 100, "the slices cover the key space");
  }
  // More clients than keys: each still gets a key inside the key space.
  const crowded = new WorkloadClient({ ...BASE, keyspace: 2, isClientKeys: true }, 5, 8);
  ok(["bench/00", "bench/01"].includes(keyOf(crowded.next().path)));
});

Deno.test("WorkloadClient mixes reads and writes at the read ratio", () => {
  const client = new WorkloadClient({ ...BASE, workload: "mixed", readRatio: 0.8 }, 1, 2);
  let reads = 0;
  for (let i = 0; i < 10_000; i++) if (client.next().method === "GET") reads++;
  ok(Math.abs(reads / 10_000 - 0.8) < 0.02, `read share ${reads / 10_000}`);
  const writesOnly = new WorkloadClient({ ...BASE, workload: "mixed", readRatio: 0 }, 0, 1);
  for (let i = 0; i < 100; i++) equal(writesOnly.next().method, "PUT");
});

Deno.test("WorkloadClient builds get, serializable get and scan requests", () => {
  const get = new WorkloadClient({ ...BASE, workload: "get" }, 0, 1).next();
  equal(get.method, "GET");
  equal(get.body, null);
  ok(!get.path.includes("consistency"));
  const serializable = new WorkloadClient({ ...BASE, workload: "get", serializable: true }, 0, 1);
  ok(serializable.next().path.endsWith("?consistency=serializable"));
  const scan = new WorkloadClient({ ...BASE, workload: "scan" }, 0, 1).next();
  const url = new URL(`http://x${scan.path}`);
  equal(url.pathname, "/v1/kv");
  ok(url.searchParams.get("start")!.startsWith(BENCH_PREFIX));
  equal(url.searchParams.get("end"), `${BENCH_PREFIX}~`);
  equal(url.searchParams.get("limit"), "10");
});

Deno.test("WorkloadClient cas compares the modRevision it learned from answers", () => {
  const client = new WorkloadClient({ ...BASE, workload: "cas", keyspace: 1 }, 0, 1);
  const body = (request: ReturnType<WorkloadClient["next"]>) => JSON.parse(request.body!);
  const first = client.next();
  equal(first.path, "/v1/txn");
  deepEqual(body(first).compare, [{ key: "bench/00", target: "modRevision", op: "=", value: 0 }]);
  first.onAnswer?.(200, { succeeded: true, revision: 17 });
  const second = client.next();
  equal(body(second).compare[0].value, 17, "a success learns the put's revision");
  second.onAnswer?.(200, { succeeded: false, results: [{ type: "get", kv: { modRevision: 40 } }] });
  const third = client.next();
  equal(body(third).compare[0].value, 40, "a failed compare learns the real modRevision");
  third.onAnswer?.(200, { succeeded: false, results: [{ type: "get", kv: null }] });
  equal(body(client.next()).compare[0].value, 0, "a deleted key is expected absent");
});

Deno.test("WorkloadClient txn reads the modRevision it learned from answers", () => {
  const client = new WorkloadClient({ ...BASE, workload: "txn", keyspace: 1 }, 0, 1);
  const first = client.next();
  equal(first.path, "/v1/txn/optimistic");
  deepEqual(JSON.parse(first.body!), {
    reads: [{ key: "bench/00", modRevision: 0 }],
    writes: [{ op: "set", key: "bench/00", value: "vvvv" }],
  });
  first.onAnswer?.(200, { committed: true, shard: 0, revision: 12 });
  const second = client.next();
  equal(JSON.parse(second.body!).reads[0].modRevision, 12);
  second.onAnswer?.(409, { error: { code: "conflict", actual: 5, actualModRevision: 30 } });
  const third = client.next();
  equal(JSON.parse(third.body!).reads[0].modRevision, 30, "a conflict learns the modRevision");
  third.onAnswer?.(503, { error: { code: "shard_unavailable" } });
  equal(JSON.parse(client.next().body!).reads[0].modRevision, 30, "an error teaches nothing");
});

/** Key i on shard i % 4: what locateKeys would report for a 4-shard cluster. */
const FOUR_SHARDS = Array.from({ length: 100 }, (_, index) => index % 4);

function indexOf(key: string): number {
  return Number(key.slice(BENCH_PREFIX.length));
}

Deno.test("WorkloadClient puts a txn's keys on --shards-per-txn different shards", () => {
  const shapes = [
    { workload: "cas" as const, keysPerTxn: 2, shardsPerTxn: 2 },
    { workload: "txn" as const, keysPerTxn: 3, shardsPerTxn: 3 },
    { workload: "read-txn" as const, keysPerTxn: 4, shardsPerTxn: 2 },
    { workload: "cas" as const, keysPerTxn: 2, shardsPerTxn: 1 },
  ];
  for (const shape of shapes) {
    const options = { ...BASE, ...shape };
    equal(needsKeyShards(options), true);
    const client = new WorkloadClient(options, 0, 1, FOUR_SHARDS);
    const shardsSeen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const body = JSON.parse(client.next().body!);
      const keys: string[] = shape.workload === "txn"
        ? body.reads.map((read: { key: string }) => read.key)
        : shape.workload === "cas"
        ? body.compare.map((compare: { key: string }) => compare.key)
        : body.success.map((op: { get: { key: string } }) => op.get.key);
      equal(keys.length, shape.keysPerTxn, `${JSON.stringify(shape)}: keys per txn`);
      equal(new Set(keys).size, keys.length, "the keys are distinct");
      const shards = keys.map((key) => FOUR_SHARDS[indexOf(key)]!);
      equal(new Set(shards).size, shape.shardsPerTxn, `${JSON.stringify(shape)}: shards`);
      shards.forEach((shard) => shardsSeen.add(shard));
    }
    equal(shardsSeen.size, 4, "every shard takes part over many txns");
  }
});

Deno.test("WorkloadClient keeps single-key cas, txn and read-txn as they were", () => {
  for (const workload of ["cas", "txn", "read-txn"] as const) {
    equal(needsKeyShards({ ...BASE, workload }), false, `${workload} needs no shard map`);
  }
  const read = new WorkloadClient({ ...BASE, workload: "read-txn", keyspace: 1 }, 0, 1).next();
  equal(read.path, "/v1/txn");
  deepEqual(JSON.parse(read.body!), {
    compare: [],
    success: [{ get: { key: "bench/00" } }],
    failure: [],
  });
});

Deno.test("WorkloadClient learns a cross-shard txn's revision of each key's shard", () => {
  const options = { ...BASE, workload: "cas" as const, keyspace: 2, shardsPerTxn: 2 };
  const client = new WorkloadClient(options, 0, 1, [0, 1]);
  const values = (request: ReturnType<WorkloadClient["next"]>) =>
    Object.fromEntries(
      JSON.parse(request.body!).compare.map((c: { key: string; value: number }) => [
        c.key,
        c.value,
      ]),
    );
  const first = client.next();
  deepEqual(values(first), { "bench/00": 0, "bench/01": 0 });
  first.onAnswer?.(200, { succeeded: true, shard: 0, revision: 7, revisions: { 0: 7, 1: 31 } });
  const second = client.next();
  deepEqual(values(second), { "bench/00": 7, "bench/01": 31 }, "each key its shard's revision");
  const order = JSON.parse(second.body!).compare.map((c: { key: string }) => c.key);
  const results = order.map((key: string) => ({
    type: "get",
    kv: key === "bench/00" ? { modRevision: 9 } : null,
  }));
  second.onAnswer?.(200, { succeeded: false, results });
  deepEqual(values(client.next()), { "bench/00": 9, "bench/01": 0 }, "a failure's gets teach");

  const optimistic = new WorkloadClient({ ...options, workload: "txn" }, 0, 1, [0, 1]);
  const reads = (request: ReturnType<WorkloadClient["next"]>) =>
    Object.fromEntries(
      JSON.parse(request.body!).reads.map((r: { key: string; modRevision: number }) => [
        r.key,
        r.modRevision,
      ]),
    );
  const conflicted = optimistic.next();
  conflicted.onAnswer?.(409, {
    error: { code: "conflict", key: "bench/01", actualModRevision: 5 },
  });
  const locked = optimistic.next();
  deepEqual(reads(locked), { "bench/00": 0, "bench/01": 5 }, "a conflict teaches its key");
  locked.onAnswer?.(409, { error: { code: "conflict", key: "bench/00", holder: "2.1.1" } });
  deepEqual(reads(optimistic.next()), { "bench/00": 0, "bench/01": 5 }, "a lock teaches nothing");
});

Deno.test("WorkloadClient refuses a key slice that cannot fill a cross-shard txn", () => {
  const options = { ...BASE, workload: "txn" as const, shardsPerTxn: 2, isClientKeys: true };
  // Client 0 of 50 owns keys 0 and 1, both on shard 0 here.
  const oneShard = Array.from({ length: 100 }, (_, index) => Math.floor(index / 4) % 4);
  throws(() => new WorkloadClient(options, 0, 50, oneShard), BenchSetupError);
  throws(() => new WorkloadClient(options, 0, 1, null), /needs each key's shard/);
  // Two keys per shard on 2 shards need 2 keys on each of 2 shards: keys 0..3 give 1 shard.
  const crowded = { ...options, keysPerTxn: 4, shardsPerTxn: 2 };
  throws(() => new WorkloadClient(crowded, 0, 25, oneShard), /1 shard\(s\) with 2 key\(s\)/);
  new WorkloadClient({ ...options, keysPerTxn: 4, shardsPerTxn: 2 }, 0, 1, oneShard);
});

const ETCD: WorkloadOptions = { ...BASE, api: "etcd" };
const json = (request: ReturnType<WorkloadClient["next"]>) => JSON.parse(request.body!);

Deno.test("WorkloadClient speaks etcd's JSON gateway: put, get, scan, read-only txn", () => {
  const put = new WorkloadClient({ ...ETCD, keyspace: 1 }, 0, 1).next();
  deepEqual([put.method, put.path], ["POST", "/v3/kv/put"]);
  deepEqual(json(put), { key: btoa("bench/00"), value: btoa("vvvv") });
  const get = new WorkloadClient({ ...ETCD, workload: "get", keyspace: 1 }, 0, 1).next();
  deepEqual([get.path, json(get)], ["/v3/kv/range", { key: btoa("bench/00") }]);
  const serializable = new WorkloadClient(
    { ...ETCD, workload: "get", keyspace: 1, serializable: true },
    0,
    1,
  ).next();
  equal(json(serializable).serializable, true);
  const scan = json(new WorkloadClient({ ...ETCD, workload: "scan" }, 0, 1).next());
  ok(atob(scan.key).startsWith(BENCH_PREFIX));
  deepEqual([atob(scan.range_end), scan.limit], [`${BENCH_PREFIX}~`, "10"]);
  const read = new WorkloadClient({ ...ETCD, workload: "read-txn", keyspace: 1 }, 0, 1).next();
  deepEqual([read.path, json(read).success], ["/v3/kv/txn", [{
    request_range: { key: btoa("bench/00") },
  }]]);
  // etcd's error answers keep etcd's gRPC code.
  equal(put.errorOf?.(429, { error: "too many requests", code: 8 }), "etcd_8");
  equal(put.errorOf?.(502, null), "http_502");
});

Deno.test("WorkloadClient etcd cas compares the mod_revision it learned from answers", () => {
  const client = new WorkloadClient({ ...ETCD, workload: "cas", keyspace: 1 }, 0, 1);
  const first = client.next();
  equal(first.path, "/v3/kv/txn");
  deepEqual(json(first).compare, [{
    key: btoa("bench/00"),
    target: "MOD",
    result: "EQUAL",
    mod_revision: "0",
  }]);
  deepEqual(json(first).success, [{ request_put: { key: btoa("bench/00"), value: btoa("vvvv") } }]);
  const success = { header: { revision: "17" }, succeeded: true, responses: [] };
  equal(first.isFailedCompare?.(success), false);
  first.onAnswer?.(200, success);
  const second = client.next();
  equal(json(second).compare[0].mod_revision, "17", "a success learns the header's revision");
  // The gateway leaves `succeeded` out when it is false.
  const failure = {
    header: { revision: "40" },
    responses: [{ response_range: { kvs: [{ mod_revision: "33" }] } }],
  };
  equal(second.isFailedCompare?.(failure), true);
  second.onAnswer?.(200, failure);
  const third = client.next();
  equal(json(third).compare[0].mod_revision, "33", "a failed compare learns the key's");
  third.onAnswer?.(200, { header: { revision: "41" }, responses: [{ response_range: {} }] });
  equal(json(client.next()).compare[0].mod_revision, "0", "an absent key is expected absent");
});

Deno.test("WorkloadClient refuses the optimistic txn workload against etcd", () => {
  throws(() => new WorkloadClient({ ...ETCD, workload: "txn" }, 0, 1), BenchSetupError);
});
