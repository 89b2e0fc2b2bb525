/**
 * The shard map: which shards exist and how they are placed, as one record replicated by shard
 * 0 (a `meta` entry named `shardMap`), so that every node agrees on it and a later resharding
 * can change it under a new epoch.
 *
 * Today the map is derived from the configuration: the leader of shard 0 writes epoch 1 when
 * the record is missing, and every node checks its own configuration against the record and
 * logs an error when they disagree (a node started with another shard count or member list).
 */
import { encodeCommand } from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import type { LocalShard } from "./local_shard.ts";

/** The name of the meta record. */
export const SHARD_MAP_META = "shardMap";
/** How often a node checks the record. */
export const SHARD_MAP_CHECK_MS = 1_000;

/** The replicated shard map. */
export interface ShardMap {
  readonly epoch: number;
  readonly numShards: number;
  readonly members: readonly number[];
  readonly replicationFactor: number;
}

/** Reads the record from a local replica of shard 0, or null when absent or not hosted. */
export function readShardMap(shardZero: LocalShard | undefined): ShardMap | null {
  const text = shardZero?.stateMachine.getMeta(SHARD_MAP_META) ?? null;
  return text === null ? null : JSON.parse(text) as ShardMap;
}

/**
 * Keeps the record: writes it when this node leads shard 0 and it is missing, and reports a
 * disagreement with this node's configuration once. Returns a function that stops it.
 */
export function maintainShardMap(options: {
  readonly expected: ShardMap;
  readonly shards: ReadonlyMap<number, LocalShard>;
  readonly logger: Logger;
}): () => void {
  let isReported = false;
  let isProposing = false;
  const check = () => {
    const shardZero = options.shards.get(0);
    if (shardZero === undefined) return;
    const current = readShardMap(shardZero);
    if (current === null) {
      if (isProposing || shardZero.replica.status().role !== "leader") return;
      isProposing = true;
      const value = JSON.stringify(options.expected);
      shardZero.replica.propose(encodeCommand({ type: "meta", name: SHARD_MAP_META, value }))
        .catch((error: unknown) => {
          options.logger.warn("Cannot record the shard map yet", {
            reason: error instanceof Error ? error.message : String(error),
          });
        })
        .finally(() => isProposing = false);
      return;
    }
    const matches = current.numShards === options.expected.numShards &&
      current.replicationFactor === options.expected.replicationFactor &&
      current.members.join(",") === options.expected.members.join(",");
    if (!matches && !isReported) {
      isReported = true;
      options.logger.error("This node's configuration disagrees with the cluster's shard map", {
        recorded: JSON.stringify(current),
        configured: JSON.stringify(options.expected),
      });
    }
  };
  const timer = setInterval(check, SHARD_MAP_CHECK_MS);
  return () => clearInterval(timer);
}
