/**
 * Tenants (issue 14): the plan of a tenant move, which creates a tenant or moves one to
 * another shard with the fenced copy of a shard move (shard_move.ts), under one record and one
 * epoch, so that every node's routing and every shard's ownership change together.
 *
 * Creating a tenant is a move too: keys under its prefix that the jump hash placed on other
 * shards move to the tenant's shard (every other shard is a source). Until the flip the tenant
 * is not in the map; `POST /v1/tenants` waits for the move (TENANT_CREATE_WAIT_MS).
 */
import type { TenantResponse } from "../../api/mod.ts";
import { AspenError, TENANTS_MAX, type TenantShards } from "../../shard/mod.ts";
import type { ShardMap } from "./shard_map.ts";
import type { ShardMove } from "./shard_move.ts";

/** How long `POST /v1/tenants` waits for the creating move before it answers 202. */
export const TENANT_CREATE_WAIT_MS = 30_000;
/** How often it looks at the move meanwhile. */
export const TENANT_CREATE_POLL_MS = 100;

/** What a tenant move is asked to do. */
export interface TenantMoveRequest {
  readonly name: string;
  /** The tenant's shard after the move. */
  readonly to: number;
  /** True to create the tenant (it must not exist), false to move it (it must exist). */
  readonly isNew: boolean;
  readonly wallMs: number;
}

/**
 * The record of a tenant move, checked against the map and the move in progress.
 *
 * @throws {AspenError} `move_in_progress`, `tenant_exists`, `tenant_not_found`, `bad_request`
 * (a shard out of range, the tenant already there), `limit_exceeded` (TENANTS_MAX).
 */
export function planTenantMove(
  map: ShardMap,
  current: ShardMove | null,
  request: TenantMoveRequest,
): ShardMove {
  const { name, to, isNew } = request;
  const action = isNew ? `create tenant "${name}"` : `move tenant "${name}"`;
  if (current !== null && current.phase !== "done") {
    const what = current.tenant === undefined
      ? `a move from ${current.fromCount} to ${current.toCount} shards`
      : `a move of tenant "${current.tenant.name}" to shard ${current.tenant.to}`;
    throw new AspenError(
      "move_in_progress",
      `Cannot ${action}: ${what} is running (phase ${current.phase}); wait for it ` +
        "(GET /v1/shards/moves)",
      { fromCount: current.fromCount, toCount: current.toCount, phase: current.phase },
    );
  }
  const tenants: TenantShards = map.tenants ?? {};
  const isKnown = Object.hasOwn(tenants, name);
  if (isNew && isKnown) {
    throw new AspenError("tenant_exists", `Cannot ${action}: it exists (shard ${tenants[name]})`, {
      tenant: name,
      shard: tenants[name]!,
    });
  }
  if (!isNew && !isKnown) {
    throw new AspenError("tenant_not_found", `Cannot ${action}: no such tenant`, { tenant: name });
  }
  if (!Number.isSafeInteger(to) || to < 0 || to >= map.numShards) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: shard ${to} is not one of 0 to ${map.numShards - 1}`,
      { numShards: map.numShards },
    );
  }
  if (isNew && Object.keys(tenants).length >= TENANTS_MAX) {
    throw new AspenError(
      "limit_exceeded",
      `Cannot ${action}: the cluster has ${TENANTS_MAX} tenants, the limit (TENANTS_MAX)`,
      { limit: TENANTS_MAX },
    );
  }
  const from = isKnown ? tenants[name]! : null;
  if (from === to) {
    throw new AspenError("bad_request", `Cannot ${action}: it is on shard ${to} already`);
  }
  const sources = from !== null
    ? [from]
    : Array.from({ length: map.numShards }, (_, shard) => shard).filter((shard) => shard !== to);
  return {
    fromCount: map.numShards,
    toCount: map.numShards,
    phase: "copy",
    startedAtMs: request.wallMs,
    updatedAtMs: request.wallMs,
    sources: sources.map((shard) => ({
      shard,
      keysTotal: 0,
      bytesTotal: 0,
      keysCopied: 0,
      bytesCopied: 0,
    })),
    epoch: map.epoch,
    fromTenants: tenants,
    toTenants: { ...tenants, [name]: to },
    tenant: { name, to, isNew },
  };
}

/**
 * The shard a new tenant goes to when none is asked for: the one with the fewest keys, the
 * lowest id among equals.
 */
export function leastLoadedShard(shards: readonly { id: number; keys: number }[]): number {
  let best = shards[0];
  for (const shard of shards) {
    if (best === undefined || shard.keys < best.keys) best = shard;
  }
  if (best === undefined) throw new AspenError("shard_unavailable", "No shard to place on");
  return best.id;
}

/** The tenants of `map` with their sizes, by name. */
export function tenantList(
  map: ShardMap,
  sizes: ReadonlyMap<string, { keys: number; bytes: number }>,
): TenantResponse[] {
  return Object.entries(map.tenants ?? {})
    .sort(([left], [right]) => left < right ? -1 : left > right ? 1 : 0)
    .map(([name, shard]) => ({
      name,
      shard,
      keys: sizes.get(name)?.keys ?? 0,
      bytes: sizes.get(name)?.bytes ?? 0,
    }));
}
