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
        const replica = { status: () => ({ term: 5 }) };
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
