/**
 * The engine behind the interaction scripts (tests/testdata/raft/*.txt): a few replicas wired
 * by an explicit network the script controls, and commands that print a readable trace of
 * every Ready and message. tests/raft_interaction_test.ts runs the scripts.
 */
import { decodeConfChange, MemoryStorage, RawNode, replicaId, SeededPrng } from "../../raft/mod.ts";
import type { ConfChange, Entry, LogIndex, Message, Ready, ReplicaId } from "../../raft/mod.ts";

interface Replica {
  id: ReplicaId;
  storage: MemoryStorage;
  node: RawNode | null;
  applied: string[];
  config: NodeOptions;
}

interface NodeOptions {
  preVote: boolean;
  checkQuorum: boolean;
  leaseReads: boolean;
  quiesce: boolean;
  electionTicks: number;
  heartbeatTicks: number;
}

/** Renders an entry as `index/term`, plus its payload when it has one. */
export function formatEntry(entry: Entry): string {
  if (entry.type === "confChange") {
    const change = decodeConfChange(entry.data);
    return `${entry.index}/${entry.term} ${change?.type} ${change?.replicaId}`;
  }
  const text = new TextDecoder().decode(entry.data);
  return text === "" ? `${entry.index}/${entry.term}` : `${entry.index}/${entry.term} "${text}"`;
}

/** Renders a message on one line. */
export function formatMessage(message: Message): string {
  const head = `${message.from}->${message.to} ${message.type} term=${message.term}`;
  switch (message.type) {
    case "vote":
    case "preVote":
      return `${head} last=${message.lastIndex}/${message.lastTerm}` +
        (message.isTransfer ? " transfer" : "");
    case "voteResponse":
    case "preVoteResponse":
      return `${head} ${message.isRejected ? "rejected" : "granted"}`;
    case "append": {
      const entries = message.entries.map(formatEntry).join(", ");
      return `${head} prev=${message.prevIndex}/${message.prevTerm} commit=${message.commit}` +
        ` [${entries}]`;
    }
    case "appendResponse":
      return message.isRejected
        ? `${head} rejected index=${message.index} hint=${message.rejectHintIndex}/` +
          `${message.rejectHintTerm}`
        : `${head} index=${message.index}`;
    case "heartbeat":
      return `${head} commit=${message.commit} round=${message.round}`;
    case "heartbeatResponse":
      return `${head} round=${message.round}`;
    case "snapshotChunk":
      return `${head} snapshot=${message.metadata.index}/${message.metadata.term} ` +
        `bytes=${message.offset}+${message.data.byteLength}/${message.totalBytes}`;
    case "snapshotAck":
      return `${head} snapshot=${message.snapshotIndex} offset=${message.offset}`;
    case "timeoutNow":
      return head;
  }
}

/** A scripted cluster. */
export class InteractionCluster {
  readonly replicas = new Map<number, Replica>();
  readonly #queue: Message[] = [];
  readonly #blocked = new Set<string>();

  /** Runs one script command and returns its output lines. */
  run(command: string, args: string[]): string[] {
    const handler = this.#commands()[command];
    if (handler === undefined) throw new Error(`unknown command "${command}"`);
    return handler(args);
  }

  #commands(): Record<string, (args: string[]) => string[]> {
    return {
      "add-replicas": (args) => this.#addReplicas(args),
      campaign: (args) => this.#withNode(args[0], (node) => node.campaign()),
      tick: (args) => this.#tick(args),
      propose: (args) => this.#result(args[0], (node) => node.propose(encode(args[1] ?? ""))),
      "propose-conf-change": (args) => this.#confChange(args),
      "read-index": (args) => this.#result(args[0], (node) => node.readIndex(Number(args[1]))),
      "transfer-leadership": (args) =>
        this.#result(args[0], (node) => node.transferLeadership(replicaId(Number(args[1])))),
      "process-ready": (args) => this.#processReady(this.#replica(args[0])),
      deliver: (args) => this.#deliver(args),
      stabilize: () => this.#stabilize(),
      partition: (args) => this.#partition(args),
      heal: () => {
        this.#blocked.clear();
        return [];
      },
      status: (args) => this.#status(this.#replica(args[0])),
      log: (args) => this.#log(this.#replica(args[0])),
      snapshot: (args) => this.#snapshot(this.#replica(args[0]), args.slice(1)),
      crash: (args) => this.#crash(this.#replica(args[0])),
      restart: (args) => this.#restart(this.#replica(args[0])),
    };
  }

  #addReplicas(args: string[]): string[] {
    const flags = parseFlags(args.slice(1));
    const count = Number(args[0]);
    const voters = (flags.get("voters") ?? "").split(",").filter(Boolean).map(Number);
    const learners = (flags.get("learners") ?? "").split(",").filter(Boolean).map(Number);
    const config: NodeOptions = {
      preVote: flags.get("preVote") === "true",
      checkQuorum: flags.get("checkQuorum") === "true",
      leaseReads: flags.get("leaseReads") === "true",
      quiesce: flags.get("quiesce") !== "false",
      electionTicks: Number(flags.get("electionTicks") ?? 10),
      heartbeatTicks: Number(flags.get("heartbeatTicks") ?? 1),
    };
    const confState = { voters: voters.map(replicaId), learners: learners.map(replicaId) };
    for (let i = this.replicas.size + 1; this.replicas.size < count; i++) {
      const isFounder = voters.includes(i) || learners.includes(i);
      const storage = new MemoryStorage(isFounder ? confState : undefined);
      const replica = { id: replicaId(i), storage, node: null, applied: [], config };
      this.replicas.set(i, replica);
      this.#restart(replica);
    }
    return [`${count} replicas: voters ${voters.join(",")} learners ${learners.join(",")}`];
  }

  #restart(replica: Replica): string[] {
    replica.node = new RawNode({
      id: replica.id,
      prng: new SeededPrng(replica.id),
      ...replica.config,
    }, replica.storage);
    const snapshot = replica.storage.snapshot();
    replica.applied = snapshot.data.byteLength === 0 ? [] : decodeSnapshot(snapshot.data);
    return [`restarted ${replica.id}: ${statusLine(replica.node)}`];
  }

  #crash(replica: Replica): string[] {
    replica.node = null;
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      if (this.#queue[i]!.to === replica.id) this.#queue.splice(i, 1);
    }
    return [`crashed ${replica.id}`];
  }

  #replica(text: string | undefined): Replica {
    const replica = this.replicas.get(Number(text));
    if (replica === undefined) throw new Error(`no replica "${text}"`);
    return replica;
  }

  #withNode(text: string | undefined, body: (node: RawNode) => void): string[] {
    const node = this.#replica(text).node;
    if (node === null) return [`replica ${text} is down`];
    body(node);
    return [];
  }

  #result(text: string | undefined, body: (node: RawNode) => unknown): string[] {
    const node = this.#replica(text).node;
    if (node === null) return [`replica ${text} is down`];
    return [JSON.stringify(body(node))];
  }

  #tick(args: string[]): string[] {
    const count = Number(args[1] ?? 1);
    return this.#withNode(args[0], (node) => {
      for (let i = 0; i < count; i++) node.tick();
    });
  }

  #confChange(args: string[]): string[] {
    const change: ConfChange = {
      type: args[1] as ConfChange["type"],
      replicaId: replicaId(Number(args[2])),
    };
    return this.#result(args[0], (node) => node.proposeConfChange(change));
  }

  #processReady(replica: Replica): string[] {
    const node = replica.node;
    if (node === null || !node.hasReady()) return [];
    const ready = node.ready();
    const lines = describeReady(replica.id, ready);
    if (ready.snapshot !== null) replica.storage.applySnapshot(ready.snapshot);
    replica.storage.append(ready.entries);
    if (ready.hardState !== null) replica.storage.setHardState(ready.hardState);
    this.#queue.push(...ready.messages);
    if (ready.snapshot !== null) {
      replica.applied = decodeSnapshot(ready.snapshot.data);
    }
    for (const entry of ready.committed) {
      if (entry.type === "normal" && entry.data.byteLength > 0) {
        replica.applied.push(new TextDecoder().decode(entry.data));
      }
    }
    node.advance(ready);
    return lines;
  }

  #deliver(args: string[]): string[] {
    const flags = parseFlags(args);
    const to = flags.get("to");
    const from = flags.get("from");
    const isDrop = flags.get("drop") === "true";
    const lines: string[] = [];
    const remaining: Message[] = [];
    for (const message of this.#queue.splice(0)) {
      const isSkipped = (to !== undefined && String(message.to) !== to) ||
        (from !== undefined && String(message.from) !== from);
      if (isSkipped) {
        remaining.push(message);
        continue;
      }
      lines.push(this.#deliverOne(message, isDrop));
    }
    this.#queue.push(...remaining);
    return lines;
  }

  #deliverOne(message: Message, isDrop: boolean): string {
    const target = this.replicas.get(message.to)?.node ?? null;
    const text = formatMessage(message);
    if (isDrop) return `dropped ${text}`;
    if (target === null || this.#blocked.has(`${message.from}>${message.to}`)) {
      return `lost ${text}`;
    }
    target.step(message);
    return `${text}`;
  }

  #stabilize(): string[] {
    const lines: string[] = [];
    for (let round = 0; round < 100; round++) {
      let isIdle = true;
      for (const replica of this.replicas.values()) {
        const output = this.#processReady(replica);
        if (output.length > 0) isIdle = false;
        lines.push(...output);
      }
      if (this.#queue.length > 0) isIdle = false;
      lines.push(...this.#deliver([]));
      if (isIdle) return lines;
    }
    throw new Error("stabilize did not settle in 100 rounds");
  }

  #partition(args: string[]): string[] {
    this.#blocked.clear();
    const groups = args.filter((arg) => arg !== "/").map((group) => group.split(",").map(Number));
    for (const group of groups) {
      for (const from of this.replicas.keys()) {
        for (const to of this.replicas.keys()) {
          if (group.includes(from) !== group.includes(to)) this.#blocked.add(`${from}>${to}`);
        }
      }
    }
    return [`partitioned ${groups.map((group) => group.join(",")).join(" / ")}`];
  }

  #status(replica: Replica): string[] {
    if (replica.node === null) return [`${replica.id}: down`];
    const lines = [`${replica.id}: ${statusLine(replica.node)}`];
    for (const progress of replica.node.status().progress) {
      lines.push(
        `  ${progress.id}: ${progress.state} match=${progress.match} next=${progress.next}` +
          (progress.isLearner ? " learner" : ""),
      );
    }
    lines.push(`  applied: ${replica.applied.join(" ") || "(nothing)"}`);
    return lines;
  }

  #log(replica: Replica): string[] {
    const storage = replica.storage;
    const first = storage.firstIndex();
    const entries = storage.entries(first, (storage.lastIndex() + 1) as LogIndex, 1e9) ?? [];
    const snapshot = storage.snapshot().metadata;
    return [
      `${replica.id}: snapshot ${snapshot.index}/${snapshot.term}, entries ${first}..` +
      `${storage.lastIndex()}`,
      ...entries.map((entry) => `  ${formatEntry(entry)}`),
    ];
  }

  /** `snapshot <id> [keep=N] [pad=BYTES]`: snapshot at the applied index, keep N entries. */
  #snapshot(replica: Replica, args: string[]): string[] {
    const node = replica.node;
    if (node === null) return [`replica ${replica.id} is down`];
    const flags = parseFlags(args);
    const keepEntries = Number(flags.get("keep") ?? 0);
    const pad = "x".repeat(Number(flags.get("pad") ?? 0));
    const applied = node.status().applied;
    const data = encode(JSON.stringify({ applied: replica.applied, pad }));
    replica.storage.createSnapshot(applied, node.confStateAt(applied), data);
    const compactTo = Math.max(0, applied - keepEntries) as LogIndex;
    replica.storage.compact(compactTo);
    return [`${replica.id}: snapshot at ${applied}, log compacted through ${compactTo}`];
  }
}

function statusLine(node: RawNode): string {
  const status = node.status();
  return `${status.role} term=${status.term} leader=${status.leader ?? "none"} ` +
    `commit=${status.commit} applied=${status.applied} last=${status.lastIndex} ` +
    `voters=${status.confState.voters.join(",")} learners=${status.confState.learners.join(",")}`;
}

function describeReady(id: ReplicaId, ready: Ready): string[] {
  const lines: string[] = [];
  const hardState = ready.hardState;
  const head = hardState === null
    ? `> ${id} ready`
    : `> ${id} ready: term=${hardState.term} vote=${hardState.vote ?? "none"} ` +
      `commit=${hardState.commit}`;
  const sends = ready.messages.length === 0 ? "" : ` (${ready.messages.length} to send)`;
  lines.push(head + (ready.mustSync ? " (sync)" : "") + sends);
  if (ready.snapshot !== null) {
    const metadata = ready.snapshot.metadata;
    lines.push(`  snapshot ${metadata.index}/${metadata.term} voters=${metadata.confState.voters}`);
  }
  if (ready.entries.length > 0) {
    lines.push(`  persist ${ready.entries.map(formatEntry).join(", ")}`);
  }
  if (ready.committed.length > 0) {
    lines.push(`  apply ${ready.committed.map(formatEntry).join(", ")}`);
  }
  for (const read of ready.readStates) lines.push(`  read ${read.requestId} at ${read.index}`);
  return lines;
}

function parseFlags(args: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (const arg of args) {
    const [key, value] = arg.split("=");
    if (key !== undefined && value !== undefined) flags.set(key, value);
  }
  return flags;
}

function decodeSnapshot(data: Uint8Array): string[] {
  return JSON.parse(new TextDecoder().decode(data)).applied;
}

function encode(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
