/**
 * The cross-shard transaction coordinator's way to the shards: proposals go to each shard's
 * leader through the cluster router, with the router's retry rules (a command is sent again
 * only when it certainly did not run; txnPrepare, txnDecide and txnResolve are idempotent by
 * txnId anyway, so the coordinator may retry them itself), and the record is read with a
 * linearizable `txnRecord` shard request on the home shard; `GET /v1/txn/{id}` also reads each
 * participant's row (`txnVote`, with its prepare's vote; `txnParticipant` from older nodes).
 */
import type {
  ApplyResult,
  Command,
  KeysRead,
  TxnParticipantRow,
  TxnParticipantVote,
  TxnRecord,
} from "../../shard/mod.ts";
import type { ClusterRouter } from "./cluster_router.ts";
import type { TxnTransport } from "./txn_coordinator.ts";

/** A {@linkcode TxnTransport} over the cluster router. */
export class RouterTxnTransport implements TxnTransport {
  readonly #router: Pick<ClusterRouter, "execute">;

  constructor(router: Pick<ClusterRouter, "execute">) {
    this.#router = router;
  }

  /** @throws {AspenError} `timeout` or `shard_unavailable` when no leader answered in time. */
  run(
    shard: number,
    command: Command,
    deadlineMs: number,
    options?: { readonly isHeld?: boolean },
  ): Promise<ApplyResult> {
    const held = options?.isHeld === true ? { isHeld: true } : {};
    return this.#router.execute<ApplyResult>(
      shard,
      { kind: "propose", command, ...held },
      deadlineMs,
    );
  }

  /** @throws {AspenError} `timeout` or `shard_unavailable` when no leader answered in time. */
  async readRecord(home: number, txnId: string, deadlineMs: number): Promise<TxnRecord | null> {
    const answer = await this.#router.execute<{ record: TxnRecord | null }>(
      home,
      { kind: "txnRecord", txnId },
      deadlineMs,
    );
    return answer.record;
  }

  /** @throws {AspenError} `timeout` or `shard_unavailable` when no leader answered in time. */
  readKeys(
    shard: number,
    keys: readonly string[],
    changedAfter: number | null,
    deadlineMs: number,
  ): Promise<KeysRead> {
    const request = { kind: "txnReadKeys" as const, keys, changedAfter };
    return this.#router.execute<KeysRead>(shard, request, deadlineMs);
  }

  /**
   * A linearizable read of `shard`'s row of the transaction (null when it has none).
   *
   * @throws {AspenError} `timeout` or `shard_unavailable` when no leader answered in time.
   */
  async readParticipant(
    shard: number,
    txnId: string,
    deadlineMs: number,
  ): Promise<TxnParticipantRow | null> {
    const answer = await this.#router.execute<{ row: TxnParticipantRow | null }>(
      shard,
      { kind: "txnParticipant", txnId },
      deadlineMs,
    );
    return answer.row;
  }

  /**
   * A linearizable read of `shard`'s row of the transaction with its prepare's vote (null when
   * it has none). Nothing is written: the prepare may still apply after it.
   *
   * @throws {AspenError} `timeout` or `shard_unavailable` when no leader answered in time;
   * `bad_request` from a leader on a node that predates the read.
   */
  async readVote(
    shard: number,
    txnId: string,
    deadlineMs: number,
  ): Promise<TxnParticipantVote | null> {
    const answer = await this.#router.execute<{ row: TxnParticipantVote | null }>(
      shard,
      { kind: "txnVote", txnId },
      deadlineMs,
    );
    return answer.row;
  }
}
