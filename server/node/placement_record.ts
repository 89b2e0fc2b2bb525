/**
 * The placement record: which nodes hold a replica (voter or learner) of each shard, as the
 * rebalance driver last saw the shards' Raft configurations, kept by shard 0 as the meta
 * record `placement`. Every node routes by it (cluster_router.ts) once replicas moved away from
 * the static placement of placement.ts; the leader hints of `not_leader` answers correct any
 * staleness. Shards the record does not list are placed statically.
 */
import { AspenError } from "../../shard/mod.ts";
import { REBALANCE_SHARDS_MAX } from "./rebalancer.ts";

/** The name of the meta record in shard 0. */
export const PLACEMENT_META = "placement";
/** The most replicas one shard's entry may list. */
export const PLACEMENT_REPLICAS_MAX = 16;

/** Shard id to the nodes holding its replicas (sorted). */
export type PlacementRecord = ReadonlyMap<number, readonly number[]>;

/** Encodes the record (shards in id order). */
export function formatPlacement(record: PlacementRecord): string {
  const shards = [...record.entries()].sort((a, b) => a[0] - b[0])
    .map(([shard, nodes]) => [shard, [...nodes].sort((a, b) => a - b)]);
  return JSON.stringify({ shards });
}

/**
 * Decodes and checks the record.
 *
 * @throws {AspenError} `storage_corrupt` for a value that is not a valid record.
 */
export function parsePlacement(text: string): PlacementRecord {
  const corrupt = (why: string) =>
    new AspenError("storage_corrupt", `Cannot read the placement record: ${why}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt("not JSON");
  }
  const shards = (value as { shards?: unknown } | null)?.shards;
  if (!Array.isArray(shards) || shards.length > REBALANCE_SHARDS_MAX) {
    throw corrupt("no shards list");
  }
  const record = new Map<number, readonly number[]>();
  for (const item of shards as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2) throw corrupt("an entry is not [shard, nodes]");
    const [shard, nodes] = item as [unknown, unknown];
    if (!isId(shard, 0)) throw corrupt(`bad shard id ${JSON.stringify(shard)}`);
    if (!Array.isArray(nodes) || nodes.length > PLACEMENT_REPLICAS_MAX) {
      throw corrupt(`shard ${shard} has no valid nodes list`);
    }
    if (!nodes.every((node) => isId(node, 1))) throw corrupt(`shard ${shard} lists a bad node`);
    record.set(shard as number, nodes as number[]);
  }
  return record;
}

function isId(value: unknown, min: number): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min;
}
