/**
 * The simulator's replicated state machine: a running hash of every applied entry plus the set
 * of client operation ids seen (deduplicated, as a real service would). Its snapshot is its
 * whole state, optionally padded so that snapshots span several chunks.
 *
 * Like the shard's SQLite state machine it applies one Ready's committed entries as one batch
 * and asserts the same bound on a batch's size (APPLY_BATCH_ENTRIES_MAX, scaled when the run
 * lowers the Raft core's count per Ready), and its state is durable apart from the log
 * ({@linkcode DurableStateMachine}).
 */
import { assert, COMMITTED_ENTRIES_PER_READY_MAX } from "../../raft/mod.ts";
import type { Entry, LogIndex } from "../../raft/mod.ts";
import { APPLY_BATCH_ENTRIES_MAX } from "../../shard/mod.ts";
import { hashBytes, mix } from "./hash.ts";

/** Encodes a client operation: an 8-byte id, then `payloadBytes` filler bytes. */
export function encodeOperation(id: number, payloadBytes: number): Uint8Array {
  const bytes = new Uint8Array(8 + payloadBytes);
  new DataView(bytes.buffer).setFloat64(0, id);
  for (let i = 8; i < bytes.length; i++) bytes[i] = (id + i) & 0xff;
  return bytes;
}

/** The id of a client operation, or null for the leader's no-op. */
export function operationId(entry: Entry): number | null {
  if (entry.type !== "normal" || entry.data.byteLength < 8) return null;
  return new DataView(entry.data.buffer, entry.data.byteOffset, 8).getFloat64(0);
}

/**
 * The batch bound of the state machine for a run whose Raft core hands out at most
 * `committedEntriesPerReadyMax` entries per Ready: APPLY_BATCH_ENTRIES_MAX scaled by the ratio
 * the run lowered the core's limit by, so the production relation between the two holds (at
 * the defaults it is APPLY_BATCH_ENTRIES_MAX itself).
 */
export function applyBatchEntriesMax(committedEntriesPerReadyMax: number): number {
  const scaled = committedEntriesPerReadyMax * APPLY_BATCH_ENTRIES_MAX;
  return Math.floor(scaled / COMMITTED_ENTRIES_PER_READY_MAX);
}

/** One replica's state machine. */
export class SimStateMachine {
  applied = 0 as LogIndex;
  hash = 0;
  readonly ids = new Set<number>();
  /** Every id in the order it was first seen: a prefix of it is an earlier state's set. */
  readonly idsInOrder: number[] = [];

  /**
   * Applies one Ready's committed entries as one batch; returns the running hash after each.
   * @throws {AssertionError} for a batch over `batchMax` entries, as the real state machine
   */
  applyBatch(entries: readonly Entry[], batchMax: number): number[] {
    assert(entries.length <= batchMax, "StateMachine.apply: batch is bounded");
    return entries.map((entry) => this.#apply(entry));
  }

  snapshot(paddingBytes: number): Uint8Array {
    const bytes = new Uint8Array(16 + 8 * this.ids.size + paddingBytes);
    const view = new DataView(bytes.buffer);
    view.setFloat64(0, this.applied);
    view.setUint32(8, this.hash);
    view.setUint32(12, this.ids.size);
    let offset = 16;
    for (const id of this.idsInOrder) {
      view.setFloat64(offset, id);
      offset += 8;
    }
    return bytes;
  }

  static restore(bytes: Uint8Array): SimStateMachine {
    const machine = new SimStateMachine();
    if (bytes.byteLength === 0) return machine;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    machine.applied = view.getFloat64(0) as LogIndex;
    machine.hash = view.getUint32(8);
    const count = view.getUint32(12);
    for (let i = 0; i < count; i++) machine.#addId(view.getFloat64(16 + 8 * i));
    return machine;
  }

  /** The state this machine had when it had seen `idsCount` ids, at `applied` with `hash`. */
  rewind(marker: { applied: LogIndex; hash: number; idsCount: number }): SimStateMachine {
    const machine = new SimStateMachine();
    machine.applied = marker.applied;
    machine.hash = marker.hash;
    for (const id of this.idsInOrder.slice(0, marker.idsCount)) machine.#addId(id);
    return machine;
  }

  #apply(entry: Entry): number {
    if (entry.index !== this.applied + 1) {
      throw new Error(`state machine applied ${entry.index} after ${this.applied}`);
    }
    this.applied = entry.index;
    this.hash = mix(mix(mix(this.hash, entry.index), entry.term), hashBytes(entry.data));
    const id = operationId(entry);
    if (id !== null) this.#addId(id);
    return this.hash;
  }

  #addId(id: number): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    this.idsInOrder.push(id);
  }
}

/** A state of a {@linkcode SimStateMachine} that a crash can go back to. */
interface Marker {
  readonly machine: SimStateMachine;
  readonly applied: LogIndex;
  readonly hash: number;
  readonly idsCount: number;
}

/**
 * A state machine whose state is durable apart from the Raft log, like the shard's SQLite
 * database with synchronous=NORMAL: each batch (and each restore from a snapshot) is its own
 * transaction, durable against a process crash at once but against a power loss only once the
 * database syncs (at a checkpoint). A power loss keeps the synced state plus a prefix of the
 * later batches; the replica then replays the rest from the log. So after a power loss the
 * machine may be ahead of the log's durable commit index (the commit-only hard state was not
 * synced), or behind it (its last batches were).
 */
export class DurableStateMachine {
  current = new SimStateMachine();
  #durable: Marker = markerOf(this.current);
  #volatile: Marker[] = [];

  /** The number of batches and restores a power loss could lose now. */
  get volatileCount(): number {
    return this.#volatile.length;
  }

  /** Applies a batch (see {@linkcode SimStateMachine.applyBatch}); volatile until a sync. */
  applyBatch(entries: readonly Entry[], batchMax: number): number[] {
    const hashes = this.current.applyBatch(entries, batchMax);
    this.#volatile.push(markerOf(this.current));
    return hashes;
  }

  /** Replaces the state with a snapshot's; volatile until a sync. */
  restore(data: Uint8Array): void {
    this.current = SimStateMachine.restore(data);
    this.#volatile.push(markerOf(this.current));
  }

  /** Makes every batch so far durable (a checkpoint). */
  sync(): void {
    this.#durable = markerOf(this.current);
    this.#volatile = [];
  }

  /** A power loss: the first `keep` volatile batches survive, the later ones are lost. */
  losePower(keep: number): void {
    assert(keep >= 0 && keep <= this.#volatile.length, "a power loss keeps a prefix");
    const kept = keep === 0 ? this.#durable : this.#volatile[keep - 1]!;
    this.#volatile = [];
    this.#durable = kept;
    const machine = kept.machine;
    const isCurrent = kept.idsCount === machine.idsInOrder.length &&
      kept.applied === machine.applied;
    this.current = isCurrent ? machine : machine.rewind(kept);
    this.#durable = markerOf(this.current);
  }
}

function markerOf(machine: SimStateMachine): Marker {
  return {
    machine,
    applied: machine.applied,
    hash: machine.hash,
    idsCount: machine.idsInOrder.length,
  };
}
