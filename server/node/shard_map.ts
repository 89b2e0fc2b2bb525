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
 * from shard 0 when shard 0's meta records change (meta_watch.ts), at least every
 * SHARD_MAP_RECHECK_MS, and at once when a shard answers `wrong_shard`.
 */
import { encodeCommand, type TenantShards } from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import type { LocalShard } from "./local_shard.ts";

/** The name of the meta record. */
export const SHARD_MAP_META = "shardMap";
/** How often a node checks the record while it has not seen one (a new cluster). */
export const SHARD_MAP_CHECK_MS = 1_000;
/**
 * How often a node checks the record once it has one, whatever the meta stamps say: the bound
 * on a new epoch reaching a node that hears no stamp of it and routes no request to a moved
 * key (which would answer `wrong_shard` and make it read at once).
 */
export const SHARD_MAP_RECHECK_MS = 5_000;

/** The handle of {@linkcode maintainShardMap}. */
export interface ShardMapKeeper {
  /**
   * Checks the record now (this node's replica of shard 0, else a linearizable read that starts
   * after this call); resolves true when it was read.
   */
  check(): Promise<boolean>;
  /** Stops the periodic checks. */
  stop(): void;
}

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
 * disagreement with this node's configuration once. Checks every SHARD_MAP_CHECK_MS until the
 * record is there, then every SHARD_MAP_RECHECK_MS and whenever `check()` is called.
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
}): ShardMapKeeper {
  let isReported = false;
  let isProposing = false;
  let isStopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  /** Checks once; returns whether the record was seen. */
  const checkLocal = (shardZero: LocalShard): boolean => {
    const current = readShardMap(shardZero);
    if (current === null) {
      if (isProposing || shardZero.replica.status().role !== "leader") return false;
      isProposing = true;
      const value = JSON.stringify(options.expected);
      shardZero.replica.propose(encodeCommand({ type: "meta", name: SHARD_MAP_META, value }))
        .catch((error: unknown) => {
          options.logger.warn("Cannot record the shard map yet", {
            reason: error instanceof Error ? error.message : String(error),
          });
        })
        .finally(() => isProposing = false);
      return false;
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
    return true;
  };
  const check = async (): Promise<boolean> => {
    const shardZero = options.shards.get(0);
    if (shardZero !== undefined) return checkLocal(shardZero);
    if (options.view === undefined) return true;
    return await options.view.refreshAfterChange().then(() => true, () => false);
  };
  const periodic = async () => {
    timer = null;
    const isSeen = await check();
    if (isStopped) return;
    timer = setTimeout(periodic, isSeen ? SHARD_MAP_RECHECK_MS : SHARD_MAP_CHECK_MS);
  };
  timer = setTimeout(periodic, SHARD_MAP_CHECK_MS);
  return {
    check,
    stop: () => {
      isStopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
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

  /**
   * A read of the record that starts after this call (a read under way may have started
   * before the change that caused this call, so it is let finish first), adopted.
   */
  async refreshAfterChange(): Promise<void> {
    await this.#reading?.catch(() => undefined);
    await this.refresh();
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
