/**
 * @module
 * The HTTP API (Hono): routes, request parsing, authentication and the error mapping.
 *
 * Allowed dependencies: server/node (the KV service), the rest of server/, transport/ (fault
 * injection, peer errors), shard/ and raft/ through their mod.ts, `hono`.
 *
 * @example
 * ```ts
 * import { createApp } from "./mod.ts";
 * declare const options: Parameters<typeof createApp>[0];
 * const app = createApp(options);
 * const response = await app.request("/v1/health");
 * ```
 */
export { type AppOptions, createApp, routeGroup } from "./app.ts";
export {
  addDebugRoutes,
  type DebugRoutesOptions,
  type ReplicaDebugState,
  TEST_FAULTS_FLAG,
} from "./debug_routes.ts";
export { HTTP_BODY_BYTES_MAX } from "./body.ts";
export { errorResponse } from "./errors.ts";
export { addWatchRoute, WATCH_KEEPALIVE_MS } from "./watch_route.ts";
