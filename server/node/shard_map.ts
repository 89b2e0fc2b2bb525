/**
 * The shard map: which shards exist and how they are placed, as one record replicated by shard
 * 0 (a `meta` entry named `shardMap`), so that every node agrees on it and a later resharding
 * can change it under a new epoch.
 *
 * The configuration gives the first map: the leader of shard 0 writes epoch 1 when the record
 * is missing, and every node checks its own configuration against the record and logs an
 * error when they disagree (a node started with another member list). A shard move
 * (shard_move.ts) writes the next epoch with more shards; the configured count is only the
 * initial one then.
 *
 * Every node routes by one {@linkcode ShardMapView}: the newest map it has seen, refreshed
 * from shard 0 every SHARD_MAP_CHECK_MS and at once when a shard answers `wrong_shard`.
 */
import { encodeCommand, type TenantShards } from "../../shard/mod.ts";
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
  /**
   * Tenant name -> shard: keys under `<name>/` live there (shard/tenants.ts). Absent: none.
   * Changed only by a tenant move, under a new epoch like the count.
   */
  readonly tenants?: TenantShards;
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
  /** The view this node routes by: fed the local record, or refreshed over the network. */
  readonly view?: ShardMapView;
  /**
   * Whether to report a record that disagrees with `expected`; false for a node that joined
   * a running cluster (its member list is not the one the record was written with).
   */
  readonly isConfigChecked?: boolean;
}): () => void {
  let isReported = false;
  let isProposing = false;
  const check = () => {
    const shardZero = options.shards.get(0);
    if (shardZero === undefined) {
      options.view?.refresh().catch(() => {});
      return;
    }
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
    options.view?.adopt(current);
    const matches = current.numShards >= options.expected.numShards &&
      current.replicationFactor === options.expected.replicationFactor &&
      current.members.join(",") === options.expected.members.join(",");
    if (!matches && !isReported && options.isConfigChecked !== false) {
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

/** The most often a view reads the record again after `wrong_shard` answers. */
export const SHARD_MAP_REFRESH_MS_MIN = 20;

/**
 * The shard map this node routes by: the newest epoch it has seen. Reads of the record are
 * shared (one at a time) and spaced by SHARD_MAP_REFRESH_MS_MIN.
 */
export class ShardMapView {
  #map: ShardMap;
  readonly #read: () => Promise<ShardMap | null>;
  readonly #nowMs: () => number;
  #reading: Promise<void> | null = null;
  #lastReadMs = -Infinity;

  constructor(options: {
    readonly initial: ShardMap;
    readonly read: () => Promise<ShardMap | null>;
    readonly nowMs: () => number;
  }) {
    this.#map = options.initial;
    this.#read = options.read;
    this.#nowMs = options.nowMs;
  }

  /** The map in force here. */
  get current(): ShardMap {
    return this.#map;
  }

  /** The number of shards keys are routed over. */
  get numShards(): number {
    return this.#map.numShards;
  }

  /** The tenants placed by the map in force (absent: none). */
  get tenants(): TenantShards | undefined {
    return this.#map.tenants;
  }

  /** Takes `map` when it is newer than the one in force. */
  adopt(map: ShardMap | null): void {
    if (map !== null && map.epoch > this.#map.epoch) this.#map = map;
  }

  /** Reads the record from shard 0 (linearizably) and adopts it. */
  refresh(): Promise<void> {
    if (this.#reading !== null) return this.#reading;
    const waitMs = Math.max(0, this.#lastReadMs + SHARD_MAP_REFRESH_MS_MIN - this.#nowMs());
    this.#reading = (async () => {
      try {
        if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
        this.adopt(await this.#read());
      } finally {
        this.#lastReadMs = this.#nowMs();
        this.#reading = null;
      }
    })();
    return this.#reading;
  }
}
