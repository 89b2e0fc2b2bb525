/**
 * A real cluster for fault tests: `aspen node` processes started by the LocalCluster launcher
 * with `--enable-test-faults`, plus the controls the nemesis and the checks use over HTTP
 * (peer faults, per-replica debug state) and a bounded log of every node's output.
 */
import { LocalCluster, type LocalNode, type UnexpectedExit } from "../../cli/launcher.ts";
import type { ReplicaDebugState } from "../../server/http/mod.ts";
import { PROJECT_ROOT } from "../_source_files.ts";
import {
  powerLossEnv,
  resetJournals,
  type RollbackFigures,
  rollBackToLastSync,
} from "./power_loss.ts";

/** How long setFault() waits for a node to learn that its peer is a member (a joined node). */
export const FAULT_MEMBER_WAIT_MS = 15_000;

/** The command that runs one node: this checkout's main.ts under the running deno. */

export const NODE_COMMAND: readonly string[] = [
  Deno.execPath(),
  "run",
  "-A",
  "--unstable-net",
  `${PROJECT_ROOT}main.ts`,
];

/** Log lines kept per node (the newest), written out when a run finds an anomaly. */
export const NODE_LOG_LINES_MAX = 4_000;
/** The deadline of the harness's own control requests (faults, debug state, status). */
export const CONTROL_TIMEOUT_MS = 3_000;
/**
 * The deadline of a debug state read with state hashes: a node hashes every key of every
 * shard it hosts (in steps), several seconds for the 700,000 keys a long heavy round writes.
 */
export const STATE_HASH_TIMEOUT_MS = 60_000;

/** The answer to one HTTP request: status and parsed JSON (null when the body is not JSON). */
export interface HttpAnswer {
  readonly status: number;
  readonly json: Record<string, unknown> | null;
}

/** How to start a chaos cluster. */
export interface ChaosClusterOptions {
  readonly nodes: number;
  readonly shards: number;
  /** Extra node flags. */
  readonly extraNodeArgs?: readonly string[];
  /** Whether nodes get `--enable-test-faults` (default true). */
  readonly isFaultInjectionEnabled?: boolean;
  readonly logLevel?: string;
  /**
   * The power-loss shim (power_loss.ts) to run every node under, or absent: with it,
   * {@linkcode ChaosCluster.powerLoss} can restart a node from its last fsynced bytes.
   */
  readonly powerLossShim?: string;
}

/** A running cluster under test. */
export class ChaosCluster {
  readonly cluster: LocalCluster;
  readonly dir: string;
  /** Whether nodes run under the power-loss shim. */
  readonly isPowerLossTracked: boolean;
  readonly #logs: NodeLogs;

  private constructor(
    cluster: LocalCluster,
    dir: string,
    logs: NodeLogs,
    isPowerLossTracked: boolean,
  ) {
    this.cluster = cluster;
    this.dir = dir;
    this.#logs = logs;
    this.isPowerLossTracked = isPowerLossTracked;
  }

  /** Starts every node in a new temporary folder and waits until every shard has a leader. */
  static async launch(options: ChaosClusterOptions): Promise<ChaosCluster> {
    const dir = await Deno.makeTempDir({ prefix: "aspen-chaos-" });
    const logs = new NodeLogs();
    const cluster = await LocalCluster.launch({
      dir,
      nodes: options.nodes,
      shards: options.shards,
      selfCommand: NODE_COMMAND,
      randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
      onLine: (id, line) => logs.append(id, line),
      extraNodeArgs: [
        ...(options.isFaultInjectionEnabled === false ? [] : ["--enable-test-faults"]),
        ...(options.extraNodeArgs ?? []),
      ],
      logLevel: options.logLevel ?? "info",
      ...(options.powerLossShim === undefined
        ? {}
        : { nodeEnv: (node: LocalNode) => trackedEnv(options.powerLossShim!, dir, node) }),
      onUnexpectedExit: (exit) => logs.append(exit.node, `EXITED ${JSON.stringify(exit)}`),
    });
    const chaos = new ChaosCluster(cluster, dir, logs, options.powerLossShim !== undefined);
    try {
      await cluster.waitForLeaders();
    } catch (error) {
      await chaos.destroy({ keepDir: false });
      throw error;
    }
    return chaos;
  }

  /** Every member's node id: founders and joined nodes, not the removed ones. */
  get nodeIds(): number[] {
    return this.cluster.nodes.map((node) => node.id);
  }

  /** Whether node `id` joined the running cluster (it holds no CA key: no join through it). */
  isJoined(id: number): boolean {
    return this.cluster.nodes.find((node) => node.id === id)?.joinUrl !== undefined;
  }

  /** The root token. */
  get token(): string {
    return this.cluster.record.rootToken;
  }

  /** Processes that ended without the harness killing them. */
  get unexpectedExits(): readonly UnexpectedExit[] {
    return this.cluster.unexpectedExits;
  }

  /**
   * Sends one request to node `id` with the root token.
   *
   * @throws the fetch error (connection refused, reset, timeout) when there is no answer.
   */
  async call(
    id: number,
    request: { method: string; path: string; body?: unknown; timeoutMs?: number },
  ): Promise<HttpAnswer> {
    const response = await fetch(`${this.cluster.url(id)}${request.path}`, {
      method: request.method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(request.body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: request.body === undefined ? null : JSON.stringify(request.body),
      signal: AbortSignal.timeout(request.timeoutMs ?? CONTROL_TIMEOUT_MS),
    });
    const text = await response.text();
    return { status: response.status, json: parseJson(text) };
  }

  /**
   * Makes node `from` drop (or delay) everything it sends to node `to`. A node that has not
   * read the members record since `to` joined (just restarted) refuses `to` as no member: that
   * answer is retried for up to FAULT_MEMBER_WAIT_MS (a restarted node reads the record every
   * second until it has one).
   */
  async setFault(
    from: number,
    to: number,
    rule: { dropProbability: number; delayMs: number },
  ): Promise<void> {
    const deadline = performance.now() + FAULT_MEMBER_WAIT_MS;
    let answer: HttpAnswer;
    for (;;) {
      answer = await this.call(from, {
        method: "PUT",
        path: "/v1/test/faults",
        body: { peer: to, ...rule },
      });
      const isUnknownPeer = answer.status === 400 &&
        JSON.stringify(answer.json).includes("must be the id of another member");
      if (!isUnknownPeer || performance.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    if (answer.status !== 200) {
      throw new Error(`Cannot set a fault on node ${from}: ${JSON.stringify(answer)}`);
    }
  }

  /** Clears every fault rule of node `id`. */
  async clearFaults(id: number): Promise<void> {
    const answer = await this.call(id, { method: "DELETE", path: "/v1/test/faults" });
    if (answer.status !== 200) {
      throw new Error(`Cannot clear the faults of node ${id}: ${JSON.stringify(answer)}`);
    }
  }

  /**
   * Kills node `id` with -9 and rolls its data files back to their last fsynced bytes, as a
   * power cut would leave them; the caller starts it again.
   */
  async powerLoss(id: number): Promise<RollbackFigures> {
    if (!this.isPowerLossTracked) throw new Error("The nodes do not run under the shim");
    await this.cluster.kill(id, "SIGKILL");
    const node = this.cluster.nodes.find((candidate) => candidate.id === id)!;
    return await rollBackToLastSync({
      dataDir: node.dataDir,
      journalDir: journalDir(this.dir, id),
    });
  }

  /**
   * Node `id`'s local replicas: role, term, indexes and, when `isHashed`, state hashes (which
   * read each replica's whole state: only the convergence check asks for them).
   */
  async debugState(
    id: number,
    options: { readonly isHashed: boolean; readonly shard?: number } = { isHashed: false },
  ): Promise<ReplicaDebugState[]> {
    const isHashed = options.isHashed;
    const query = [
      `stateHash=${isHashed}`,
      ...(options.shard === undefined ? [] : [
        `shard=${options.shard}`,
      ]),
    ];
    const path = `/v1/debug/state?${query.join("&")}`;
    const timeoutMs = isHashed ? STATE_HASH_TIMEOUT_MS : CONTROL_TIMEOUT_MS;
    const answer = await this.call(id, { method: "GET", path, timeoutMs });
    const shards = answer.json?.shards;
    if (answer.status !== 200 || !Array.isArray(shards)) {
      throw new Error(`Cannot read the debug state of node ${id}: ${JSON.stringify(answer)}`);
    }
    return shards as ReplicaDebugState[];
  }

  /** The newest log lines of node `id`. */
  logsOf(id: number): readonly string[] {
    return this.#logs.linesOf(id);
  }

  /** How many lines of every node's output matched each notable event so far. */
  get events(): Readonly<Record<string, number>> {
    return this.#logs.events;
  }

  /** How many of node `id`'s lines matched each notable event so far. */
  eventsOf(id: number): Readonly<Record<string, number>> {
    return this.#logs.eventsOf(id);
  }

  /** Writes every node's log into `dir` (node-<id>.log), removed nodes' too. */
  async writeLogs(dir: string): Promise<void> {
    await Deno.mkdir(dir, { recursive: true });
    for (const id of this.#logs.nodeIds) {
      await Deno.writeTextFile(`${dir}/node-${id}.log`, this.logsOf(id).join("\n") + "\n");
    }
  }

  /** Resumes paused nodes, stops every node (removed ones too) and removes the folder. */
  async destroy(options: { keepDir: boolean }): Promise<void> {
    for (const id of this.nodeIds) await this.cluster.kill(id, "SIGCONT");
    await this.cluster.stop();
    if (!options.keepDir) await Deno.remove(this.dir, { recursive: true });
  }
}

/** Notable log lines, counted over the whole run (the kept lines are only the newest). */
const NOTABLE_EVENTS: readonly [string, RegExp][] = [
  ["leaderElected", /Became leader/],
  ["snapshotInstalled", /Installed a snapshot/],
  // The power-loss shim saw a write it cannot journal (a shared writable mmap of a data file).
  ["powerLossShimWarning", /^power-loss shim: /],
];

/** Every node's newest output lines, and counts of notable events. */
class NodeLogs {
  readonly events: Record<string, number> = {};
  readonly #lines = new Map<number, string[]>();
  readonly #eventsByNode = new Map<number, Record<string, number>>();

  append(id: number, line: string): void {
    let lines = this.#lines.get(id);
    if (lines === undefined) {
      lines = [];
      this.#lines.set(id, lines);
    }
    lines.push(line);
    if (lines.length > NODE_LOG_LINES_MAX) lines.splice(0, lines.length - NODE_LOG_LINES_MAX);
    for (const [name, pattern] of NOTABLE_EVENTS) {
      if (!pattern.test(line)) continue;
      this.events[name] = (this.events[name] ?? 0) + 1;
      const own = this.#eventsByNode.get(id) ?? {};
      own[name] = (own[name] ?? 0) + 1;
      this.#eventsByNode.set(id, own);
    }
  }

  eventsOf(id: number): Readonly<Record<string, number>> {
    return this.#eventsByNode.get(id) ?? {};
  }

  /** Every node that printed a line. */
  get nodeIds(): number[] {
    return [...this.#lines.keys()].sort((a, b) => a - b);
  }

  linesOf(id: number): readonly string[] {
    return this.#lines.get(id) ?? [];
  }
}

/** Where the shim keeps node `id`'s journals: beside, not inside, its data folder. */
function journalDir(dir: string, id: number): string {
  return `${dir}/power-loss/node-${id}`;
}

/** The environment of a tracked node; empties its journals first (a fresh process). */
function trackedEnv(shim: string, dir: string, node: LocalNode): Record<string, string> {
  const journals = journalDir(dir, node.id);
  resetJournals(journals);
  return powerLossEnv(shim, { dataDir: node.dataDir, journalDir: journals });
}

function parseJson(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : null;
  } catch (error) {
    if (error instanceof SyntaxError) return null;
    throw error;
  }
}
