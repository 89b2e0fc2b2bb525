/**
 * The members record: every node that is or was part of the cluster, with its addresses and
 * its membership state, replicated by shard 0 as the meta record `members` so that every node
 * (and the rebalance driver on shard 0's leader) reads the same list.
 *
 * ```text
 *   joining ──▶ active ──▶ draining ──▶ removed
 *      │                                  ▲
 *      └──────────────────────────────────┘   (a join that never finished)
 * ```
 *
 * - `joining`: registered (POST /v1/cluster/join); may receive replicas, not leaderships.
 * - `active`: a full member.
 * - `draining`: asked to leave (remove-node, replace-node); its replicas move elsewhere.
 * - `removed`: holds no replica any more; every node refuses its id on the peer channel, and a
 *   removed id is never reused.
 *
 * The record is seeded from `[cluster] peers` at bootstrap (every listed node `active`), and
 * each node fills in its own HTTP address. This module is pure: the runtime that reads and
 * writes the record lives in membership.ts.
 */
import { assert } from "../../raft/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import { NODE_ID_MAX } from "../config.ts";
import { PEERS_MAX } from "../../transport/mod.ts";

/** The name of the meta record in shard 0. */
export const MEMBERS_META = "members";
/** The most members the record holds, removed ones included. */
export const MEMBERS_MAX = PEERS_MAX * 4;
/** The longest address kept in the record. */
export const MEMBER_ADDRESS_CHARS_MAX = 256;

/** A member's state (see the module doc). */
export type MemberRecordState = "joining" | "active" | "draining" | "removed";

/** The states, in lifecycle order. */
export const MEMBER_STATES: readonly MemberRecordState[] = [
  "joining",
  "active",
  "draining",
  "removed",
];

/** One member. */
export interface MemberRecord {
  readonly id: number;
  readonly peerAddress: string;
  /** Empty until the node reports it. */
  readonly httpAddress: string;
  readonly state: MemberRecordState;
}

/** The whole record: members sorted by id. */
export interface MembersRecord {
  /** Grows by one on every change, so that a reader can tell two versions apart. */
  readonly version: number;
  readonly members: readonly MemberRecord[];
}

/** The transitions a member may take (anything else is refused). */
const TRANSITIONS: Readonly<Record<MemberRecordState, readonly MemberRecordState[]>> = {
  joining: ["active", "draining", "removed"],
  active: ["draining"],
  draining: ["removed"],
  removed: [],
};

/**
 * The first record: every configured peer `active`, this node with its HTTP address.
 *
 * @example
 * ```ts
 * seedMembers([{ id: 1, address: "127.0.0.1:7001" }], { id: 1, httpAddress: "127.0.0.1:8001" });
 * ```
 */
export function seedMembers(
  peers: readonly { readonly id: number; readonly address: string }[],
  self: { readonly id: number; readonly peerAddress?: string; readonly httpAddress: string },
): MembersRecord {
  const listed = peers.length > 0 ? peers : [{ id: self.id, address: self.peerAddress ?? "" }];
  const members = listed.map((peer): MemberRecord => ({
    id: peer.id,
    peerAddress: peer.address,
    httpAddress: peer.id === self.id ? self.httpAddress : "",
    state: "active",
  }));
  members.sort((a, b) => a.id - b.id);
  const record = { version: 1, members };
  checkMembersRecord(record);
  return record;
}

/** The member `id`, or null. */
export function memberOf(record: MembersRecord, id: number): MemberRecord | null {
  return record.members.find((member) => member.id === id) ?? null;
}

/**
 * The record with member `id` moved to `state`; the same record when it is there already.
 *
 * @throws {AspenError} `node_not_found` for an unknown id, `conflict` for a transition the
 * lifecycle does not allow (a removed node cannot come back, say).
 */
export function withMemberState(
  record: MembersRecord,
  id: number,
  state: MemberRecordState,
): MembersRecord {
  const member = memberOf(record, id);
  if (member === null) {
    throw new AspenError("node_not_found", `Cannot change node ${id}: it is not a member`, {
      node: id,
    });
  }
  if (member.state === state) return record;
  if (!TRANSITIONS[member.state].includes(state)) {
    throw new AspenError(
      "conflict",
      `Cannot make node ${id} ${state}: it is ${member.state}`,
      { node: id, state: member.state },
    );
  }
  return replaced(record, { ...member, state });
}

/** The record with member `id`'s HTTP address set (unchanged when it already is). */
export function withHttpAddress(
  record: MembersRecord,
  id: number,
  httpAddress: string,
): MembersRecord {
  const member = memberOf(record, id);
  assert(member !== null, "withHttpAddress() of a member");
  if (member.httpAddress === httpAddress) return record;
  return replaced(record, { ...member, httpAddress });
}

/**
 * The record with a new member in state `joining`; the same record when `id` is already
 * joining or active at that peer address (a join retried after a lost answer).
 *
 * @throws {AspenError} `conflict` when the id is taken (or was removed: ids are never
 * reused), `limit_exceeded` past MEMBERS_MAX.
 */
export function withJoiningMember(
  record: MembersRecord,
  joining: { readonly id: number; readonly peerAddress: string; readonly httpAddress: string },
): MembersRecord {
  const existing = memberOf(record, joining.id);
  if (existing !== null) {
    const isRetry = existing.peerAddress === joining.peerAddress &&
      (existing.state === "joining" || existing.state === "active");
    if (isRetry) return withHttpAddress(record, joining.id, joining.httpAddress);
    throw new AspenError(
      "conflict",
      `Cannot join node ${joining.id}: the id is taken by a ${existing.state} member at ` +
        `"${existing.peerAddress}"; node ids are never reused`,
      { node: joining.id, state: existing.state },
    );
  }
  if (record.members.length >= MEMBERS_MAX) {
    throw new AspenError(
      "limit_exceeded",
      `Cannot join node ${joining.id}: the cluster has ${record.members.length} members ` +
        `and the limit is ${MEMBERS_MAX}`,
      { limit: MEMBERS_MAX },
    );
  }
  const members = [...record.members, { ...joining, state: "joining" as const }];
  members.sort((a, b) => a.id - b.id);
  const next = { version: record.version + 1, members };
  checkMembersRecord(next);
  return next;
}

/** The ids of members that are not removed (the nodes that may host replicas or route). */
export function presentMemberIds(record: MembersRecord): number[] {
  return record.members.filter((member) => member.state !== "removed").map((member) => member.id);
}

/** The ids of removed members. */
export function removedMemberIds(record: MembersRecord): number[] {
  return record.members.filter((member) => member.state === "removed").map((member) => member.id);
}

/** Encodes the record as the meta value. */
export function formatMembersRecord(record: MembersRecord): string {
  checkMembersRecord(record);
  return JSON.stringify(record);
}

/**
 * Decodes and checks the meta value.
 *
 * @throws {AspenError} `storage_corrupt` for a value that is not a valid record.
 */
export function parseMembersRecord(text: string): MembersRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AspenError("storage_corrupt", "Cannot read the members record: not JSON", {}, {
      cause: error,
    });
  }
  const problem = membersRecordProblem(value);
  if (problem !== null) {
    throw new AspenError("storage_corrupt", `Cannot read the members record: ${problem}`);
  }
  return value as MembersRecord;
}

/** Asserts that `record` is well formed (a bug otherwise). */
function checkMembersRecord(record: MembersRecord): void {
  const problem = membersRecordProblem(record);
  assert(problem === null, `malformed members record: ${problem}`);
}

/** What is wrong with `value` as a record, or null. */
function membersRecordProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return "not an object";
  const { version, members } = value as { version?: unknown; members?: unknown };
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) {
    return "version is not a positive integer";
  }
  if (!Array.isArray(members)) return "members is not a list";
  if (members.length === 0) return "no members";
  if (members.length > MEMBERS_MAX) return `over ${MEMBERS_MAX} members`;
  let previous = 0;
  for (const member of members as unknown[]) {
    const problem = memberProblem(member);
    if (problem !== null) return problem;
    const id = (member as MemberRecord).id;
    if (id <= previous) return "members are not sorted by distinct id";
    previous = id;
  }
  return null;
}

function memberProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return "a member is not an object";
  const { id, peerAddress, httpAddress, state } = value as Record<string, unknown>;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1 || id > NODE_ID_MAX) {
    return `member id ${JSON.stringify(id)} is not 1..${NODE_ID_MAX}`;
  }
  for (const address of [peerAddress, httpAddress]) {
    if (typeof address !== "string" || address.length > MEMBER_ADDRESS_CHARS_MAX) {
      return `member ${id} has a bad address`;
    }
  }
  if (!MEMBER_STATES.includes(state as MemberRecordState)) {
    return `member ${id} has an unknown state ${JSON.stringify(state)}`;
  }
  return null;
}

function replaced(record: MembersRecord, member: MemberRecord): MembersRecord {
  const members = record.members.map((item) => item.id === member.id ? member : item);
  const next = { version: record.version + 1, members };
  checkMembersRecord(next);
  return next;
}
