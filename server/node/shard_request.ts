/**
 * The requests one node asks of a shard's replica, locally or over the peer channel, and their
 * JSON wire form.
 *
 * A client request becomes one `ShardRequest` per shard it touches; the node that hosts the
 * shard's leader executes it. Forwarding sends the same value as JSON, so a forwarded request
 * and a local one run the very same code. Errors cross back as `AspenError`s with their code
 * and details (the peer channel carries them).
 */
import {
  AspenError,
  type Command,
  type KeyRange,
  RANGE_LIMIT_MAX,
  ROUTER_SHARDS_MAX,
  TENANTS_MAX,
  type TenantShards,
  TXN_ID_CHARS_MAX,
  TXN_LIST_LIMIT_MAX,
  TXN_OPS_MAX,
  type TxnHolder,
  type TxnStatus,
  validateCommand,
  validateKey,
  validateRangeRequest,
  validateTenantName,
  validateTenantShards,
  type WatchFilter,
} from "../../shard/mod.ts";

/** The longest id of a remote watch stream. */
export const REMOTE_WATCH_STREAM_ID_CHARS_MAX = 64;

/** The membership changes a `confChange` request may ask for (raft/membership.ts). */
export type MembershipChangeType = "addLearner" | "addVoter" | "removeReplica";
const MEMBERSHIP_CHANGE_TYPES: readonly MembershipChangeType[] = [
  "addLearner",
  "addVoter",
  "removeReplica",
];

/** A range read as a shard executes it. */
export interface ShardRange {
  readonly range: KeyRange;
  readonly limit: number;
  readonly after: string | null;
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  readonly reverse: boolean;
}

/** What a node asks of a shard. */
export type ShardRequest =
  | {
    readonly kind: "propose";
    readonly command: Command;
    /**
     * The leader may hold the proposal up to PROPOSAL_HOLD_MS for the next one to share its
     * round (a cross-shard transaction's resolves after the reply); absent: propose at once. A
     * node before held proposals ignores it and proposes at once.
     */
    readonly isHeld?: boolean;
  }
  | { readonly kind: "get"; readonly key: string; readonly serializable: boolean }
  | {
    readonly kind: "range";
    readonly range: ShardRange;
    readonly serializable: boolean;
    /**
     * The shard count the read was planned with (shard moves): a shard that holds other keys
     * than that plan gives it answers `wrong_shard`. Absent from nodes before moves.
     */
    readonly numShards?: number;
    /**
     * The epoch of the shard map the read was planned under: a source between a move's hand-off
     * and its clean-up serves only plans made after the move's flip (a tenant move keeps the
     * count, so the count alone cannot tell). Absent from nodes before tenants.
     */
    readonly epoch?: number;
  }
  | { readonly kind: "leaseKeepAlive"; readonly id: number }
  | { readonly kind: "leaseInfo"; readonly id: number }
  | { readonly kind: "status" }
  /** A leader's read index for a follower's linearizable reads (see follower_reads.ts). */
  | { readonly kind: "readIndex" }
  | {
    readonly kind: "watchPoll";
    readonly filter: WatchFilter;
    /** The first revision wanted; null means "from the next applied entry". */
    readonly fromRevision: number | null;
    readonly waitMs: number;
  }
  /**
   * One pull of a remote watch stream (see remote_watch.ts): the events from `position` (null:
   * from the next applied entry), answered as soon as one is ready. Added after `watchPoll`; a
   * node that predates it answers `bad_request`, and the caller falls back to `watchPoll`.
   */
  | {
    readonly kind: "watchStream";
    readonly filter: WatchFilter;
    /** Chosen by the watching node, unique among its streams. */
    readonly streamId: string;
    readonly position: { readonly revision: number; readonly skip: number } | null;
    readonly waitMs: number;
  }
  /** Ends a remote watch stream whose client went away. */
  | { readonly kind: "watchCancel"; readonly streamId: string }
  | { readonly kind: "transferLeader"; readonly to: number }
  /**
   * One membership change of the shard's Raft group (the rebalance driver), on its leader:
   * answered `{ shard, index }` once the change's entry applied there (so it committed).
   */
  | {
    readonly kind: "confChange";
    readonly change: MembershipChangeType;
    readonly node: number;
  }
  /** A linearizable read of a meta record (cluster-wide records such as the runtime tokens). */
  | { readonly kind: "metaRead"; readonly name: string }
  /**
   * Writes the meta record `name` only if it still holds `expected` (null: absent), on the
   * leader: a compare-and-swap for records that nodes change by read-modify-write (see
   * meta_swaps.ts).
   */
  | {
    readonly kind: "metaSwap";
    readonly name: string;
    readonly expected: string | null;
    readonly value: string;
  }
  /**
   * A linearizable read of a cross-shard transaction's record on its home shard: answered
   * `{ record: TxnRecord | null }` (see txn_transport.ts).
   */
  | { readonly kind: "txnRecord"; readonly txnId: string }
  /**
   * A linearizable read of a participant shard's row of a cross-shard transaction: answered
   * `{ row: TxnParticipantRow | null }` (the receipts of `GET /v1/txn/{id}`).
   */
  | { readonly kind: "txnParticipant"; readonly txnId: string }
  /**
   * A linearizable read of a participant shard's row with its prepare's vote: answered
   * `{ row: TxnParticipantVote | null }` (`GET /v1/txn/{id}` of a staging record). Added after
   * `txnParticipant`; a node that predates it answers `bad_request`, and the caller falls back
   * to `txnParticipant`.
   */
  | { readonly kind: "txnVote"; readonly txnId: string }
  /**
   * A linearizable listing of the home shard's records with `status`, at most `limit`
   * (1..TXN_LIST_LIMIT_MAX): answered `{ records: TxnRecord[] }` (`GET /v1/txn`).
   */
  | { readonly kind: "txnList"; readonly status: TxnStatus; readonly limit: number }
  /**
   * A linearizable read of a participant shard's rows of several transactions (at most
   * TXN_LIST_LIMIT_MAX): answered `{ rows: (TxnParticipantRow | null)[] }`, one per id.
   */
  | { readonly kind: "txnParticipants"; readonly txnIds: readonly string[] }
  /**
   * As `txnParticipants`, each row with its prepare's vote: answered
   * `{ rows: (TxnParticipantVote | null)[] }` (`GET /v1/txn` listings). Added after
   * `txnParticipants`; a node that predates it answers `bad_request`, and the caller falls back
   * to `txnParticipants`.
   */
  | { readonly kind: "txnVotes"; readonly txnIds: readonly string[] }
  /**
   * A linearizable read of keys with their intents for a lock-free cross-shard read-only
   * transaction (at most TXN_READ_KEYS_MAX): answered as StateMachine.readKeys, whether a key
   * changed after `changedAfter` included.
   */
  | {
    readonly kind: "txnReadKeys";
    readonly keys: readonly string[];
    readonly changedAfter: number | null;
  }
  /**
   * A shard move's copy (shard_move.ts): a linearizable page of the keys whose shard among
   * `count` is `target` and among `fromCount` is `source`, after `after` and up to `until`
   * (included), at most `limit`, whatever the shard's ownership: answered
   * `{ kvs: KeyValue[], more: boolean, valueless: string[] }` (the keys whose value was left
   * out: they read "").
   */
  | {
    readonly kind: "moveScan";
    readonly source: number;
    readonly fromCount: number;
    readonly target: number;
    readonly count: number;
    /** The tenants placed with `fromCount` and with `count` (absent: none). */
    readonly fromTenants?: TenantShards;
    readonly tenants?: TenantShards;
    readonly after: string | null;
    readonly until: string | null;
    readonly limit: number;
    /** Leave out the values of keys last changed at or before it (null: none left out). */
    readonly valuesAfter: number | null;
  }
  /**
   * A linearizable measure for a move: keys and bytes per shard among `count` (`bySize`),
   * the intents on keys the shard would not own (`intents`), the stand-ins of other shards'
   * leases holding keys here (`foreignLeases`), and the applied index (`appliedIndex`).
   */
  | {
    readonly kind: "moveSize";
    readonly count: number;
    /**
     * False: leave `bySize` out (empty), since it hashes every key of the shard; the fence's
     * drain polls and the other small questions of a move ask without it. Absent: true.
     */
    readonly sizes?: boolean;
    /** Tenants placed with `count` (absent: none). */
    readonly tenants?: TenantShards;
    /** Tenants whose keys and bytes the answer gives too (`byTenant`); at most TENANTS_MAX. */
    readonly sizeOf?: readonly string[];
  };

/** The most keys of one `txnReadKeys` request: a txn's compares and both branches. */
export const TXN_READ_KEYS_MAX = 3 * TXN_OPS_MAX;

/**
 * An intent that a get or range read found on a key it read: the answer lists them
 * (`intents`, absent when there are none) so that the node serving the client pushes the
 * holder and reads again, wherever the read ran.
 */
export interface ReadIntent {
  readonly key: string;
  readonly holder: TxnHolder;
}

/** The most intents one read reports; the rest are found by the read after the push. */
export const READ_INTENTS_MAX = 64;

/** Request kinds that a follower may serve from its own state. */
export function isSerializable(request: ShardRequest): boolean {
  if (request.kind === "watchPoll" || request.kind === "watchStream") return true;
  if (request.kind === "watchCancel") return true;
  return (request.kind === "get" || request.kind === "range") && request.serializable;
}

/** Linearizable reads of keys that a follower may serve after a read index from the leader. */
export function isFollowerReadable(
  request: ShardRequest,
): request is Extract<ShardRequest, { kind: "get" | "range" }> {
  return (request.kind === "get" || request.kind === "range") && !request.serializable;
}

/** Request kinds that are safe to retry on another replica when the first did not answer. */
export function isIdempotent(request: ShardRequest): boolean {
  return request.kind !== "propose" && request.kind !== "metaSwap" &&
    request.kind !== "confChange";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a request for the peer channel. */
export function encodeShardRequest(request: ShardRequest): Uint8Array {
  return encoder.encode(JSON.stringify(request));
}

/**
 * Decodes and checks a request that came over the peer channel.
 *
 * @throws {AspenError} `bad_request` for anything that is not a well-formed request.
 */
export function decodeShardRequest(bytes: Uint8Array): ShardRequest {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new AspenError("bad_request", "Cannot decode a forwarded request: not JSON", {}, {
      cause: error,
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AspenError("bad_request", "Cannot decode a forwarded request: not an object");
  }
  // Every field is checked here: a peer is authenticated, not infallible, and a bad value
  // deeper down (a node id that is not an integer) would trip an assertion and stop the node.
  const request = value as Record<string, unknown>;
  switch (request.kind) {
    case "propose":
      return {
        kind: "propose",
        command: checkedCommand(request.command),
        ...(heldFlag(request.isHeld) ? { isHeld: true } : {}),
      };
    case "get":
      validateKey(request.key, "decode a forwarded get");
      return { kind: "get", key: request.key, serializable: flag(request.serializable) };
    case "range":
      return checkedRangeRequest(request);
    case "moveScan":
    case "moveSize":
      return checkedMoveRequest(request);
    case "leaseKeepAlive":
    case "leaseInfo":
      return { kind: request.kind, id: positiveInteger(request.id, "id") };
    case "status":
      return { kind: "status" };
    case "transferLeader":
      return { kind: "transferLeader", to: positiveInteger(request.to, "to") };
    case "confChange":
      return checkedConfChange(request);
    case "readIndex":
      return { kind: "readIndex" };
    case "metaRead":
    case "metaSwap":
      return checkedMetaRequest(request);
    case "watchPoll":
      return {
        kind: "watchPoll",
        filter: checkedFilter(request.filter),
        fromRevision: request.fromRevision === null
          ? null
          : positiveInteger(request.fromRevision, "fromRevision"),
        waitMs: positiveInteger(request.waitMs, "waitMs"),
      };
    case "watchStream":
      return {
        kind: "watchStream",
        filter: checkedFilter(request.filter),
        streamId: checkedStreamId(request.streamId),
        position: checkedPosition(request.position),
        waitMs: positiveInteger(request.waitMs, "waitMs"),
      };
    case "watchCancel":
      return { kind: "watchCancel", streamId: checkedStreamId(request.streamId) };
    default:
      // The cross-shard transaction reads, or an unknown kind.
      return checkedTxnRequest(request);
  }
}

function checkedConfChange(request: Record<string, unknown>): ShardRequest {
  if (!MEMBERSHIP_CHANGE_TYPES.includes(request.change as MembershipChangeType)) {
    throw new AspenError("bad_request", "Cannot decode a forwarded membership change");
  }
  return {
    kind: "confChange",
    change: request.change as MembershipChangeType,
    node: positiveInteger(request.node, "node"),
  };
}

function checkedRangeRequest(request: Record<string, unknown>): ShardRequest {
  return {
    kind: "range",
    range: checkedRange(request.range),
    serializable: flag(request.serializable),
    ...(request.numShards === undefined
      ? {}
      : { numShards: shardCountOf(request.numShards, "numShards") }),
    ...(request.epoch === undefined ? {} : { epoch: mapEpochOf(request.epoch) }),
  };
}

function mapEpochOf(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new AspenError("bad_request", "Cannot decode a forwarded range: bad shard map epoch");
  }
  return value;
}

function checkedMoveRequest(request: Record<string, unknown>): ShardRequest {
  const count = shardCountOf(request.count, "count");
  const tenants = request.tenants === undefined
    ? undefined
    : validateTenantShards(request.tenants, count);
  const placed = tenants === undefined ? {} : { tenants };
  if (request.kind === "moveSize") {
    if (request.sizes !== undefined && typeof request.sizes !== "boolean") {
      throw new AspenError("bad_request", "Cannot decode a forwarded move size: bad sizes flag");
    }
    const sizes = request.sizes === undefined ? {} : { sizes: request.sizes };
    const sizeOf = request.sizeOf === undefined ? undefined : checkedTenantNames(request.sizeOf);
    return {
      kind: "moveSize",
      count,
      ...placed,
      ...sizes,
      ...(sizeOf === undefined ? {} : { sizeOf }),
    };
  }
  const fromCount = shardCountOf(request.fromCount, "fromCount");
  const fromTenants = request.fromTenants === undefined
    ? {}
    : { fromTenants: validateTenantShards(request.fromTenants, fromCount) };
  const shardOf = (value: unknown) => {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw new AspenError("bad_request", "Cannot decode a forwarded move scan: bad shard id");
    }
    return value;
  };
  const limit = positiveInteger(request.limit, "limit");
  if (limit >= RANGE_LIMIT_MAX) {
    throw new AspenError("bad_request", "Cannot decode a forwarded move scan: limit too large");
  }
  const bound = (value: unknown) => {
    if (value === null) return null;
    validateKey(value, "decode a forwarded move scan");
    return value as string;
  };
  return {
    kind: "moveScan",
    source: shardOf(request.source),
    fromCount,
    target: shardOf(request.target),
    count,
    ...fromTenants,
    ...placed,
    after: bound(request.after),
    until: bound(request.until),
    limit,
    valuesAfter: request.valuesAfter === null || request.valuesAfter === undefined
      ? null
      : shardOf(request.valuesAfter),
  };
}

/** A list of at most TENANTS_MAX tenant names. */
function checkedTenantNames(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > TENANTS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot decode a forwarded request: sizeOf must list at most ${TENANTS_MAX} tenants`,
    );
  }
  for (const name of value) validateTenantName(name, "decode a forwarded request");
  return value as string[];
}

/** A shard count, 1..ROUTER_SHARDS_MAX. */
function shardCountOf(value: unknown, field: string): number {
  const count = positiveInteger(value, field);
  if (count > ROUTER_SHARDS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot decode a forwarded request: ${field} is above ${ROUTER_SHARDS_MAX}`,
    );
  }
  return count;
}

function checkedMetaRequest(request: Record<string, unknown>): ShardRequest {
  if (request.kind === "metaRead") {
    checkMeta(request.name, "");
    return { kind: "metaRead", name: request.name as string };
  }
  checkMeta(request.name, request.value);
  if (request.expected !== null) checkMeta(request.name, request.expected);
  return {
    kind: "metaSwap",
    name: request.name as string,
    expected: request.expected as string | null,
    value: request.value as string,
  };
}

/**
 * A transaction id as the coordinator makes them (`<nodeId>.<wallMs>.<seq>`): 1 to
 * TXN_ID_CHARS_MAX printable ASCII characters.
 *
 * @throws {AspenError} `bad_request` naming the limit.
 */
export function checkedTxnId(id: unknown, action: string): string {
  const isId = typeof id === "string" && id.length >= 1 && id.length <= TXN_ID_CHARS_MAX &&
    /^[\x21-\x7e]+$/.test(id);
  if (!isId) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action} txn: the txn id must be 1 to ${TXN_ID_CHARS_MAX} (TXN_ID_CHARS_MAX) ` +
        "printable ASCII characters",
    );
  }
  return id;
}

function checkedReadKeys(request: Record<string, unknown>): ShardRequest {
  const { keys, changedAfter } = request;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > TXN_READ_KEYS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot decode a forwarded txn read: keys must be a list of 1 to ${TXN_READ_KEYS_MAX} ` +
        "(TXN_READ_KEYS_MAX) keys",
    );
  }
  for (const key of keys) validateKey(key, "decode a forwarded txn read");
  const isRevision = changedAfter === null ||
    (typeof changedAfter === "number" && Number.isSafeInteger(changedAfter) && changedAfter >= 0);
  if (!isRevision) {
    throw new AspenError(
      "bad_request",
      "Cannot decode a forwarded txn read: changedAfter must be null or a revision",
    );
  }
  return { kind: "txnReadKeys", keys, changedAfter: changedAfter as number | null };
}

/** The cross-shard transaction reads, checked. */
function checkedTxnRequest(request: Record<string, unknown>): ShardRequest {
  if (request.kind === "txnReadKeys") return checkedReadKeys(request);
  const kinds: unknown[] = [
    "txnRecord",
    "txnParticipant",
    "txnVote",
    "txnList",
    "txnParticipants",
    "txnVotes",
  ];
  if (!kinds.includes(request.kind)) {
    throw new AspenError(
      "bad_request",
      `Cannot decode a forwarded request of kind ${JSON.stringify(request.kind) ?? "(none)"}`,
    );
  }
  if (request.kind === "txnList") {
    return {
      kind: "txnList",
      status: checkedTxnStatus(request.status),
      limit: checkedListLimit(request.limit),
    };
  }
  if (request.kind === "txnParticipants" || request.kind === "txnVotes") {
    return { kind: request.kind, txnIds: checkedTxnIds(request.txnIds) };
  }
  const kind = request.kind as "txnRecord" | "txnParticipant" | "txnVote";
  return { kind, txnId: checkedTxnId(request.txnId, "decode a forwarded") };
}

const TXN_STATUSES: readonly TxnStatus[] = ["pending", "committed", "aborted"];

function checkedTxnStatus(status: unknown): TxnStatus {
  const found = TXN_STATUSES.find((known) => known === status);
  if (found === undefined) {
    throw new AspenError(
      "bad_request",
      "Cannot decode a forwarded txn listing: status must be pending, committed or aborted",
    );
  }
  return found;
}

function checkedListLimit(limit: unknown): number {
  const value = positiveInteger(limit, "limit");
  if (value > TXN_LIST_LIMIT_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot decode a forwarded txn listing: limit is ${value} but the maximum is ` +
        `${TXN_LIST_LIMIT_MAX} (TXN_LIST_LIMIT_MAX)`,
    );
  }
  return value;
}

function checkedTxnIds(ids: unknown): string[] {
  const isList = Array.isArray(ids) && ids.length >= 1 && ids.length <= TXN_LIST_LIMIT_MAX;
  if (!isList) {
    throw new AspenError(
      "bad_request",
      `Cannot decode a forwarded receipts read: txnIds must list 1 to ${TXN_LIST_LIMIT_MAX} ids`,
    );
  }
  return ids.map((id) => checkedTxnId(id, "decode a forwarded"));
}

function checkedFilter(filter: unknown): WatchFilter {
  const object = filter as { key?: unknown; prefix?: unknown } | null;
  if (typeof object?.key === "string") {
    validateKey(object.key, "decode a forwarded watch");
    return { key: object.key };
  }
  if (typeof object?.prefix === "string") return { prefix: object.prefix };
  throw new AspenError("bad_request", "Cannot decode a forwarded watch: no key or prefix");
}

function checkedStreamId(id: unknown): string {
  const isId = typeof id === "string" && id.length >= 1 &&
    id.length <= REMOTE_WATCH_STREAM_ID_CHARS_MAX;
  if (!isId) {
    throw new AspenError(
      "bad_request",
      "Cannot decode a forwarded watch stream: streamId must be a string of 1 to " +
        `${REMOTE_WATCH_STREAM_ID_CHARS_MAX} characters`,
    );
  }
  return id;
}

function checkedPosition(position: unknown): { revision: number; skip: number } | null {
  if (position === null) return null;
  const object = position as { revision?: unknown; skip?: unknown } | undefined;
  const skip = object?.skip;
  const isSkip = typeof skip === "number" && Number.isSafeInteger(skip) && skip >= 0;
  if (!isSkip) {
    throw new AspenError(
      "bad_request",
      "Cannot decode a forwarded watch stream: position.skip must be a non-negative integer",
    );
  }
  return { revision: positiveInteger(object?.revision, "position.revision"), skip };
}

function checkedCommand(command: unknown): Command {
  if (typeof command !== "object" || command === null || Array.isArray(command)) {
    throw new AspenError("bad_request", "Cannot decode a forwarded proposal: no command");
  }
  validateCommand(command as Command);
  return command as Command;
}

/** Checks a meta record's name and value as a meta write would. */
function checkMeta(name: unknown, value: unknown): void {
  validateCommand({ type: "meta", name, value } as Command);
}

function checkedRange(range: unknown): ShardRange {
  if (typeof range !== "object" || range === null || Array.isArray(range)) {
    throw new AspenError("bad_request", "Cannot decode a forwarded range read: no range");
  }
  validateRangeRequest(range as ShardRange);
  return range as ShardRange;
}

function heldFlag(value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") {
    throw new AspenError("bad_request", "Cannot decode a forwarded proposal: isHeld is not a flag");
  }
  return value;
}

function flag(value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw new AspenError(
      "bad_request",
      "Cannot decode a forwarded read: serializable is not a flag",
    );
  }
  return value;
}

/** A positive safe integer (a lease id, a node id). */
function positiveInteger(value: unknown, field: string): number {
  const isId = typeof value === "number" && Number.isSafeInteger(value) && value >= 1;
  if (!isId) {
    throw new AspenError(
      "bad_request",
      `Cannot decode a forwarded request: ${field} must be a positive integer`,
    );
  }
  return value;
}

/** Encodes a response value for the peer channel. */
export function encodeShardResponse(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value ?? null));
}

/** Decodes a response value from the peer channel. */
export function decodeShardResponse<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}
