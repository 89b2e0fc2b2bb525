/**
 * The simulator's replicated state machine: a running hash of every applied entry plus the set
 * of client operation ids seen (deduplicated, as a real service would). Its snapshot is its
 * whole state, optionally padded so that snapshots span several chunks.
 */
import type { Entry, LogIndex } from "../../raft/mod.ts";
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

/** One replica's state machine. */
export class SimStateMachine {
  applied = 0 as LogIndex;
  hash = 0;
  ids = new Set<number>();

  apply(entry: Entry): void {
    if (entry.index !== this.applied + 1) {
      throw new Error(`state machine applied ${entry.index} after ${this.applied}`);
    }
    this.applied = entry.index;
    this.hash = mix(mix(mix(this.hash, entry.index), entry.term), hashBytes(entry.data));
    const id = operationId(entry);
    if (id !== null) this.ids.add(id);
  }

  snapshot(paddingBytes: number): Uint8Array {
    const bytes = new Uint8Array(16 + 8 * this.ids.size + paddingBytes);
    const view = new DataView(bytes.buffer);
    view.setFloat64(0, this.applied);
    view.setUint32(8, this.hash);
    view.setUint32(12, this.ids.size);
    let offset = 16;
    for (const id of this.ids) {
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
    for (let i = 0; i < count; i++) machine.ids.add(view.getFloat64(16 + 8 * i));
    return machine;
  }
}
