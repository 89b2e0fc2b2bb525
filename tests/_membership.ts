/**
 * Helpers shared by the membership tests on real `aspen node` processes (issue 15): a node
 * started outside the launcher that joins through node 1, writers that record what was
 * acknowledged, polling of the cluster status, and the checks that the acknowledged writes read
 * back and that each shard's replicas converge.
 */
import { equal } from "node:assert/strict";
import { ApiError, AspenClient, type ClusterStatus } from "../api/mod.ts";
import type { LocalCluster } from "../cli/launcher.ts";
import type { ReplicaDebugState } from "../server/http/mod.ts";
import { compareReplicas } from "./chaos/verify.ts";
import { ASPEN_COMMAND } from "./_cluster.ts";

/** The status poll's default deadline. */
export const STATUS_TIMEOUT_MS = 20_000;
/** How long a status or debug-state poll waits between two looks. */
const POLL_INTERVAL_MS = 250;
/** How long a condition poll of {@linkcode waitFor} waits between two looks. */
const CONDITION_INTERVAL_MS = 100;
/** How long a writer pauses after a refused or unknown write. */
const WRITER_BACKOFF_MS = 50;
/** The page size of {@linkcode readAll}. */
const READ_PAGE_KEYS = 5_000;
/** {@linkcode readAll} fails past this many pages. */
const READ_PAGES_MAX = 100;
/** The replicas per shard {@linkcode waitForReplicas} expects (the replication factor). */
const REPLICAS_PER_SHARD = 3;

/** A node process started outside the launcher, joining through node 1. */
export interface JoiningNode {
  readonly id: number;
  readonly url: string;
  /** Its HTTP and peer ports, to start it again on the same ones. */
  readonly ports: { readonly http: number; readonly peer: number };
  /** Settles with whether the process exited with status 0. */
  readonly exited: Promise<boolean>;
  /** Sends `signal` (SIGTERM by default) unless it already exited, and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** How {@linkcode startJoiningNode} starts a node. */
export interface JoiningNodeOptions {
  /** The new node's id; 4 by default. */
  readonly id?: number;
  /** `--sharding-num-shards`. */
  readonly shards: number;
  /** The ports of an earlier process of the same node; new free ports by default. */
  readonly ports?: { readonly http: number; readonly peer: number };
  /**
   * Whether to pass `--join` (true by default): false starts a node that joined before again
   * from its data dir, which needs no `--join`.
   */
  readonly join?: boolean;
}

/**
 * Starts `aspen node` with its data dir `<dir>/node-<id>`, joining through node 1 with the root
 * token; every output line goes to `lines` as `n<id> | <line>`.
 */
export function startJoiningNode(
  cluster: LocalCluster,
  dir: string,
  lines: string[],
  options: JoiningNodeOptions,
): JoiningNode {
  const id = options.id ?? 4;
  const ports = options.ports ?? { http: freePort(), peer: freePort() };
  const join = (options.join ?? true)
    ? [`--join=${cluster.url(1)}`, `--join-token=${cluster.record.rootToken}`]
    : [];
  const [program, ...prefix] = ASPEN_COMMAND;
  const child = new Deno.Command(program!, {
    args: [
      ...prefix,
      "node",
      `--node-id=${id}`,
      `--data-dir=${dir}/node-${id}`,
      `--peer-listen=127.0.0.1:${ports.peer}`,
      `--http-listen=127.0.0.1:${ports.http}`,
      "--sharding-enabled",
      `--sharding-num-shards=${options.shards}`,
      ...join,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const pipe = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    for await (
      const line of stream.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())
    ) {
      lines.push(`n${id} | ${line}`);
    }
  };
  const done = Promise.all([pipe(child.stdout), pipe(child.stderr), child.status]);
  let isStopped = false;
  return {
    id,
    url: `http://127.0.0.1:${ports.http}`,
    ports,
    exited: done.then(([, , status]) => status.success),
    stop: async (signal = "SIGTERM") => {
      if (isStopped) return;
      isStopped = true;
      try {
        child.kill(signal);
      } catch {
        // It already exited (a removed node stops by itself).
      }
      await done;
    },
  };
}

/** Splits a text stream into lines (without their `\n`); a last unterminated line too. */
export function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const part of parts) controller.enqueue(part);
    },
    flush(controller) {
      if (rest !== "") controller.enqueue(rest);
    },
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** POSTs `path` (no body) to `node` with the root token; the status and the JSON body. */
export async function post(
  cluster: LocalCluster,
  node: number,
  path: string,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${cluster.url(node)}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${cluster.record.rootToken}` },
  });
  return { status: response.status, body: await response.json() as unknown };
}

/**
 * Polls `GET /v1/cluster/status` on `node` until `isDone` holds and returns that status.
 *
 * @throws {Error} with the last status seen, after `timeoutMs`.
 */
export async function waitForStatus(
  cluster: LocalCluster,
  node: number,
  isDone: (status: ClusterStatus) => boolean,
  timeoutMs = STATUS_TIMEOUT_MS,
): Promise<ClusterStatus> {
  const deadline = performance.now() + timeoutMs;
  let last: ClusterStatus | null = null;
  while (performance.now() < deadline) {
    const response = await fetch(`${cluster.url(node)}/v1/cluster/status`, {
      headers: { authorization: `Bearer ${cluster.record.rootToken}` },
    }).catch(() => null);
    if (response !== null && response.status === 200) {
      last = await response.json() as ClusterStatus;
      if (isDone(last)) return last;
    } else {
      await response?.body?.cancel();
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  throw new Error(`The status did not reach the expected state: ${JSON.stringify(last)}`);
}

/**
 * Polls `isDone` until it holds.
 *
 * @throws {Error} naming `what`, after `timeoutMs`.
 */
export async function waitFor(
  isDone: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (isDone()) return;
    await new Promise((resolve) => setTimeout(resolve, CONDITION_INTERVAL_MS));
  }
  throw new Error(`Timed out: ${what}`);
}

/**
 * Polls the debug states of the launcher's `nodes` and of the `joined` nodes until every one of
 * `shards` shards has 3 replicas sharing one applied index and one state hash; a divergence
 * fails at once.
 *
 * @throws {Error} naming the shards still apart, after `timeoutMs`.
 */
export async function waitForReplicas(
  cluster: LocalCluster,
  nodes: readonly number[],
  timeoutMs: number,
  options: { readonly shards: number; readonly joined?: readonly JoiningNode[] },
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const urls = [
    ...nodes.map((node) => [node, cluster.url(node)] as const),
    ...(options.joined ?? []).map((node) => [node.id, node.url] as const),
  ];
  let pending: readonly string[] = [];
  while (performance.now() < deadline) {
    const states = new Map<number, readonly ReplicaDebugState[]>();
    for (const [node, url] of urls) {
      const response = await fetch(`${url}/v1/debug/state`, {
        headers: { authorization: `Bearer ${cluster.record.rootToken}` },
      });
      equal(response.status, 200);
      states.set(node, (await response.json() as { shards: ReplicaDebugState[] }).shards);
    }
    const comparison = compareReplicas(states, {
      shards: options.shards,
      replicasPerShard: REPLICAS_PER_SHARD,
    });
    equal(comparison.divergences.length, 0, comparison.divergences.join("; "));
    if (comparison.isSettled) return;
    pending = comparison.pending;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  throw new Error(`The replicas did not converge: ${pending.join("; ")}`);
}

/** Writers started by {@linkcode startWriters}. */
export interface Writers {
  /** Stops every writer, waits for their last write, and returns what was acknowledged. */
  stop(): Promise<ReadonlyMap<string, string>>;
}

/**
 * Starts `writers` loops, each putting its own keys `<keyPrefix><writer>/<sequence>` until
 * stopped, writer `i` through `endpoints[i % endpoints.length]`. A write counts once it is
 * acknowledged; a refused one or one with an unknown outcome is not counted (and its key is
 * never written again).
 */
export function startWriters(
  cluster: LocalCluster,
  options: {
    readonly writers: number;
    readonly keyPrefix: string;
    readonly endpoints: readonly string[];
  },
): Writers {
  const acknowledged = new Map<string, string>();
  let isStopped = false;
  const loops = Array.from({ length: options.writers }, async (_, writer) => {
    const client = new AspenClient({
      endpoints: [options.endpoints[writer % options.endpoints.length]!],
      token: cluster.record.rootToken,
    });
    for (let sequence = 0; !isStopped; sequence++) {
      const key = `${options.keyPrefix}${writer}/${sequence}`;
      const value = `value ${writer}/${sequence}`;
      try {
        await client.put(key, value);
        acknowledged.set(key, value);
      } catch (error) {
        // Refused or unknown outcome: not counted.
        if (!(error instanceof ApiError)) throw error;
        await new Promise((resolve) => setTimeout(resolve, WRITER_BACKOFF_MS));
      }
    }
  });
  return {
    async stop(): Promise<ReadonlyMap<string, string>> {
      isStopped = true;
      await Promise.all(loops);
      return acknowledged;
    },
  };
}

/** Every key under `keyPrefix`, read linearizably a page at a time through node 1. */
export async function readAll(
  cluster: LocalCluster,
  keyPrefix: string,
): Promise<Map<string, string>> {
  const client = new AspenClient({ endpoints: [cluster.url(1)], token: cluster.record.rootToken });
  const stored = new Map<string, string>();
  let after: string | undefined;
  for (let page = 0; page < READ_PAGES_MAX; page++) {
    const result = await client.range({ prefix: keyPrefix, limit: READ_PAGE_KEYS, after });
    for (const kv of result.kvs) stored.set(kv.key, kv.value);
    if (!result.more) return stored;
    after = result.next;
  }
  throw new Error(`Cannot read the written keys: more than ${READ_PAGES_MAX} pages`);
}

/** Checks that every acknowledged write reads back with its value (through node 1). */
export async function checkAcknowledged(
  cluster: LocalCluster,
  keyPrefix: string,
  acknowledged: ReadonlyMap<string, string>,
): Promise<void> {
  const stored = await readAll(cluster, keyPrefix);
  for (const [key, value] of acknowledged) equal(stored.get(key), value, key);
}
