/**
 * The HTTP API as one Hono app: authentication, routes, and the single error handler that maps
 * every failure to a status and a JSON body (STYLE §7). Tests call it in process with
 * `app.request()`; the node serves it with `Deno.serve`.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type {
  AddShardsResponse,
  ApiErrorBody,
  ClusterStatus,
  HealthResponse,
  JoinResponse,
  MemberState,
  RemoveNodeResponse,
  ShardMoveStatus,
  ShardSizesResponse,
  TransferLeaderResponse,
} from "../../api/mod.ts";
import { AssertionError } from "../../raft/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import { NODE_ID_MAX } from "../config.ts";
import type { KvService, TokenRegistry } from "../node/mod.ts";
import { createRequestAuth } from "./auth_middleware.ts";
import { errorResponse, internalErrorResponse } from "./errors.ts";
import { limitBody, readJsonObject } from "./body.ts";
import { addKvRoutes } from "./kv_routes.ts";
import { addTokenRoutes } from "./token_routes.ts";
import { addTenantRoutes, type TenantRoutesOptions } from "./tenant_routes.ts";

/** What the app needs from the node. */
export interface AppOptions {
  readonly nodeId: number;
  readonly service: KvService;
  /** The node's client tokens (it checks bearer tokens); null means auth is off. */
  readonly tokens: Pick<TokenRegistry, "verify" | "create" | "list" | "revoke"> | null;
  readonly logger: Logger;
  /** `/v1/cluster/status`. */
  readonly status: () => Promise<ClusterStatus>;
  /** `POST /v1/shards/{id}/transfer-leader`. */
  readonly transferLeader: (shard: number, to: number) => Promise<TransferLeaderResponse>;
  /** `POST /v1/cluster/nodes/{id}/remove` and `/replace`; absent: 404. */
  readonly members?: {
    remove(node: number, mode: "remove" | "replace"): Promise<RemoveNodeResponse>;
    /** `POST /v1/cluster/join` with the body as it came (the node checks it). */
    join(body: unknown): Promise<JoinResponse>;
    /**
     * `POST /v1/cluster/nodes/{id}/standing`, asked by a starting node and proven with the
     * cluster secret instead of a token (server/node/standing.ts checks the body).
     */
    standing?(
      node: number,
      body: Readonly<Record<string, unknown>>,
    ): Promise<{ node: number; state: MemberState | null; proof: string }>;
  };
  /** `POST /v1/shards`, `GET /v1/shards/moves`, `GET /v1/shards`; absent: 404. */
  readonly shardMoves?: {
    add(request: { count: number; dryRun: boolean }): Promise<AddShardsResponse>;
    move(): Promise<ShardMoveStatus | null>;
    sizes(): Promise<ShardSizesResponse>;
  };
  /** `POST /v1/tenants`, `GET /v1/tenants`, `POST /v1/tenants/{name}/move`; absent: 404. */
  readonly tenants?: TenantRoutesOptions;
  /** `/metrics` in Prometheus text. */
  readonly metrics: () => Promise<string>;
  /** Records the latency of one request, by route group. */
  readonly observe?: (route: string, seconds: number) => void;
  /** Monotonic milliseconds, for latency. */
  readonly nowMs?: () => number;
  /** Extra routes (watch, console) added after the API routes. */
  readonly extend?: (app: Hono) => void;
  /**
   * Called with an assertion failure (a bug) that a request ran into, after it was logged; by
   * default it ends the process (STYLE §6: a node restarts from durable state, it never
   * answers a bug with a 500 and carries on). Tests record it instead.
   */
  readonly onBug?: (error: AssertionError) => void;
}

/** Builds the API app. */
export function createApp(options: AppOptions): Hono {
  const app = new Hono();
  let requestCounter = 0;
  app.onError((error, c) => {
    if (error instanceof AspenError) {
      const { status, body, headers } = errorResponse(error);
      return c.json(body, status as 400, headers);
    }
    // bearer-auth's refusals: their response already holds our JSON error body.
    if (error instanceof HTTPException) return error.getResponse();
    const requestId = `${options.nodeId}-${++requestCounter}`;
    options.logger.error("Request failed", {
      requestId,
      method: c.req.method,
      path: c.req.path,
      error: error instanceof Error ? error.stack ?? error.message : String(error),
    });
    const { status, body } = internalErrorResponse(requestId);
    if (error instanceof AssertionError) (options.onBug ?? crashOnBug)(error);
    return c.json(body, status as 500);
  });
  app.notFound((c) => {
    const body: ApiErrorBody = {
      error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` },
    };
    return c.json(body, 404);
  });
  if (options.observe !== undefined && options.nowMs !== undefined) {
    const { observe, nowMs } = options;
    app.use("*", async function measure(c, next) {
      const started = nowMs();
      await next();
      observe(routeGroup(c.req.method, c.req.path), (nowMs() - started) / 1000);
    });
  }
  addOpenRoutes(app, options);
  const auth = createRequestAuth(options.tokens);
  app.use("/v1/*", ...auth.middleware);
  app.use("/metrics", ...auth.middleware);
  app.use("/v1/*", limitBody());
  addKvRoutes(app, options.service);
  addTokenRoutes(app, { tokens: options.tokens, auth });
  app.post("/v1/shards/:id/transfer-leader", async (c) => {
    const shard = Number(c.req.param("id"));
    if (!Number.isSafeInteger(shard) || shard < 0 || shard >= options.service.shardCount) {
      throw new AspenError(
        "bad_request",
        `Cannot transfer leadership: no shard "${c.req.param("id")}"`,
      );
    }
    const body = await c.req.json().catch((error: unknown) => {
      throw new AspenError("bad_request", "Cannot transfer leadership: the body is not JSON", {}, {
        cause: error,
      });
    }) as { to?: unknown };
    if (typeof body?.to !== "number" || !Number.isSafeInteger(body.to) || body.to < 1) {
      throw new AspenError("bad_request", 'Cannot transfer leadership: "to" must be a node id');
    }
    return c.json(await options.transferLeader(shard, body.to));
  });
  addClusterRoutes(app, options, auth);
  app.get("/metrics", async (c) => {
    return c.text(await options.metrics(), 200, { "content-type": "text/plain; version=0.0.4" });
  });
  options.extend?.(app);
  return app;
}

/**
 * `GET /v1/cluster/status`, and the shard moves' `POST /v1/shards`, `GET /v1/shards/moves`
 * and `GET /v1/shards` when the node has them.
 */
function addClusterRoutes(
  app: Hono,
  options: AppOptions,
  auth: ReturnType<typeof createRequestAuth>,
): void {
  app.get("/v1/cluster/status", async (c) => c.json(await options.status()));
  if (options.tenants !== undefined) addTenantRoutes(app, options.tenants, auth);
  const members = options.members;
  if (members !== undefined) {
    app.post("/v1/cluster/join", async (c) => {
      auth.requireRoot(c, "admit a node");
      const body = await c.req.json().catch((error: unknown) => {
        throw new AspenError("bad_request", "Cannot join: the body is not JSON", {}, {
          cause: error,
        });
      });
      return c.json(await members.join(body));
    });
    for (const mode of ["remove", "replace"] as const) {
      app.post(`/v1/cluster/nodes/:id/${mode}`, async (c) => {
        auth.requireRoot(c, `${mode} a node`);
        const node = parseNodeId(c.req.param("id"), mode);
        return c.json(await members.remove(node, mode), 202);
      });
    }
  }
  const moves = options.shardMoves;
  if (moves === undefined) return;
  app.post("/v1/shards", async (c) => {
    auth.requireRoot(c, "add shards");
    const request = parseAddShards(await c.req.json().catch(() => undefined));
    const answer = await moves.add(request);
    return c.json(answer, answer.dryRun ? 200 : 202);
  });
  app.get("/v1/shards/moves", async (c) => c.json({ move: await moves.move() }));
  app.get("/v1/shards", async (c) => c.json(await moves.sizes()));
}

/**
 * The routes registered before the token check: `GET /v1/health`, and
 * `POST /v1/cluster/nodes/{id}/standing`, whose asker (a starting node) holds no token: its
 * body proves the cluster secret instead (server/node/standing.ts).
 */
function addOpenRoutes(app: Hono, options: AppOptions): void {
  app.get(
    "/v1/health",
    (c) => c.json({ status: "ok", node: options.nodeId } satisfies HealthResponse),
  );
  const standing = options.members?.standing;
  if (standing === undefined) return;
  const path = "/v1/cluster/nodes/:id/standing";
  app.use(path, limitBody());
  app.post(path, async (c) => {
    const node = parseNodeId(c.req.param("id"), "answer the standing of");
    const action = `answer the standing of node ${node}`;
    const body = await readJsonObject(c.req.raw, action, ["nonce", "proof"]);
    return c.json(await standing(node, body));
  });
}

/**
 * The `{id}` of a node route.
 *
 * @throws {AspenError} `bad_request` naming the value.
 */
export function parseNodeId(text: string, action: string): number {
  const id = /^[1-9][0-9]{0,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id) || id > NODE_ID_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action} node "${text}": a node id is an integer from 1 to ${NODE_ID_MAX}`,
    );
  }
  return id;
}

/**
 * The body of `POST /v1/shards`: `{"count": N, "dryRun"?: boolean}`, N from 1.
 *
 * @throws {AspenError} `bad_request` naming the problem.
 */
export function parseAddShards(body: unknown): { count: number; dryRun: boolean } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new AspenError("bad_request", 'Cannot add shards: the body must be {"count": N}');
  }
  const { count, dryRun, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    throw new AspenError("bad_request", `Cannot add shards: unknown field "${extra[0]}"`);
  }
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 1) {
    throw new AspenError(
      "bad_request",
      `Cannot add shards: "count" must be an integer of at least 1 (got ${JSON.stringify(count)})`,
    );
  }
  if (dryRun !== undefined && typeof dryRun !== "boolean") {
    throw new AspenError("bad_request", 'Cannot add shards: "dryRun" must be a boolean');
  }
  return { count, dryRun: dryRun === true };
}

const KV_GROUPS = new Map(
  ["GET", "PUT", "DELETE"].map((method) => [method, `kv_${method.toLowerCase()}`]),
);

/** A small, bounded set of route names for metrics labels (never raw paths). */
export function routeGroup(method: string, path: string): string {
  // The key routes first, without splitting the path: they are nearly every request.
  if (path.startsWith("/v1/kv/")) return KV_GROUPS.get(method) ?? `kv_${method.toLowerCase()}`;
  if (path === "/v1/kv") return `range_${method.toLowerCase()}`;
  const area = path.split("/")[2] ?? "";
  if (["txn", "leases", "watch", "cluster", "shards", "tenants", "health", "auth"].includes(area)) {
    return `${area}_${method.toLowerCase()}`;
  }
  return path === "/metrics" ? "metrics" : "other";
}

/** Ends the process with the assertion failure, outside Hono's and Deno.serve's handlers. */
function crashOnBug(error: AssertionError): void {
  queueMicrotask(() => {
    throw error;
  });
}
