/**
 * Request dispatch for a local shard: executes one {@linkcode ShardRequest} against the
 * replica, its state machine and its lessor (as the leader, unless the request is
 * serializable), whether the request came from this node or over the peer channel.
 */
import { type ReplicaId, replicaId } from "../../raft/mod.ts";
import {
  type ApplyResult,
  AspenError,
  type Command,
  compareUtf8,
  encodeCommand,
  kvResponseBytes,
  leaseError,
  type Lessor,
  notLeaderError,
  ownsKey,
  RANGE_RESPONSE_BYTES_MAX,
  rangeOwner,
  type RangeResult,
  servesRange,
  type ShardReplica,
  type StateMachine,
  wrongShardError,
} from "../../shard/mod.ts";
import type { MetaSwaps } from "./meta_swaps.ts";
import { type RemoteWatchStreams, serveWatchPoll } from "./remote_watch.ts";
import type { ShardStatusView } from "./shard_status_view.ts";
import {
  READ_INTENTS_MAX,
  type ReadIntent,
  type ShardRange,
  type ShardRequest,
} from "./shard_request.ts";

/** What a request runs against. */
export interface ShardDispatchContext {
  readonly shard: number;
  readonly nodeId: number;
  readonly replica: ShardReplica<ApplyResult>;
  readonly stateMachine: StateMachine;
  readonly lessor: Lessor;
  /** The remote watch streams this replica serves. */
  readonly remoteWatches: RemoteWatchStreams;
  /** The lessor's clock, whole milliseconds. */
  readonly nowMs: () => number;
  /** This replica's view of the shard. */
  readonly statusView: () => ShardStatusView;
  /**
   * The error for a client write this node must refuse while it leads the shard (its disk is
   * below the reserve), or null to propose it. Absent: every write is proposed.
   */
  readonly refuseWrite?: ((command: Command) => AspenError | null) | undefined;
  /** Compare-and-swaps of meta records, one at a time on this replica. */
  readonly metaSwaps: MetaSwaps;
  /** Resolves once this replica applied `index`. */
  readonly waitApplied: (index: number) => Promise<void>;
}

/**
 * Executes a request against this replica (as the leader, unless it is serializable).
 *
 * @throws {AspenError} `not_leader` with a hint when this replica cannot serve it.
 */
export async function dispatchShardRequest(
  context: ShardDispatchContext,
  request: ShardRequest,
): Promise<unknown> {
  const machine = context.stateMachine;
  switch (request.kind) {
    case "propose":
      checkWritable(context, request.command);
      return await context.replica.propose(encodeCommand(request.command), {
        isHeld: request.isHeld === true,
      });
    case "get":
      return await read(context, request.serializable, () => get(machine, request.key));
    case "range":
      return await read(context, request.serializable, () => {
        // Checked where the read runs: the ownership is the one of the state it reads.
        const ownership = machine.ownership();
        if (!servesRange(ownership, request.numShards ?? null, request.epoch ?? null)) {
          throw wrongShardError(ownership, null);
        }
        return range(machine, request.range, rangeOwner(ownership));
      });
    case "moveScan":
      return await context.replica.read(() => {
        const rows = machine.movingKeys(request, request.limit + 1);
        const page = [];
        const valueless = [];
        let bytes = 0;
        for (const { kv, hasValue } of rows.slice(0, request.limit)) {
          bytes += kvResponseBytes(kv);
          if (page.length > 0 && bytes > RANGE_RESPONSE_BYTES_MAX) break;
          page.push(kv);
          if (!hasValue) valueless.push(kv.key);
        }
        return { kvs: page, more: rows.length > page.length, valueless };
      });
    case "moveSize":
      return await context.replica.read(() => {
        const ownership = machine.ownership();
        return {
          bySize: request.sizes === false
            ? {}
            : Object.fromEntries(machine.sizeByShard(request.count, request.tenants)),
          intents: machine.intentsNotOwned(
            ownership?.shard ?? context.shard,
            request.count,
            request.tenants,
          ),
          ...(request.sizeOf === undefined ? {} : {
            byTenant: Object.fromEntries(
              request.sizeOf.map((name) => [name, machine.tenantSize(name)]),
            ),
          }),
          foreignLeases: machine.foreignLeases(),
          appliedIndex: machine.appliedIndex(),
        };
      });
    case "txnRecord":
      // A pusher waits for the record: a resolve held here (the home's, which decides it)
      // goes now, and the read sees it.
      await context.replica.releaseHeld();
      return await context.replica.read(() => ({ record: machine.txnRecord(request.txnId) }));
    case "txnParticipant":
      return await context.replica.read(() => ({ row: machine.txnParticipant(request.txnId) }));
    case "txnVote":
      return await context.replica.read(() => ({
        row: machine.txnParticipantVote(request.txnId),
      }));
    case "txnList": {
      const { status, limit } = request;
      return await context.replica.read(() => ({ records: machine.txnRecords(status, limit) }));
    }
    case "txnParticipants":
      return await context.replica.read(() => ({
        rows: request.txnIds.map((txnId) => machine.txnParticipant(txnId)),
      }));
    case "txnVotes":
      return await context.replica.read(() => ({
        rows: request.txnIds.map((txnId) => machine.txnParticipantVote(txnId)),
      }));
    case "txnReadKeys":
      return await context.replica.read(() => {
        // A key this shard no longer serves (or not yet) is read again where the map says.
        const ownership = machine.ownership();
        const stray = request.keys.find((key) => !ownsKey(ownership, key, "read"));
        if (stray !== undefined) throw wrongShardError(ownership, stray);
        return machine.readKeys(request.keys, request.changedAfter);
      });
    case "leaseKeepAlive":
      return keepAlive(context, request.id);
    case "leaseInfo":
      return await read(context, false, () => leaseInfo(context, request.id));
    case "status": {
      // Only the leader knows every replica's progress: others send the caller there.
      const status = context.replica.status();
      if (status.role !== "leader") throw notLeaderError(context.shard, status.leader);
      return context.statusView();
    }
    case "watchPoll":
      return await serveWatchPoll(machine, request);
    case "watchStream":
      return await context.remoteWatches.pull(request);
    case "watchCancel":
      context.remoteWatches.cancel(request.streamId);
      return { cancelled: true };
    case "transferLeader":
      checkNotStalled(context, "transfer the leadership of");
      return {
        shard: context.shard,
        leader: await context.replica.transferLeadership(replicaId(request.to) as ReplicaId),
      };
    case "confChange": {
      checkNotStalled(context, "change the membership of");
      const type = request.change;
      const index = await context.replica.changeMembership({
        type,
        replicaId: replicaId(request.node) as ReplicaId,
      });
      await context.waitApplied(index);
      return { shard: context.shard, index };
    }
    case "readIndex": {
      // Applied once the ReadIndex round confirmed leadership: at least the read index.
      const index = await context.replica.read(() => machine.appliedIndex());
      // The asking follower applies up to it before it reads: tell it the commit now.
      context.replica.noticeCommitNow();
      return index;
    }
    case "metaRead":
      return await context.replica.read(() => ({ value: machine.getMeta(request.name) }));
    case "metaSwap":
      return await context.metaSwaps.swap(request);
  }
}

/**
 * Refuses a client write the node turned away (a disk below its reserve). Only a leader
 * does: elsewhere the replica answers `not_leader`, so the write goes to the leader, whose
 * disk is the one that matters.
 *
 * @throws {AspenError} `no_space` or `storage_error`.
 */
function checkWritable(context: ShardDispatchContext, command: Command): void {
  if (context.replica.leader() !== context.nodeId) return;
  const refusal = context.refuseWrite?.(command) ?? null;
  if (refusal !== null) throw refusal;
}

/**
 * Refuses an admin call while the replica holds a Ready that failed on storage: the Raft
 * core takes no call until that Ready is advanced.
 *
 * @throws {AspenError} `no_space` or `storage_error`.
 */
function checkNotStalled(context: ShardDispatchContext, action: string): void {
  const stall = context.replica.storageStall();
  if (stall === null) return;
  throw new AspenError(
    stall.kind,
    `Cannot ${action} shard ${context.shard} now: its storage is stalled (${stall.reason}); ` +
      "try again once the alarm clears",
    { shard: context.shard },
  );
}

function read<T>(
  context: ShardDispatchContext,
  serializable: boolean,
  reader: () => T,
): Promise<T> | T {
  return serializable ? reader() : context.replica.read(reader);
}

/** A key read, with the intent on it when a cross-shard transaction holds it. */
function get(machine: StateMachine, key: string): unknown {
  if (!ownsKey(machine.ownership(), key, "read")) throw wrongShardError(machine.ownership(), key);
  const answer = { kv: machine.get(key), revision: machine.appliedIndex() };
  // The cheap check first: most of the time no transaction holds any key of the shard.
  if (machine.intentCount() === 0) return answer;
  const holder = machine.intentOf(key);
  if (holder === null) return answer;
  const intents: ReadIntent[] = [{ key, holder }];
  return { ...answer, intents };
}

/** A range page, with the intents on the keys it covers (see pageIntents). */
function range(
  machine: StateMachine,
  range: ShardRange,
  owner: ReturnType<typeof rangeOwner>,
): unknown {
  const result = machine.range({
    range: range.range,
    limit: range.limit,
    after: range.after,
    keysOnly: range.keysOnly,
    countOnly: range.countOnly,
    reverse: range.reverse,
    owner,
  });
  const answer = { ...result, revision: machine.appliedIndex() };
  if (machine.intentCount() === 0) return answer;
  const intents = pageIntents(machine, range, result);
  return intents.length === 0 ? answer : { ...answer, intents };
}

/**
 * The intents on keys that a page covered: within the range, past `after`, and not beyond
 * the page's last key when the page was cut short (in the read's direction). A locked key
 * that does not exist yet counts too: the transaction may be creating it.
 */
function pageIntents(
  machine: StateMachine,
  range: ShardRange,
  page: RangeResult,
): ReadIntent[] {
  const direction = range.reverse ? -1 : 1;
  const last = page.more ? page.kvs[page.kvs.length - 1]?.key ?? null : null;
  const found = machine.intentsIn(range.range, READ_INTENTS_MAX);
  return found.filter(({ key }) => {
    if (range.after !== null && direction * compareUtf8(key, range.after) <= 0) return false;
    return last === null || direction * compareUtf8(key, last) <= 0;
  }).map(({ key, holder }) => ({ key, holder }));
}

function keepAlive(context: ShardDispatchContext, id: number): unknown {
  const result = context.lessor.keepAlive(id, context.nowMs());
  if (result.type === "not_leader") {
    throw notLeaderError(context.shard, context.replica.status().leader, `keep lease ${id} alive`);
  }
  if (result.type === "not_found") {
    throw leaseError({ code: "lease_not_found", action: "keepAlive", lease: id });
  }
  return { id, ttl: result.lease.ttlSeconds, remainingMs: result.remainingMs };
}

function leaseInfo(context: ShardDispatchContext, id: number): unknown {
  const lease = context.stateMachine.lease(id);
  if (lease === null) {
    throw leaseError({ code: "lease_not_found", action: "read", lease: id });
  }
  const remainingMs = context.lessor.remainingMs(id, context.nowMs()) ?? 0;
  const holders = context.stateMachine.leaseHolders(id);
  return { id, ttl: lease.ttlSeconds, remainingMs, keys: lease.keys, holders };
}
