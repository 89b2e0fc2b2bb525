/**
 * The tenant routes (issue 14): `POST /v1/tenants` creates a tenant (201 once it is in the
 * map, 202 while the move that creates it still runs), `GET /v1/tenants` lists them with their
 * shard, keys and bytes, and `POST /v1/tenants/{name}/move` starts a tenant move (202; its
 * progress in `GET /v1/shards/moves`, like `POST /v1/shards`). Changes need a root token.
 * Bodies and names are checked here and never reach the node when bad.
 */
import type { Hono } from "hono";
import type { TenantMoveResponse, TenantsResponse } from "../../api/mod.ts";
import { AspenError, validateTenantName } from "../../shard/mod.ts";
import type { createRequestAuth } from "./auth_middleware.ts";

/** What the tenant routes need from the node. */
export interface TenantRoutesOptions {
  create(request: { name: string; to: number | null }): Promise<{
    answer: TenantMoveResponse;
    isDone: boolean;
  }>;
  move(request: { name: string; to: number; isNew: false }): Promise<TenantMoveResponse>;
  list(): Promise<TenantsResponse>;
}

/** Adds the tenant routes to `app`. */
export function addTenantRoutes(
  app: Hono,
  tenants: TenantRoutesOptions,
  auth: ReturnType<typeof createRequestAuth>,
): void {
  app.post("/v1/tenants", async (c) => {
    auth.requireRoot(c, "create a tenant");
    const request = parseCreateTenant(await c.req.json().catch(() => undefined));
    const { answer, isDone } = await tenants.create(request);
    return c.json(answer, isDone ? 201 : 202);
  });
  app.get("/v1/tenants", async (c) => c.json(await tenants.list()));
  app.post("/v1/tenants/:name/move", async (c) => {
    auth.requireRoot(c, "move a tenant");
    const name = c.req.param("name");
    validateTenantName(name, "move a tenant");
    const to = parseMoveTenant(await c.req.json().catch(() => undefined));
    return c.json(await tenants.move({ name, to, isNew: false }), 202);
  });
}

/**
 * The body of `POST /v1/tenants`: `{"name": "acme", "shard"?: S}`.
 *
 * @throws {AspenError} `bad_request` naming the problem.
 */
export function parseCreateTenant(body: unknown): { name: string; to: number | null } {
  const fields = objectOf(body, "create a tenant", '{"name": "NAME", "shard"?: S}');
  const { name, shard, ...rest } = fields;
  unknownField(rest, "create a tenant");
  validateTenantName(name, "create a tenant");
  if (shard === undefined) return { name, to: null };
  return { name, to: shardOf(shard, "create a tenant", "shard") };
}

/**
 * The body of `POST /v1/tenants/{name}/move`: `{"to": S}`.
 *
 * @throws {AspenError} `bad_request` naming the problem.
 */
export function parseMoveTenant(body: unknown): number {
  const { to, ...rest } = objectOf(body, "move a tenant", '{"to": S}');
  unknownField(rest, "move a tenant");
  if (to === undefined) {
    throw new AspenError("bad_request", 'Cannot move a tenant: "to" (the new shard) is missing');
  }
  return shardOf(to, "move a tenant", "to");
}

function objectOf(body: unknown, action: string, form: string): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new AspenError("bad_request", `Cannot ${action}: the body must be ${form}`);
  }
  return body as Record<string, unknown>;
}

function unknownField(rest: Record<string, unknown>, action: string): void {
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    throw new AspenError("bad_request", `Cannot ${action}: unknown field "${extra[0]}"`);
  }
}

function shardOf(value: unknown, action: string, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: "${field}" must be a shard id (got ${JSON.stringify(value)})`,
      { field },
    );
  }
  return value;
}
