/**
 * What applying one entry returns: the typed result the HTTP layer turns into a response.
 *
 * Every replica computes the same result for the same entry (results depend only on the entry
 * and the state), but only the replica that answers the client uses it. Expected failures are
 * results too (`error`, `conflict`), never exceptions: a replica must keep applying.
 */

import { AspenError, type ErrorCode, type ErrorDetails } from "./errors.ts";
import type { TxnBranch, TxnOutcome } from "./command.ts";
import type { KeyValue } from "./key_value.ts";

/** The page a range read returns. */
export interface RangeResult {
  /** The kvs, in key order (descending when reversed); empty with `countOnly`. */
  readonly kvs: readonly KeyValue[];
  /** With `countOnly`, the number of keys in the range after the cursor; else `kvs.length`. */
  readonly count: number;
  /** Whether the range holds more keys past the last one returned. */
  readonly more: boolean;
  /** The key to pass as `after` to read the next page; null when `more` is false. */
  readonly next: string | null;
}

/**
 * Why an optimistic transaction did not commit: the first read that no longer holds, what it
 * recorded and what the key has now. `field` names the check that failed (shard/occ.ts).
 */
export interface Conflict {
  /** The read key that changed. */
  readonly key: string;
  /** The read's field whose check failed. */
  readonly field: "modRevision" | "version" | "revision";
  /** The version the read recorded (0: absent); null when it named none. */
  readonly expected: number | null;
  /** The version the key has now (0: absent). */
  readonly actual: number;
  /** The modRevision the read recorded (0: absent); null when it named none. */
  readonly expectedModRevision: number | null;
  /** The modRevision the key has now (0: absent). */
  readonly actualModRevision: number;
  /** The shard revision the read was made at; null when it named none. */
  readonly readRevision: number | null;
}

/** A lease as the state machine stores it. */
export interface LeaseGrant {
  /** The lease id: the log index of the entry that granted it. */
  readonly id: number;
  /** The time to live the lease was granted with. */
  readonly ttlSeconds: number;
}

/** The result of one operation of a conditional batch. */
export type TxnOpResult =
  | { readonly type: "put"; readonly version: number; readonly prevKv: KeyValue | null }
  | { readonly type: "delete"; readonly deleted: number; readonly prevKv: KeyValue | null }
  | { readonly type: "get"; readonly kv: KeyValue | null }
  | ({ readonly type: "range" } & RangeResult);

/** The cross-shard transaction that holds an intent (a lock) on a key. */
export interface TxnHolder {
  /** The transaction's id. */
  readonly txnId: string;
  /** The shard that holds its record: where a pusher reads or decides it. */
  readonly home: number;
}

/** The status of a cross-shard transaction's record. */
export type TxnStatus = "pending" | "committed" | "aborted";

/** A cross-shard transaction's record, kept by its home shard. */
export interface TxnRecord {
  readonly txnId: string;
  /**
   * Pending (staging: committed as soon as every participant prepared, see _txn_apply.ts)
   * until the home's resolve or a `txnDecide` sets it; never changes after that.
   */
  readonly status: TxnStatus;
  /**
   * The home shard. -1 when the record was created by a decide whose prepare never applied on
   * this shard (a pusher's abort): the state machine does not know its own shard id.
   */
  readonly home: number;
  /** Every participant, ascending; empty for a record created by a decide. */
  readonly participants: readonly number[];
  /** The branch that runs; null unless committed. */
  readonly branch: TxnBranch | null;
  /** The coordinator's wall clock ms after which a pusher may recover it; 0 when unknown. */
  readonly deadlineMs: number;
  /** The revision of the entry that created the record. */
  readonly createdRevision: number;
  /** The revision of the decide that ended it; null while pending. */
  readonly decidedRevision: number | null;
  /** Why it was decided ("" while pending or for a commit without a reason). */
  readonly reason: string;
}

/** The state of a participant shard's part of a cross-shard transaction. */
export type TxnParticipantState = "prepared" | "committed" | "aborted";

/** A participant shard's row of a cross-shard transaction. */
export interface TxnParticipantRow {
  readonly txnId: string;
  /** The transaction's home shard. */
  readonly home: number;
  /** Prepared (holding intents) until a resolve sets committed or aborted. */
  readonly state: TxnParticipantState;
  /** The revision of the resolve (or the abort) that ended it; null while prepared. */
  readonly resolvedRevision: number | null;
}

/**
 * How a participant's prepare voted, as its row keeps it: `commit` when it applied without an
 * optimistic read conflict (the row prepared or resolved commit), `conflict` when it applied
 * but a read no longer held, `aborted` when the row is aborted (the prepare was refused, fenced
 * or resolved abort). A transaction commits exactly when every participant votes `commit`
 * (parallel commits: see shard/_txn_apply.ts).
 */
export type TxnVote = "commit" | "conflict" | "aborted";

/**
 * A participant row with its prepare's vote: what `GET /v1/txn/{id}` reads (without writing
 * anything, unlike a recovery's fence) to tell a staging record that is committed in fact.
 */
export interface TxnParticipantVote extends TxnParticipantRow {
  readonly vote: TxnVote;
  /** Whether every compare held there (the branch it votes for); false when aborted. */
  readonly compareSucceeded: boolean;
  /**
   * The revision its prepare reserved (its entry's index): null for a row prepared before
   * one-round commits or refused; absent from nodes that predate it.
   */
  readonly reservedRevision?: number | null;
}

/** The result of applying one entry; `revision` is the entry's log index. */
export type ApplyResult =
  | {
    readonly type: "put";
    readonly revision: number;
    readonly version: number;
    readonly prevKv: KeyValue | null;
  }
  | {
    readonly type: "delete";
    readonly revision: number;
    readonly deleted: number;
    readonly prevKv: KeyValue | null;
  }
  | { readonly type: "deleteRange"; readonly revision: number; readonly deleted: number }
  | { readonly type: "multiPut"; readonly revision: number; readonly versions: readonly number[] }
  | {
    readonly type: "txn";
    readonly revision: number;
    readonly succeeded: boolean;
    readonly results: readonly TxnOpResult[];
  }
  | { readonly type: "optimisticTxn"; readonly revision: number; readonly committed: true }
  | ({ readonly type: "conflict"; readonly revision: number } & Conflict)
  | { readonly type: "leaseGrant"; readonly revision: number; readonly lease: LeaseGrant }
  | {
    readonly type: "leaseRevoke";
    readonly revision: number;
    readonly id: number;
    readonly deleted: number;
  }
  | {
    readonly type: "leaseExpire";
    readonly revision: number;
    readonly expired: readonly number[];
    readonly deleted: number;
  }
  | { readonly type: "meta"; readonly revision: number; readonly name: string }
  | { readonly type: "noop"; readonly revision: number }
  | {
    readonly type: "txnPrepared";
    readonly revision: number;
    readonly ok: true;
    /** Whether every compare of this shard held. */
    readonly compareSucceeded: boolean;
    /** The first optimistic read of this shard that no longer holds. */
    readonly conflict: Conflict | null;
    /**
     * The revision the prepare reserved: the commit's changes carry it here. Null for a row
     * prepared before one-round commits (its changes carry its resolve's revision).
     */
    readonly reservedRevision: number | null;
    /**
     * Each branch's op results on this shard, in order; null when `reservedRevision` is, or
     * when they exceed TXN_PREVIEW_BYTES_MAX (the resolve's answer carries them then).
     */
    readonly results: {
      readonly success: readonly TxnOpResult[];
      readonly failure: readonly TxnOpResult[];
    } | null;
  }
  | {
    readonly type: "txnPrepared";
    readonly revision: number;
    readonly ok: false;
    /** `locked`: another transaction holds `key`; `aborted`: the txn was aborted already. */
    readonly reason: "locked" | "aborted";
    readonly key: string | null;
    readonly holder: TxnHolder | null;
  }
  | {
    readonly type: "txnDecided";
    readonly revision: number;
    /** The record's status after the command (a lost race shows the winner's). */
    readonly status: "committed" | "aborted";
    readonly branch: TxnBranch | null;
  }
  | {
    readonly type: "txnResolved";
    readonly revision: number;
    readonly outcome: TxnOutcome;
    /** The results of the branch's ops on this shard, in order; empty on abort. */
    readonly results: readonly TxnOpResult[];
    /** The leases (or stand-ins) the commit removed here: the lessor stops tracking them. */
    readonly revokedLeases?: readonly number[];
  }
  /** A write met another transaction's intent on `key` and changed nothing: push, retry. */
  | {
    readonly type: "locked";
    readonly revision: number;
    readonly key: string;
    readonly holder: TxnHolder;
  }
  /** The entry was at or below the applied index and was not applied again. */
  | { readonly type: "skipped"; readonly revision: number }
  | {
    readonly type: "error";
    readonly revision: number;
    readonly code: ErrorCode;
    readonly message: string;
    readonly details: ErrorDetails;
  };

/** Builds the `error` result of an entry from an {@linkcode AspenError}. */
export function errorResult(revision: number, error: AspenError): ApplyResult {
  return {
    type: "error",
    revision,
    code: error.code,
    message: error.message,
    details: error.details,
  };
}

/**
 * The error a client should see for a result, or null when the result is a success.
 *
 * A `conflict` becomes an `AspenError("conflict")` whose details are the {@linkcode Conflict};
 * a `locked` one becomes a `conflict` naming the key and the holder (`key`, `holderTxnId`,
 * `home`), so a caller that does not push still answers a clear, retryable 409.
 */
export function applyResultError(result: ApplyResult): AspenError | null {
  if (result.type === "error") return new AspenError(result.code, result.message, result.details);
  if (result.type === "conflict") {
    const { type: _type, revision: _revision, ...conflict } = result;
    const message = `Cannot commit optimistic txn: ${describeConflict(conflict)}`;
    return new AspenError("conflict", message, conflict);
  }
  if (result.type === "locked") {
    const { key, holder } = result;
    return new AspenError(
      "conflict",
      `Cannot write key "${key}": it is locked by cross-shard txn "${holder.txnId}" ` +
        `(home shard ${holder.home}); retry`,
      { key, holderTxnId: holder.txnId, home: holder.home },
    );
  }
  return null;
}

/** Says which check of a read failed and the values it compared (a message's detail part). */
export function describeConflict(conflict: Conflict): string {
  const key = `key "${conflict.key}"`;
  switch (conflict.field) {
    case "modRevision":
      return `${key} has modRevision ${conflict.actualModRevision} but the transaction read ` +
        `modRevision ${conflict.expectedModRevision} (0: absent)`;
    case "version":
      return `${key} is at version ${conflict.actual} but the transaction read version ` +
        `${conflict.expected} (0: absent)`;
    case "revision":
      return `${key} changed at revision ${conflict.actualModRevision}, after the read at ` +
        `revision ${conflict.readRevision}`;
  }
}
