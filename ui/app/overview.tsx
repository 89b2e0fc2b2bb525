/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The overview: headline figures, where every shard's replicas live and which one leads, the
 * events feed, live throughput and conflict charts, the nodes, and the members record (with
 * the action that drains a member).
 */
import type { ClusterStatus, NodeStatus } from "../../api/mod.ts";
import { alarmLabel } from "./alarms.ts";
import { MetricChart } from "./chart.tsx";
import { useStore } from "./context.ts";
import { EventsFeed } from "./events_feed.tsx";
import {
  formatCompact,
  formatDuration,
  formatInteger,
  formatLatencyMs,
  formatPercent,
} from "./format.ts";
import { RATE_WINDOW_SAMPLES } from "./limits.ts";
import { MembersPanel } from "./members_panel.tsx";
import { clusterRates } from "./rates.ts";
import { Panel, RoleChip, StatCard, StatusPill } from "./widgets.tsx";

/** The overview page. */
export function OverviewPage() {
  const store = useStore();
  const latest = store.latest.value!;
  const status = latest.status;
  return (
    <div class="stack">
      <Headline />
      <div class="overview-grid">
        <Panel title="Replica placement" id="placement" note={`${status.shards.length} shards`}>
          <PlacementGrid status={status} />
        </Panel>
        <Panel title="Events" id="events" note="observed by this console" class="events-panel">
          <EventsFeed />
        </Panel>
      </div>
      <div class="chart-row">
        <MetricChart metric="proposalsPerSecond" id="overview-throughput" />
        <MetricChart metric="conflictRate" id="overview-conflicts" />
      </div>
      <Panel title="Nodes" id="nodes" note={`${status.nodes.length} nodes`}>
        <NodesTable status={status} />
      </Panel>
      <MembersPanel status={status} />
    </div>
  );
}

function Headline() {
  const store = useStore();
  const history = store.history.value;
  const status = store.latest.value!.status;
  const window = history.slice(-(RATE_WINDOW_SAMPLES + 1));
  const rates = clusterRates(window);
  const nodesUp = status.nodes.filter((node) => node.status === "up").length;
  const led = status.shards.filter((shard) => shard.leader !== null).length;
  const nodesDown = status.nodes.length - nodesUp;
  const leaderless = status.shards.length - led;
  return (
    <div class="stats" role="group" aria-label="Cluster figures">
      <StatCard
        label="Nodes up"
        field="nodes-up"
        value={`${nodesUp} / ${status.nodes.length}`}
        detail={nodesDown === 0 ? "all answering" : `${nodesDown} down`}
        tone={nodesDown === 0 ? "ok" : "bad"}
      />
      <StatCard
        label="Shards with a leader"
        field="shards-led"
        value={`${led} / ${status.shards.length}`}
        detail={leaderless === 0
          ? `shard map epoch ${status.shardMap.epoch}`
          : `${leaderless} electing`}
        tone={leaderless === 0 ? "ok" : "bad"}
      />
      <StatCard
        label="Proposals / s"
        field="proposals"
        value={formatCompact(rates.proposalsPerSecond)}
        detail="all shard leaders"
      />
      <StatCard
        label="Optimistic txns / s"
        field="txns"
        value={formatCompact(rates.optimisticTxnsPerSecond)}
        detail={`last ${RATE_WINDOW_SAMPLES} s`}
      />
      <StatCard
        label="Conflict rate"
        field="conflicts"
        value={formatPercent(rates.conflictRate)}
        detail="conflicts / optimistic txns"
      />
      <StatCard
        label="p99 apply latency"
        field="latency"
        value={formatLatencyMs(rates.applyLatencyP99Ms)}
        detail="worst shard, last minute"
      />
    </div>
  );
}

/** A grid of shards by nodes: each cell is the role of that node's replica of that shard. */
function PlacementGrid(props: { status: ClusterStatus }) {
  const { status } = props;
  const nodes = [...status.nodes].sort((a, b) => a.id - b.id);
  return (
    <div class="table-scroll">
      <table class="grid-table placement">
        <thead>
          <tr>
            <th scope="col">Shard</th>
            <th scope="col" class="num">Term</th>
            <th scope="col">Leader</th>
            {nodes.map((node) => (
              <th scope="col" key={node.id} class={node.status === "down" ? "col-down" : ""}>
                Node {node.id}
                {node.status === "down" ? <span class="th-sub">down</span> : null}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {status.shards.map((shard) => (
            <tr key={shard.id} data-shard={shard.id}>
              <th scope="row">Shard {shard.id}</th>
              <td class="num" data-field="term">{formatInteger(shard.term)}</td>
              <td data-field="leader">
                {shard.leader === null
                  ? <span class="chip chip-down">None</span>
                  : `Node ${shard.leader}`}
              </td>
              {nodes.map((node) => {
                const replica = shard.replicas.find((entry) => entry.node === node.id);
                return (
                  <td key={node.id} data-node={node.id} class="cell">
                    {replica === undefined
                      ? <span class="muted" aria-label="no replica">·</span>
                      : <RoleChip role={replica.role} status={replica.status} />}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function NodesTable(props: { status: ClusterStatus }) {
  const { status } = props;
  return (
    <div class="table-scroll">
      <table class="grid-table">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Status</th>
            <th scope="col">HTTP address</th>
            <th scope="col">Peer address</th>
            <th scope="col">Version</th>
            <th scope="col" class="num">Uptime</th>
            <th scope="col" class="num">Leads</th>
            <th scope="col" class="num">Replicas</th>
          </tr>
        </thead>
        <tbody>
          {status.nodes.map((node) => <NodeRow key={node.id} node={node} status={status} />)}
        </tbody>
      </table>
    </div>
  );
}

function NodeRow(props: { node: NodeStatus; status: ClusterStatus }) {
  const { node, status } = props;
  const leads = status.shards.filter((shard) => shard.leader === node.id).length;
  const replicas =
    status.shards.filter((shard) => shard.replicas.some((replica) => replica.node === node.id))
      .length;
  return (
    <tr data-node={node.id}>
      <th scope="row">
        Node {node.id}
        {node.id === status.node ? <span class="tag">this console</span> : null}
      </th>
      <td data-field="status">
        <StatusPill status={node.status} />
        {[...new Set((node.alarms ?? []).map((alarm) => alarm.type))].map((type) => (
          <span key={type} class="badge badge-alarm" data-field="alarm">{alarmLabel(type)}</span>
        ))}
      </td>
      <td class="mono">{node.httpAddress}</td>
      <td class="mono">{node.peerAddress}</td>
      <td class="mono">{node.version}</td>
      <td class="num">{formatDuration(node.uptimeMs)}</td>
      <td class="num" data-field="leads">{leads}</td>
      <td class="num">{replicas}</td>
    </tr>
  );
}
