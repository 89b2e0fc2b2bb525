/**
 * The errors a shard replica answers with (private to shard/): a closed replica, and a proposal
 * the core refused. The `not_leader` error has its own home in errors.ts.
 */
import type { ProposeResult } from "../raft/mod.ts";
import { AspenError, notLeaderError } from "./errors.ts";

/** The error for a call to a replica that is closed (or closes before it is answered). */
export function closedError(shard: number): AspenError {
  return new AspenError("shard_unavailable", `Cannot use shard ${shard}: its replica is closed`, {
    shard,
  });
}

/** The error for a proposal the core refused, by its reason. */
export function proposeError(
  shard: number,
  result: Exclude<ProposeResult, { kind: "ok" }>,
): AspenError {
  switch (result.kind) {
    case "not_leader":
      return notLeaderError(shard, result.leader);
    case "dropped":
    case "conf_change_pending":
    case "invalid_conf_change":
      return new AspenError(
        "proposal_dropped",
        `Cannot write to shard ${shard}: ${result.reason}`,
        {
          shard,
        },
      );
    case "entry_too_large":
      return new AspenError(
        "request_too_large",
        `Cannot write to shard ${shard}: the entry is ${result.bytes} bytes but the limit is ` +
          `${result.bytesMax}`,
        { bytes: result.bytes, limit: result.bytesMax },
      );
    case "uncommitted_too_large":
      return new AspenError(
        "too_many_requests",
        `Cannot write to shard ${shard}: ${result.bytes} bytes would be uncommitted but the ` +
          `limit is ${result.bytesMax}`,
        { shard },
      );
  }
}
