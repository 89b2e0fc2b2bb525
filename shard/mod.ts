/**
 * @module
 * A shard: one partition of the keyspace with its own Raft group, KV state machine and SQLite
 * storage, plus the driver loop and key-to-shard routing.
 *
 * Allowed dependencies: raft/ (through raft/mod.ts), `node:` built-ins. Never server/ or ui/.
 *
 * @example
 * ```ts
 * import { AspenError } from "./mod.ts";
 * const error = new AspenError("key_not_found", 'Cannot get key "a": it does not exist');
 * console.log(error.code);
 * ```
 */
export { AspenError } from "./errors.ts";
export type { ErrorCode, ErrorDetails } from "./errors.ts";
export {
  type ReadyWrites,
  SqliteLogStorage,
  type SqliteLogStorageOptions,
} from "./raft_log_storage.ts";
