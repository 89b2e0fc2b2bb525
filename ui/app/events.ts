/**
 * The events feed, derived from two successive status snapshots: what changed between them that
 * an operator wants to know about. The server keeps no event log, so the console compares each
 * new snapshot with the one before:
 *
 * - a node that goes down or comes back up (or joins or leaves the node list);
 * - a shard whose leader changes, or that loses its leader;
 * - a term that advances: an election happened, even if the same node won it again;
 * - a shard that appears or disappears (resharding);
 * - a storage alarm raised or cleared on a node that reported its alarms both times.
 *
 * Changes that happen and revert between two polls are not seen; the feed says what the
 * console observed, and says when.
 */
import type { ClusterStatus, ShardStatus } from "../../api/mod.ts";
import { alarmKey, alarmLabel, alarmPlace, clusterAlarms, type NodeAlarm } from "./alarms.ts";

/** How loud an event is: the feed colours and labels it by this. */
export type EventSeverity = "info" | "warning" | "critical";

/** What kind of change an event reports. */
export type EventKind =
  | "node-down"
  | "node-up"
  | "node-joined"
  | "node-left"
  | "leader-elected"
  | "leader-lost"
  | "term-advanced"
  | "shard-added"
  | "shard-removed"
  | "alarm-raised"
  | "alarm-cleared"
  | "connected"
  | "connection-lost"
  | "connection-restored";

/** One event of the feed before the store numbers and stamps it. */
export interface EventDraft {
  readonly kind: EventKind;
  readonly severity: EventSeverity;
  readonly shard: number | null;
  readonly node: number | null;
  readonly message: string;
}

/** An event in the feed: a draft with a sequence number and the time it was observed. */
export interface ConsoleEvent extends EventDraft {
  readonly id: number;
  readonly atMs: number;
}

/** Lists what changed from `older` to `newer`, nodes first, then shards in id order. */
export function deriveEvents(older: ClusterStatus, newer: ClusterStatus): EventDraft[] {
  return [...nodeEvents(older, newer), ...shardEvents(older, newer), ...alarmEvents(older, newer)];
}

/** Alarms raised and cleared, on nodes that reported their alarms in both snapshots. */
function alarmEvents(older: ClusterStatus, newer: ClusterStatus): EventDraft[] {
  const reporting = (status: ClusterStatus) =>
    status.nodes.filter((node) => node.alarms !== null).map((node) => node.id);
  const olderIds = new Set(reporting(older));
  const both = new Set(reporting(newer).filter((id) => olderIds.has(id)));
  const byKey = (status: ClusterStatus) =>
    new Map(
      clusterAlarms(status).filter((alarm) => both.has(alarm.node)).map((alarm) => [
        alarmKey(alarm),
        alarm,
      ]),
    );
  const before = byKey(older);
  const after = byKey(newer);
  const drafts: EventDraft[] = [];
  for (const [key, alarm] of after) {
    if (before.has(key)) continue;
    const message = `${alarmPlace(alarm)}: ${alarmLabel(alarm.type)} alarm: ${alarm.message}`;
    drafts.push(alarmDraft("alarm-raised", "critical", alarm, message));
  }
  for (const [key, alarm] of before) {
    if (after.has(key)) continue;
    const message = `${alarmPlace(alarm)}: ${alarmLabel(alarm.type)} alarm cleared`;
    drafts.push(alarmDraft("alarm-cleared", "info", alarm, message));
  }
  return drafts;
}

function alarmDraft(
  kind: EventKind,
  severity: EventSeverity,
  alarm: NodeAlarm,
  message: string,
): EventDraft {
  return { kind, severity, shard: alarm.shard ?? null, node: alarm.node, message };
}

function nodeEvents(older: ClusterStatus, newer: ClusterStatus): EventDraft[] {
  const drafts: EventDraft[] = [];
  const before = new Map(older.nodes.map((node) => [node.id, node]));
  for (const node of newer.nodes) {
    const previous = before.get(node.id);
    const address = node.httpAddress;
    if (previous === undefined) {
      drafts.push(nodeDraft("node-joined", "info", node.id, `joined the cluster (${address})`));
    } else if (previous.status === "up" && node.status === "down") {
      drafts.push(nodeDraft("node-down", "critical", node.id, `is down (${address})`));
    } else if (previous.status === "down" && node.status === "up") {
      drafts.push(nodeDraft("node-up", "info", node.id, `is back up (${address})`));
    }
    before.delete(node.id);
  }
  for (const gone of before.values()) {
    drafts.push(nodeDraft("node-left", "warning", gone.id, "left the cluster"));
  }
  return drafts;
}

function nodeDraft(
  kind: EventKind,
  severity: EventSeverity,
  node: number,
  what: string,
): EventDraft {
  return { kind, severity, shard: null, node, message: `Node ${node} ${what}` };
}

function shardEvents(older: ClusterStatus, newer: ClusterStatus): EventDraft[] {
  const drafts: EventDraft[] = [];
  const before = new Map(older.shards.map((shard) => [shard.id, shard]));
  const sorted = [...newer.shards].sort((a, b) => a.id - b.id);
  for (const shard of sorted) {
    const previous = before.get(shard.id);
    before.delete(shard.id);
    if (previous === undefined) {
      drafts.push(shardDraft("shard-added", "info", shard, `Shard ${shard.id} was added`));
      continue;
    }
    const draft = leadershipDraft(previous, shard);
    if (draft !== null) drafts.push(draft);
  }
  for (const gone of before.values()) {
    const message = `Shard ${gone.id} was removed`;
    drafts.push({
      kind: "shard-removed",
      severity: "warning",
      shard: gone.id,
      node: null,
      message,
    });
  }
  return drafts;
}

/** The one event that describes a shard's change of leader or term, if any. */
function leadershipDraft(previous: ShardStatus, shard: ShardStatus): EventDraft | null {
  const id = shard.id;
  const term = `term ${shard.term}`;
  if (shard.leader === null) {
    if (previous.leader !== null) {
      const message = `Shard ${id} lost its leader (node ${previous.leader}); ${term}`;
      return shardDraft("leader-lost", "critical", shard, message);
    }
    if (shard.term > previous.term) {
      const message = `Shard ${id} is electing a leader; ${term}`;
      return shardDraft("term-advanced", "warning", shard, message);
    }
    return null;
  }
  if (shard.leader !== previous.leader) {
    const was = previous.leader === null ? "no leader" : `node ${previous.leader}`;
    const message = `Shard ${id}: node ${shard.leader} is leader in ${term} (was ${was})`;
    return shardDraft("leader-elected", "warning", shard, message);
  }
  if (shard.term > previous.term) {
    const message = `Shard ${id}: node ${shard.leader} was re-elected leader in ${term}`;
    return shardDraft("term-advanced", "info", shard, message);
  }
  return null;
}

function shardDraft(
  kind: EventKind,
  severity: EventSeverity,
  shard: ShardStatus,
  message: string,
): EventDraft {
  return { kind, severity, shard: shard.id, node: shard.leader, message };
}
