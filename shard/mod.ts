/**
 * @module
 * A shard: one partition of the keyspace with its own Raft group, KV state machine and SQLite
 * storage, plus the driver loop and key-to-shard routing.
 *
 * The state machine half lives here today: commands and their encoding (what the runtime
 * proposes through Raft), {@linkcode StateMachine} (apply, local reads, snapshots, state hash,
 * watch), the {@linkcode Lessor} (lease deadlines on the leader), the {@linkcode WatchHub} and
 * the client {@linkcode TransactionBuilder}.
 *
 * Allowed dependencies: raft/ (through raft/mod.ts), `node:` built-ins. Never a folder above it
 * (transport/, server/, cli/, bench/, ui/).
 *
 * @example
 * ```ts
 * import { encodeCommand, StateMachine } from "./mod.ts";
 * const sm = StateMachine.open({ path: ":memory:", synchronous: "normal" });
 * const data = encodeCommand({ type: "put", key: "a", value: "1", lease: 0, prevKv: false });
 * const [result] = sm.apply([{ index: 1, data }]);
 * console.log(result, sm.get("a")?.version); // { type: "put", revision: 1, ... } 1
 * sm.close();
 * ```
 */
export {
  addressInUseError,
  AspenError,
  ERROR_CODES,
  isAddressInUseError,
  isErrorCode,
  notLeaderError,
} from "./errors.ts";
export type { ErrorCode, ErrorDetails } from "./errors.ts";
export { allShardIds, fnv1a64, jumpHash, ROUTER_SHARDS_MAX, shardForKey } from "./router.ts";
export {
  placeKey,
  sameTenants,
  TENANT_NAME_LENGTH_MAX,
  tenantOfKey,
  TENANTS_MAX,
  type TenantShards,
  validateTenantName,
  validateTenantShards,
} from "./tenants.ts";
export * from "./limits.ts";
export {
  compareUtf8,
  type KeyRange,
  keyRangeContains,
  type KeyValue,
  kvResponseBytes,
  utf8ByteLength,
  validateKey,
  validateKeyRange,
  validateText,
  validateValue,
  valueByteLength,
  valueFromBytes,
  valueToBytes,
} from "./key_value.ts";
export {
  type Command,
  type CommandType,
  type Compare,
  type CompareOp,
  type CompareTarget,
  IMPORT_KEYS_MAX,
  type ImportedKv,
  isDeleteOnly,
  type PutItem,
  type RangeRequest,
  type ReadRecord,
  type TxnBranch,
  type TxnDecideCommand,
  type TxnLeaseStep,
  type TxnOp,
  type TxnOutcome,
  type TxnPrepareCommand,
  type TxnResolveCommand,
  validateCommand,
  validateRangeRequest,
  type WriteOp,
} from "./command.ts";
export { decodeCommand, encodeCommand } from "./command_codec.ts";
export {
  DROP_MOVED_KEYS_MAX,
  HANDOFF_STAGE_PHASE,
  KEYS_MOVING_RETRY_AFTER_MS,
  keysMovingError,
  MOVE_STAGES_PER_EPOCH,
  type Ownership,
  OWNERSHIP_META,
  ownsKey,
  rangeOwner,
  readEpochOf,
  servesRange,
  wrongShardError,
} from "./ownership.ts";
export {
  type ApplyResult,
  applyResultError,
  type Conflict,
  describeConflict,
  type LeaseGrant,
  type RangeResult,
  type TxnHolder,
  type TxnOpResult,
  type TxnParticipantRow,
  type TxnParticipantState,
  type TxnParticipantVote,
  type TxnRecord,
  type TxnStatus,
  type TxnVote,
} from "./apply_result.ts";
export { evaluateCompare } from "./compare.ts";
export { leaseError, type LeaseFault, leaseFaultOf } from "./lease_error.ts";
export {
  apiIdOfForeignLease,
  foreignLeaseId,
  isForeignLease,
  leaseLockKey,
} from "./foreign_lease.ts";
export { type KeyVersion, validateReadSet, type VersionReader } from "./occ.ts";
export {
  type ApplyEntry,
  type ApplyObserver,
  type IntentPreview,
  type KeysRead,
  type LeaseInfo,
  type RangeOptions,
  type ShardStats,
  STATE_MACHINE_FILE_NAME,
  StateMachine,
  type StateMachineOptions,
} from "./state_machine.ts";
export type { Synchronous } from "./_schema.ts";
export type { IntentEntry } from "./_txn_store.ts";
export {
  type EventCursor,
  type HistoryEvent,
  type HistoryPage,
  type HistoryQuery,
  type HistorySource,
  type WatchEvent,
  type WatchFilter,
} from "./watch_event.ts";
export {
  type SubscribeOptions,
  WATCH_HUB_DEFAULTS,
  Watcher,
  WatchHub,
  type WatchHubOptions,
  type WatchItem,
} from "./watch_hub.ts";
export { type KeepAliveResult, Lessor } from "./lessor.ts";
export {
  type CommitOutcome,
  runTransaction,
  TRANSACTION_ATTEMPTS_MAX,
  TransactionBuilder,
  type TransactionStore,
} from "./transaction_builder.ts";
export {
  APPLY_SAMPLES_MAX,
  COMPACT_ENTRIES_PER_TURN_MAX,
  INBOUND_MESSAGES_MAX,
  LOG_RETAINED_ENTRIES,
  PROPOSALS_PENDING_MAX,
  READ_WAITERS_MAX,
  READY_ROUNDS_PER_TURN_MAX,
  type ReplicaLogStorage,
  type ReplicaOptions,
  type ReplicaStateMachine,
  type ReplicaStats,
  type ReplicaStatus,
  ShardReplica,
  SNAPSHOT_INTERVAL_ENTRIES,
  SNAPSHOT_RETRY_MS,
} from "./replica.ts";
export {
  type StallStage,
  STORAGE_RETRY_TICKS_MAX,
  STORAGE_RETRY_TICKS_MIN,
  type StorageStallStatus,
} from "./_storage_stall.ts";
export {
  describeStorageFailure,
  FatalStorageError,
  type StorageFailureKind,
  storageFailureKind,
  syncFailedError,
} from "./storage_failure.ts";
export {
  type ReadyWrites,
  SqliteLogStorage,
  type SqliteLogStorageOptions,
} from "./raft_log_storage.ts";
