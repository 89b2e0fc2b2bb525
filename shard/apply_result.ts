/**
 * What applying one entry returns: the typed result the HTTP layer turns into a response.
 *
 * Every replica computes the same result for the same entry (results depend only on the entry
 * and the state), but only the replica that answers the client uses it. Expected failures are
 * results too (`error`, `conflict`), never exceptions: a replica must keep applying.
 */

import { AspenError, type ErrorCode, type ErrorDetails } from "./errors.ts";
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
 * A `conflict` becomes an `AspenError("conflict")` whose details are the {@linkcode Conflict}.
 */
export function applyResultError(result: ApplyResult): AspenError | null {
  if (result.type === "error") return new AspenError(result.code, result.message, result.details);
  if (result.type === "conflict") {
    const { type: _type, revision: _revision, ...conflict } = result;
    const message = `Cannot commit optimistic txn: ${describeConflict(conflict)}`;
    return new AspenError("conflict", message, conflict);
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
