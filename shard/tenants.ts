/**
 * Tenant placement (issue 14): the keys under a tenant's prefix `<name>/` live on the tenant's
 * shard instead of where the jump hash puts them.
 *
 * A placement is the shard count plus the tenants (name -> shard). A key belongs to a tenant
 * when the text before its first '/' is a tenant's name: tenant names hold no '/', so at most
 * one tenant claims a key (no two prefixes overlap), and the lookup is one map read. A name that
 * starts another name ("acme" and "acme-eu") is fine: their prefixes "acme/" and "acme-eu/"
 * differ at the '/'. The key "acme" itself (no '/') is placed by hash.
 */
import { assert } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { shardForKey } from "./router.ts";

/** Tenant name -> shard. */
export type TenantShards = Readonly<Record<string, number>>;

/** The most tenants a cluster may have. */
export const TENANTS_MAX = 1_000;
/** The longest tenant name, in characters. */
export const TENANT_NAME_LENGTH_MAX = 64;
/** What a tenant name may hold: letters, digits, '.', '_' and '-' (never '/'). */
const TENANT_NAME_PATTERN = /^[A-Za-z0-9._-]+$/;

/**
 * The shard of `key` among `count` shards with `tenants` placed: the tenant's shard for a key
 * under a tenant's prefix, else the jump hash.
 */
export function placeKey(key: string, count: number, tenants?: TenantShards): number {
  if (tenants !== undefined) {
    const slash = key.indexOf("/");
    if (slash > 0) {
      const name = key.slice(0, slash);
      if (Object.hasOwn(tenants, name)) {
        const shard = tenants[name]!;
        assert(Number.isSafeInteger(shard) && shard >= 0, "placeKey: a tenant's shard is an id");
        assert(shard < count, "placeKey: a tenant's shard is below the count");
        return shard;
      }
    }
  }
  return shardForKey(key, count);
}

/** The tenant whose prefix holds `key` (null: none), among `tenants`. */
export function tenantOfKey(key: string, tenants: TenantShards): string | null {
  const slash = key.indexOf("/");
  if (slash <= 0) return null;
  const name = key.slice(0, slash);
  return Object.hasOwn(tenants, name) ? name : null;
}

/**
 * Checks a tenant name.
 *
 * @throws {AspenError} `bad_request` naming the problem.
 */
export function validateTenantName(name: unknown, action: string): asserts name is string {
  if (typeof name !== "string" || name.length === 0) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: the tenant name must be a non-empty string`,
    );
  }
  if (name.length > TENANT_NAME_LENGTH_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: the tenant name is ${name.length} characters but the limit is ` +
        `${TENANT_NAME_LENGTH_MAX} (TENANT_NAME_LENGTH_MAX)`,
    );
  }
  if (!TENANT_NAME_PATTERN.test(name)) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: tenant name "${name}" may hold only letters, digits, '.', '_' and ` +
        "'-' (a '/' would let one tenant's prefix overlap another's)",
    );
  }
  if (/^\.+$/.test(name)) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: tenant name "${name}" is only dots, which a URL path cannot carry`,
    );
  }
}

/**
 * Checks a tenant map read from a record or a message: at most TENANTS_MAX valid names, each
 * on a shard below `count`.
 *
 * @throws {AspenError} `bad_request` naming the problem.
 */
export function validateTenantShards(tenants: unknown, count: number): TenantShards {
  if (typeof tenants !== "object" || tenants === null || Array.isArray(tenants)) {
    throw new AspenError("bad_request", "Cannot read tenants: not an object of name -> shard");
  }
  const entries = Object.entries(tenants as Record<string, unknown>);
  if (entries.length > TENANTS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot read tenants: ${entries.length} tenants but the limit is ${TENANTS_MAX} ` +
        "(TENANTS_MAX)",
    );
  }
  for (const [name, shard] of entries) {
    validateTenantName(name, "read tenants");
    if (typeof shard !== "number" || !Number.isSafeInteger(shard) || shard < 0 || shard >= count) {
      throw new AspenError(
        "bad_request",
        `Cannot read tenants: tenant "${name}" is on shard ${String(shard)}, not one of 0 to ` +
          `${count - 1}`,
      );
    }
  }
  return tenants as TenantShards;
}

/** Whether two tenant maps place every tenant alike (absent = none). */
export function sameTenants(left?: TenantShards, right?: TenantShards): boolean {
  const a = Object.entries(left ?? {});
  const b = right ?? {};
  if (a.length !== Object.keys(b).length) return false;
  return a.every(([name, shard]) => Object.hasOwn(b, name) && b[name] === shard);
}

/** The tenants' JSON for the store's SQL placement function ("" when there are none). */
export function tenantsText(tenants?: TenantShards): string {
  if (tenants === undefined || Object.keys(tenants).length === 0) return "";
  const sorted = Object.keys(tenants).sort().map((name) => [name, tenants[name]]);
  return JSON.stringify(Object.fromEntries(sorted));
}
