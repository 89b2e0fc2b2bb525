/**
 * Storage alarms across the cluster, from one status snapshot: every node's alarms in one
 * list (node order, then the node's own alarm before its shards'), with the words the console
 * shows for them. Pure, so that the banner, the node table and the events feed agree.
 */
import type { Alarm, AlarmType, ClusterStatus } from "../../api/mod.ts";

/** An alarm and the node that reported it. */
export interface NodeAlarm extends Alarm {
  readonly node: number;
}

/** Every alarm the nodes of `status` reported, by node id. */
export function clusterAlarms(status: ClusterStatus): NodeAlarm[] {
  const nodes = [...status.nodes].sort((a, b) => a.id - b.id);
  return nodes.flatMap((node) => (node.alarms ?? []).map((alarm) => ({ ...alarm, node: node.id })));
}

/** The short name of an alarm type, as a badge shows it. */
export function alarmLabel(type: AlarmType): string {
  return type === "no_space" ? "No space" : "Storage error";
}

/** Where an alarm was raised, as in "Node 2" or "Node 2 · shard 5". */
export function alarmPlace(alarm: NodeAlarm): string {
  return alarm.shard === undefined
    ? `Node ${alarm.node}`
    : `Node ${alarm.node} · shard ${alarm.shard}`;
}

/** A key that names one alarm across snapshots: node, type and shard. */
export function alarmKey(alarm: NodeAlarm): string {
  return `${alarm.node}/${alarm.type}/${alarm.shard ?? "node"}`;
}
