/**
 * SCRATCH (xs-coord, issue 13): the shard-side cross-shard transaction types from
 * notes/xs_design.md, declared here only until branch xs-sm lands them in shard/mod.ts. Deleted
 * at that merge; nothing here is implemented, only typed.
 */
import type {
  ApplyResult,
  Command,
  Compare,
  Conflict,
  KeyRange,
  ReadRecord,
  TxnOp,
  TxnOpResult,
} from "../../shard/mod.ts";

export const TXN_ID_CHARS_MAX = 64;
export const TXN_SHARDS_MAX = 16;
export type TxnOutcome = "commit" | "abort";
export type TxnBranch = "success" | "failure";
export interface TxnHolder {
  readonly txnId: string;
  readonly home: number;
}
export interface TxnRecord {
  readonly txnId: string;
  readonly status: "pending" | "committed" | "aborted";
  readonly home: number;
  readonly participants: readonly number[];
  readonly branch: TxnBranch | null;
  readonly deadlineMs: number;
  readonly createdRevision: number;
  readonly decidedRevision: number | null;
  readonly reason: string;
}
export interface TxnParticipantRow {
  readonly txnId: string;
  readonly home: number;
  readonly state: "prepared" | "committed" | "aborted";
  readonly resolvedRevision: number | null;
}
export type TxnCommand =
  | Command
  | {
    readonly type: "txnPrepare";
    readonly txnId: string;
    readonly home: number;
    readonly participants: readonly number[];
    readonly deadlineMs: number;
    readonly compare: readonly Compare[];
    readonly reads: readonly ReadRecord[];
    readonly success: readonly TxnOp[];
    readonly failure: readonly TxnOp[];
  }
  | {
    readonly type: "txnDecide";
    readonly txnId: string;
    readonly outcome: TxnOutcome;
    readonly branch: TxnBranch | null;
    readonly reason: string;
  }
  | {
    readonly type: "txnResolve";
    readonly txnId: string;
    readonly outcome: TxnOutcome;
    readonly branch: TxnBranch | null;
  };
export type TxnApplyResult =
  | ApplyResult
  | {
    readonly type: "txnPrepared";
    readonly revision: number;
    readonly ok: true;
    readonly compareSucceeded: boolean;
    readonly conflict: Conflict | null;
  }
  | {
    readonly type: "txnPrepared";
    readonly revision: number;
    readonly ok: false;
    readonly reason: "locked" | "aborted";
    readonly key: string | null;
    readonly holder: TxnHolder | null;
  }
  | {
    readonly type: "txnDecided";
    readonly revision: number;
    readonly status: "committed" | "aborted";
    readonly branch: TxnBranch | null;
  }
  | {
    readonly type: "txnResolved";
    readonly revision: number;
    readonly outcome: TxnOutcome;
    readonly results: readonly TxnOpResult[];
  }
  | {
    readonly type: "locked";
    readonly revision: number;
    readonly key: string;
    readonly holder: TxnHolder;
  };
/** The StateMachine reads xs-sm adds. */
export interface TxnStateReads {
  intentOf(key: string): TxnHolder | null;
  intentsIn(range: KeyRange, limit: number): { key: string; holder: TxnHolder }[];
  intentCount(): number;
  txnRecord(txnId: string): TxnRecord | null;
  txnParticipant(txnId: string): TxnParticipantRow | null;
}
