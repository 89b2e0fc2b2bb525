/**
 * @module
 * The client HTTP API contract as TypeScript types: every request body and response body of
 * API.md (v1), for the server that produces them (its handlers are typed against these) and for
 * the web console, the CLI and the bench runner that read them. Types only: the runtime parts
 * of the contract (error codes, lease ids, key lists) live beside this file in api/.
 *
 * Field names are camelCase, as on the wire. Numbers that are terms, indexes, revisions, counts
 * and node or shard ids are non-negative safe integers. A field marked "added by the console"
 * extends API.md: servers must fill it in (with `null` where the doc allows it), and clients
 * must accept its absence from older servers.
 *
 * @example
 * ```ts
 * import type { ClusterStatus } from "./types.ts";
 * function leaders(status: ClusterStatus): (number | null)[] {
 *   return status.shards.map((shard) => shard.leader);
 * }
 * ```
 */
import type { ApiErrorCode } from "./errors.ts";

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * The body of every 4xx and 5xx response. Details ride beside `code` and `message`: a
 * `conflict` carries `key`, `expected` and `actual`; `shard_unavailable` carries `shard`;
 * a 500 carries `requestId`. A write refused for storage is a 507 `no_space` (the disk is
 * full, or below the node's reserve; deletes are still accepted in the latter case) or a 503
 * `storage_error` (writing failed), both carrying `shard`; they clear by themselves.
 */
export interface ApiErrorBody {
  readonly error: {
    readonly code: ApiErrorCode;
    readonly message: string;
    readonly [detail: string]: string | number | boolean | null;
  };
}

/**
 * The details of a 409 `conflict` from `POST /v1/txn/optimistic`: the first read that no longer
 * holds, what it recorded and what the key has now.
 */
export interface ConflictErrorBody {
  readonly error: {
    readonly code: "conflict";
    readonly message: string;
    readonly key: string;
    /** The read's field whose check failed. */
    readonly field: "modRevision" | "version" | "revision";
    /** The version the read named (0: expected absent); null when it named none. */
    readonly expected: number | null;
    /** The version the key has now (0: absent). */
    readonly actual: number;
    /** The modRevision the read named (0: expected absent); null when it named none. */
    readonly expectedModRevision: number | null;
    /** The modRevision the key has now (0: absent). */
    readonly actualModRevision: number;
    /** The revision the read named; null when it named none. */
    readonly readRevision: number | null;
  };
}

// ---------------------------------------------------------------------------------------------
// Keys

/** A stored key. `version` counts changes from 1; `lease` is 0 when the key has none. */
export interface Kv {
  readonly key: string;
  /** The value as text; a value that is not UTF-8 reads with U+FFFD here (see valueBase64). */
  readonly value: string;
  /**
   * The value's exact bytes in base64: present when they are not UTF-8, and on every kv of an
   * answer to a request with `?encoding=base64`.
   */
  readonly valueBase64?: string;
  readonly version: number;
  /** The Raft log index (per shard) of the entry that created the key. */
  readonly createRevision: number;
  /** The Raft log index (per shard) of the entry that last changed the key. */
  readonly modRevision: number;
  readonly lease: number;
  /**
   * The shard the key was read on, whose revisions `createRevision` and `modRevision` are: on
   * every kv of a range answer (`GET /v1/kv`; a single-key answer names it beside the kv). An
   * optimistic read or a compare may carry it back (see {@linkcode OptimisticRead}).
   */
  readonly shard?: number;
}

/** Fields that every successful single-shard response carries. */
export interface ShardRevision {
  /** The shard the request touched. */
  readonly shard: number;
  /** That shard's applied index after the request. */
  readonly revision: number;
}

/** `GET /v1/kv/{key}` 200. A missing key is a 404 `key_not_found`. */
export interface GetKvResponse extends ShardRevision {
  readonly kv: Kv;
}

/** `PUT /v1/kv/{key}` body. */
export interface PutKvRequest {
  /** The value as text; give exactly one of `value` and `valueBase64`. */
  readonly value?: string;
  /** The value as base64 of any bytes (at most VALUE_BYTES_MAX of them once decoded). */
  readonly valueBase64?: string;
  /** A lease id from `POST /v1/leases`; 0 or absent for none. */
  readonly lease?: number;
  /** Return the previous key in `prevKv`. */
  readonly prevKv?: boolean;
}

/** `PUT /v1/kv/{key}` 200. */
export interface PutKvResponse extends ShardRevision {
  /** The key's version after the put. */
  readonly version: number;
  readonly prevKv?: Kv;
}

/** `DELETE /v1/kv/{key}` 200 (`?prevKv=true` adds `prevKv`). */
export interface DeleteKvResponse extends ShardRevision {
  readonly deleted: 0 | 1;
  readonly prevKv?: Kv;
}

/**
 * `GET /v1/kv` query: a prefix or a `[start, end)` range, in key order across all shards.
 * Query strings carry strings; the numbers and flags below are their parsed meaning.
 */
export interface RangeQuery {
  readonly prefix?: string;
  readonly start?: string;
  readonly end?: string;
  readonly limit?: number;
  /** The `next` cursor of the previous page. */
  readonly after?: string;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly reverse?: boolean;
}

/** `GET /v1/kv?...` 200. With `keysOnly`, each kv's `value` is "". */
export interface RangeResponse {
  readonly kvs: readonly Kv[];
  /** The number of keys in the whole range, not only on this page. */
  readonly count: number;
  readonly more: boolean;
  /** Present when `more`: pass it as `after` to read the next page. */
  readonly next?: string;
}

/** `DELETE /v1/kv?prefix=` or `?start=&end=` 200. */
export interface DeleteRangeResponse {
  readonly deleted: number;
}

// ---------------------------------------------------------------------------------------------
// Transactions

/** What a compare looks at. */
export type CompareTarget = "value" | "version" | "createRevision" | "modRevision" | "lease";

/** One condition of a conditional batch. */
export interface Compare {
  readonly key: string;
  readonly target: CompareTarget;
  readonly op: "=" | "!=" | "<" | ">";
  /** A string for `value` (or give `valueBase64`), a number for the other targets. */
  readonly value?: string | number;
  /** For target `value`: the compared bytes in base64, instead of `value`. */
  readonly valueBase64?: string;
  /**
   * The shard the compared value was read on. Revisions are per shard: when the key is on
   * another shard now (a shard move since the read), the txn is refused with a 409
   * {@linkcode MovedReadConflictBody}. Absent: compared wherever the key is.
   */
  readonly shard?: number;
}

/** One operation of a conditional batch; `prevKv` asks for the key before the change. */
export type TxnOp =
  | {
    readonly put: {
      readonly key: string;
      /** Exactly one of `value` (text) and `valueBase64` (any bytes). */
      readonly value?: string;
      readonly valueBase64?: string;
      readonly lease?: number;
      readonly prevKv?: boolean;
    };
  }
  | { readonly delete: { readonly key: string; readonly prevKv?: boolean } }
  | { readonly get: { readonly key: string } }
  | { readonly range: RangeQuery };

/** `POST /v1/txn` body: at most 128 operations in all. */
export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}

/**
 * The result of one operation, in the order of the branch that ran, told apart by `type`.
 * `prevKv` is null unless the operation asked for it and the key existed; a range's `next` is
 * null when `more` is false. Every result's revision is the response's `revision`.
 */
export type TxnOpResult =
  | { readonly type: "put"; readonly version: number; readonly prevKv: Kv | null }
  | { readonly type: "delete"; readonly deleted: number; readonly prevKv: Kv | null }
  | { readonly type: "get"; readonly kv: Kv | null }
  | {
    readonly type: "range";
    readonly kvs: readonly Kv[];
    readonly count: number;
    readonly more: boolean;
    readonly next: string | null;
  };

/**
 * What a transaction over keys of several shards adds to its reply (two-phase commit): the
 * transaction's id (`GET /v1/txn/{id}` reads its record) and every participant shard's revision
 * (the revision of the entry that applied the transaction there, by shard id as a string). Then
 * `shard` and `revision` are the home shard's (the shard of the smallest key, which holds the
 * record). A single-shard reply has neither field. A read-only cross-shard txn (gets and compares
 * only) is lock-free and has no record: no `txnId`, and `revisions` are the revisions read at.
 */
export interface CrossShardFields {
  readonly txnId?: string;
  readonly revisions?: Readonly<Record<string, number>>;
}

/** `POST /v1/txn` 200. */
export interface TxnResponse extends ShardRevision, CrossShardFields {
  readonly succeeded: boolean;
  readonly results: readonly TxnOpResult[];
}

/**
 * A key read by an optimistic transaction and what was seen; name `modRevision`, `version` or
 * both. The read holds when the key's modRevision is still `modRevision` (0: expected absent),
 * its version is still `version` (0: expected absent), and it changed at no revision after
 * `revision`. Only `modRevision`, or `version` with `revision`, sees a key deleted and
 * re-created since the read: a re-created key starts again at version 1.
 */
export interface OptimisticRead {
  readonly key: string;
  /** The key's `modRevision` as read (preferred); 0 when it was absent. */
  readonly modRevision?: number;
  /** The key's `version` as read; 0 when it was absent. */
  readonly version?: number;
  /** The `revision` of the answer the read came from. */
  readonly revision?: number;
  /**
   * The shard the key was read on (the answer's `shard`). Revisions are per shard: when the key
   * is on another shard at commit (a shard move since the read), the commit is refused with a
   * 409 {@linkcode MovedReadConflictBody}. Absent: the read is checked wherever the key is.
   */
  readonly shard?: number;
}

/**
 * A 409 `conflict` for a read or compare that names the shard it was read on when its key is on
 * another shard now (a shard move since the read): read the key again and retry.
 */
export interface MovedReadConflictBody {
  readonly error: {
    readonly code: "conflict";
    readonly message: string;
    readonly key: string;
    /** The shard the read names. */
    readonly readShard: number;
    /** The shard that holds the key now. */
    readonly shard: number;
  };
}

/** A write of an optimistic transaction. */
export type OptimisticWrite =
  | {
    readonly op: "set";
    readonly key: string;
    /** Exactly one of `value` (text) and `valueBase64` (any bytes). */
    readonly value?: string;
    readonly valueBase64?: string;
  }
  | { readonly op: "delete"; readonly key: string };

/** `POST /v1/txn/optimistic` body. */
export interface OptimisticTxnRequest {
  readonly reads: readonly OptimisticRead[];
  readonly writes: readonly OptimisticWrite[];
}

/** `POST /v1/txn/optimistic` 200. A conflict is a 409 {@linkcode ConflictErrorBody}. */
export interface OptimisticTxnResponse extends ShardRevision, CrossShardFields {
  readonly committed: true;
}

/** A cross-shard transaction's state: pending until decided, then committed or aborted. */
export type TxnStatus = "pending" | "committed" | "aborted";

/**
 * How a participant's prepare went, as its row tells: `prepared` (applied without an OCC
 * conflict: it votes commit, and stays so once resolved commit), `conflict` (applied, but a
 * read no longer held: it votes abort), `aborted` (refused or resolved abort there), `none`
 * (not applied there yet) or `unknown` (the shard's leader runs a version that cannot tell).
 */
export type TxnPrepareState = "prepared" | "conflict" | "aborted" | "none" | "unknown";

/** One participant shard's part of a cross-shard transaction, read from its own row. */
export interface TxnReceipt {
  readonly shard: number;
  /**
   * `pending` until the transaction's resolve applied there (prepared, or not yet prepared:
   * see `prepare`); then how it resolved there.
   */
  readonly status: TxnStatus;
  /** The shard's revision of the entry that resolved it there; null while pending. */
  readonly resolvedRevision: number | null;
  /** How its prepare went there. */
  readonly prepare: TxnPrepareState;
}

/** `GET /v1/txn/{id}` 200: the record on the home shard. Unknown ids are 404 `txn_not_found`. */
export interface TxnStatusResponse {
  readonly txnId: string;
  /**
   * The transaction's outcome. The record's own status once decided; while the record is
   * still pending (staging), `committed` when every participant's prepare applied without an
   * OCC conflict (parallel commits: that is the commit point, and a reply acknowledged it),
   * `aborted` when one refused or found a conflict (it can never commit), else `pending`.
   */
  readonly status: TxnStatus;
  /**
   * The record's status in the home shard's log: it turns committed or aborted only when the
   * home resolves, so it may say `pending` for a while after `status` is decided.
   */
  readonly recordStatus: TxnStatus;
  readonly home: number;
  /** The participant shards, ascending. */
  readonly participants: readonly number[];
  /** The branch that runs on commit (`success` or `failure`); null unless `status` is committed. */
  readonly branch: "success" | "failure" | null;
  /** The home shard's revision of the entry that created the record. */
  readonly createdRevision: number;
  /** The home shard's revision of the entry that decided the record; null while it is pending. */
  readonly decidedRevision: number | null;
  /**
   * Why it was aborted ("conflict", "refused", "pushed", "resolved abort", ...); "" otherwise.
   */
  readonly reason: string;
  /** One per participant, ascending by shard. */
  readonly receipts: readonly TxnReceipt[];
}

/**
 * A participant's receipt in a listing: as in {@linkcode TxnReceipt}, or `unknown` when the
 * participant shard did not answer in time.
 */
export interface TxnListReceipt {
  readonly shard: number;
  readonly status: TxnStatus | "unknown";
  /** The shard's revision of the entry that resolved it there; null while pending or unknown. */
  readonly resolvedRevision: number | null;
  /** How its prepare went there, as in {@linkcode TxnReceipt} (`unknown` when not answered). */
  readonly prepare: TxnPrepareState;
}

/** One transaction of `GET /v1/txn`: its record on the home shard, and its receipts. */
export interface TxnListItem {
  readonly txnId: string;
  readonly status: TxnStatus;
  /** The shard that holds the record (the one that listed it). */
  readonly home: number;
  /** The participant shards, ascending (empty for a record a pusher's abort created). */
  readonly participants: readonly number[];
  readonly branch: "success" | "failure" | null;
  readonly createdRevision: number;
  readonly decidedRevision: number | null;
  readonly reason: string;
  /**
   * The coordinator's wall clock deadline, in milliseconds since the Unix epoch, after which
   * a reader or the intent sweeper may abort it; 0 when unknown.
   */
  readonly deadlineMs: number;
  /**
   * The transaction's outcome, as `status` of `GET /v1/txn/{id}` says it: the record's status
   * once decided; while the record is pending (staging), `committed` when every participant's
   * prepare applied without a conflict (its resolves may still be on their way), `aborted` when
   * one refused or found a conflict, else `pending` (also when a participant did not answer).
   */
  readonly outcome: TxnStatus;
  /** One per participant, ascending by shard. */
  readonly receipts: readonly TxnListReceipt[];
}

/**
 * `GET /v1/txn?status=&limit=` 200: the cross-shard transactions whose record has `status`,
 * across all shards, at most `limit`. Pending ones come oldest deadline first; committed and
 * aborted ones (each shard's most recently decided) latest deadline first.
 */
export interface TxnListResponse {
  readonly status: TxnStatus;
  readonly txns: readonly TxnListItem[];
  /**
   * Shards whose records could not be listed (no leader answered in time), ascending: the
   * list lacks their transactions. Empty when every shard answered.
   */
  readonly unavailableShards: readonly number[];
}

// ---------------------------------------------------------------------------------------------
// Leases

/** `POST /v1/leases` body. */
export interface LeaseGrantRequest {
  readonly ttl: number;
  /** A key whose shard should hold the lease (keys attach only to leases of their shard). */
  readonly key?: string;
}

/** `POST /v1/leases` and `POST /v1/leases/{id}/keepalive` 200; `ttl` in seconds. */
export interface LeaseResponse {
  readonly id: number;
  readonly ttl: number;
}

/** `GET /v1/leases/{id}` 200. */
export interface LeaseInfoResponse extends LeaseResponse {
  /** Seconds left before the lease expires. */
  readonly remaining: number;
  readonly keys: readonly string[];
}

/** `DELETE /v1/leases/{id}` 200. */
export interface LeaseRevokeResponse {
  readonly revoked: true;
}

// ---------------------------------------------------------------------------------------------
// Runtime client tokens (root token only)

/** What a token may do: everything, or reads only. */
export type TokenRole = "root" | "read";

/** `POST /v1/auth/tokens` body; no `ttlSeconds`: the token never expires. */
export interface CreateTokenRequest {
  readonly role: TokenRole;
  readonly name?: string;
  readonly ttlSeconds?: number;
}

/** A runtime token as listed: never the token or its hash. Times are ISO 8601. */
export interface TokenInfo {
  /** 16 hex digits. */
  readonly id: string;
  readonly role: TokenRole;
  readonly name: string | null;
  readonly createdAt: string;
  /** null: it never expires. */
  readonly expiresAt: string | null;
  readonly isExpired: boolean;
}

/** `POST /v1/auth/tokens` 200: the token itself, shown this once. */
export interface CreateTokenResponse extends TokenInfo {
  readonly token: string;
}

/** `GET /v1/auth/tokens` 200. */
export interface ListTokensResponse {
  readonly tokens: readonly TokenInfo[];
}

/** `DELETE /v1/auth/tokens/{id}` 200. */
export interface RevokeTokenResponse {
  readonly revoked: true;
  readonly token: TokenInfo;
}

// ---------------------------------------------------------------------------------------------
// Watch (Server-Sent Events: each event's data is one of these)

/** A change to a watched key. */
export interface WatchChangeEvent extends ShardRevision {
  readonly type: "put" | "delete";
  readonly kv: Kv;
  readonly prevKv?: Kv;
}

/**
 * A shard's part of the watch ended: most often `compacted` (the asked revision is older than the
 * shard retains; `oldestRevision` is the oldest it has, `compactRevision` where it compacted).
 * The other shards of a prefix watch stream on.
 */
export interface WatchErrorEvent {
  readonly type: "error";
  readonly code: string;
  readonly message?: string;
  readonly shard?: number;
  readonly oldestRevision?: number;
  readonly compactRevision?: number;
}

/** The data of one watch event. */
export type WatchEvent = WatchChangeEvent | WatchErrorEvent;

// ---------------------------------------------------------------------------------------------
// Cluster and operations

/** `GET /v1/health` 200 (no auth). */
export interface HealthResponse {
  readonly status: "ok";
  readonly node: number;
}

/** Whether a node or replica answers. */
export type UpDown = "up" | "down";

/** A replica's Raft role. */
export type ReplicaRole = "leader" | "follower" | "learner" | "candidate";

/** What a storage alarm is about: a full disk (or one below the reserve), or failing writes. */
export type AlarmType = "no_space" | "storage_error";

/**
 * A storage condition an operator must act on (after etcd's NOSPACE alarm); it clears by
 * itself once the condition is gone. While a `no_space` alarm of a node (no `shard`) lasts,
 * its shard leaders refuse writes other than deletes; while one of a shard lasts, that
 * shard's replica on the node retries a failed write and refuses every write.
 */
export interface Alarm {
  readonly type: AlarmType;
  /** The shard whose replica raised it; absent for the node's own alarm (its disk). */
  readonly shard?: number;
  /** When it was raised: milliseconds since the Unix epoch, on the node's clock. */
  readonly sinceMs: number;
  /** What is wrong and what is refused, in a sentence. */
  readonly message: string;
}

/** One node of the cluster, as seen by the node that answers. */
export interface NodeStatus {
  readonly id: number;
  readonly peerAddress: string;
  readonly httpAddress: string;
  readonly status: UpDown;
  readonly version: string;
  /**
   * Added by the console: milliseconds since the node started, as last reported by it; null
   * when unknown (for a node that is down, or that has not reported yet).
   */
  readonly uptimeMs: number | null;
  /**
   * Added with storage alarms: the node's alarms as it reported them for this status, empty
   * when it has none; null when unknown (a node that is down, or that predates alarms).
   */
  readonly alarms: readonly Alarm[] | null;
  /**
   * Added with the console's Transactions view: the cross-shard transactions this node
   * coordinated since it started, by how they ended (counters, as in `/metrics`); null when
   * unknown (a node that is down); absent from servers that predate it.
   */
  readonly crossShardTxns?: CrossShardTxnCounts | null;
}

/** How the cross-shard transactions a node coordinated ended: counters from its start. */
export interface CrossShardTxnCounts {
  readonly committed: number;
  /** Aborted on a conflict (a compare, read or lock that did not hold). */
  readonly conflict: number;
  /** Not finished by the request's deadline. */
  readonly timeout: number;
  /** Failed for any other reason. */
  readonly error: number;
}

/** The shard map: how many shards the keyspace has, and its version. */
export interface ShardMap {
  readonly epoch: number;
  readonly numShards: number;
}

/** One member of a shard's Raft group. */
export interface ReplicaStatus {
  readonly node: number;
  readonly role: ReplicaRole;
  /** The highest log index known to be replicated on this replica (Raft §5.3). */
  readonly matchIndex: number;
  /** Entries behind the leader's last index: `lastIndex - matchIndex`, 0 for the leader. */
  readonly lag: number;
  readonly status: UpDown;
  /**
   * Present only while the leader refuses to send this replica the snapshot it needs because
   * the snapshot is over the snapshot limit (sizes in bytes): the replica stays behind until a
   * smaller snapshot exists or the limit is raised.
   */
  readonly snapshotTooLarge?: { readonly bytes: number; readonly limit: number };
}

/** Throughput and contention of one shard. */
export interface ShardStats {
  /** Proposals per second on the shard's leader, averaged by the server. */
  readonly proposalsPerSecond: number;
  /** Optimistic transactions that reached this shard since its leader started: a counter. */
  readonly optimisticTxns: number;
  /** Of those, how many failed with a conflict: a counter (`conflicts <= optimisticTxns`). */
  readonly conflicts: number;
  /**
   * The 99th percentile of how long the replica that answered for the shard (its leader, when
   * it has one) took to apply one batch of committed entries to its state machine, over its
   * last APPLY_SAMPLES_MAX (512) batches, in milliseconds; null before its first batch. It
   * leaves out the time from proposal to commit (replication, fsync).
   */
  readonly applyBatchMsP99: number | null;
  /**
   * Added by the console, and misnamed: the same value as `applyBatchMsP99` (it was once
   * documented as proposal-to-apply time over a minute, which it never measured). Kept for
   * clients that read it.
   */
  readonly applyLatencyP99Ms: number | null;
  /**
   * The longest turn of that replica's driver loop since it started, in milliseconds: how
   * long the shard held its node's event loop at once.
   */
  readonly turnMsMax: number;
  /**
   * Added with the console's Transactions view: how many keys of the shard cross-shard
   * transactions hold locked (intents) on the replica that answered; absent from servers
   * that predate it.
   */
  readonly intents?: number;
}

/** One shard: its Raft group as seen by the node that answers. */
export interface ShardStatus {
  readonly id: number;
  /** The leader's node id; null while the shard has no known leader. */
  readonly leader: number | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly replicas: readonly ReplicaStatus[];
  /**
   * The nodes (voters and learners) of the group's configuration at the commit index, sorted.
   * `replicas` follows the latest configuration in the answering replica's log, which is in
   * force from its append; a node in one and not the other is being added or removed, and that
   * change can still be undone by a new leader.
   */
  readonly committedReplicas: readonly number[];
  readonly stats: ShardStats;
}

/** A member's place in the cluster's lifecycle (README, membership). */
export type MemberState = "joining" | "active" | "draining" | "removed";

/** One member of the cluster as the members record holds it, with its share of the shards. */
export interface MemberStatus {
  readonly id: number;
  readonly peerAddress: string;
  /** Empty until the node reported it. */
  readonly httpAddress: string;
  readonly state: MemberState;
  /** The replicas (voters and learners) the node holds, as the shards' answers show them. */
  readonly replicas: number;
  /** The shards it leads. */
  readonly leaders: number;
}

/**
 * `POST /v1/cluster/nodes/{id}/remove` and `/replace` 202: the node is draining now; its
 * replicas move to other nodes and it becomes `removed` once it holds none (watch
 * `GET /v1/cluster/status`).
 */
export interface RemoveNodeResponse {
  readonly node: number;
  readonly state: MemberState;
  /** Its state before the call (`draining` when the call was repeated). */
  readonly previousState: MemberState;
}

/** `POST /v1/cluster/join`: a new node asks to become a member (root token). */
export interface JoinRequest {
  readonly nodeId: number;
  /** Where the others dial it (host:port). */
  readonly peerAddress: string;
  /** Where clients reach it (host:port). */
  readonly httpAddress: string;
  /** Its peer key's public half, SPKI DER in base64: the CA certifies it for `nodeId`. */
  readonly publicKey: string;
}

/** `POST /v1/cluster/join` 200: what the new node needs to start as a `joining` member. */
export interface JoinResponse {
  readonly clusterId: string;
  /** The cluster credentials file's text, without the CA key. */
  readonly credentials: string;
  /** The node's certificate for the peer channel, PEM, issued by the cluster CA. */
  readonly certificatePem: string;
  /** Every member that is not removed, the new node included. */
  readonly members: readonly { readonly id: number; readonly peerAddress: string }[];
  readonly numShards: number;
  readonly replicationFactor: number;
}

/** A learner catching up: a replica in motion onto `node`. */
export interface LearnerStatus {
  readonly shard: number;
  readonly node: number;
  readonly matchIndex: number;
  /** Entries behind the leader's last index. */
  readonly lag: number;
}

/**
 * What a placement difference is (README, membership):
 * - `change_pending`: the shard's latest configuration adds or removes `node`, and that change is
 *   not committed yet (a new leader may still undo it);
 * - `replica_missing`: the shard's configuration lists `node`, which answered and does not host
 *   the replica (the rebalancer hosts an empty one that the leader fills);
 * - `replica_orphaned`: `node` hosts a replica no configuration of the shard lists (the
 *   rebalancer drops it);
 * - `member_removed`: the shard's configuration lists a node the members record marks removed
 *   or does not know;
 * - `placement_stale`: the placement record that routing follows lists other nodes than the
 *   shard's configuration (`node` null; the rebalancer rewrites it).
 */
export type PlacementDifferenceKind =
  | "change_pending"
  | "replica_missing"
  | "replica_orphaned"
  | "member_removed"
  | "placement_stale";

/** One place where the members record, the placement record, the nodes and a group disagree. */
export interface PlacementDifference {
  readonly kind: PlacementDifferenceKind;
  readonly shard: number;
  /** The node concerned; null for a difference of the whole shard. */
  readonly node: number | null;
  /** A sentence for people. */
  readonly message: string;
}

/** `GET /v1/cluster/status` 200. */
export interface ClusterStatus {
  readonly clusterId: string;
  /** The id of the node that answered. */
  readonly node: number;
  /**
   * Added by the console: the answering node's wall clock when it built this status, in
   * milliseconds since the Unix epoch. Clients compute rates from counters between two
   * statuses with it; null if the node cannot tell.
   */
  readonly generatedAtMs: number | null;
  readonly nodes: readonly NodeStatus[];
  readonly shardMap: ShardMap;
  readonly shards: readonly ShardStatus[];
  /**
   * Added with shard moves: the move in progress, or the last one (phase `done`); null when
   * the cluster never moved, or shard 0 did not answer. Absent from older servers.
   */
  readonly shardMove?: ShardMoveStatus | null;
  /**
   * Added with membership changes: every member of the members record (removed ones too),
   * with its state and replica counts; null while the record is unknown to the answering
   * node. Absent from older servers.
   */
  readonly members?: readonly MemberStatus[] | null;
  /** Added with membership changes: the learners catching up now (replicas in motion). */
  readonly learners?: readonly LearnerStatus[];
  /**
   * Added with the reconciler: where the members record, the placement record, the replicas the
   * nodes host and the shards' Raft configurations disagree now (at most
   * `PLACEMENT_DIFFERENCES_MAX`, shard order). The rebalancer repairs each; a difference that
   * stays for more than a few seconds needs a look. Empty when they agree; absent from older
   * servers.
   */
  readonly differences?: readonly PlacementDifference[];
}

/** The phases of a shard move, in order (README, architecture). */
export type ShardMovePhase =
  | "copy"
  | "fence"
  | "delta"
  | "handoff"
  | "flip"
  | "cleanup"
  | "done";

/** One source shard's part of a shard move. */
export interface ShardMoveSource {
  readonly shard: number;
  /** Keys and bytes (keys plus values) that move away from it (measured at each copy pass). */
  readonly keysTotal: number;
  readonly bytesTotal: number;
  /** Keys and bytes copied in the current copy pass (`copy`, then again in `delta`). */
  readonly keysCopied: number;
  readonly bytesCopied: number;
}

/** A shard move: from `fromCount` to `toCount` shards. */
export interface ShardMoveStatus {
  readonly fromCount: number;
  readonly toCount: number;
  readonly phase: ShardMovePhase;
  /** Wall clock, milliseconds since the Unix epoch. */
  readonly startedAtMs: number;
  readonly updatedAtMs: number;
  readonly sources: readonly ShardMoveSource[];
  /**
   * A tenant move (same count): the tenant, its shard after the move, and whether the move
   * creates it. Absent for a shard add.
   */
  readonly tenant?: TenantMoveTarget;
}

/** What a tenant move does (`ShardMoveStatus.tenant`). */
export interface TenantMoveTarget {
  readonly name: string;
  readonly to: number;
  readonly isNew: boolean;
}

/**
 * `POST /v1/tenants` body: a tenant `name` (1 to 64 letters, digits, '.', '_', '-'), on
 * `shard` (default: the shard with the fewest keys). Keys under `<name>/` live on its shard.
 */
export interface CreateTenantRequest {
  readonly name: string;
  readonly shard?: number;
}

/** `POST /v1/tenants/{name}/move` body: the tenant's new shard. */
export interface MoveTenantRequest {
  readonly to: number;
}

/**
 * `POST /v1/tenants` 201 (the tenant is in the map: `move` is done) or 202 (the move that
 * creates it still runs: see `GET /v1/shards/moves`), and `POST /v1/tenants/{name}/move` 202.
 */
export interface TenantMoveResponse {
  readonly name: string;
  /** The tenant's shard once the move is done. */
  readonly shard: number;
  readonly move: ShardMoveStatus;
}

/** One tenant of `GET /v1/tenants`: its shard, and its keys and bytes (keys plus values). */
export interface TenantResponse {
  readonly name: string;
  readonly shard: number;
  readonly keys: number;
  readonly bytes: number;
}

/** `GET /v1/tenants` 200: the map's epoch and every tenant, by name. */
export interface TenantsResponse {
  readonly epoch: number;
  readonly tenants: readonly TenantResponse[];
}

/** `POST /v1/shards` body: add `count` shards (1 or more), or only measure (`dryRun`). */
export interface AddShardsRequest {
  readonly count: number;
  readonly dryRun?: boolean;
}

/**
 * `POST /v1/shards` 200 (dry run: `sources` says what would move, `move` is null) or 202 (the
 * move started: `move` is its record, `sources` is empty).
 */
export interface AddShardsResponse {
  readonly dryRun: boolean;
  readonly fromCount: number;
  readonly toCount: number;
  readonly sources: readonly {
    readonly shard: number;
    readonly keys: number;
    readonly bytes: number;
  }[];
  readonly move: ShardMoveStatus | null;
}

/** `GET /v1/shards/moves` 200. */
export interface ShardMovesResponse {
  readonly move: ShardMoveStatus | null;
}

/** `GET /v1/shards` 200: the map in force and each shard's keys and bytes (keys plus values). */
export interface ShardSizesResponse {
  readonly epoch: number;
  readonly numShards: number;
  readonly shards: readonly {
    readonly id: number;
    readonly keys: number;
    readonly bytes: number;
  }[];
}

/** `POST /v1/shards/{id}/transfer-leader` body. */
export interface TransferLeaderRequest {
  /** The node whose replica should become the leader. */
  readonly to: number;
}

/** `POST /v1/shards/{id}/transfer-leader` 200. */
export interface TransferLeaderResponse {
  readonly shard: number;
  readonly leader: number;
}
