/**
 * The simulated cluster: replicas with disks that lose unsynced writes on a power loss
 * (disk.ts) and state machines durable apart from the log (state_machine.ts), a network that
 * delays, drops, duplicates, reorders and partitions, a client workload (with bursts of tiny
 * writes that build a backlog behind a replica that is down or cut off), membership changes,
 * leader transfers and snapshots. One PRNG (the run's seed) makes every choice, and time is a
 * counter, so a seed replays exactly.
 *
 * Each replica is driven as shard/replica.ts drives a real one: a Ready is written at once;
 * when it must be durable it waits for its flush (a disk latency) before its messages go out,
 * its entries apply and the core advances, and the replica takes no input meanwhile (messages,
 * ticks and proposals queue). A leader's messages leave before its own flush when its term
 * and vote are already durable. A Ready that only moves the commit index is not synced.
 */
import {
  decodeConfChange,
  decodeMessage,
  DEFAULT_RAFT_LIMITS,
  encodeMessage,
  MemoryStorage,
  RawNode,
  replicaId,
  SeededPrng,
} from "../../raft/mod.ts";
import type {
  ConfState,
  Entry,
  LogIndex,
  Message,
  Ready,
  ReplicaId,
  WritableLogStorage,
} from "../../raft/mod.ts";
import { SqliteLogStorage } from "../../shard/mod.ts";
import { SafetyChecker } from "./checker.ts";
import { SimDisk } from "./disk.ts";
import { mix } from "./hash.ts";
import { TimedHeap } from "./heap.ts";
import type { SimOptions } from "./options.ts";
import {
  applyBatchEntriesMax,
  DurableStateMachine,
  encodeOperation,
  operationId,
} from "./state_machine.ts";

/** Most messages a replica queues while it waits for a flush; more are dropped. */
const INBOX_MESSAGES_MAX = 4096;
/** Most Ready rounds a replica handles in one step. */
const READY_ROUNDS_PER_STEP_MAX = 8;

const MESSAGE_TYPES = [
  "vote",
  "preVote",
  "voteResponse",
  "preVoteResponse",
  "append",
  "appendResponse",
  "heartbeat",
  "heartbeatResponse",
  "snapshotChunk",
  "snapshotAck",
  "timeoutNow",
];

interface InFlight {
  readonly at: number;
  readonly seq: number;
  readonly from: number;
  readonly to: number;
  readonly bytes: Uint8Array;
}

/** A persisted Ready that waits for its flush, due at `at`. */
interface Flushing {
  readonly ready: Ready;
  readonly isSent: boolean;
  readonly at: number;
}

/** One simulated replica: its disk and state machine survive crashes (in part). */
export class SimReplica {
  readonly id: ReplicaId;
  readonly disk: SimDisk;
  readonly machine = new DurableStateMachine();
  node: RawNode | null = null;
  nextTickAt = 0;
  restartAt: number | null = null;
  isDestroyed = false;
  starts = 0;
  flushing: Flushing | null = null;
  /** Until when the process is paused (SIGSTOP); null when it runs. */
  pausedUntil: number | null = null;
  /** Messages that arrived while paused, stepped when it resumes (they wait in the socket). */
  held: Message[] = [];
  /** Inputs that arrived during a flush, taken once it ends (the real replica's queues). */
  inbox: Message[] = [];
  pendingTicks = 0;
  /** With deferred commit notices: when the leader sends those it owes (null: none owed). */
  commitNoticeAt: number | null = null;
  queuedProposals: PendingOperation[] = [];
  /** The term and vote last written: a leader's Ready that keeps them may send early. */
  writtenVote: { term: number; vote: number | null };

  constructor(id: ReplicaId, disk: SimDisk) {
    this.id = id;
    this.disk = disk;
    const { term, vote } = disk.storage.initialState().hardState;
    this.writtenVote = { term, vote };
  }

  /** The log storage the replica reads and writes. */
  get storage(): WritableLogStorage {
    return this.disk.storage;
  }

  /** Whether the replica takes inputs now: it is up and not waiting for a flush. */
  get isIdle(): boolean {
    return this.node !== null && this.flushing === null && this.pausedUntil === null;
  }

  /** Forgets everything that lives only in memory (a crash or a removal). */
  stop(): void {
    this.node = null;
    this.flushing = null;
    this.inbox = [];
    this.pendingTicks = 0;
    this.commitNoticeAt = null;
    this.queuedProposals = [];
    this.pausedUntil = null;
    this.held = [];
  }
}

interface PendingOperation {
  readonly id: number;
  readonly data: Uint8Array;
  proposedAt: number;
  /** Where the last proposal landed, as a client would remember it; null when refused. */
  leader: number | null;
  term: number;
}

/** The whole simulated world of one run. */
export class SimCluster {
  readonly prng: SeededPrng;
  readonly options: SimOptions;
  readonly seed: number;
  readonly checker = new SafetyChecker();
  readonly replicas = new Map<number, SimReplica>();
  now = 0;
  traceHash = 0;
  /** Prints per-step events (`deno task sim --seed S --trace`); null (the default) is silent. */
  tracer: ((line: string) => void) | null = null;
  isHealing = false;
  /** Network and disk latency bounds; healing lowers them to a healthy datacenter's. */
  latencyUnitsMax: number;
  diskLatencyUnitsMax: number;
  readonly blocked = new Set<number>();
  readonly pending = new Map<number, PendingOperation>();
  readonly acked = new Set<number>();
  maxAckedIndex = 0;
  stats = {
    proposals: 0,
    acked: 0,
    snapshotsSent: 0,
    crashes: 0,
    powerLosses: 0,
    elections: 0,
    reads: 0,
    pauses: 0,
    bursts: 0,
    applyBatchEntriesMax: 0,
    /** Quiesced followers woken because their leader's replica went quiet (node liveness). */
    leaderDownWakes: 0,
    /** Steps in which every live replica was quiesced. */
    quietSteps: 0,
  };
  /** The state machine's batch bound, from the core's committed entries per Ready. */
  readonly applyBatchEntriesMax: number;
  #network = new TimedHeap<InFlight>();
  #seq = 0;
  #nextOperationId = 1;
  #nextRequestId = 1;
  #nextSpareId: number;
  #proposals = new Map<string, number>();
  #reads = new Map<string, number>();
  #lastLeaderTerm = new Map<number, number>();
  #linkLastAt = new Map<number, number>();
  /** Node liveness: when `observer * 64 + peer` last heard `peer`, and silences reported. */
  #heardAt = new Map<number, number>();
  #reportedDown = new Set<number>();
  /** Each peer's start count when its observer last heard it (a new count: a new connection). */
  #heardStarts = new Map<number, number>();
  /** Since when each quiesced follower's leader has been down or cut off from it. */
  #orphanedSince = new Map<number, number>();

  /** Every SQLite storage opened, closed by {@linkcode SimCluster.close}. */
  readonly #sqliteStorages: SqliteLogStorage[] = [];
  readonly #storageKind: "memory" | "sqlite";

  constructor(seed: number, options: SimOptions, storageKind: "memory" | "sqlite" = "memory") {
    this.#storageKind = storageKind;
    this.seed = seed;
    this.options = options;
    this.latencyUnitsMax = options.latencyUnitsMax;
    this.diskLatencyUnitsMax = options.diskLatencyUnitsMax;
    this.prng = new SeededPrng(seed * 7919 + 17);
    this.applyBatchEntriesMax = applyBatchEntriesMax(options.committedEntriesPerReadyMax);
    const voters: ReplicaId[] = [];
    for (let id = 1; id <= options.voterCount; id++) voters.push(replicaId(id));
    for (const id of voters) {
      const replica = new SimReplica(id, this.#openDisk({ voters, learners: [] }));
      const storage = replica.storage;
      const bootstrap = storage.entries(1 as LogIndex, (storage.lastIndex() + 1) as LogIndex, 1e9);
      this.checker.onAppend(id, bootstrap ?? []);
      this.checker.onCommit(id, storage.initialState().hardState.commit, 1);
      this.replicas.set(id, replica);
      this.#start(replica);
    }
    this.#nextSpareId = options.voterCount + 1;
  }

  /** Releases the storages (SQLite databases are in memory, but must be closed). */
  close(): void {
    for (const storage of this.#sqliteStorages) storage.close();
  }

  /** Reports an event to the tracer; `describe` runs only when tracing is on. */
  trace(describe: () => string): void {
    if (this.tracer !== null) this.tracer(`t=${this.now} ${describe()}`);
  }

  #openDisk(bootstrap: ConfState | null): SimDisk {
    const open = (confState: ConfState | null) => {
      if (this.#storageKind === "memory") return new MemoryStorage(confState ?? undefined);
      const storage = SqliteLogStorage.open({ path: ":memory:", bootstrap: confState });
      this.#sqliteStorages.push(storage);
      return storage;
    };
    return new SimDisk(open(bootstrap), bootstrap, () => open(null));
  }

  /** Advances the world by one time unit and runs every check. */
  step(): void {
    this.now++;
    this.checker.now = this.now;
    this.#deliverDue();
    for (const replica of this.replicas.values()) {
      if (replica.pausedUntil !== null) {
        if (this.now < replica.pausedUntil) continue;
        this.#resume(replica);
      }
      if (replica.node !== null && this.now >= replica.nextTickAt) {
        if (replica.flushing === null) replica.node.tick();
        else replica.pendingTicks++;
        replica.nextTickAt += this.options.tickUnits;
      }
      if (replica.restartAt !== null && this.now >= replica.restartAt) this.#start(replica);
      this.#noticeCommit(replica);
    }
    this.#watchNodes();
    if (!this.isHealing) this.#injectFaults();
    this.#workload();
    this.#processReadys();
    this.#checkLeaders();
    this.#checkQuiesced();
  }

  /** Units of silence after which a node counts its peer as down (server/node_liveness.ts). */
  get nodeDownUnits(): number {
    return this.options.electionTicks * this.options.tickUnits * 2;
  }

  /** Whether this is one of the quiet stretches of the workload (SimOptions.quietUnits). */
  get isQuietPeriod(): boolean {
    const units = this.options.quietUnits;
    return !this.isHealing && units > 0 && Math.floor(this.now / units) % 2 === 1;
  }

  /** Crashes replica `id` (a process crash) and keeps it down for `units`. */
  crashFor(id: number, units: number): void {
    const replica = this.replicas.get(id);
    if (replica === undefined || replica.node === null) return;
    replica.stop();
    this.stats.crashes++;
    replica.restartAt = this.now + units;
  }

  /**
   * Node-to-node liveness, as every node runs it beside its shards: a replica hears each peer
   * whose replica is up and whose link to it is open, and once a peer has been silent for
   * nodeDownUnits it tells its core (RawNode.reportLeaderDown), once per silence.
   */
  #watchNodes(): void {
    for (const observer of this.replicas.values()) {
      for (const peer of this.replicas.values()) {
        if (peer === observer) continue;
        const key = observer.id * 64 + peer.id;
        // A paused process sends nothing, its node heartbeats included.
        const isHeard = peer.node !== null && peer.pausedUntil === null;
        if (isHeard && !this.blocked.has(peer.id * 64 + observer.id)) {
          this.#noteHeard(observer, peer, key);
          continue;
        }
        const silentUnits = this.now - (this.#heardAt.get(key) ?? 0);
        if (silentUnits < this.nodeDownUnits || this.#reportedDown.has(key)) continue;
        // A replica waiting for a flush takes the report once the flush ends.
        if (observer.node === null || !observer.isIdle) continue;
        this.#reportedDown.add(key);
        if (observer.node.reportLeaderDown(peer.id)) this.stats.leaderDownWakes++;
      }
    }
  }

  /**
   * `observer` hears `peer`. A peer that restarted, or that was counted down, connects anew: the
   * observer's replica takes RawNode.reportPeerBack then (the node's onPeerStateChange), once it
   * is idle (it retries at the next step until then).
   */
  #noteHeard(observer: SimReplica, peer: SimReplica, key: number): void {
    const starts = this.#heardStarts.get(key);
    const isNewConnection = (starts !== undefined && starts !== peer.starts) ||
      this.#reportedDown.has(key);
    if (isNewConnection) {
      if (observer.node === null || !observer.isIdle) return;
      observer.node.reportPeerBack(peer.id);
    }
    this.#heardStarts.set(key, peer.starts);
    this.#heardAt.set(key, this.now);
    this.#reportedDown.delete(key);
  }

  /**
   * Liveness of quiesced groups: a quiesced follower whose leader is down or cut off from it
   * must wake (and campaign) within the node-liveness bound plus a flush.
   */
  #checkQuiesced(): void {
    let live = 0;
    let quiet = 0;
    for (const replica of this.replicas.values()) {
      const node = replica.node;
      if (node === null) continue;
      live++;
      if (node.isQuiesced) quiet++;
      const leader = node.leader === null ? undefined : this.replicas.get(node.leader);
      const isOrphaned = node.isQuiesced && node.role === "follower" && leader !== undefined &&
        (leader.node === null || leader.pausedUntil !== null ||
          this.blocked.has(leader.id * 64 + replica.id));
      // A paused replica cannot wake before it resumes; its bound starts again then.
      if (!isOrphaned || replica.pausedUntil !== null) {
        this.#orphanedSince.delete(replica.id);
        continue;
      }
      const since = this.#orphanedSince.get(replica.id) ?? this.now;
      this.#orphanedSince.set(replica.id, since);
      const boundUnits = this.nodeDownUnits + this.options.tickUnits * 2 + this.diskLatencyUnitsMax;
      if (this.now - since > boundUnits) {
        this.checker.fail(
          `t=${this.now}: quiesced replica ${replica.id} did not wake ${boundUnits} units ` +
            `after its leader ${leader.id} went down or was cut off`,
        );
      }
    }
    if (live > 0 && quiet === live) this.stats.quietSteps++;
  }

  /** Liveness phase: heal the network, restart everyone, stop injecting faults. */
  heal(): void {
    this.isHealing = true;
    this.blocked.clear();
    this.latencyUnitsMax = Math.min(this.latencyUnitsMax, 5);
    this.diskLatencyUnitsMax = Math.min(this.diskLatencyUnitsMax, 2);
    for (const replica of this.replicas.values()) {
      if (replica.node === null && !replica.isDestroyed) this.#start(replica);
    }
  }

  /** The current leader with the highest term among live replicas, if any. */
  leader(): SimReplica | null {
    let best: SimReplica | null = null;
    let bestTerm = -1;
    for (const replica of this.replicas.values()) {
      const status = replica.node?.status();
      if (status === undefined || status.role !== "leader") continue;
      if (status.term > bestTerm) {
        best = replica;
        bestTerm = status.term;
      }
    }
    return best;
  }

  /** Whether every member applied everything the leader committed and no write is pending. */
  isConverged(): boolean {
    const leader = this.leader();
    if (leader === null || leader.node === null) return false;
    if (this.pending.size > 0) return false;
    const status = leader.node.status();
    if (status.applied !== status.commit || status.commit !== status.lastIndex) return false;
    for (const id of [...status.confState.voters, ...status.confState.learners]) {
      const replica = this.replicas.get(id);
      if (replica === undefined || replica.node === null) return false;
      const other = replica.node.status();
      if (other.applied !== status.commit || other.leader !== leader.id) return false;
    }
    return true;
  }

  /**
   * Starts (or restarts) a replica as shard/replica.ts does: a state machine behind the log's
   * snapshot (a restore that a power loss undid) restores it first, and the core starts from
   * the machine's applied index, which may be past the log's durable commit index.
   */
  #start(replica: SimReplica): void {
    replica.starts++;
    this.trace(() => `r${replica.id} start #${replica.starts}`);
    replica.restartAt = null;
    replica.stop();
    // What a restarted replica reads is made durable, as SqliteLogStorage.open() does: without
    // it, a process crash during a flush and a later power loss lose entries that the state
    // machine applied and synced meanwhile, and the replica cannot start (seed 119 found it;
    // tests/log_open_sync_test.ts checks the real storage).
    replica.disk.sync();
    // A new process knows only the term and vote on disk (a power loss may have undone the
    // last ones written): shard/replica.ts reads them from storage when it starts.
    const { term, vote, commit } = replica.storage.initialState().hardState;
    replica.writtenVote = { term, vote };
    // The commit index it reads is durable now, even when the Ready that wrote it crashed
    // before its flush (and was not recorded then): the replica applies up to it.
    this.checker.onCommit(replica.id, commit, term);
    const options = this.options;
    const snapshot = replica.storage.snapshot();
    if (replica.machine.current.applied < snapshot.metadata.index) {
      replica.machine.restore(snapshot.data);
    }
    const machine = replica.machine.current;
    if (machine.applied > 0) this.checker.onStateMachine(replica.id, machine.applied, machine.hash);
    replica.node = new RawNode({
      id: replica.id,
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
      prng: new SeededPrng(this.seed * 131 + replica.id * 17 + replica.starts),
      preVote: options.preVote,
      checkQuorum: options.checkQuorum,
      leaseReads: options.leaseReads,
      deferCommitNotices: options.deferCommitNotices,
      // As nodes run it: a lease also ends by the clock (here the simulated time).
      leaseClock: { nowMs: () => this.now, tickMs: options.tickUnits },
      applied: machine.applied,
      limits: {
        ...DEFAULT_RAFT_LIMITS,
        appendEntriesMax: options.appendEntriesMax,
        uncommittedBytesMax: options.uncommittedBytesMax,
        committedEntriesPerReadyMax: options.committedEntriesPerReadyMax,
      },
    }, replica.storage);
    replica.nextTickAt = this.now + 1 + this.prng.nextInt(this.options.tickUnits);
  }

  /** A leader that owes commit notices sends them `commitNoticeUnits` later (as a driver). */
  #noticeCommit(replica: SimReplica): void {
    const node = replica.node;
    if (node === null || replica.flushing !== null || replica.pausedUntil !== null) return;
    if (!node.hasCommitNoticesDue) {
      replica.commitNoticeAt = null;
    } else if (replica.commitNoticeAt === null) {
      replica.commitNoticeAt = this.now + this.options.commitNoticeUnits;
    } else if (this.now >= replica.commitNoticeAt) {
      replica.commitNoticeAt = null;
      node.sendCommitNotices();
    }
  }

  /**
   * Crashes a replica: a process crash loses only memory; a power loss also loses a suffix of
   * the unsynced log writes and of the state machine's unsynced batches (often all of them).
   */
  #crash(replica: SimReplica): void {
    replica.stop();
    this.stats.crashes++;
    const isPowerLoss = this.prng.nextFloat() < this.options.powerLossRate;
    this.trace(() => `r${replica.id} crash${isPowerLoss ? " (power loss)" : ""}`);
    if (isPowerLoss) {
      this.stats.powerLosses++;
      replica.disk.losePower(this.#keptCount(replica.disk.volatileCount));
      replica.machine.losePower(this.#keptCount(replica.machine.volatileCount));
      this.checker.onRestart(replica.id, replica.storage);
    }
    replica.restartAt = this.now + 1 + this.prng.nextInt(this.options.downUnitsMax);
  }

  /** How many of `count` unsynced writes survive a power loss: none half of the time. */
  #keptCount(count: number): number {
    if (count === 0 || this.prng.nextInt(2) === 0) return 0;
    return this.prng.nextInt(count + 1);
  }

  send(message: Message): void {
    const sender = this.replicas.get(message.from);
    if (sender !== undefined) this.checker.onSend(message, sender.disk.durableTerm);
    const bytes = encodeMessage(message);
    if (this.isHealing === false && this.prng.nextFloat() < this.options.dropRate) return;
    const copies = this.prng.nextFloat() < this.options.duplicateRate ? 2 : 1;
    const link = message.from * 64 + message.to;
    for (let i = 0; i < copies; i++) {
      let at = this.now + 1 + this.prng.nextInt(this.latencyUnitsMax);
      // Links are FIFO like the real transport's streams, except when a reorder fault fires.
      const isReordered = this.prng.nextFloat() < this.options.reorderRate;
      if (!isReordered) at = Math.max(at, this.#linkLastAt.get(link) ?? 0);
      this.#linkLastAt.set(link, Math.max(at, this.#linkLastAt.get(link) ?? 0));
      this.#network.push({ at, seq: this.#seq++, from: message.from, to: message.to, bytes });
    }
    if (message.type === "snapshotChunk") this.stats.snapshotsSent++;
  }

  #deliverDue(): void {
    for (;;) {
      const next = this.#network.peek();
      if (next === undefined || next.at > this.now) return;
      this.#network.pop();
      const target = this.replicas.get(next.to);
      if (target === undefined || target.node === null) continue;
      if (this.blocked.has(next.from * 64 + next.to)) {
        this.#reportLoss(next);
        continue;
      }
      const decoded = decodeMessage(next.bytes);
      if (!decoded.ok) {
        this.checker.fail(`codec failed to decode its own message: ${decoded.error}`);
        return;
      }
      const message = decoded.message;
      this.traceHash = mix(mix(mix(this.traceHash, this.now), next.from * 64 + next.to), 0);
      this.traceHash = mix(this.traceHash, MESSAGE_TYPES.indexOf(message.type) + message.term);
      if (target.pausedUntil !== null) target.held.push(message);
      else if (target.flushing === null) target.node.step(message);
      else if (target.inbox.length < INBOX_MESSAGES_MAX) target.inbox.push(message);
    }
  }

  /** Like a transport that notices a broken link, sometimes tells the sender about the loss. */
  #reportLoss(lost: InFlight): void {
    const sender = this.replicas.get(lost.from);
    if (sender === undefined || !sender.isIdle || this.prng.nextInt(2) === 0) return;
    const to = replicaId(lost.to);
    if (this.prng.nextInt(4) === 0) sender.node?.reportSnapshot(to, false);
    else sender.node?.reportUnreachable(to);
  }

  #processReadys(): void {
    for (const replica of this.replicas.values()) {
      if (replica.pausedUntil !== null) continue;
      const flushing = replica.flushing;
      if (flushing !== null && this.now >= flushing.at) this.#flushed(replica, flushing);
      for (let round = 0; round < READY_ROUNDS_PER_STEP_MAX; round++) {
        const node = replica.node;
        if (node === null || replica.flushing !== null || !node.hasReady()) break;
        this.#handleReady(replica, node);
      }
    }
  }

  /** Writes a Ready; finishes it at once unless it must wait for its flush. */
  #handleReady(replica: SimReplica, node: RawNode): void {
    const ready = node.ready();
    const hardState = ready.hardState;
    const written = replica.writtenVote;
    const isVoteWritten = hardState === null ||
      (hardState.term === written.term && hardState.vote === written.vote);
    const isEarlySend = node.role === "leader" && isVoteWritten;
    replica.disk.persist(ready);
    this.trace(() => `r${replica.id} ${node.role} ${describeReady(ready)} early ${isEarlySend}`);
    if (hardState !== null) replica.writtenVote = { term: hardState.term, vote: hardState.vote };
    this.#checkWrite(replica, ready);
    if (!ready.mustSync) {
      this.#checkCommit(replica, ready);
      this.#finishReady(replica, ready, true);
      return;
    }
    if (isEarlySend) { for (const message of ready.messages) this.send(message); }
    const at = this.now + this.prng.nextInt(this.diskLatencyUnitsMax + 1);
    const flushing = { ready, isSent: isEarlySend, at };
    replica.flushing = flushing;
    if (at === this.now) this.#flushed(replica, flushing);
  }

  #checkWrite(replica: SimReplica, ready: Ready): void {
    if (ready.snapshot !== null) this.checker.onSnapshot(replica.id, ready.snapshot.metadata);
    if (ready.entries.length > 0) this.checker.onAppend(replica.id, ready.entries);
    const node = replica.node;
    if (node !== null && node.role === "leader") {
      this.checker.onLeaderPersisted(replica.id, node.term);
    }
  }

  /**
   * Records a Ready's commit index: once its flush ended when it must be durable (a power loss
   * during the flush loses the hard state unseen), at once otherwise.
   */
  #checkCommit(replica: SimReplica, ready: Ready): void {
    if (ready.hardState === null) return;
    this.checker.onCommit(replica.id, ready.hardState.commit, ready.hardState.term);
  }

  /** The flush of a Ready ended: finish it, then take the inputs that waited. */
  #flushed(replica: SimReplica, flushing: Flushing): void {
    this.trace(() => `r${replica.id} flushed`);
    replica.disk.sync();
    replica.flushing = null;
    this.#checkCommit(replica, flushing.ready);
    this.#finishReady(replica, flushing.ready, !flushing.isSent);
    const node = replica.node;
    if (node === null) return;
    for (; replica.pendingTicks > 0; replica.pendingTicks--) node.tick();
    for (const message of replica.inbox.splice(0)) node.step(message);
    for (const operation of replica.queuedProposals.splice(0)) this.#proposeAt(replica, operation);
  }

  /** Sends (unless already sent), restores, applies and advances a written Ready. */
  #finishReady(replica: SimReplica, ready: Ready, isSendNeeded: boolean): void {
    const node = replica.node;
    if (node === null) return;
    if (isSendNeeded) { for (const message of ready.messages) this.send(message); }
    if (ready.snapshot !== null) {
      replica.machine.restore(ready.snapshot.data);
      const machine = replica.machine.current;
      this.checker.onStateMachine(replica.id, machine.applied, machine.hash);
    }
    if (ready.committed.length > 0) this.#applyBatch(replica, ready.committed);
    for (const read of ready.readStates) this.#checkRead(replica, read.requestId, read.index);
    node.advance(ready);
    if (replica.node !== null) this.#maybeSnapshot(replica, node);
  }

  #applyBatch(replica: SimReplica, entries: readonly Entry[]): void {
    const bound = this.applyBatchEntriesMax;
    const hashes = replica.machine.applyBatch(entries, bound);
    this.stats.applyBatchEntriesMax = Math.max(this.stats.applyBatchEntriesMax, entries.length);
    if (this.prng.nextFloat() < this.options.machineSyncRate) replica.machine.sync();
    entries.forEach((entry, i) => this.#applied(replica, entry, hashes[i]!));
  }

  #applied(replica: SimReplica, entry: Entry, hash: number): void {
    this.checker.onStateMachine(replica.id, entry.index, hash);
    this.traceHash = mix(mix(this.traceHash, entry.index), hash);
    const id = operationId(entry);
    if (id !== null) {
      this.pending.delete(id);
      const key = `${replica.id}:${entry.index}:${entry.term}`;
      if (this.#proposals.get(key) === id) {
        this.#proposals.delete(key);
        this.acked.add(id);
        this.trace(() => `r${replica.id} acks write ${id} at ${entry.index}/${entry.term}`);
        this.stats.acked++;
        this.maxAckedIndex = Math.max(this.maxAckedIndex, entry.index);
      }
    }
    if (entry.type === "confChange") {
      const change = decodeConfChange(entry.data);
      if (change === null) {
        this.checker.fail(`malformed membership change at ${entry.index}`);
      } else if (change.type === "removeReplica") {
        this.#destroy(change.replicaId);
      }
    }
  }

  #destroy(id: number): void {
    const replica = this.replicas.get(id);
    if (replica === undefined || replica.isDestroyed) return;
    replica.isDestroyed = true;
    replica.stop();
    replica.restartAt = null;
  }

  #maybeSnapshot(replica: SimReplica, node: RawNode): void {
    const storage = replica.storage;
    const machine = replica.machine.current;
    const applied = machine.applied;
    if (applied - storage.snapshot().metadata.index < this.options.snapshotEvery) return;
    const data = machine.snapshot(this.options.snapshotPaddingBytes);
    const compactTo = (applied - this.options.compactionLag) as LogIndex;
    replica.disk.snapshot({
      index: applied,
      confState: node.confStateAt(applied),
      data,
      compactTo,
    });
  }

  #checkRead(replica: SimReplica, requestId: number, index: number): void {
    const key = `${replica.id}:${requestId}`;
    const floor = this.#reads.get(key);
    if (floor === undefined) {
      this.checker.fail(`replica ${replica.id} released unknown read ${requestId}`);
      return;
    }
    this.#reads.delete(key);
    if (index < floor) {
      this.checker.fail(`stale read ${requestId} at ${replica.id}: index ${index} < ${floor}`);
    }
  }

  #checkLeaders(): void {
    for (const replica of this.replicas.values()) {
      const status = replica.node?.status();
      if (status === undefined || status.role !== "leader") continue;
      this.checker.onLeader(replica.id, status.term);
      if (this.#lastLeaderTerm.get(replica.id) !== status.term) {
        this.#lastLeaderTerm.set(replica.id, status.term);
        this.stats.elections++;
      }
    }
  }

  #randomLive(): SimReplica | null {
    const live = [...this.replicas.values()].filter((replica) => replica.node !== null);
    if (live.length === 0) return null;
    return live[this.prng.nextInt(live.length)] ?? null;
  }

  #workload(): void {
    const options = this.options;
    if (this.isQuietPeriod) {
      if (this.now % 10 === 0) this.#retryPending();
      return;
    }
    if (!this.isHealing && this.prng.nextFloat() < options.proposeRate) {
      const id = this.#nextOperationId++;
      const data = encodeOperation(id, this.prng.nextInt(options.payloadBytesMax + 1));
      const operation = { id, data, proposedAt: this.now, leader: null, term: 0 };
      this.pending.set(id, operation);
      this.#propose(operation);
    }
    if (!this.isHealing && this.prng.nextFloat() < options.burstRate) this.#burst();
    if (this.now % 10 === 0) this.#retryPending();
    if (!this.isHealing && this.prng.nextFloat() < options.readRate) this.#read();
  }

  /**
   * A client writes a burst of tiny entries at the leader in one batch: a replica that is down
   * or cut off meanwhile comes back to a backlog of committed entries far larger than one
   * apply batch. Writes the leader refuses (over the uncommitted limit) are not retried.
   */
  #burst(): void {
    const leader = this.leader();
    if (leader === null || leader.node === null || !leader.isIdle) return;
    this.stats.bursts++;
    const operations: PendingOperation[] = [];
    for (let i = 0; i < this.options.burstEntries; i++) {
      const id = this.#nextOperationId++;
      const data = encodeOperation(id, 0);
      operations.push({ id, data, proposedAt: this.now, leader: leader.id, term: 0 });
    }
    const results = leader.node.proposeBatch(operations.map((operation) => operation.data));
    this.stats.proposals += operations.length;
    operations.forEach((operation, i) => {
      const result = results[i];
      if (result === undefined || result.kind !== "ok") return;
      operation.term = result.term;
      this.pending.set(operation.id, operation);
      this.#proposals.set(`${leader.id}:${result.index}:${result.term}`, operation.id);
    });
  }

  /**
   * Re-proposes pending writes like a client that times out: soon when its leader lost the
   * role, and after a long wait in any case (a leader can lose unsynced entries in a crash and
   * come back leading the same term).
   */
  #retryPending(): void {
    const retryUnits = this.options.electionTicks * this.options.tickUnits * 2;
    let retries = 0;
    for (const operation of this.pending.values()) {
      const waited = this.now - operation.proposedAt;
      if (waited < retryUnits || retries >= 8) continue;
      const isStillLeading = this.#isLeading(operation.leader, operation.term);
      if (isStillLeading && waited < retryUnits * 5) continue;
      operation.proposedAt = this.now;
      this.#propose(operation);
      retries++;
    }
  }

  #propose(operation: PendingOperation): void {
    const replica = this.#randomLive();
    operation.leader = null;
    if (replica !== null) this.#proposeAt(replica, operation);
  }

  /** Proposes at `first`, following one not-leader hint; a replica in a flush queues it. */
  #proposeAt(first: SimReplica, operation: PendingOperation): void {
    let replica: SimReplica | null = first;
    for (let attempt = 0; attempt < 2 && replica !== null && replica.node !== null; attempt++) {
      if (replica.flushing !== null) {
        replica.queuedProposals.push(operation);
        return;
      }
      const result = replica.node.propose(operation.data);
      this.stats.proposals++;
      if (result.kind === "ok") {
        this.#proposals.set(`${replica.id}:${result.index}:${result.term}`, operation.id);
        operation.leader = replica.id;
        operation.term = result.term;
        return;
      }
      if (result.kind !== "not_leader" || result.leader === null) return;
      replica = this.replicas.get(result.leader) ?? null;
    }
  }

  #isLeading(id: number | null, term: number): boolean {
    if (id === null) return false;
    const status = this.replicas.get(id)?.node?.status();
    return status !== undefined && status.role === "leader" && status.term === term;
  }

  /**
   * A client reads at a replica that believes it leads, of any term: a deposed leader that has
   * not heard of its successor is asked too, as a client that knows only it would ask it.
   */
  #read(): void {
    const leaders = [...this.replicas.values()].filter((replica) =>
      replica.isIdle && replica.node?.role === "leader"
    );
    if (leaders.length === 0) return;
    this.#readAt(leaders[this.prng.nextInt(leaders.length)]!);
  }

  /** A linearizable read at `replica`; it must not be released below what was acked by now. */
  #readAt(replica: SimReplica): void {
    if (replica.node === null) return;
    const requestId = this.#nextRequestId++;
    const result = replica.node.readIndex(requestId);
    if (result.kind === "ok") {
      this.#reads.set(`${replica.id}:${requestId}`, this.maxAckedIndex);
      this.stats.reads++;
    }
  }

  #injectFaults(): void {
    const options = this.options;
    if (this.prng.nextFloat() < options.crashRate) {
      const replica = this.#randomLive();
      if (replica !== null) this.#crash(replica);
    }
    if (this.prng.nextFloat() < options.partitionRate) this.#partition();
    if (this.isQuietPeriod) return;
    if (this.prng.nextFloat() < options.membershipRate) this.#changeMembership();
    if (this.prng.nextFloat() < options.transferRate) this.#transfer();
    if (this.prng.nextFloat() < options.pauseRate) {
      const replica = this.#randomLive();
      if (replica !== null && replica.pausedUntil === null) {
        replica.pausedUntil = this.now + 1 + this.prng.nextInt(options.downUnitsMax);
        this.stats.pauses++;
      }
    }
  }

  /**
   * A paused replica resumes as a real process does: its timer fires once (the ticks of the
   * pause are not made up), it steps the messages that waited, and a client read that waited
   * in its socket comes before or after those (two times in three, when it believes it leads:
   * the read a lease counted in ticks alone would answer from a stale state; the lease clock,
   * the simulated time, ends that lease).
   */
  #resume(replica: SimReplica): void {
    replica.pausedUntil = null;
    const node = replica.node;
    if (node === null) return;
    const tickUnits = this.options.tickUnits;
    const ticks = this.now < replica.nextTickAt ? 0 : 1;
    while (replica.nextTickAt <= this.now) replica.nextTickAt += tickUnits;
    const held = replica.held.splice(0);
    if (replica.flushing !== null) {
      replica.pendingTicks += ticks;
      replica.inbox.push(...held.slice(0, INBOX_MESSAGES_MAX - replica.inbox.length));
      return;
    }
    for (let i = 0; i < ticks; i++) node.tick();
    // The read and the peer messages reach the resumed process in either order.
    const read = this.prng.nextInt(3);
    if (read === 0 && node.role === "leader") this.#readAt(replica);
    for (const message of held) node.step(message);
    if (read === 1 && node.role === "leader") this.#readAt(replica);
  }

  #partition(): void {
    this.blocked.clear();
    const ids = [...this.replicas.keys()];
    const kind = this.prng.nextInt(3);
    if (kind === 0) return;
    if (kind === 1) {
      const side = new Set(ids.filter(() => this.prng.nextInt(2) === 0));
      for (const from of ids) {
        for (const to of ids) {
          if (side.has(from) !== side.has(to)) this.blocked.add(from * 64 + to);
        }
      }
      return;
    }
    for (let i = 0; i < 1 + this.prng.nextInt(3); i++) {
      const from = ids[this.prng.nextInt(ids.length)]!;
      const to = ids[this.prng.nextInt(ids.length)]!;
      this.blocked.add(from * 64 + to);
    }
  }

  #changeMembership(): void {
    const leader = this.leader();
    if (leader === null || leader.node === null || !leader.isIdle) return;
    const { voters, learners } = leader.node.status().confState;
    const choice = this.prng.nextInt(3);
    if (choice === 0 && learners.length === 0 && this.#nextSpareId <= this.#spareLimit()) {
      const id = replicaId(this.#nextSpareId);
      const result = leader.node.proposeConfChange({ type: "addLearner", replicaId: id });
      if (result.kind !== "ok") return;
      this.#nextSpareId++;
      const replica = new SimReplica(id, this.#openDisk(null));
      this.replicas.set(id, replica);
      this.#start(replica);
    } else if (choice === 1 && learners.length > 0) {
      const id = learners[this.prng.nextInt(learners.length)]!;
      leader.node.proposeConfChange({ type: "addVoter", replicaId: id });
    } else if (choice === 2 && voters.length > 3) {
      const id = voters[this.prng.nextInt(voters.length)]!;
      leader.node.proposeConfChange({ type: "removeReplica", replicaId: id });
    }
  }

  #spareLimit(): number {
    return this.options.voterCount + this.options.spareCount;
  }

  #transfer(): void {
    const leader = this.leader();
    if (leader === null || leader.node === null || !leader.isIdle) return;
    const voters = leader.node.status().confState.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    leader.node.transferLeadership(voters[this.prng.nextInt(voters.length)]!);
  }

  /** A one-line summary of every replica, for liveness failures. */
  describe(): string {
    const parts: string[] = [];
    for (const replica of this.replicas.values()) {
      const status = replica.node?.status();
      if (status === undefined) {
        parts.push(`${replica.id}:${replica.isDestroyed ? "destroyed" : "down"}`);
        continue;
      }
      const progress = status.progress.map((item) =>
        `${item.id}=${item.state}/${item.match}/${item.next}`
      ).join(",");
      parts.push(
        `${replica.id}:${status.role} t${status.term} c${status.commit} a${status.applied} ` +
          `l${status.lastIndex} lead${status.leader} v${status.confState.voters} ` +
          `L${status.confState.learners} [${progress}]`,
      );
    }
    return parts.join("; ");
  }

  /** Asserts at the end that every acknowledged write is applied on every live member. */
  checkAcknowledged(): void {
    const leader = this.leader();
    if (leader === null || leader.node === null) return;
    const { voters, learners } = leader.node.status().confState;
    for (const id of [...voters, ...learners]) {
      const replica = this.replicas.get(id);
      if (replica === undefined || replica.node === null) continue;
      for (const operation of this.acked) {
        if (!replica.machine.current.ids.has(operation)) {
          this.checker.fail(`acknowledged write ${operation} missing on replica ${id}`);
          return;
        }
      }
    }
  }
}

/** One line for a persisted Ready, for the tracer. */
function describeReady(ready: Ready): string {
  const hardState = ready.hardState;
  const state = hardState === null
    ? "-"
    : `t${hardState.term}/v${hardState.vote}/c${hardState.commit}`;
  const span = (entries: readonly Entry[]) => {
    const first = entries[0];
    const last = entries[entries.length - 1];
    return first === undefined || last === undefined
      ? "-"
      : `${first.index}/${first.term}..${last.index}/${last.term}`;
  };
  const messages = ready.messages.map((message) => `${message.type}>${message.to}@${message.term}`)
    .join(",");
  return `ready hs ${state} entries ${span(ready.entries)} committed ${span(ready.committed)} ` +
    `snap ${ready.snapshot?.metadata.index ?? "-"} sync ${ready.mustSync} ` +
    `reads ${ready.readStates.length} msgs [${messages}]`;
}
