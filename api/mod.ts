/**
 * @module
 * Aspen's client HTTP contract, in one place: the request and response types (types.ts), the
 * error codes with their HTTP statuses and the one `ApiError` class (errors.ts), the lease-id
 * encoding (lease_id.ts), the runtime key lists that guard against drift (contract_keys.ts),
 * and one small fetch-based client (client.ts). The server is typed against it; the CLI, the
 * console and the bench runner read answers with it.
 *
 * Allowed dependencies: none (a leaf). It runs in Deno and in browsers, so every folder but
 * raft/ may import it, ui/ included.
 *
 * @example
 * ```ts
 * import { ApiError, AspenClient } from "./mod.ts";
 * const client = new AspenClient({ endpoints: ["http://127.0.0.1:8001"], token: null });
 * try {
 *   await client.put("users/42", "alice");
 * } catch (error) {
 *   if (error instanceof ApiError) console.log(error.code, error.httpStatus);
 * }
 * ```
 */
export {
  type ApiRequest,
  AspenClient,
  base64Of,
  bytesOfBase64,
  CLIENT_TIMEOUT_MS,
  type ClientOptions,
  type GetKvResult,
  kvPath,
  watchPath,
  type WatchQuery,
} from "./client.ts";
export {
  ADD_SHARDS_KEYS,
  CLUSTER_STATUS_KEYS,
  CONFLICT_ERROR_KEYS,
  CONTRACT_CHECK_VALUES_MAX,
  DELETE_KV_KEYS,
  DELETE_RANGE_KEYS,
  ERROR_BODY_KEYS,
  type FieldShape,
  GET_KV_KEYS,
  HEALTH_KEYS,
  type KeyShape,
  keysOutsideContract,
  KV_KEYS,
  LEASE_INFO_KEYS,
  LEASE_KEYS,
  LEASE_REVOKE_KEYS,
  MOVED_READ_CONFLICT_KEYS,
  OPTIMISTIC_TXN_KEYS,
  PUT_KV_KEYS,
  RANGE_KEYS,
  REMOVE_NODE_KEYS,
  type RuntimeShape,
  SHARD_MOVE_KEYS,
  SHARD_MOVES_KEYS,
  SHARD_SIZES_KEYS,
  TENANT_MOVE_KEYS,
  TENANTS_KEYS,
  TRANSFER_LEADER_KEYS,
  TXN_KEYS,
  TXN_LIST_KEYS,
  TXN_OP_RESULT_KEYS,
  TXN_STATUS_KEYS,
} from "./contract_keys.ts";
export {
  ApiError,
  type ApiErrorCode,
  apiErrorOf,
  CLIENT_ERROR_CODES,
  type ClientErrorCode,
  ERROR_CODES,
  ERROR_STATUS,
  type ErrorCode,
  INTERNAL_ERROR_CODE,
  INTERNAL_ERROR_STATUS,
  isErrorCode,
} from "./errors.ts";
export { apiLeaseId, LEASE_SHARD_SPAN, leaseIdParts } from "./lease_id.ts";
export type * from "./types.ts";
