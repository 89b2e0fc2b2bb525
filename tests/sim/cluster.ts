/**
 * The simulated cluster: replicas with in-memory disks that can lose unsynced writes, a network
 * that delays, drops, duplicates, reorders and partitions, a client workload, membership
 * changes, leader transfers and snapshots. One PRNG (the run's seed) makes every choice, and
 * time is a counter, so a seed replays exactly.
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
  HardState,
  LogIndex,
  Message,
  ReplicaId,
  WritableLogStorage,
} from "../../raft/mod.ts";
import { SqliteLogStorage } from "../../shard/mod.ts";
import { SafetyChecker } from "./checker.ts";
import { mix } from "./hash.ts";
import { TimedHeap } from "./heap.ts";
import type { SimOptions } from "./options.ts";
import { encodeOperation, operationId, SimStateMachine } from "./state_machine.ts";

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

/** One simulated replica: its disk survives crashes, everything else does not. */
export class SimReplica {
  readonly id: ReplicaId;
  readonly storage: WritableLogStorage;
  durableHardState: HardState;
  node: RawNode | null = null;
  machine = new SimStateMachine();
  nextTickAt = 0;
  readyAt: number | null = null;
  restartAt: number | null = null;
  isDestroyed = false;
  starts = 0;

  constructor(id: ReplicaId, storage: WritableLogStorage) {
    this.id = id;
    this.storage = storage;
    this.durableHardState = storage.initialState().hardState;
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
  isHealing = false;
  /** Network and disk latency bounds; healing lowers them to a healthy datacenter's. */
  latencyUnitsMax: number;
  diskLatencyUnitsMax: number;
  readonly blocked = new Set<number>();
  readonly pending = new Map<number, PendingOperation>();
  readonly acked = new Set<number>();
  maxAckedIndex = 0;
  stats = { proposals: 0, acked: 0, snapshotsSent: 0, crashes: 0, elections: 0, reads: 0 };
  #network = new TimedHeap<InFlight>();
  #seq = 0;
  #nextOperationId = 1;
  #nextRequestId = 1;
  #nextSpareId: number;
  #proposals = new Map<string, number>();
  #reads = new Map<string, number>();
  #lastLeaderTerm = new Map<number, number>();
  #linkLastAt = new Map<number, number>();

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
    const voters: ReplicaId[] = [];
    for (let id = 1; id <= options.voterCount; id++) voters.push(replicaId(id));
    for (const id of voters) {
      const storage = this.#openStorage({ voters, learners: [] });
      const replica = new SimReplica(id, storage);
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

  #openStorage(bootstrap: ConfState | null): WritableLogStorage {
    if (this.#storageKind === "memory") return new MemoryStorage(bootstrap ?? undefined);
    const storage = SqliteLogStorage.open({ path: ":memory:", bootstrap });
    this.#sqliteStorages.push(storage);
    return storage;
  }

  /** Advances the world by one time unit and runs every check. */
  step(): void {
    this.now++;
    this.checker.now = this.now;
    this.#deliverDue();
    for (const replica of this.replicas.values()) {
      if (replica.node !== null && this.now >= replica.nextTickAt) {
        replica.node.tick();
        replica.nextTickAt += this.options.tickUnits;
      }
      if (replica.restartAt !== null && this.now >= replica.restartAt) this.#start(replica);
    }
    if (!this.isHealing) this.#injectFaults();
    this.#workload();
    this.#processReadys();
    this.#checkLeaders();
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

  #start(replica: SimReplica): void {
    replica.starts++;
    replica.restartAt = null;
    replica.readyAt = null;
    const options = this.options;
    replica.node = new RawNode({
      id: replica.id,
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
      prng: new SeededPrng(this.seed * 131 + replica.id * 17 + replica.starts),
      preVote: options.preVote,
      checkQuorum: options.checkQuorum,
      leaseReads: options.leaseReads,
      limits: {
        appendBytesMax: DEFAULT_RAFT_LIMITS.appendBytesMax,
        appendEntriesMax: options.appendEntriesMax,
        uncommittedBytesMax: options.uncommittedBytesMax,
      },
    }, replica.storage);
    const snapshot = replica.storage.snapshot();
    replica.machine = SimStateMachine.restore(snapshot.data);
    if (snapshot.metadata.index > 0) {
      this.checker.onStateMachine(replica.id, replica.machine.applied, replica.machine.hash);
    }
    replica.nextTickAt = this.now + 1 + this.prng.nextInt(this.options.tickUnits);
  }

  #crash(replica: SimReplica): void {
    replica.node = null;
    replica.readyAt = null;
    // Writes that were not synced are lost: only the commit index can be among them.
    replica.storage.setHardState(replica.durableHardState);
    replica.restartAt = this.now + 1 + this.prng.nextInt(this.options.downUnitsMax);
    this.stats.crashes++;
  }

  send(message: Message): void {
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
      target.node.step(message);
    }
  }

  /** Like a transport that notices a broken link, sometimes tells the sender about the loss. */
  #reportLoss(lost: InFlight): void {
    const sender = this.replicas.get(lost.from)?.node;
    if (sender === undefined || sender === null || this.prng.nextInt(2) === 0) return;
    const to = replicaId(lost.to);
    if (this.prng.nextInt(4) === 0) sender.reportSnapshot(to, false);
    else sender.reportUnreachable(to);
  }

  #processReadys(): void {
    for (const replica of this.replicas.values()) {
      const node = replica.node;
      if (node === null || !node.hasReady()) continue;
      if (replica.readyAt === null) {
        replica.readyAt = this.now + this.prng.nextInt(this.diskLatencyUnitsMax + 1);
      }
      if (this.now >= replica.readyAt) {
        replica.readyAt = null;
        this.#handleReady(replica, node);
      }
    }
  }

  #handleReady(replica: SimReplica, node: RawNode): void {
    const ready = node.ready();
    const storage = replica.storage;
    if (ready.snapshot !== null) {
      storage.applySnapshot(ready.snapshot);
      this.checker.onSnapshot(replica.id, ready.snapshot.metadata);
    }
    if (ready.entries.length > 0) {
      storage.append(ready.entries);
      this.checker.onAppend(replica.id, ready.entries);
    }
    if (ready.hardState !== null) {
      storage.setHardState(ready.hardState);
      this.checker.onCommit(replica.id, ready.hardState.commit, ready.hardState.term);
    }
    if (ready.mustSync) replica.durableHardState = storage.initialState().hardState;
    const status = node.status();
    if (status.role === "leader") this.checker.onLeaderPersisted(replica.id, status.term);
    for (const message of ready.messages) this.send(message);
    if (ready.snapshot !== null) {
      replica.machine = SimStateMachine.restore(ready.snapshot.data);
      const machine = replica.machine;
      this.checker.onStateMachine(replica.id, machine.applied, machine.hash);
    }
    for (const entry of ready.committed) this.#apply(replica, entry);
    for (const read of ready.readStates) this.#checkRead(replica, read.requestId, read.index);
    node.advance(ready);
    this.#maybeSnapshot(replica, node);
  }

  #apply(replica: SimReplica, entry: Entry): void {
    replica.machine.apply(entry);
    this.checker.onStateMachine(replica.id, entry.index, replica.machine.hash);
    this.traceHash = mix(mix(this.traceHash, entry.index), replica.machine.hash);
    const id = operationId(entry);
    if (id !== null) {
      this.pending.delete(id);
      const key = `${replica.id}:${entry.index}:${entry.term}`;
      if (this.#proposals.get(key) === id) {
        this.#proposals.delete(key);
        this.acked.add(id);
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
    replica.node = null;
    replica.restartAt = null;
  }

  #maybeSnapshot(replica: SimReplica, node: RawNode): void {
    const storage = replica.storage;
    const applied = replica.machine.applied;
    if (applied - storage.snapshot().metadata.index < this.options.snapshotEvery) return;
    const data = replica.machine.snapshot(this.options.snapshotPaddingBytes);
    storage.createSnapshot(applied, node.confStateAt(applied), data);
    const compactTo = applied - this.options.compactionLag;
    if (compactTo >= storage.firstIndex()) storage.compact(compactTo as typeof applied);
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
    if (!this.isHealing && this.prng.nextFloat() < options.proposeRate) {
      const id = this.#nextOperationId++;
      const data = encodeOperation(id, this.prng.nextInt(options.payloadBytesMax + 1));
      const operation = { id, data, proposedAt: this.now, leader: null, term: 0 };
      this.pending.set(id, operation);
      this.#propose(operation);
    }
    if (this.now % 10 === 0) this.#retryPending();
    if (!this.isHealing && this.prng.nextFloat() < options.readRate) this.#read();
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
    let replica = this.#randomLive();
    operation.leader = null;
    for (let attempt = 0; attempt < 2 && replica !== null && replica.node !== null; attempt++) {
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

  #read(): void {
    const leader = this.leader();
    if (leader === null || leader.node === null) return;
    const requestId = this.#nextRequestId++;
    const result = leader.node.readIndex(requestId);
    if (result.kind === "ok") {
      this.#reads.set(`${leader.id}:${requestId}`, this.maxAckedIndex);
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
    if (this.prng.nextFloat() < options.membershipRate) this.#changeMembership();
    if (this.prng.nextFloat() < options.transferRate) this.#transfer();
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
    if (leader === null || leader.node === null) return;
    const { voters, learners } = leader.node.status().confState;
    const choice = this.prng.nextInt(3);
    if (choice === 0 && learners.length === 0 && this.#nextSpareId <= this.#spareLimit()) {
      const id = replicaId(this.#nextSpareId);
      const result = leader.node.proposeConfChange({ type: "addLearner", replicaId: id });
      if (result.kind !== "ok") return;
      this.#nextSpareId++;
      const replica = new SimReplica(id, this.#openStorage(null));
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
    if (leader === null || leader.node === null) return;
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
        if (!replica.machine.ids.has(operation)) {
          this.checker.fail(`acknowledged write ${operation} missing on replica ${id}`);
          return;
        }
      }
    }
  }
}
