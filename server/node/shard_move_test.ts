/**
 * The move driver's phase logic (shard_move.ts) over fakes: real state machines stand for the
 * shards (in memory), the record and the shard map are variables, and a client writes between
 * the driver's steps, routed by the map as a node does. Crashes are injected at every step.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  apiIdOfForeignLease,
  type ApplyResult,
  applyResultError,
  type Command,
  DROP_MOVED_KEYS_MAX,
  encodeCommand,
  foreignLeaseId,
  isForeignLease,
  type KeyValue,
  rangeOwner,
  servesRange,
  shardForKey,
  StateMachine,
} from "../../shard/mod.ts";
import {
  driveMove,
  MOVE_PHASES,
  type MoveOps,
  planMove,
  type ShardMove,
  syncMovedKeys,
  targetOwnership,
} from "./shard_move.ts";
import { apiLeaseId } from "./lease_ids.ts";

class FakeShard {
  readonly sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
  index = 0;

  run(command: Command): ApplyResult {
    this.index++;
    const [result] = this.sm.apply([{ index: this.index, data: encodeCommand(command) }]);
    return result!;
  }

  propose(command: Command): ApplyResult {
    const result = this.run(command);
    const error = applyResultError(result);
    if (error !== null) throw error;
    return result;
  }
}

/** A cluster of in-memory shards, a record, a map and a client, with a crash switch. */
class FakeCluster {
  readonly shards = new Map<number, FakeShard>();
  numShards: number;
  epoch = 1;
  text: string | null = null;
  /** Calls left before an op throws (a crash of the driver's node); null: never. */
  crashIn: number | null = null;
  readonly phases: string[] = [];
  /** The last acknowledged value of each key the client wrote. */
  readonly acked = new Map<string, string>();
  /** Whether clients write between the driver's steps. */
  isWriting = true;
  /** Source rows whose value a scan left out (the delta pass). */
  valuesLeftOut = 0;
  #writes = 0;

  constructor(numShards: number, keys: number) {
    this.numShards = numShards;
    for (let shard = 0; shard < 4; shard++) this.shards.set(shard, new FakeShard());
    for (let i = 0; i < keys; i++) this.write(`key-${i}`);
  }

  /** A client write routed by the map; a `wrong_shard` refusal is not acknowledged. */
  write(key: string): void {
    const value = `v${++this.#writes}`;
    const shard = this.shards.get(shardForKey(key, this.numShards))!;
    const result = shard.run({ type: "put", key, value, lease: 0, prevKv: false });
    if (applyResultError(result)?.code === "wrong_shard") return;
    equal(applyResultError(result), null);
    this.acked.set(key, value);
  }

  /** Runs after the clients' writes between any two steps of the driver; null: nothing. */
  betweenSteps: (() => void) | null = null;

  #step(): void {
    // Between any two steps of the driver, clients write.
    for (let i = 0; i < 3 && this.isWriting; i++) this.write(`key-${(this.#writes * 7) % 200}`);
    this.betweenSteps?.();
    if (this.crashIn === null) return;
    if (this.crashIn-- <= 0) {
      this.crashIn = null;
      throw new Error("crash");
    }
  }

  ops(): MoveOps {
    const shard = (id: number) => this.shards.get(id)!;
    const step = async <T>(action: () => T): Promise<T> => {
      this.#step();
      return await Promise.resolve(action());
    };
    return {
      read: () =>
        step(() => ({
          text: this.text,
          move: this.text === null ? null : JSON.parse(this.text) as ShardMove,
        })),
      swap: (expected, move) =>
        step(() => {
          if (this.text !== expected) return false;
          if (this.phases.at(-1) !== move.phase) this.phases.push(move.phase);
          this.text = JSON.stringify(move);
          return true;
        }),
      setOwnership: (ownership) =>
        step(() => void shard(ownership.shard).propose({ type: "ownership", ownership })),
      intentsElsewhere: (id, count) => step(() => shard(id).sm.intentsNotOwned(id, count)),
      sizes: (id, count) => step(() => shard(id).sm.sizeByShard(count)),
      scan: (id, query) =>
        step(() => {
          const rows = shard(id).sm.movingKeys(query, 8).slice(0, 7);
          if (id < 2) this.valuesLeftOut += rows.filter((row) => !row.hasValue).length;
          return {
            kvs: rows.map((row) => row.kv),
            more: shard(id).sm.movingKeys(query, 8).length > 7,
            valueless: rows.filter((row) => !row.hasValue).map((row) => row.kv.key),
          };
        }),
      appliedIndex: (id) => step(() => shard(id).sm.appliedIndex()),
      importKeys: (_source, target, change) =>
        step(() =>
          void shard(target).propose({
            type: "import",
            pass: change.pass,
            kvs: change.kvs.map(({ key, value, version, createRevision, lease }) => ({
              key,
              value,
              version,
              createRevision,
              lease: lease === 0 || isForeignLease(lease)
                ? lease
                : foreignLeaseId(apiLeaseId(lease, _source)),
            })),
            deletes: change.deletes,
          })
        ),
      foreignLeases: (id) => step(() => shard(id).sm.foreignLeases()),
      addLeaseHolder: (standIn, holder) =>
        step(() => {
          const apiId = apiIdOfForeignLease(standIn);
          const command: Command = {
            type: "leaseHolderAdd",
            id: Math.floor(apiId / 1024),
            holder,
          };
          shard(apiId % 1024).propose(command);
        }),
      dropMoved: (id) =>
        step(() => {
          const result = shard(id).propose({ type: "dropMoved", limit: DROP_MOVED_KEYS_MAX });
          return result.type === "deleteRange" ? result.deleted : 0;
        }),
      flip: (_from, to) =>
        step(() => {
          if (this.numShards >= to) return;
          this.numShards = to;
          this.epoch++;
        }),
      isLeader: () => true,
      wallMs: () => 1_000,
      sleep: () => Promise.resolve(),
    };
  }

  start(toCount: number): void {
    const map = {
      epoch: this.epoch,
      numShards: this.numShards,
      members: [1],
      replicationFactor: 1,
    };
    const move = planMove(map, null, { toCount, maxShards: 1_024, wallMs: 0 });
    this.text = JSON.stringify(move);
    this.phases.push(move.phase);
  }

  /** Every acknowledged key reads back its value from its owner, and from no other shard. */
  check(): void {
    for (const [key, value] of this.acked) {
      const owner = shardForKey(key, this.numShards);
      for (const [id, shard] of this.shards) {
        if (id >= this.numShards) continue;
        const kv = shard.sm.get(key);
        if (id === owner) equal(kv?.value, value, `key ${key} on shard ${id}`);
        else equal(kv, null, `key ${key} also on shard ${id}`);
      }
    }
  }
}

Deno.test("a move from 2 to 3 shards runs every phase in order under client writes", async () => {
  const cluster = new FakeCluster(2, 200);
  const before = new Map(
    [...cluster.acked.keys()].map((key) => {
      const kv = cluster.shards.get(shardForKey(key, 2))!.sm.get(key)!;
      return [key, kv] as const;
    }),
  );
  cluster.start(3);
  const done = await driveMove(cluster.ops());
  equal(done?.phase, "done");
  deepEqual(cluster.phases, [...MOVE_PHASES]);
  equal(cluster.numShards, 3);
  equal(cluster.epoch, 2);
  cluster.check();
  const moved = [...cluster.acked.keys()].filter((key) => shardForKey(key, 3) === 2);
  ok(moved.length > 30 && moved.length < 110, `about a third moved: ${moved.length}`);
  // A key no client touched since keeps its version and createRevision on the new shard.
  const untouched = moved.find((key) => cluster.acked.get(key) === `v${Number(key.slice(4)) + 1}`);
  ok(untouched !== undefined);
  const now = cluster.shards.get(2)!.sm.get(untouched)!;
  equal(now.version, before.get(untouched)!.version);
  equal(now.createRevision, before.get(untouched)!.createRevision);
  const totals = done!.sources.reduce((sum, source) => sum + source.keysTotal, 0);
  equal(totals, moved.length, "the copy pass measured every moving key");
});

Deno.test("fence to flip: the driver reads only moving keys, all sources at once", async () => {
  const cluster = new FakeCluster(3, 300);
  cluster.start(4);
  const ops = cluster.ops();
  const phaseNow = () => (JSON.parse(cluster.text!) as ShardMove).phase;
  const fenced = new Set(["fence", "delta", "handoff", "flip"]);
  const measuredIn: string[] = [];
  let inFlight = 0;
  let inFlightMax = 0;
  const setOwnership = ops.setOwnership;
  const done = await driveMove({
    ...ops,
    // Measuring sizes reads every key of a source: the copy's totals serve the delta too.
    sizes: (shard, count) => {
      measuredIn.push(phaseNow());
      return ops.sizes(shard, count);
    },
    setOwnership: async (ownership) => {
      inFlightMax = Math.max(inFlightMax, ++inFlight);
      await setOwnership(ownership);
      inFlight--;
    },
  });
  equal(done?.phase, "done");
  deepEqual(measuredIn.filter((phase) => fenced.has(phase)), [], `sizes read in ${measuredIn}`);
  equal(measuredIn.length, 3, "the copy measured each source once");
  equal(inFlightMax, 3, "the three sources are fenced and handed off at once");
  cluster.check();
});

/**
 * A prefix scan as a node plans it over `plannedCount` shards under the map of `plannedEpoch`:
 * each shard serves it when its ownership says so (as shard_dispatch.ts checks), with the keys
 * rangeOwner() leaves; null when a shard refused it (the node reads the map again and plans anew).
 */
function scan(cluster: FakeCluster, plannedCount: number, plannedEpoch: number): KeyValue[] | null {
  const kvs: KeyValue[] = [];
  for (let id = 0; id < plannedCount; id++) {
    const machine = cluster.shards.get(id)!.sm;
    const ownership = machine.ownership();
    if (!servesRange(ownership, plannedCount, plannedEpoch)) return null;
    const page = machine.range({ range: { prefix: "key-" }, owner: rangeOwner(ownership) });
    equal(page.more, false);
    kvs.push(...page.kvs);
  }
  return kvs;
}

Deno.test("scans racing every step of a move return each key once, as last written", async () => {
  const cluster = new FakeCluster(2, 200);
  const served = new Map<string, number>();
  let servedUnsettled = 0;
  cluster.betweenSteps = () => {
    const phase = (JSON.parse(cluster.text!) as ShardMove).phase;
    // Planned by the map in force, and by the one before it (a node that missed the flip).
    const plans = new Map([[cluster.epoch, cluster.numShards], [1, 2]]);
    for (const [plannedEpoch, plannedCount] of plans) {
      const kvs = scan(cluster, plannedCount, plannedEpoch);
      if (kvs === null) continue;
      served.set(phase, (served.get(phase) ?? 0) + 1);
      const sources = [0, 1].map((id) => cluster.shards.get(id)!.sm.ownership());
      if (sources.some((ownership) => ownership?.isSettled === false)) servedUnsettled++;
      const keys = kvs.map((kv) => kv.key);
      equal(new Set(keys).size, keys.length, `no key twice (${phase}, planned ${plannedCount})`);
      equal(keys.length, cluster.acked.size, `no key missed (${phase}, planned ${plannedCount})`);
      for (const kv of kvs) equal(kv.value, cluster.acked.get(kv.key), `${kv.key} as last written`);
    }
  };
  cluster.start(3);
  equal((await driveMove(cluster.ops()))?.phase, "done");
  // Every phase saw served scans, and so did the hand-off's aftermath: a source that still holds
  // keys it gave away (after the flip, before its clean-up) serves those it owns.
  for (const phase of ["copy", "fence", "delta", "cleanup"]) {
    ok((served.get(phase) ?? 0) > 0, `scans served in ${phase}: ${JSON.stringify([...served])}`);
  }
  ok(servedUnsettled > 0, "scans were served while a source held moved keys");
});

Deno.test("a move crashed at any step resumes from its record and ends the same", async () => {
  for (let crashAt = 0; crashAt < 90; crashAt += 3) {
    const cluster = new FakeCluster(2, 120);
    cluster.start(3);
    cluster.crashIn = crashAt;
    let rounds = 0;
    for (;;) {
      const done = await driveMove(cluster.ops()).catch(() => null);
      if (done?.phase === "done") break;
      ok(++rounds < 10, `the move resumes (crash at ${crashAt})`);
    }
    equal(cluster.numShards, 3, `crash at ${crashAt}`);
    cluster.check();
  }
});

Deno.test("a second move while one runs is refused; bad counts are refused", () => {
  const map = { epoch: 1, numShards: 2, members: [1], replicationFactor: 1 };
  const running = planMove(map, null, { toCount: 3, maxShards: 8, wallMs: 0 });
  let code = "";
  try {
    planMove(map, running, { toCount: 4, maxShards: 8, wallMs: 0 });
  } catch (error) {
    code = (error as { code: string }).code;
  }
  equal(code, "move_in_progress");
  for (const toCount of [2, 1, 9, 2.5]) {
    try {
      planMove(map, null, { toCount, maxShards: 8, wallMs: 0 });
      code = "";
    } catch (error) {
      code = (error as { code: string }).code;
    }
    equal(code, "bad_request", `toCount ${toCount}`);
  }
  const done = { ...running, phase: "done" as const };
  equal(planMove(map, done, { toCount: 4, maxShards: 8, wallMs: 0 }).toCount, 4);
});

Deno.test("sync removes keys the source no longer has and a failed import propagates", async () => {
  const cluster = new FakeCluster(1, 30);
  cluster.start(2);
  const ops = cluster.ops();
  await ops.setOwnership(targetOwnership(1, { toCount: 2 }, 1));
  const pair = { source: 0, fromCount: 1, target: 1, count: 2, pass: 1 };
  await syncMovedKeys(ops, pair, () => Promise.resolve());
  const moving = [...cluster.acked.keys()].filter((key) => shardForKey(key, 2) === 1);
  cluster.shards.get(0)!.propose({ type: "delete", key: moving[0]!, prevKv: false });
  await syncMovedKeys(ops, pair, () => Promise.resolve());
  equal(cluster.shards.get(1)!.sm.get(moving[0]!), null);
  equal(cluster.shards.get(1)!.sm.get(moving[1]!)?.value, cluster.acked.get(moving[1]!));
  // An active target refuses imports: the error reaches the driver.
  await ops.setOwnership({ ...targetOwnership(1, { toCount: 2 }, 1), isActive: true });
  cluster.shards.get(0)!.propose({ type: "delete", key: moving[1]!, prevKv: false });
  await rejects(syncMovedKeys(ops, pair, () => Promise.resolve()));
});

Deno.test("moved keys of leases: every lease's home counts the new shard as a holder", async () => {
  const cluster = new FakeCluster(2, 0);
  const home = cluster.shards.get(0)!;
  const granted = home.propose({ type: "leaseGrant", ttlSeconds: 60 });
  equal(granted.type, "leaseGrant");
  const lease = granted.type === "leaseGrant" ? granted.lease.id : 0;
  const apiId = apiLeaseId(lease, 0);
  // Keys of shard 1 attached to a lease of shard 0: only the hand-off tells shard 0 of their
  // new shard (a key of shard 0 itself would tell it at clean-up).
  const keys = Array.from({ length: 60 }, (_, i) => `leased-${i}`)
    .filter((key) => shardForKey(key, 2) === 1);
  for (const key of keys) {
    const put: Command = {
      type: "put",
      key,
      value: "x",
      lease: foreignLeaseId(apiId),
      prevKv: false,
    };
    cluster.shards.get(1)!.propose(put);
  }
  home.propose({ type: "leaseHolderAdd", id: lease, holder: 1 });
  cluster.start(3);
  equal((await driveMove(cluster.ops()))?.phase, "done");
  deepEqual(home.sm.leaseHolders(lease), [1, 2]);
  const target = cluster.shards.get(2)!.sm;
  const moved = keys.filter((key) => shardForKey(key, 3) === 2);
  ok(moved.length > 0);
  for (const key of moved) equal(target.get(key)?.lease, foreignLeaseId(apiId), key);
  equal(target.lease(foreignLeaseId(apiId))?.keys.length, moved.length);
});

Deno.test("a driver that lost the record and goes on cannot write over the move", async () => {
  const cluster = new FakeCluster(2, 200);
  cluster.start(3);
  const stale = cluster.ops();
  const gate = Promise.withResolvers<void>();
  let staleImport: Promise<void> | null = null;
  let imports = 0;
  // The stale driver stops in its second import of the copy, holding a page it read then.
  const first = driveMove({
    ...stale,
    importKeys: async (source, target, change) => {
      if (++imports === 2) {
        await gate.promise;
        staleImport = stale.importKeys(source, target, change);
        return await staleImport;
      }
      return await stale.importKeys(source, target, change);
    },
  }).catch((error: unknown) => error);
  while (imports < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  // The new driver runs the move; just before it activates the new shard, the stale one
  // writes its old page (after the delta).
  const fresh = cluster.ops();
  const done = await driveMove({
    ...fresh,
    setOwnership: async (ownership) => {
      if (ownership.isActive && ownership.shard === 2 && staleImport === null) {
        gate.resolve();
        while (staleImport === null) await new Promise((resolve) => setTimeout(resolve, 1));
        await (staleImport as Promise<void>).catch(() => {});
      }
      await fresh.setOwnership(ownership);
    },
  });
  equal(done?.phase, "done");
  await rejects(staleImport!, /copy pass 1/);
  ok(await first instanceof Error, "the stale driver stopped");
  cluster.check();
});

Deno.test("the delta reads changed values only and restores a lost key", async () => {
  const cluster = new FakeCluster(1, 40);
  cluster.isWriting = false;
  cluster.start(2);
  const ops = cluster.ops();
  const source = cluster.shards.get(0)!;
  const target = cluster.shards.get(1)!;
  await ops.setOwnership(targetOwnership(1, { toCount: 2 }, 1));
  const pair = { source: 0, fromCount: 1, target: 1, count: 2 };
  await syncMovedKeys(ops, { ...pair, pass: 1 }, () => Promise.resolve());
  const moving = [...cluster.acked.keys()].filter((key) => shardForKey(key, 2) === 1).sort();
  // A key lost on the new shard (as a bug or a crash could leave it) although unchanged.
  target.propose({ type: "import", pass: 1, kvs: [], deletes: [moving[0]!] });
  await ops.setOwnership(targetOwnership(1, { toCount: 2 }, 2));
  const copyRevision = source.sm.appliedIndex();
  await syncMovedKeys(ops, { ...pair, pass: 2, valuesAfter: copyRevision }, () => {
    return Promise.resolve();
  });
  ok(cluster.valuesLeftOut > 0, "the values of unchanged keys were not read");
  for (const key of moving) equal(target.sm.get(key)?.value, cluster.acked.get(key), key);
});

Deno.test("the copy hands each new shard to the preferred leader its record names", async () => {
  for (const isRecorded of [true, false]) {
    const cluster = new FakeCluster(2, 50);
    cluster.start(4);
    if (isRecorded) {
      const move = JSON.parse(cluster.text!) as ShardMove;
      const targetVoters = [{ shard: 2, voters: [3, 1, 2] }, { shard: 3, voters: [1, 2, 4] }];
      cluster.text = JSON.stringify({ ...move, targetVoters });
    }
    const handed: string[] = [];
    const ops = cluster.ops();
    const done = await driveMove({
      ...ops,
      preferLeader: (shard, node) => {
        handed.push(`${shard}->${node}`);
        return Promise.resolve();
      },
    });
    equal(done?.phase, "done");
    deepEqual(handed, isRecorded ? ["2->3", "3->1"] : []);
    cluster.check();
  }
});
