/**
 * The pure logic of the members panel: one row per member of the cluster's members record
 * (`members` of `/v1/cluster/status`) with its state, addresses, its share of the shards and
 * the replicas moving onto it (`learners`), which members may be drained (up) or replaced
 * (down), and the checked reading of a `POST /v1/cluster/nodes/{id}/remove` or `/replace`
 * answer.
 */
import type {
  ClusterStatus,
  MemberState,
  MemberStatus,
  RemoveNodeResponse,
} from "../../api/mod.ts";
import { formatInteger } from "./format.ts";
import { JsonReader } from "./json_read.ts";

/** A replica moving onto a member: the shard and how many entries it still lags. */
export interface MovingReplica {
  readonly shard: number;
  readonly lag: number;
}

/** One row of the members table. */
export interface MemberRow {
  readonly member: MemberStatus;
  /** The learners on this member, by shard: replicas in motion onto it. */
  readonly moving: readonly MovingReplica[];
  /** Whether the answering node sees the member down (`nodes[].status` of the status). */
  readonly isDown: boolean;
  /**
   * Only an active member that is up can be drained (a draining one is draining already; a
   * dead one is replaced).
   */
  readonly canDrain: boolean;
  /**
   * Only a joining or active member that is down can be replaced: its replicas are rebuilt
   * from the survivors (the server refuses to replace a node that is up).
   */
  readonly canReplace: boolean;
}

/** What the console asks of a member: drain it (remove) or replace it. */
export type MemberAction = "drain" | "replace";

/** What the panel shows: rows, or why there are none. */
export type MembersView =
  | { readonly kind: "rows"; readonly rows: readonly MemberRow[] }
  | { readonly kind: "unreported" }
  | { readonly kind: "unknown" };

const STATE_LABELS: Readonly<Record<MemberState, string>> = {
  joining: "Joining",
  active: "Active",
  draining: "Draining",
  removed: "Removed",
};

/**
 * The members table for `status`: rows by node id, `unreported` for a server that predates
 * membership changes (no `members` field), `unknown` while the answering node has no record.
 */
export function membersView(status: ClusterStatus): MembersView {
  if (status.members === undefined) return { kind: "unreported" };
  if (status.members === null) return { kind: "unknown" };
  const learners = status.learners ?? [];
  const down = new Set(
    status.nodes.filter((node) => node.status === "down").map((node) => node.id),
  );
  const rows = [...status.members].sort((a, b) => a.id - b.id).map((member) => {
    const isDown = down.has(member.id);
    return {
      member,
      moving: learners.filter((learner) => learner.node === member.id)
        .map((learner) => ({ shard: learner.shard, lag: learner.lag }))
        .sort((a, b) => a.shard - b.shard),
      isDown,
      canDrain: member.state === "active" && !isDown,
      canReplace: (member.state === "active" || member.state === "joining") && isDown,
    };
  });
  return { kind: "rows", rows };
}

/** A member state as the console writes it: "active" -> "Active". */
export function memberStateLabel(state: MemberState): string {
  return STATE_LABELS[state];
}

/** The panel's note: how many members are in each state that has any, in lifecycle order. */
export function membersSummary(rows: readonly MemberRow[]): string {
  const parts: string[] = [];
  for (const state of Object.keys(STATE_LABELS) as MemberState[]) {
    const count = rows.filter((row) => row.member.state === state).length;
    if (count > 0) parts.push(`${count} ${state}`);
  }
  return parts.length === 0 ? "no members" : parts.join(", ");
}

/** A member's HTTP address, or "not reported yet" while it has not said (empty string). */
export function httpAddressLabel(member: MemberStatus): string {
  return member.httpAddress === "" ? "not reported yet" : member.httpAddress;
}

/** What draining `member` moves, for the confirmation: "holds 4 replicas and leads 1 shard". */
export function drainLoad(member: MemberStatus): string {
  return `holds ${counted(member.replicas, "replica")} and leads ${
    counted(member.leaders, "shard")
  }`;
}

function counted(count: number, noun: string): string {
  return `${formatInteger(count)} ${noun}${count === 1 ? "" : "s"}`;
}

/** The notice after a drain (or a replace) started: what happens next. */
export function drainNotice(response: RemoveNodeResponse, action: MemberAction = "drain"): string {
  if (response.previousState === "draining") {
    return `Node ${response.node} was draining already`;
  }
  if (action === "replace") {
    return `Node ${response.node} is being replaced: its replicas are rebuilt on the other ` +
      "nodes from the survivors, then it is removed";
  }
  return `Node ${response.node} is draining: its replicas move to other nodes, then it is ` +
    "removed";
}

/** @throws {JsonFormatError} for a remove answer that breaks the contract. */
export function parseRemoveNodeResponse(body: unknown): RemoveNodeResponse {
  const read = new JsonReader("the remove-node result");
  const fields = read.object(body, "response");
  const states: readonly MemberState[] = ["joining", "active", "draining", "removed"];
  return {
    node: read.count(fields.node, "node"),
    state: read.choice(fields.state, "state", states),
    previousState: read.choice(fields.previousState, "previousState", states),
  };
}
