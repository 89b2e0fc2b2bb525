/**
 * ReplicaHost and the hosted-shards file: the list round-trips and a corrupt one is refused,
 * host() opens a replica once and records it, drop() refuses a replica that saw a later term
 * than the leader whose view lacks it, else closes it, deletes its folder and records that,
 * and shardDirsOf() finds the replica folders a crash may have left off the list.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import type { LocalShard } from "./local_shard.ts";
import {
  HOSTED_SHARDS_FILE,
  readHostedShards,
  ReplicaHost,
  shardDirsOf,
  writeHostedShards,
} from "./replica_host.ts";

const quiet = new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 });

Deno.test("the hosted-shards file round-trips; a corrupt one is storage_corrupt", async () => {
  const dir = await Deno.makeTempDir();
  try {
    equal(await readHostedShards(dir, 16), null);
    await writeHostedShards(dir, [3, 1, 2]);
    deepEqual(await readHostedShards(dir, 16), [1, 2, 3]);
    for (const text of ["{", '{"shards":[-1]}', '{"shards":[99]}', '{"other":[]}']) {
      await Deno.writeTextFile(`${dir}/${HOSTED_SHARDS_FILE}`, text);
      await rejects(
        readHostedShards(dir, 16),
        (error) => error instanceof AspenError && error.code === "storage_corrupt",
        text,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReplicaHost hosts once, drops with its files, and keeps the list", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const shards = new Map<number, LocalShard>();
    const closed: number[] = [];
    let opens = 0;
    const host = new ReplicaHost({
      shards,
      dataDir: dir,
      shardsMax: 16,
      open: async (shard) => {
        opens++;
        await Deno.mkdir(`${dir}/shard-${shard}`);
        const replica = { status: () => ({ term: 5, lastIndex: 9, confState: { voters: [1] } }) };
        return { shard, replica, close: () => closed.push(shard) } as unknown as LocalShard;
      },
      logger: quiet,
    });
    deepEqual(await host.host(2), { shard: 2, isNew: true });
    deepEqual(await host.host(2), { shard: 2, isNew: false });
    equal(opens, 1);
    deepEqual(await readHostedShards(dir, 16), [2]);
    deepEqual(await shardDirsOf(dir, 16), [2]);
    await rejects(
      host.drop(2, 4),
      (error) => error instanceof AspenError && error.code === "conflict",
      "a replica that saw a later term than the view's leader stays",
    );
    deepEqual(await readHostedShards(dir, 16), [2]);
    deepEqual(await host.drop(2, 5), { shard: 2, isDropped: true });
    deepEqual(closed, [2]);
    deepEqual(await readHostedShards(dir, 16), []);
    deepEqual(await shardDirsOf(dir, 16), []);
    deepEqual(await host.drop(2, 5), { shard: 2, isDropped: false });
    await rejects(host.host(16), (error) => error instanceof AspenError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReplicaHost refuses to re-host a replica for a view older than its drop", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const floors: number[] = [];
    const make = () =>
      new ReplicaHost({
        shards: new Map<number, LocalShard>(),
        dataDir: dir,
        shardsMax: 16,
        open: async (shard, _voters, termFloor) => {
          floors.push(termFloor ?? 0);
          await Deno.mkdir(`${dir}/shard-${shard}`, { recursive: true });
          const replica = { status: () => ({ term: 3, lastIndex: 9, confState: { voters: [1] } }) };
          return { shard, replica, close: () => {} } as unknown as LocalShard;
        },
        logger: quiet,
      });
    const host = make();
    deepEqual(await host.host(4, 3), { shard: 4, isNew: true });
    // The leader of term 7 no longer lists the replica: dropped, and the term remembered.
    deepEqual(await host.drop(4, 7), { shard: 4, isDropped: true });
    // A later restart reads the term back from the file.
    const restarted = make();
    await restarted.saveIfChanged();
    await rejects(
      restarted.host(4, 5),
      (error) => error instanceof AspenError && error.code === "conflict",
      "a deposed leader of term 5 that still lists the replica cannot bring it back empty",
    );
    equal(await shardDirsOf(dir, 16).then((shards) => shards.length), 0);
    deepEqual(await restarted.host(4, 9), { shard: 4, isNew: true });
    deepEqual(floors, [3, 9], "a new replica starts at the later of the view's and the drop's");
    deepEqual(await restarted.host(5), { shard: 5, isNew: true }, "an older driver: no term");
    const file = JSON.parse(await Deno.readTextFile(`${dir}/${HOSTED_SHARDS_FILE}`));
    deepEqual(file, { shards: [4, 5], dropped: { "4": 7 } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ReplicaHost drops an empty replica that saw a later term", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const host = new ReplicaHost({
      shards: new Map<number, LocalShard>(),
      dataDir: dir,
      shardsMax: 16,
      open: async (shard) => {
        await Deno.mkdir(`${dir}/shard-${shard}`, { recursive: true });
        // Never filled by a leader: a vote request of term 20 is all it saw.
        const status = () => ({ term: 20, lastIndex: 0, confState: { voters: [] } });
        return { shard, replica: { status }, close: () => {} } as unknown as LocalShard;
      },
      logger: quiet,
    });
    await host.host(6, 12);
    deepEqual(await host.drop(6, 19), { shard: 6, isDropped: true });
    await rejects(host.host(6, 19), (error) => error instanceof AspenError, "dropped at 20");
    const file = JSON.parse(await Deno.readTextFile(`${dir}/${HOSTED_SHARDS_FILE}`));
    deepEqual(file.dropped, { "6": 20 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
