/**
 * The drift guard: for the main responses, the contract's field names as runtime values, typed
 * so that the compiler fails when a list does not name exactly the keys of its type in
 * types.ts (a missing key, or one the type lacks), and a checker that lists the fields of a
 * real answer that the contract does not name. A test against a real node runs every main
 * request through it (tests/api_contract_test.ts): a field the server sends but the contract
 * lacks fails there, and a field added to the contract but not here fails to compile.
 */
import type {
  AddShardsResponse,
  Alarm,
  ApiErrorBody,
  ClusterStatus,
  ConflictErrorBody,
  DeleteKvResponse,
  DeleteRangeResponse,
  GetKvResponse,
  HealthResponse,
  Kv,
  LeaseInfoResponse,
  LeaseResponse,
  LeaseRevokeResponse,
  MovedReadConflictBody,
  NodeStatus,
  OptimisticTxnResponse,
  PutKvResponse,
  RangeResponse,
  RemoveNodeResponse,
  ReplicaStatus,
  ShardMovesResponse,
  ShardMoveStatus,
  ShardSizesResponse,
  ShardStatus,
  TenantMoveResponse,
  TenantsResponse,
  TransferLeaderResponse,
  TxnListResponse,
  TxnOpResult,
  TxnResponse,
  TxnStatusResponse,
} from "./types.ts";

/**
 * How the guard looks at one field whose type is `Value`: `true` checks only that the field
 * is named; a {@linkcode KeyShape} also checks the names inside an object, and `[shape]` those
 * of every item of an array. Null and absent values are not looked into.
 */
export type FieldShape<Value> = true | NestedShape<NonNullable<Value>>;

type NestedShape<Value> = Value extends readonly (infer Item)[] ? readonly [KeyShape<Item>]
  : Value extends object ? KeyShape<Value>
  : never;

/** Every key of `T`, each exactly once (optional ones included), with how to look inside. */
export type KeyShape<T> = { readonly [Name in keyof T]-?: FieldShape<T[Name]> };

/** What {@linkcode keysOutsideContract} walks: a {@linkcode KeyShape} with its types erased. */
export interface RuntimeShape {
  readonly [name: string]: true | RuntimeShape | readonly [RuntimeShape];
}

/** The keys of every variant of a union, each with the union of its types. */
type Merged<Union> = {
  [Name in Union extends unknown ? keyof Union : never]: Union extends unknown
    ? Name extends keyof Union ? Union[Name] : never
    : never;
};

/** A stored key. */
export const KV_KEYS = {
  key: true,
  value: true,
  valueBase64: true,
  version: true,
  createRevision: true,
  modRevision: true,
  lease: true,
  shard: true,
} as const satisfies KeyShape<Kv>;

/** `GET /v1/kv/{key}`. */
export const GET_KV_KEYS = {
  kv: KV_KEYS,
  shard: true,
  revision: true,
} as const satisfies KeyShape<GetKvResponse>;

/** `PUT /v1/kv/{key}`. */
export const PUT_KV_KEYS = {
  shard: true,
  revision: true,
  version: true,
  prevKv: KV_KEYS,
} as const satisfies KeyShape<PutKvResponse>;

/** `DELETE /v1/kv/{key}`. */
export const DELETE_KV_KEYS = {
  deleted: true,
  shard: true,
  revision: true,
  prevKv: KV_KEYS,
} as const satisfies KeyShape<DeleteKvResponse>;

/** `GET /v1/kv?...`. */
export const RANGE_KEYS = {
  kvs: [KV_KEYS],
  count: true,
  more: true,
  next: true,
} as const satisfies KeyShape<RangeResponse>;

/** `DELETE /v1/kv?...`. */
export const DELETE_RANGE_KEYS = { deleted: true } as const satisfies KeyShape<
  DeleteRangeResponse
>;

/** One result of a conditional batch: the keys of all its variants. */
export const TXN_OP_RESULT_KEYS = {
  type: true,
  version: true,
  deleted: true,
  prevKv: KV_KEYS,
  kv: KV_KEYS,
  kvs: [KV_KEYS],
  count: true,
  more: true,
  next: true,
} as const satisfies KeyShape<Merged<TxnOpResult>>;

/** `POST /v1/txn`. */
export const TXN_KEYS = {
  succeeded: true,
  results: [TXN_OP_RESULT_KEYS],
  shard: true,
  revision: true,
  txnId: true,
  revisions: true,
} as const satisfies KeyShape<TxnResponse>;

/** `POST /v1/txn/optimistic` 200. */
export const OPTIMISTIC_TXN_KEYS = {
  committed: true,
  shard: true,
  revision: true,
  txnId: true,
  revisions: true,
} as const satisfies KeyShape<OptimisticTxnResponse>;

/** `GET /v1/txn/{id}`. */
export const TXN_STATUS_KEYS = {
  txnId: true,
  status: true,
  recordStatus: true,
  home: true,
  participants: true,
  branch: true,
  createdRevision: true,
  decidedRevision: true,
  reason: true,
  receipts: [{ shard: true, status: true, resolvedRevision: true, prepare: true }],
} as const satisfies KeyShape<TxnStatusResponse>;

/** `GET /v1/txn?status=&limit=`. */
export const TXN_LIST_KEYS = {
  status: true,
  txns: [{
    txnId: true,
    status: true,
    home: true,
    participants: true,
    branch: true,
    createdRevision: true,
    decidedRevision: true,
    reason: true,
    deadlineMs: true,
    outcome: true,
    receipts: [{ shard: true, status: true, resolvedRevision: true, prepare: true }],
  }],
  unavailableShards: true,
} as const satisfies KeyShape<TxnListResponse>;

/** Every error answer: details beside `code` and `message` are open by design. */
export const ERROR_BODY_KEYS = { error: true } as const satisfies KeyShape<ApiErrorBody>;

/** `POST /v1/txn/optimistic` 409. */
export const CONFLICT_ERROR_KEYS = {
  error: {
    code: true,
    message: true,
    key: true,
    field: true,
    expected: true,
    actual: true,
    expectedModRevision: true,
    actualModRevision: true,
    readRevision: true,
  },
} as const satisfies KeyShape<ConflictErrorBody>;

/** A 409 `conflict` for a read made on another shard than its key's (a shard move since). */
export const MOVED_READ_CONFLICT_KEYS = {
  error: { code: true, message: true, key: true, readShard: true, shard: true },
} as const satisfies KeyShape<MovedReadConflictBody>;

/** `POST /v1/leases` and `POST /v1/leases/{id}/keepalive`. */
export const LEASE_KEYS = { id: true, ttl: true } as const satisfies KeyShape<LeaseResponse>;

/** `GET /v1/leases/{id}`. */
export const LEASE_INFO_KEYS = {
  id: true,
  ttl: true,
  remaining: true,
  keys: true,
} as const satisfies KeyShape<LeaseInfoResponse>;

/** `DELETE /v1/leases/{id}`. */
export const LEASE_REVOKE_KEYS = { revoked: true } as const satisfies KeyShape<
  LeaseRevokeResponse
>;

/** `GET /v1/health`. */
export const HEALTH_KEYS = { status: true, node: true } as const satisfies KeyShape<
  HealthResponse
>;

/** `POST /v1/shards/{id}/transfer-leader`. */
export const TRANSFER_LEADER_KEYS = { shard: true, leader: true } as const satisfies KeyShape<
  TransferLeaderResponse
>;

const ALARM_KEYS = {
  type: true,
  shard: true,
  sinceMs: true,
  message: true,
} as const satisfies KeyShape<Alarm>;

const NODE_STATUS_KEYS = {
  id: true,
  peerAddress: true,
  httpAddress: true,
  status: true,
  version: true,
  uptimeMs: true,
  alarms: [ALARM_KEYS],
  crossShardTxns: { committed: true, conflict: true, timeout: true, error: true },
} as const satisfies KeyShape<NodeStatus>;

const REPLICA_STATUS_KEYS = {
  node: true,
  role: true,
  matchIndex: true,
  lag: true,
  status: true,
  snapshotTooLarge: { bytes: true, limit: true },
} as const satisfies KeyShape<ReplicaStatus>;

const SHARD_STATUS_KEYS = {
  id: true,
  leader: true,
  term: true,
  commitIndex: true,
  appliedIndex: true,
  lastIndex: true,
  replicas: [REPLICA_STATUS_KEYS],
  committedReplicas: true,
  stats: {
    proposalsPerSecond: true,
    optimisticTxns: true,
    conflicts: true,
    applyBatchMsP99: true,
    applyLatencyP99Ms: true,
    turnMsMax: true,
    intents: true,
  },
} as const satisfies KeyShape<ShardStatus>;

/** A shard move (`GET /v1/shards/moves`, the status, `POST /v1/shards`). */
export const SHARD_MOVE_KEYS = {
  fromCount: true,
  toCount: true,
  phase: true,
  startedAtMs: true,
  updatedAtMs: true,
  sources: [{
    shard: true,
    keysTotal: true,
    bytesTotal: true,
    keysCopied: true,
    bytesCopied: true,
  }],
  tenant: { name: true, to: true, isNew: true },
} as const satisfies KeyShape<ShardMoveStatus>;

/** `GET /v1/cluster/status`, down to every node, alarm, shard, replica and stat. */
export const CLUSTER_STATUS_KEYS = {
  clusterId: true,
  node: true,
  generatedAtMs: true,
  nodes: [NODE_STATUS_KEYS],
  shardMap: { epoch: true, numShards: true },
  shards: [SHARD_STATUS_KEYS],
  shardMove: SHARD_MOVE_KEYS,
  members: [{
    id: true,
    peerAddress: true,
    httpAddress: true,
    state: true,
    replicas: true,
    leaders: true,
  }],
  learners: [{ shard: true, node: true, matchIndex: true, lag: true }],
  differences: [{ kind: true, shard: true, node: true, message: true }],
} as const satisfies KeyShape<ClusterStatus>;

/** `POST /v1/cluster/nodes/{id}/remove` and `/replace`. */
export const REMOVE_NODE_KEYS = {
  node: true,
  state: true,
  previousState: true,
} as const satisfies KeyShape<RemoveNodeResponse>;

/** `POST /v1/shards`. */
export const ADD_SHARDS_KEYS = {
  dryRun: true,
  fromCount: true,
  toCount: true,
  sources: [{ shard: true, keys: true, bytes: true }],
  move: SHARD_MOVE_KEYS,
} as const satisfies KeyShape<AddShardsResponse>;

/** `GET /v1/shards/moves`. */
export const SHARD_MOVES_KEYS = { move: SHARD_MOVE_KEYS } as const satisfies KeyShape<
  ShardMovesResponse
>;

/** `GET /v1/shards`. */
export const SHARD_SIZES_KEYS = {
  epoch: true,
  numShards: true,
  shards: [{ id: true, keys: true, bytes: true }],
} as const satisfies KeyShape<ShardSizesResponse>;

/** `POST /v1/tenants`, `POST /v1/tenants/{name}/move`. */
export const TENANT_MOVE_KEYS = {
  name: true,
  shard: true,
  move: SHARD_MOVE_KEYS,
} as const satisfies KeyShape<TenantMoveResponse>;

/** `GET /v1/tenants`. */
export const TENANTS_KEYS = {
  epoch: true,
  tenants: [{ name: true, shard: true, keys: true, bytes: true }],
} as const satisfies KeyShape<TenantsResponse>;

/** The most values {@linkcode keysOutsideContract} looks at in one answer. */
export const CONTRACT_CHECK_VALUES_MAX = 1_000_000;

/**
 * The fields of `value` that `shape` does not name, as paths (`shards[0].stats.turnMsMax`),
 * and the places where an object or an array was expected but something else came; empty
 * when the answer stays within the contract. It walks with a stack (no recursion).
 *
 * @example
 * ```ts
 * keysOutsideContract({ kv: null, shard: 0, revision: 3, extra: 1 }, GET_KV_KEYS);
 * // ["extra"]
 * ```
 */
export function keysOutsideContract(value: unknown, shape: RuntimeShape): string[] {
  const problems: string[] = [];
  const pending: { value: unknown; shape: RuntimeShape | readonly [RuntimeShape]; path: string }[] =
    [{ value, shape, path: "" }];
  for (let visited = 0; pending.length > 0; visited++) {
    if (visited >= CONTRACT_CHECK_VALUES_MAX) {
      problems.push(`${CONTRACT_CHECK_VALUES_MAX} values looked at: the rest was not checked`);
      break;
    }
    const item = pending.pop()!;
    if (item.value === null || item.value === undefined) continue;
    if (isListShape(item.shape)) {
      if (!Array.isArray(item.value)) {
        problems.push(`${item.path || "(answer)"}: expected an array`);
        continue;
      }
      const inner = item.shape[0];
      item.value.forEach((entry, i) => {
        pending.push({ value: entry, shape: inner, path: `${item.path}[${i}]` });
      });
      continue;
    }
    if (typeof item.value !== "object" || Array.isArray(item.value)) {
      problems.push(`${item.path || "(answer)"}: expected an object`);
      continue;
    }
    for (const [name, field] of Object.entries(item.value)) {
      const path = item.path === "" ? name : `${item.path}.${name}`;
      const fieldShape = Object.hasOwn(item.shape, name) ? item.shape[name] : undefined;
      if (fieldShape === undefined) problems.push(path);
      else if (fieldShape !== true) pending.push({ value: field, shape: fieldShape, path });
    }
  }
  return problems.sort();
}

function isListShape(shape: RuntimeShape | readonly [RuntimeShape]): shape is readonly [
  RuntimeShape,
] {
  return Array.isArray(shape);
}
