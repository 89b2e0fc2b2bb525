/**
 * Helpers for state machine tests: a state machine with its own entry counter, and short
 * constructors for commands.
 */

import {
  type ApplyResult,
  type Command,
  encodeCommand,
  type KeyRange,
  type RangeRequest,
  type ReadRecord,
  StateMachine,
  type StateMachineOptions,
  type TxnOp,
} from "../shard/mod.ts";

/** A state machine that numbers the entries it is given. */
export class Harness {
  readonly sm: StateMachine;
  index = 0;

  constructor(options: Partial<StateMachineOptions> = {}) {
    this.sm = StateMachine.open({ path: ":memory:", synchronous: "normal", ...options });
    this.index = this.sm.appliedIndex();
  }

  /** Applies each command as one entry of a single batch. */
  apply(...commands: Command[]): ApplyResult[] {
    return this.sm.apply(commands.map((command) => ({
      index: ++this.index,
      data: encodeCommand(command),
    })));
  }

  /** Applies one command and returns its result. */
  one(command: Command): ApplyResult {
    const [result] = this.apply(command);
    if (result === undefined) throw new Error("no result");
    return result;
  }

  close(): void {
    this.sm.close();
  }
}

export function put(key: string, value: string, lease = 0): Command {
  return { type: "put", key, value, lease, prevKv: false };
}

export function del(key: string): Command {
  return { type: "delete", key, prevKv: false };
}

export function putOp(key: string, value: string, lease = 0): TxnOp {
  return { type: "put", key, value, lease, prevKv: false };
}

/** An optimistic read of `key` naming only the given fields. */
export function read(
  key: string,
  fields: Partial<Omit<ReadRecord, "key">>,
): ReadRecord {
  return { key, modRevision: null, version: null, revision: null, ...fields };
}

export function rangeRequest(range: KeyRange, limit = 100): RangeRequest {
  return { range, limit, after: null, keysOnly: false, countOnly: false, reverse: false };
}
