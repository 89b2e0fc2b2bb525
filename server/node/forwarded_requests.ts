/**
 * Runs the requests other nodes forward to this node's replicas within what is left of their
 * callers' deadlines.
 *
 * The peer channel hands each request the remaining deadline its caller sent (a duration,
 * since clocks differ between nodes; see transport/frame_codec.ts) and never runs one whose
 * deadline had passed on arrival. Here every wait the request would make (its proposal to
 * commit and apply, a read index, a remote watch poll) is bounded by that deadline: past it
 * the caller has given up, so the answer is `timeout` and the slot the request held on the
 * peer channel is freed. A proposal already handed to Raft may still commit later; the caller
 * treats `timeout` as "outcome unknown" for writes (cluster_router.ts), as it must for any
 * lost answer.
 */
import { AspenError } from "../../shard/mod.ts";
import { DeadlineTimer } from "./deadline_timer.ts";
import type { LocalShard } from "./local_shard.ts";
import type { ShardRequest } from "./shard_request.ts";

/** Runs forwarded requests against local replicas, each bounded by its caller's deadline. */
export class ForwardedRequests {
  readonly #nowMs: () => number;
  readonly #deadlines: DeadlineTimer;

  /** `nowMs` is the node's monotonic clock. */
  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
    this.#deadlines = new DeadlineTimer(nowMs);
  }

  /**
   * Executes `request` on `local`, giving up once `deadlineMs` (from now) have passed.
   *
   * @throws {AspenError} `timeout` past the deadline, or the request's own error.
   */
  async execute(
    local: Pick<LocalShard, "execute">,
    request: ShardRequest,
    deadlineMs: number,
  ): Promise<unknown> {
    if (!(Number.isSafeInteger(deadlineMs) && deadlineMs >= 1)) {
      throw new AspenError("timeout", `Cannot run a forwarded ${request.kind}: no time is left`);
    }
    const deadlineAtMs = this.#nowMs() + deadlineMs;
    return await this.#deadlines.race(
      local.execute(withinDeadline(request, deadlineMs)),
      deadlineAtMs,
      () =>
        new AspenError(
          "timeout",
          `Cannot finish a forwarded ${request.kind} within its caller's deadline of ` +
            `${deadlineMs} ms`,
          { deadlineMs },
        ),
    );
  }
}

/**
 * The request with its own waits fitted to the deadline: a watch poll answers with the events
 * it has after at most half the time left, so that its answer travels back before the caller
 * gives up (a poll that ran into the deadline would be answered `timeout` and polled again).
 */
export function withinDeadline(request: ShardRequest, deadlineMs: number): ShardRequest {
  if (request.kind !== "watchPoll" && request.kind !== "watchStream") return request;
  const waitMs = Math.max(1, Math.min(request.waitMs, Math.floor(deadlineMs / 2)));
  return { ...request, waitMs };
}
