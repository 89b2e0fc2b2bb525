/**
 * Tenant moves (tenant_move.ts) through the move driver (shard_move.ts) over fakes: in-memory
 * state machines stand for the shards, the move record and the map are variables, and a client
 * writes between the driver's steps, routed by the map (count and tenants) as a node does.
 * Creating a tenant claims the keys the hash placed elsewhere; moving it carries every key;
 * a crash at any step resumes from the record; a shard add leaves a tenant's keys where they
 * are; planning refuses bad requests.
 */
import { equal, ok, throws } from "node:assert/strict";
import {
  type ApplyResult,
  applyResultError,
  type Command,
  DROP_MOVED_KEYS_MAX,
  encodeCommand,
  placeKey,
  shardForKey,
  StateMachine,
  TENANTS_MAX,
  type TenantShards,
} from "../../shard/mod.ts";
import type { ShardMap } from "./shard_map.ts";
import { driveMove, type MoveOps, planMove, type ShardMove } from "./shard_move.ts";
import { leastLoadedShard, planTenantMove } from "./tenant_move.ts";

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

/** Shards 0..3 (numShards in use), a map with tenants, a record, a client, a crash switch. */
class FakeCluster {
  readonly shards = new Map<number, FakeShard>();
  map: ShardMap;
  text: string | null = null;
  crashIn: number | null = null;
  readonly acked = new Map<string, string>();
  #writes = 0;

  constructor(numShards: number, keys: readonly string[]) {
    this.map = { epoch: 1, numShards, members: [1], replicationFactor: 1 };
    for (let shard = 0; shard < 4; shard++) this.shards.set(shard, new FakeShard());
    for (const key of keys) this.write(key);
  }

  /** A client write routed by the map; a `wrong_shard` refusal is not acknowledged. */
  write(key: string): void {
    const value = `v${++this.#writes}`;
    const shard = this.shards.get(placeKey(key, this.map.numShards, this.map.tenants))!;
    const result = shard.run({ type: "put", key, value, lease: 0, prevKv: false });
    if (applyResultError(result)?.code === "wrong_shard") return;
    equal(applyResultError(result), null);
    this.acked.set(key, value);
  }

  start(move: ShardMove): void {
    this.text = JSON.stringify(move);
  }

  /** Runs the recorded move to its end, resuming after each injected crash. */
  async finish(): Promise<void> {
    for (let rounds = 0; rounds < 20; rounds++) {
      const done = await driveMove(this.ops()).catch(() => null);
      if (done?.phase === "done") return;
    }
    throw new Error("the move did not end");
  }

  /** Every acknowledged key reads back its value from its owner, and from no other shard. */
  check(): void {
    for (const [key, value] of this.acked) {
      const owner = placeKey(key, this.map.numShards, this.map.tenants);
      for (const [id, shard] of this.shards) {
        if (id >= this.map.numShards) continue;
        const kv = shard.sm.get(key);
        if (id === owner) equal(kv?.value, value, `key ${key} on shard ${id}`);
        else equal(kv, null, `key ${key} also on shard ${id}`);
      }
    }
  }

  ops(): MoveOps {
    const shard = (id: number) => this.shards.get(id)!;
    const keys = [...this.acked.keys()];
    const step = async <T>(action: () => T): Promise<T> => {
      // Between any two steps of the driver, clients write.
      for (let i = 0; i < 3; i++) this.write(keys[(this.#writes * 7) % keys.length]!);
      if (this.crashIn !== null && this.crashIn-- <= 0) {
        this.crashIn = null;
        throw new Error("crash");
      }
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
          this.text = JSON.stringify(move);
          return true;
        }),
      setOwnership: (ownership) =>
        step(() => void shard(ownership.shard).propose({ type: "ownership", ownership })),
      intentsElsewhere: (id, count, tenants) =>
        step(() => shard(id).sm.intentsNotOwned(id, count, tenants)),
      sizes: (id, count, tenants) => step(() => shard(id).sm.sizeByShard(count, tenants)),
      scan: (id, query) =>
        step(() => {
          const rows = shard(id).sm.movingKeys(query, 8);
          return { kvs: rows.slice(0, 7).map((row) => row.kv), more: rows.length > 7 };
        }),
      appliedIndex: (id) => step(() => shard(id).sm.appliedIndex()),
      importKeys: (_source, target, change) =>
        step(() =>
          void shard(target).propose({
            type: "import",
            pass: change.pass,
            kvs: change.kvs.map(({ key, value, version, createRevision }) => ({
              key,
              value,
              version,
              createRevision,
              lease: 0,
            })),
            deletes: change.deletes,
          })
        ),
      foreignLeases: (id) => step(() => shard(id).sm.foreignLeases()),
      addLeaseHolder: () => step(() => undefined),
      dropMoved: (id) =>
        step(() => {
          const result = shard(id).propose({ type: "dropMoved", limit: DROP_MOVED_KEYS_MAX });
          return result.type === "deleteRange" ? result.deleted : 0;
        }),
      flip: (_from, to, tenants?: TenantShards) =>
        step(() => {
          if (tenants !== undefined) {
            if (JSON.stringify(this.map.tenants) === JSON.stringify(tenants)) return;
            this.map = { ...this.map, epoch: this.map.epoch + 1, tenants };
            return;
          }
          if (this.map.numShards >= to) return;
          this.map = { ...this.map, epoch: this.map.epoch + 1, numShards: to };
        }),
      isLeader: () => true,
      wallMs: () => 1_000,
      sleep: () => Promise.resolve(),
    };
  }
}

const KEYS = [
  ...Array.from({ length: 60 }, (_, i) => `acme/${i}`),
  ...Array.from({ length: 60 }, (_, i) => `other/${i}`),
];

function tenantMove(cluster: FakeCluster, name: string, to: number, isNew: boolean): ShardMove {
  const current = cluster.text === null ? null : JSON.parse(cluster.text) as ShardMove;
  return planTenantMove(cluster.map, current, { name, to, isNew, wallMs: 0 });
}

Deno.test("creating a tenant claims its hashed keys; moving it carries them all", async () => {
  const cluster = new FakeCluster(3, KEYS);
  ok(KEYS.some((key) => key.startsWith("acme/") && shardForKey(key, 3) !== 1));
  cluster.start(tenantMove(cluster, "acme", 1, true));
  await cluster.finish();
  equal(cluster.map.tenants?.acme, 1);
  equal(cluster.map.epoch, 2);
  cluster.check();
  cluster.start(tenantMove(cluster, "acme", 2, false));
  await cluster.finish();
  equal(cluster.map.tenants?.acme, 2);
  equal(cluster.map.epoch, 3);
  cluster.check();
  for (const key of KEYS.filter((item) => item.startsWith("acme/"))) {
    ok(cluster.shards.get(2)!.sm.get(key) !== null, key);
  }
});

Deno.test("a tenant move crashed at any step resumes from its record", async () => {
  for (let crashAt = 0; crashAt < 120; crashAt += 5) {
    const cluster = new FakeCluster(2, KEYS);
    cluster.start(tenantMove(cluster, "acme", 0, true));
    cluster.crashIn = crashAt;
    await cluster.finish();
    cluster.check();
    cluster.start(tenantMove(cluster, "acme", 1, false));
    cluster.crashIn = crashAt;
    await cluster.finish();
    equal(cluster.map.tenants?.acme, 1, `crash at ${crashAt}`);
    cluster.check();
  }
});

Deno.test("a shard add leaves a tenant's keys on the tenant's shard", async () => {
  const cluster = new FakeCluster(2, KEYS);
  cluster.start(tenantMove(cluster, "acme", 1, true));
  await cluster.finish();
  const current = JSON.parse(cluster.text!) as ShardMove;
  cluster.start(planMove(cluster.map, current, { toCount: 3, maxShards: 8, wallMs: 0 }));
  await cluster.finish();
  equal(cluster.map.numShards, 3);
  equal(cluster.map.tenants?.acme, 1);
  cluster.check();
  ok(KEYS.some((key) => key.startsWith("other/") && shardForKey(key, 3) === 2), "others moved");
  for (const key of KEYS.filter((item) => item.startsWith("acme/"))) {
    equal(cluster.shards.get(2)!.sm.get(key), null, `${key} stayed on its tenant's shard`);
  }
});

Deno.test("planTenantMove() refuses what must not start, naming it", () => {
  const map: ShardMap = {
    epoch: 4,
    numShards: 3,
    members: [1],
    replicationFactor: 1,
    tenants: { acme: 1 },
  };
  const plan = (name: string, to: number, isNew: boolean, current: ShardMove | null = null) =>
    planTenantMove(map, current, { name, to, isNew, wallMs: 0 });
  const running = plan("beta", 0, true);
  const cases: [string, () => unknown, RegExp][] = [
    ["a move runs", () => plan("gamma", 0, true, running), /tenant "beta" to shard 0 is running/],
    ["an existing tenant", () => plan("acme", 0, true), /exists \(shard 1\)/],
    ["an unknown tenant", () => plan("zeta", 0, false), /no such tenant/],
    ["no such shard", () => plan("gamma", 3, true), /shard 3 is not one of 0 to 2/],
    ["the same shard", () => plan("acme", 1, false), /on shard 1 already/],
  ];
  for (const [name, run, message] of cases) throws(run, message, name);
  equal(plan("acme", 2, false, { ...running, phase: "done" }).sources[0]?.shard, 1);
  equal(running.sources.map((source) => source.shard).join(","), "1,2", "creating: all others");
  equal(running.epoch, 4);
  const full = Object.fromEntries(Array.from({ length: TENANTS_MAX }, (_, i) => [`t${i}`, 0]));
  throws(
    () =>
      planTenantMove({ ...map, tenants: full }, null, { name: "x", to: 0, isNew: true, wallMs: 0 }),
    /TENANTS_MAX/,
  );
  equal(leastLoadedShard([{ id: 0, keys: 5 }, { id: 1, keys: 2 }, { id: 2, keys: 2 }]), 1);
});
