/**
 * The local-cluster launcher: starts and supervises real `aspen node` processes on loopback.
 * `aspen dev` runs it; the end-to-end and fault tests drive it (kill, restart, pause with
 * SIGSTOP); `deno task bench:cluster` benchmarks the clusters it starts. It lives in cli/, not
 * in the node runtime, because it is a tool that runs nodes, not part of one.
 *
 * One folder holds everything: `cluster.json` (credentials), `dev-cluster.json` (every node's
 * id, addresses and pid, the console URL and the root token, for scripts) and `node-<id>/` data
 * folders. Started again on the same folder, the cluster resumes with the same data and token.
 */
import { AspenError } from "../shard/mod.ts";
import { EXIT_ADDRESS_IN_USE } from "./command.ts";
import { createCredentials, formatCredentials, type RandomBytes } from "../server/mod.ts";
import { createClusterCa, parseHostPort } from "../transport/mod.ts";

/** How long a launch waits for every shard to elect a leader. */
export const LAUNCH_LEADERS_TIMEOUT_MS = 60_000;
/** Output lines kept per node, to explain a cluster that does not come up. */
export const RECENT_LINES_MAX = 12;
/** How long a stopping node gets after SIGTERM before it is killed. */
export const STOP_GRACE_MS = 10_000;
/** The most nodes a local cluster may have. */
export const LOCAL_NODES_MAX = 9;
/**
 * How many times a launch starts the cluster when a node exits because another process took
 * one of its ports between the choice and the bind (each retry gives that node new ports).
 */
export const LAUNCH_BIND_ATTEMPTS = 5;
/** How long a launch waits for every node to listen (answer on HTTP as itself) or exit. */
export const LAUNCH_LISTEN_TIMEOUT_MS = 30_000;
/** How often a launch asks a starting node whether it listens. */
const LISTEN_POLL_MS = 50;
/** How many tries {@linkcode freeAddresses} makes to find one port. */
const FREE_PORT_TRIES = 100;

/** A node's two loopback listen addresses, `host:port`. */
export interface NodeAddresses {
  readonly httpAddress: string;
  readonly peerAddress: string;
}

/** One node of a local cluster. */
export interface LocalNode {
  readonly id: number;
  readonly httpAddress: string;
  readonly peerAddress: string;
  readonly dataDir: string;
  pid: number | null;
  /** The member URL a node that joined a running cluster joins through; absent: a founder. */
  readonly joinUrl?: string;
}

/** A node process that ended although the harness neither killed nor stopped it. */
export interface UnexpectedExit {
  readonly node: number;
  readonly pid: number;
  /** The exit code, or null when a signal ended it. */
  readonly code: number | null;
  readonly signal: string | null;
}

/** The `dev-cluster.json` record. */
export interface LocalClusterRecord {
  readonly nodes: readonly Omit<LocalNode, "dataDir">[];
  readonly shards: number;
  readonly consoleUrl: string;
  readonly rootToken: string;
  readonly readToken: string;
  readonly credentialsFile: string;
}

/** What a launch needs from its caller. */
export interface LaunchOptions {
  readonly dir: string;
  readonly nodes: number;
  readonly shards: number;
  /** The command that runs this same executable, e.g. `[deno, "run", "-A", "main.ts"]`. */
  readonly selfCommand: readonly string[];
  readonly randomBytes: RandomBytes;
  /** Receives each line a node writes to stdout or stderr. */
  readonly onLine: (nodeId: number, line: string) => void;
  /** Extra flags for every node (tests use it for fault injection and logging). */
  readonly extraNodeArgs?: readonly string[];
  readonly logLevel?: string;
  /**
   * Extra environment of a node's process, asked at each start (tests run nodes under an
   * LD_PRELOAD shim this way); absent: none.
   */
  readonly nodeEnv?: (node: LocalNode) => Readonly<Record<string, string>>;
  /** Called when a node process ends that was neither killed nor stopped through the cluster. */
  readonly onUnexpectedExit?: (exit: UnexpectedExit) => void;
  /**
   * Chooses a new node's addresses, avoiding the ports in `taken` (tests hand out ports they
   * hold to check the launch retry); absent: {@linkcode freeAddresses}.
   */
  readonly pickAddresses?: (taken: ReadonlySet<number>) => NodeAddresses;
}

/**
 * A running local cluster: its nodes' processes, and the controls that `aspen dev`, the tests
 * and the cluster benchmarks use on them (start, stop, kill, pause, wait for leaders).
 *
 * @example
 * ```ts
 * const cluster = await LocalCluster.launch(options);
 * await cluster.waitForLeaders();
 * await cluster.kill(2, "SIGKILL");
 * await cluster.start(2);
 * await cluster.stop();
 * ```
 */
export class LocalCluster {
  readonly record: LocalClusterRecord;
  readonly #options: LaunchOptions;
  readonly #nodes: Map<number, LocalNode>;
  readonly #processes = new Map<number, NodeProcess>();
  readonly #unexpectedExits: UnexpectedExit[] = [];
  readonly #recentLines = new Map<number, string[]>();
  /** Nodes removed from the cluster: they exit by themselves and never start again. */
  readonly #retired = new Set<number>();
  /** The static peers list of the founding nodes (joined nodes never change it). */
  readonly #peers: string;
  /**
   * While true (a launch that may still retry), a node that exits with EXIT_ADDRESS_IN_USE is
   * noted in #addressInUse instead of counting as an unexpected exit.
   */
  #mayRetryBind = false;
  readonly #addressInUse = new Set<number>();

  private constructor(options: LaunchOptions, record: LocalClusterRecord) {
    this.#options = options;
    this.record = record;
    this.#nodes = new Map(
      record.nodes.map((node) => [node.id, { ...node, dataDir: nodeDir(options.dir, node.id) }]),
    );
    this.#peers = record.nodes.map((peer) => `${peer.id}=${peer.peerAddress}`).join(",");
  }

  /**
   * Prepares (or resumes) the cluster folder, starts every node and waits until each listens
   * (answers on HTTP as itself) or exits. Ports are chosen free but not held, so another
   * process can take one before the node binds it: a node that exits with
   * EXIT_ADDRESS_IN_USE makes the launch stop every node, give that node new ports (its peers
   * must learn its new address, so all restart) and start again, up to LAUNCH_BIND_ATTEMPTS
   * times; the last attempt's failure is an unexpected exit that waitForLeaders() reports.
   *
   * @throws {AspenError} `bad_config` when the folder holds a cluster of another shape.
   */
  static async launch(options: LaunchOptions): Promise<LocalCluster> {
    let record = await prepareFolder(options);
    for (let attempt = 1;; attempt++) {
      const cluster = new LocalCluster(options, record);
      cluster.#mayRetryBind = attempt < LAUNCH_BIND_ATTEMPTS;
      for (const node of record.nodes) cluster.start(node.id);
      const anyExit = new AbortController();
      await Promise.all(record.nodes.map((node) => cluster.#waitForListening(node.id, anyExit)));
      cluster.#mayRetryBind = false;
      if (cluster.#addressInUse.size === 0) {
        await cluster.#writeRecord();
        return cluster;
      }
      await cluster.stop();
      record = withNewAddresses(record, cluster.#addressInUse, options);
    }
  }

  /** Every node, by id, but the retired ones. */
  get nodes(): readonly LocalNode[] {
    return [...this.#nodes.values()].filter((node) => !this.#retired.has(node.id));
  }

  /**
   * Starts a new node that joins the running cluster through the member at `joinUrl` (a new
   * id, one past every id the cluster had, with its own data dir and free ports), as
   * `aspen dev --add-node` does. Not written into `dev-cluster.json`: the folder resumes with
   * its founders.
   *
   * @returns the new node.
   * @throws {AspenError} `bad_config` when the cluster has LOCAL_NODES_MAX nodes already.
   */
  join(joinUrl: string): LocalNode {
    if (this.nodes.length >= LOCAL_NODES_MAX) {
      throw new AspenError(
        "bad_config",
        `Cannot add a node: a local cluster has at most ${LOCAL_NODES_MAX} nodes`,
      );
    }
    const id = Math.max(...this.#nodes.keys()) + 1;
    const node: LocalNode = {
      id,
      ...pickAddresses(this.#options, takenPorts([...this.#nodes.values()])),
      dataDir: nodeDir(this.#options.dir, id),
      pid: null,
      joinUrl,
    };
    this.#nodes.set(id, node);
    this.start(id);
    return node;
  }

  /**
   * Marks node `id` as leaving the cluster for good (its removal was asked): its process may
   * exit by itself without that counting as unexpected, and it is never started again.
   */
  retire(id: number): void {
    this.#node(id);
    this.#retired.add(id);
    const process = this.#processes.get(id);
    if (process !== undefined) process.isExitExpected = true;
  }

  /** The HTTP base URL of node `id`. */
  url(id: number): string {
    return `http://${this.#node(id).httpAddress}`;
  }

  /** Starts node `id`'s process (again, after a kill or stop). */
  start(id: number): void {
    const node = this.#node(id);
    if (this.#processes.has(id)) {
      throw new AspenError("bad_request", `Cannot start node ${id}: it is already running`);
    }
    if (this.#retired.has(id)) {
      throw new AspenError("bad_request", `Cannot start node ${id}: it was removed`);
    }
    const [program, ...prefix] = this.#options.selfCommand;
    const child = new Deno.Command(program!, {
      args: [...prefix, ...this.#nodeArgs(node)],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...this.#options.nodeEnv?.(node) },
    }).spawn();
    node.pid = child.pid;
    const process: NodeProcess = { child, done: Promise.resolve(), isExitExpected: false };
    const onLine = (line: string) => {
      const recent = this.#recentLines.get(id) ?? [];
      recent.push(line);
      if (recent.length > RECENT_LINES_MAX) recent.shift();
      this.#recentLines.set(id, recent);
      this.#options.onLine(id, line);
    };
    process.done = Promise.all([
      pipeLines(child.stdout, onLine),
      pipeLines(child.stderr, onLine),
      child.status,
    ]).then(([, , status]) => {
      this.#processes.delete(id);
      node.pid = null;
      if (process.isExitExpected) return;
      const exit = {
        node: id,
        pid: child.pid,
        code: status.signal === null ? status.code : null,
        signal: status.signal,
      };
      if (this.#mayRetryBind && exit.code === EXIT_ADDRESS_IN_USE) {
        this.#addressInUse.add(id);
        return;
      }
      this.#unexpectedExits.push(exit);
      this.#options.onUnexpectedExit?.(exit);
    });
    this.#processes.set(id, process);
  }

  /**
   * The node processes that ended on their own (a crash, an assertion, a failed start) rather
   * than through {@linkcode kill} or {@linkcode stopNode}, oldest first.
   */
  get unexpectedExits(): readonly UnexpectedExit[] {
    return this.#unexpectedExits;
  }

  /** Whether node `id`'s process is running. */
  isRunning(id: number): boolean {
    return this.#processes.has(id);
  }

  /**
   * Sends `signal` to node `id`; for SIGKILL and SIGTERM, waits until the process is gone.
   * An exit after any signal but SIGSTOP and SIGCONT counts as expected.
   */
  async kill(id: number, signal: Deno.Signal): Promise<void> {
    const process = this.#processes.get(id);
    if (process === undefined) return;
    if (signal !== "SIGSTOP" && signal !== "SIGCONT") process.isExitExpected = true;
    process.child.kill(signal);
    if (signal === "SIGKILL" || signal === "SIGTERM") await process.done;
  }

  /** Stops node `id` gracefully (SIGTERM), killing it if it outlives the grace period. */
  async stopNode(id: number): Promise<void> {
    const process = this.#processes.get(id);
    if (process === undefined) return;
    process.isExitExpected = true;
    process.child.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), STOP_GRACE_MS);
    });
    const result = await Promise.race([process.done, timeout]);
    clearTimeout(timer);
    if (result === "timeout") await this.kill(id, "SIGKILL");
  }

  /** Stops every node (retired ones too). */
  async stop(): Promise<void> {
    await Promise.all([...this.#nodes.keys()].map((id) => this.stopNode(id)));
  }

  /**
   * Polls node `via` until every shard reports a leader.
   *
   * @throws {AspenError} `timeout` naming the shards still without a leader, or
   * `shard_unavailable` at once when a node exited on its own and was not started again; both
   * end with each node's last output lines.
   */
  async waitForLeaders(
    via = this.nodes[0]!.id,
    timeoutMs = LAUNCH_LEADERS_TIMEOUT_MS,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let missing = "no answer yet";
    while (Date.now() < deadline) {
      // A node that exited on its own and was not started again will not elect anything.
      const exit = this.#unexpectedExits.findLast((item) => !this.#processes.has(item.node));
      if (exit !== undefined) {
        throw new AspenError(
          "shard_unavailable",
          `Cannot start the cluster: node ${exit.node} exited (code ${exit.code}, signal ` +
            `${exit.signal})${this.#recentOutput()}`,
        );
      }
      missing = await this.#shardsWithoutLeader(via);
      if (missing === "") missing = await this.#silentNode();
      if (missing === "") return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new AspenError(
      "timeout",
      `Cannot start the cluster: after ${timeoutMs} ms ${missing}${this.#recentOutput()}`,
    );
  }

  /**
   * Resolves once node `id` answers its status as itself (which may wait for shard 0),
   * after LAUNCH_LISTEN_TIMEOUT_MS, or once any node exited: the node's exit aborts `anyExit`,
   * so that the launch starts again (or returns for waitForLeaders() to report it) at once
   * instead of waiting for nodes that may lack a majority.
   */
  async #waitForListening(id: number, anyExit: AbortController): Promise<void> {
    const deadline = Date.now() + LAUNCH_LISTEN_TIMEOUT_MS;
    while (Date.now() < deadline && !anyExit.signal.aborted) {
      if (!this.#processes.has(id)) {
        anyExit.abort();
        return;
      }
      // The root token is this cluster's: a process of another cluster on the port answers 401.
      const answered = await fetch(`${this.url(id)}/v1/cluster/status`, {
        headers: { authorization: `Bearer ${this.record.rootToken}` },
        signal: AbortSignal.timeout(2_000),
      }).then(async (response) => {
        const body = await response.json().catch(() => null) as { node?: number } | null;
        return response.ok && body?.node === id;
      }).catch(() => false);
      if (answered) return;
      await new Promise((resolve) => setTimeout(resolve, LISTEN_POLL_MS));
    }
  }

  #recentOutput(): string {
    const parts = [...this.#recentLines].map(([id, lines]) =>
      lines.map((line) => `\n  n${id} | ${line}`).join("")
    );
    return parts.length === 0 ? "" : `; last output:${parts.join("")}`;
  }

  /**
   * A running node whose HTTP address does not answer yet (after a restart every node must,
   * not only the one asked about leaders), or "".
   */
  async #silentNode(): Promise<string> {
    for (const id of this.#processes.keys()) {
      const answered = await fetch(`${this.url(id)}/v1/health`, {
        signal: AbortSignal.timeout(2_000),
      }).then(async (response) => {
        await response.body?.cancel();
        return true;
      }, () => false);
      if (!answered) return `node ${id} does not answer HTTP yet`;
    }
    return "";
  }

  async #shardsWithoutLeader(via: number): Promise<string> {
    try {
      const response = await fetch(`${this.url(via)}/v1/cluster/status`, {
        headers: { authorization: `Bearer ${this.record.rootToken}` },
        signal: AbortSignal.timeout(2_000),
      });
      const body = await response.json() as { shards?: { id: number; leader: number | null }[] };
      if (!response.ok || body.shards === undefined) return `status answered ${response.status}`;
      const without = body.shards.filter((shard) => !shard.leader).map((shard) => shard.id);
      if (body.shards.length < this.record.shards) return "not every shard is reported";
      return without.length === 0 ? "" : `shards ${without.join(", ")} have no leader`;
    } catch (error) {
      return `node ${via} does not answer (${error instanceof Error ? error.message : error})`;
    }
  }

  #nodeArgs(node: LocalNode): string[] {
    // A joined node gets its credentials and peers by joining (later starts read them back).
    const membership = node.joinUrl === undefined
      ? [`--peers=${this.#peers}`, `--cluster-file=${this.record.credentialsFile}`]
      : [`--join=${node.joinUrl}`, `--join-token=${this.record.rootToken}`];
    return [
      "node",
      `--node-id=${node.id}`,
      `--data-dir=${node.dataDir}`,
      `--peer-listen=${node.peerAddress}`,
      `--http-listen=${node.httpAddress}`,
      ...membership,
      // One shard runs the unsharded default path (sharding disabled means shard 0 only).
      ...(this.record.shards === 1
        ? []
        : ["--sharding-enabled", `--sharding-num-shards=${this.record.shards}`]),
      `--log-level=${this.#options.logLevel ?? "info"}`,
      ...(this.#options.extraNodeArgs ?? []),
    ];
  }

  #node(id: number): LocalNode {
    const node = this.#nodes.get(id);
    if (node === undefined) throw new AspenError("bad_request", `There is no node ${id}`);
    return node;
  }

  async #writeRecord(): Promise<void> {
    const record: LocalClusterRecord = {
      ...this.record,
      nodes: this.nodes.map(({ id, httpAddress, peerAddress, pid }) => ({
        id,
        httpAddress,
        peerAddress,
        pid,
      })),
    };
    await Deno.writeTextFile(recordPath(this.#options.dir), JSON.stringify(record, null, 2) + "\n");
  }
}

interface NodeProcess {
  readonly child: Deno.ChildProcess;
  /** Settles once the process ended and its output was read. */
  done: Promise<void>;
  /** Set before the harness signals the process, so that its exit is not reported. */
  isExitExpected: boolean;
}

async function prepareFolder(options: LaunchOptions): Promise<LocalClusterRecord> {
  checkShape(options);
  await Deno.mkdir(options.dir, { recursive: true });
  const previous = await readRecord(options.dir);
  if (previous !== null) {
    if (previous.nodes.length !== options.nodes || previous.shards !== options.shards) {
      throw new AspenError(
        "bad_config",
        `Cannot resume the cluster in "${options.dir}": it has ${previous.nodes.length} nodes ` +
          `and ${previous.shards} shards, not ${options.nodes} and ${options.shards}; ` +
          `pass --nodes ${previous.nodes.length} --shards ${previous.shards} or remove the folder`,
      );
    }
    return withFreshAddresses(previous, options);
  }
  const { credentials, rootToken, readToken } = await createCredentials(
    options.randomBytes,
    createClusterCa,
  );
  const credentialsFile = `${await Deno.realPath(options.dir)}/cluster.json`;
  await Deno.writeTextFile(credentialsFile, formatCredentials(credentials), { mode: 0o600 });
  const nodes: Omit<LocalNode, "dataDir">[] = [];
  for (let id = 1; id <= options.nodes; id++) {
    nodes.push({ id, ...pickAddresses(options, takenPorts(nodes)), pid: null });
  }
  return {
    nodes,
    shards: options.shards,
    consoleUrl: `http://${nodes[0]!.httpAddress}/`,
    rootToken,
    readToken,
    credentialsFile,
  };
}

function checkShape(options: LaunchOptions): void {
  if (!Number.isSafeInteger(options.nodes) || options.nodes < 1) {
    throw new AspenError("bad_config", `Invalid --nodes ${options.nodes}: must be 1 or more`);
  }
  if (options.nodes > LOCAL_NODES_MAX) {
    throw new AspenError(
      "bad_config",
      `Invalid --nodes ${options.nodes}: a local cluster has at most ${LOCAL_NODES_MAX} nodes`,
    );
  }
}

/** Keeps each node's previous ports when they are still free, so bookmarks keep working. */
function withFreshAddresses(
  record: LocalClusterRecord,
  options: LaunchOptions,
): LocalClusterRecord {
  const stale = record.nodes.filter((node) =>
    !isPortFree(node.httpAddress) || !isPortFree(node.peerAddress)
  );
  return withNewAddresses(record, new Set(stale.map((node) => node.id)), options);
}

/** `record` with new ports for the nodes in `ids` (and every pid cleared). */
function withNewAddresses(
  record: LocalClusterRecord,
  ids: ReadonlySet<number>,
  options: LaunchOptions,
): LocalClusterRecord {
  const nodes = record.nodes.map((node) => ({ ...node, pid: null }));
  for (const [index, node] of nodes.entries()) {
    if (!ids.has(node.id)) continue;
    const others = nodes.filter((other) => other.id !== node.id);
    nodes[index] = { id: node.id, ...pickAddresses(options, takenPorts(others)), pid: null };
  }
  return { ...record, nodes, consoleUrl: `http://${nodes[0]!.httpAddress}/` };
}

function pickAddresses(options: LaunchOptions, taken: ReadonlySet<number>): NodeAddresses {
  return (options.pickAddresses ?? freeAddresses)(taken);
}

/** The ports that `nodes` listen on (a port chosen for one node is free, not held). */
function takenPorts(nodes: readonly NodeAddresses[]): Set<number> {
  const ports = new Set<number>();
  for (const node of nodes) {
    for (const address of [node.httpAddress, node.peerAddress]) {
      ports.add(parseHostPort(address, { what: "the node address", isListen: false }).port);
    }
  }
  return ports;
}

/** The `dev-cluster.json` record of `dir`, or null when there is none. */
export async function readRecord(dir: string): Promise<LocalClusterRecord | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(recordPath(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  try {
    return JSON.parse(text) as LocalClusterRecord;
  } catch (error) {
    throw new AspenError(
      "bad_config",
      `Cannot resume the cluster in "${dir}": dev-cluster.json is not valid JSON`,
      {},
      { cause: error },
    );
  }
}

/**
 * Picks two loopback ports, each free for both TCP (HTTP) and UDP (QUIC) now and not in
 * `taken` (the ports of the cluster's other nodes, which are not held while they are stopped).
 * Nothing holds them afterwards: another process may take one before the node binds it, which
 * {@linkcode LocalCluster.launch} survives by starting again with new ports. (A port range per
 * process would not prevent it: `deno test --parallel` runs test files in one process, and the
 * kernel hands out ports of any range to other programs' sockets.)
 */
export function freeAddresses(taken: ReadonlySet<number> = new Set()): NodeAddresses {
  const http = freePort(taken);
  const peer = freePort(new Set([...taken, http]));
  return { httpAddress: `127.0.0.1:${http}`, peerAddress: `127.0.0.1:${peer}` };
}

function freePort(taken: ReadonlySet<number>): number {
  for (let attempt = 0; attempt < FREE_PORT_TRIES; attempt++) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (!taken.has(port) && isPortFree(`127.0.0.1:${port}`)) return port;
  }
  throw new AspenError(
    "bad_config",
    `Cannot find a free loopback port after ${FREE_PORT_TRIES} tries`,
  );
}

/** True when both TCP and UDP can bind `address` now (a record's address, or a fresh one). */
function isPortFree(address: string): boolean {
  const { hostname, port } = parseHostPort(address, { what: "the node address", isListen: false });
  try {
    Deno.listen({ hostname, port }).close();
    Deno.listenDatagram({ hostname, port, transport: "udp" }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

/** Calls `onLine` with each line of `stream`. */
export async function pipeLines(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  }
  if (pending !== "") onLine(pending);
}

/** Node `id`'s data folder in a local cluster's folder. */
export function nodeDir(dir: string, id: number): string {
  return `${dir}/node-${id}`;
}

function recordPath(dir: string): string {
  return `${dir}/dev-cluster.json`;
}
