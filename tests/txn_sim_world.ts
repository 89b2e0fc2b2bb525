/**
 * The world of the cross-shard transaction simulation (txn_sim.ts): a simulated clock with an
 * event queue, N real shard state machines (SQLite files), and a seeded transport between the
 * coordinators and the shards that delays, duplicates and loses calls.
 *
 * One PRNG (the run's seed) makes every choice. Nothing waits on real time: a sleep or a
 * message is an event at a simulated time, and the driver fires events in (time, sequence)
 * order, letting the promise continuations run to their next await between two events (one
 * macrotask turn), so a run is the same every time.
 */
import { setImmediate } from "node:timers";
import { join } from "node:path";
import { SeededPrng } from "../raft/mod.ts";
import {
  type ApplyResult,
  AspenError,
  type Command,
  encodeCommand,
  type KeysRead,
  StateMachine,
  type TxnParticipantRow,
  type TxnParticipantVote,
  type TxnRecord,
} from "../shard/mod.ts";
import type { TxnTransport } from "../server/node/txn_coordinator.ts";
import { type Timed, TimedHeap } from "./sim/heap.ts";

/** How long a caller waits for the answer to a lost call (an RPC timeout). */
export const CALL_TIMEOUT_MS = 60;
/** The most events one run may fire: a run that needs more is stuck (a liveness failure). */
export const SIM_EVENTS_MAX = 400_000;

interface SimEvent extends Timed {
  readonly fire: () => void;
}

/** The simulated clock and its event queue. */
export class SimClock {
  nowMs = 0;
  events = 0;
  #seq = 0;
  readonly #queue = new TimedHeap<SimEvent>();

  /** Runs `fire` `delayMs` from now. */
  at(delayMs: number, fire: () => void): void {
    this.#queue.push({ at: this.nowMs + Math.max(0, delayMs), seq: this.#seq++, fire });
  }

  /** A promise that settles `delayMs` of simulated time from now. */
  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.at(delayMs, resolve));
  }

  /**
   * Fires events until `isDone()` or the queue runs dry.
   *
   * @returns false when the queue ran dry or the event budget ran out first (a stuck run).
   */
  async drive(isDone: () => boolean): Promise<boolean> {
    await turn();
    while (!isDone()) {
      const event = this.#queue.pop();
      if (event === undefined || this.events >= SIM_EVENTS_MAX) return false;
      this.events++;
      this.nowMs = event.at;
      event.fire();
      await turn();
    }
    return true;
  }
}

/** Lets every ready promise continuation run (one macrotask turn). */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A shard: a real state machine with its own log index counter. */
export class SimShard {
  readonly id: number;
  readonly machine: StateMachine;
  #index = 0;

  constructor(id: number, machine: StateMachine) {
    this.id = id;
    this.machine = machine;
  }

  /** Appends `command` as the next entry and applies it, as a leader's commit would. */
  apply(command: Command): ApplyResult {
    this.#index++;
    const data = encodeCommand(command);
    const [result] = this.machine.apply([{ index: this.#index, data }]);
    if (result === undefined) throw new Error("SimShard.apply: no result");
    return result;
  }
}

/** Opens `count` shards on SQLite files in `dir`. */
export function openShards(dir: string, count: number): SimShard[] {
  return Array.from({ length: count }, (_, id) => {
    const path = join(dir, `shard-${id}.db`);
    return new SimShard(id, StateMachine.open({ path, synchronous: "normal" }));
  });
}

/** Fault rates of a run, chosen from its seed (swarm testing): per mille. */
export interface Faults {
  readonly delayMsMax: number;
  readonly duplicatePerMille: number;
  readonly lossBeforePerMille: number;
  readonly lossAfterPerMille: number;
}

/** Draws a run's fault rates; some runs get none of a kind. */
export function drawFaults(prng: SeededPrng): Faults {
  const rate = (max: number) => (prng.nextInt(4) === 0 ? 0 : prng.nextInt(max));
  return {
    delayMsMax: 1 + prng.nextInt(15),
    duplicatePerMille: rate(150),
    lossBeforePerMille: rate(100),
    lossAfterPerMille: rate(100),
  };
}

/** Every prepare any coordinator sent, by txnId: the simulation checks each one's fate. */
export interface SentTxn {
  readonly home: number;
  readonly participants: readonly number[];
}

/** The seeded network between coordinators and shard leaders. */
export class SimNetwork implements TxnTransport {
  faults: Faults;
  readonly sent = new Map<string, SentTxn>();
  /**
   * By txnId, the shards where a prepare applied without an OCC conflict. Parallel commits: a
   * transaction prepared so on every participant is committed, whatever happens next.
   */
  readonly prepared = new Map<string, Set<number>>();
  /** The txnIds a commit decide was sent for: only a pusher's recovery of a staging txn does. */
  readonly recoveredCommits = new Set<string>();
  readonly #clock: SimClock;
  readonly #prng: SeededPrng;
  readonly #shards: readonly SimShard[];
  #trace = 0;

  constructor(clock: SimClock, prng: SeededPrng, shards: readonly SimShard[], faults: Faults) {
    this.#clock = clock;
    this.#prng = prng;
    this.#shards = shards;
    this.faults = faults;
  }

  /** A hash of everything delivered, in order: equal for two runs of one seed. */
  get trace(): number {
    return this.#trace;
  }

  run(shard: number, command: Command, deadlineMs: number): Promise<ApplyResult> {
    if (command.type === "txnPrepare") {
      this.sent.set(command.txnId, { home: command.home, participants: command.participants });
    }
    const target = this.#shards[shard];
    if (target === undefined) throw new Error(`SimNetwork.run: no shard ${shard}`);
    if (command.type === "txnDecide" && command.outcome === "commit") {
      this.recoveredCommits.add(command.txnId);
    }
    const apply = () => {
      const result = target.apply(command);
      const isPrepared = result.type === "txnPrepared" && result.ok && result.conflict === null;
      if (command.type === "txnPrepare" && isPrepared) {
        const shards = this.prepared.get(command.txnId) ?? new Set<number>();
        this.prepared.set(command.txnId, shards.add(shard));
      }
      return result;
    };
    return this.#call(deadlineMs, () => {
      const result = apply();
      this.#mix(`${shard}:${command.type}:${result.type}:${result.revision}`);
      if (this.#chance(this.faults.duplicatePerMille)) this.#clock.at(this.#delay(), apply);
      return result;
    });
  }

  readRecord(home: number, txnId: string, deadlineMs: number): Promise<TxnRecord | null> {
    const target = this.#shards[home];
    if (target === undefined) throw new Error(`SimNetwork.readRecord: no shard ${home}`);
    return this.#call(deadlineMs, () => target.machine.txnRecord(txnId));
  }

  readKeys(
    shard: number,
    keys: readonly string[],
    changedAfter: number | null,
    deadlineMs: number,
  ): Promise<KeysRead> {
    const target = this.#shards[shard];
    if (target === undefined) throw new Error(`SimNetwork.readKeys: no shard ${shard}`);
    return this.#call(deadlineMs, () => target.machine.readKeys(keys, changedAfter));
  }

  /** A participant's row with its prepare's vote, as `GET /v1/txn/{id}` reads it (no write). */
  readVote(shard: number, txnId: string, deadlineMs: number): Promise<TxnParticipantVote | null> {
    const target = this.#shards[shard];
    if (target === undefined) throw new Error(`SimNetwork.readVote: no shard ${shard}`);
    return this.#call(deadlineMs, () => target.machine.txnParticipantVote(txnId));
  }

  /** A participant's row (the read of nodes before `txnVote`). */
  readParticipant(
    shard: number,
    txnId: string,
    deadlineMs: number,
  ): Promise<TxnParticipantRow | null> {
    const target = this.#shards[shard];
    if (target === undefined) throw new Error(`SimNetwork.readParticipant: no shard ${shard}`);
    return this.#call(deadlineMs, () => target.machine.txnParticipant(txnId));
  }

  /** Delivers `deliver` after a delay and answers after another, or loses the call. */
  #call<T>(deadlineMs: number, deliver: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const sentMs = this.#clock.nowMs;
      const lose = () => {
        const waitMs = Math.min(sentMs + CALL_TIMEOUT_MS, deadlineMs) - this.#clock.nowMs;
        this.#clock.at(waitMs, () => reject(new AspenError("timeout", "Simulated call lost")));
      };
      const isLostBefore = this.#chance(this.faults.lossBeforePerMille);
      const isLostAfter = this.#chance(this.faults.lossAfterPerMille);
      this.#clock.at(this.#delay(), () => {
        if (isLostBefore) return lose();
        const result = deliver();
        if (isLostAfter) return lose();
        const replyMs = this.#delay();
        if (this.#clock.nowMs + replyMs > deadlineMs) return lose();
        this.#clock.at(replyMs, () => resolve(result));
      });
    });
  }

  #delay(): number {
    return this.#prng.nextInt(this.faults.delayMsMax + 1);
  }

  #chance(perMille: number): boolean {
    return perMille > 0 && this.#prng.nextInt(1000) < perMille;
  }

  #mix(text: string): void {
    for (let i = 0; i < text.length; i++) {
      this.#trace = Math.imul(this.#trace ^ text.charCodeAt(i), 16_777_619) >>> 0;
    }
  }
}

/**
 * A coordinator's view of the network that crashes after a number of calls: the crashing call
 * is delivered or not (chosen by the seed), and from then on nothing it sends or awaits ever
 * settles, so its async flow is abandoned mid-step, as a node that died would abandon it.
 */
export class CrashingTransport implements TxnTransport {
  readonly #network: SimNetwork;
  readonly #onCrash: () => void;
  #callsLeft: number;
  readonly #isDeliveredAtCrash: boolean;
  isCrashed = false;

  constructor(
    network: SimNetwork,
    crash: { callsBeforeCrash: number; isDeliveredAtCrash: boolean; onCrash: () => void },
  ) {
    this.#network = network;
    this.#callsLeft = crash.callsBeforeCrash;
    this.#isDeliveredAtCrash = crash.isDeliveredAtCrash;
    this.#onCrash = crash.onCrash;
  }

  run(shard: number, command: Command, deadlineMs: number): Promise<ApplyResult> {
    return this.#gate(() => this.#network.run(shard, command, deadlineMs));
  }

  readRecord(home: number, txnId: string, deadlineMs: number): Promise<TxnRecord | null> {
    return this.#gate(() => this.#network.readRecord(home, txnId, deadlineMs));
  }

  readKeys(
    shard: number,
    keys: readonly string[],
    changedAfter: number | null,
    deadlineMs: number,
  ): Promise<KeysRead> {
    return this.#gate(() => this.#network.readKeys(shard, keys, changedAfter, deadlineMs));
  }

  readVote(shard: number, txnId: string, deadlineMs: number): Promise<TxnParticipantVote | null> {
    return this.#gate(() => this.#network.readVote(shard, txnId, deadlineMs));
  }

  /** A sleep that never ends once crashed. */
  hangIfCrashed<T>(promise: Promise<T>): Promise<T> {
    return promise.then(
      (value) => this.isCrashed ? never<T>() : value,
      (error: unknown) => this.isCrashed ? never<T>() : Promise.reject(error),
    );
  }

  #gate<T>(send: () => Promise<T>): Promise<T> {
    if (this.isCrashed) return never();
    this.#callsLeft--;
    if (this.#callsLeft >= 0) return this.hangIfCrashed(send());
    this.isCrashed = true;
    this.#onCrash();
    // The answer of a delivered call is dropped: the node died before reading it.
    // Its failure is dropped for the same reason.
    if (this.#isDeliveredAtCrash) send().catch((_error: unknown) => "dropped by the crash");
    return never();
  }
}

function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}
