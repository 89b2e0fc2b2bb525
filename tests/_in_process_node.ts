/**
 * A real node started in the test's own process (real SQLite files, real Raft, a real QUIC
 * listener) with its Hono app, for tests that call the API with `app.request()` or look inside
 * the node; tests/_cluster.ts starts separate node processes instead.
 */
import type { Hono } from "hono";
import { createCredentials, formatCredentials } from "../server/auth.ts";
import { loadConfig } from "../server/config.ts";
import { Logger } from "../server/log.ts";
import { type AspenNode, startNode } from "../server/node/mod.ts";
import { createNodeApp } from "../server/serve.ts";
import { createClusterCa } from "../transport/mod.ts";

/** A started in-process node, its app, its tokens and its data folder. */
export interface InProcessNode {
  readonly node: AspenNode;
  readonly app: Hono;
  readonly root: string;
  readonly read: string;
  readonly dir: string;
  /** Stops the node; removes its folder unless the caller gave it (`dir`). */
  close(): Promise<void>;
}

/** How to start an {@linkcode InProcessNode}. */
export interface InProcessNodeOptions {
  readonly shards: number;
  /** Extra config flags (`peers`, ...). */
  readonly flags?: Readonly<Record<string, string>>;
  /** A folder of the caller's (kept at close); else a new temporary one, removed at close. */
  readonly dir?: string;
  /** The tokens of the cluster.json already in `dir` (a restart); else new credentials. */
  readonly restart?: { readonly root: string; readonly read: string };
  readonly isFaultInjectionEnabled?: boolean;
  /** Wait until every shard has a leader (default true). */
  readonly waitForLeaders?: boolean;
  /** Applied entries between a replica's snapshots (the node's test flag); default theirs. */
  readonly snapshotIntervalEntries?: number;
}

const random = (count: number) => crypto.getRandomValues(new Uint8Array(count));

/** Starts node 1 in this process. */
export async function startInProcessNode(options: InProcessNodeOptions): Promise<InProcessNode> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "aspen-in-process-" });
  let tokens = options.restart;
  if (tokens === undefined) {
    const created = await createCredentials(random, createClusterCa);
    await Deno.writeTextFile(`${dir}/cluster.json`, formatCredentials(created.credentials));
    tokens = { root: created.rootToken, read: created.readToken };
  }
  const config = loadConfig({
    flags: {
      "data-dir": dir,
      "peer-listen": "127.0.0.1:0",
      "http-listen": "127.0.0.1:0",
      "sharding-enabled": "true",
      "sharding-num-shards": String(options.shards),
      ...options.flags,
    },
    env: {},
    file: null,
  });
  const runtime = {
    logger: new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now }),
    nowMs: () => performance.now(),
    wallMs: Date.now,
    randomBytes: random,
    version: "test",
    seed: 7,
    isFaultInjectionEnabled: options.isFaultInjectionEnabled ?? false,
    ...(options.snapshotIntervalEntries === undefined
      ? {}
      : { snapshotIntervalEntries: options.snapshotIntervalEntries }),
  };
  const node = await startNode(config, runtime);
  const started: InProcessNode = {
    node,
    app: createNodeApp(node, runtime),
    root: tokens.root,
    read: tokens.read,
    dir,
    close: async () => {
      await node.close();
      if (options.dir === undefined) await Deno.remove(dir, { recursive: true });
    },
  };
  if (options.waitForLeaders ?? true) await waitForInProcessLeaders(started);
  return started;
}

/**
 * Waits until every shard of the node has a leader.
 *
 * @throws {Error} after 20 s without.
 */
export async function waitForInProcessLeaders(target: InProcessNode): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const response = await target.app.request("/v1/cluster/status", {
      headers: { authorization: `Bearer ${target.root}` },
    });
    const status = await response.json() as { shards?: { leader: number | null }[] };
    if (status.shards?.every((shard) => shard.leader !== null) === true) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("Cannot use the in-process node: a shard has no leader after 20 s");
}

/**
 * Calls the node's API in process: `body` is sent as JSON (a string as it is), with the root
 * token unless `token` says otherwise (null: none). Returns the status and the parsed body.
 */
export async function callInProcess(
  target: InProcessNode,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = target.root,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await target.app.request(path, {
    method,
    headers,
    body: body === undefined ? null : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}
