/**
 * Test support: AppOptions for an app whose tests reach no node (a stub service, auth off, a
 * silent logger, status and leadership calls that fail if made). Tests spread it and replace
 * what they exercise.
 */
import { Logger } from "../log.ts";
import type { KvService } from "../node/mod.ts";
import type { AppOptions } from "./app.ts";

/** The options every handler-level test starts from. */
export function stubAppOptions(): AppOptions {
  return {
    nodeId: 1,
    service: {} as KvService,
    tokens: null,
    logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now }),
    status: () => Promise.reject(new Error("the status is not asked for here")),
    transferLeader: () => Promise.reject(new Error("no leader is transferred here")),
    metrics: () => Promise.resolve(""),
  };
}
