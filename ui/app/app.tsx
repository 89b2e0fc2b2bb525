/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The console's frame: sign-in when there is no session; otherwise the header (cluster,
 * navigation, connection state, sign-out), the stale banner, the storage alarm banner, and the
 * current page. Pages that need data show an honest loading or error state until the first
 * status arrives, and keep the last data, marked stale, when the node stops answering.
 */
import type { ReadonlySignal } from "@preact/signals";
import type { ComponentChildren } from "preact";
import { alarmLabel, alarmPlace, clusterAlarms } from "./alarms.ts";
import { useStore } from "./context.ts";
import { formatAgo, formatClock } from "./format.ts";
import { KeysPage } from "./keys.tsx";
import { Logo } from "./logo.tsx";
import { MetricsPage } from "./metrics.tsx";
import { OverviewPage } from "./overview.tsx";
import { ALARMS_SHOWN_MAX } from "./limits.ts";
import { hashOf, type Route, ROUTES } from "./router.ts";
import { ShardsPage } from "./shards.tsx";
import { SignIn } from "./sign_in.tsx";
import { TransactionsPage } from "./transactions.tsx";
import type { Connection } from "./store.ts";
import { StateMessage } from "./widgets.tsx";

/** The whole console for the page named by `route`. */
export function App(props: { route: ReadonlySignal<Route> }) {
  const store = useStore();
  if (store.session.value.kind !== "signed-in") return <SignIn />;
  const route = props.route.value;
  return (
    <div class="shell">
      <a class="skip-link" href="#main">Skip to content</a>
      <Header route={route} />
      <StaleBanner />
      <AlarmBanner />
      <main id="main" class="page" tabIndex={-1}>
        {route === "keys" ? <KeysPage /> : <DataPage route={route} />}
      </main>
    </div>
  );
}

function Header(props: { route: Route }) {
  const store = useStore();
  const latest = store.latest.value;
  return (
    <header class="topbar">
      <div class="brand">
        <Logo />
        <span class="brand-name">Aspen</span>
        {latest === null
          ? null
          : <span class="brand-cluster" title="Cluster id">{latest.status.clusterId}</span>}
      </div>
      <nav class="tabs" aria-label="Console pages">
        {ROUTES.map((entry) => (
          <a
            key={entry.route}
            href={hashOf(entry.route)}
            class="tab"
            aria-current={entry.route === props.route ? "page" : undefined}
          >
            {entry.label}
          </a>
        ))}
      </nav>
      <div class="topbar-end">
        <ConnectionPill connection={store.connection.value} nodeId={latest?.status.node ?? null} />
        <button type="button" class="button button-ghost" onClick={() => store.signOut()}>
          Sign out
        </button>
      </div>
    </header>
  );
}

function ConnectionPill(props: { connection: Connection; nodeId: number | null }) {
  const store = useStore();
  const connection = props.connection;
  const node = props.nodeId === null ? "" : ` · node ${props.nodeId}`;
  let text = "Connecting…";
  let tone = "wait";
  if (connection.kind === "live") {
    text = `Live${node} · ${formatClock(connection.lastOkAtMs)}`;
    tone = "live";
  } else if (connection.kind === "stale") {
    text = `Stale · ${formatAgo(store.clockMs.value - connection.lastOkAtMs)}`;
    tone = "stale";
  } else if (connection.kind === "error") {
    text = "No data";
    tone = "error";
  }
  return (
    <span class={`conn conn-${tone}`} role="status" data-connection={connection.kind}>
      <span class="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function StaleBanner() {
  const store = useStore();
  const connection = store.connection.value;
  if (connection.kind !== "stale") return null;
  const latest = store.latest.value;
  const node = latest?.status.nodes.find((entry) => entry.id === latest.status.node);
  const who = node === undefined ? "The node" : `Node ${node.id} (${node.httpAddress})`;
  const age = formatAgo(store.clockMs.value - connection.lastOkAtMs);
  return (
    <div class="banner banner-stale" role="alert" data-banner="stale">
      <strong>{who} is not answering.</strong> The figures below are from{" "}
      {formatClock(connection.lastOkAtMs)} ({age}) and are not updating. Retrying every second.{" "}
      <span class="banner-error">{connection.error}</span>
    </div>
  );
}

/** The storage alarms of the last status, on every page, until they clear. */
function AlarmBanner() {
  const store = useStore();
  const latest = store.latest.value;
  const alarms = latest === null ? [] : clusterAlarms(latest.status);
  if (alarms.length === 0) return null;
  const hidden = alarms.length - ALARMS_SHOWN_MAX;
  return (
    <div class="banner banner-alarm" role="alert" data-banner="alarm">
      <strong>
        Storage alarm: writes are refused where a disk is full or failing (deletes still work where
        a disk is only below its reserve). Reads go on; writes resume by themselves.
      </strong>
      <ul class="alarm-list">
        {alarms.slice(0, ALARMS_SHOWN_MAX).map((alarm) => (
          <li key={`${alarm.node}/${alarm.type}/${alarm.shard}`} data-alarm={alarm.type}>
            <span class="badge badge-alarm">{alarmLabel(alarm.type)}</span>{" "}
            <span data-field="place">{alarmPlace(alarm)}</span> since {formatClock(alarm.sinceMs)}
            {": "}
            <span class="banner-error">{alarm.message}</span>
          </li>
        ))}
      </ul>
      {hidden > 0 ? <p class="muted">and {hidden} more</p> : null}
    </div>
  );
}

function DataPage(props: { route: Exclude<Route, "keys"> }) {
  const store = useStore();
  const connection = store.connection.value;
  if (store.latest.value === null) {
    if (connection.kind === "error") {
      return (
        <StateMessage kind="error" title="Cannot load the cluster status">
          <p>{connection.error}</p>
          <p class="muted">
            Retrying every second; {connection.failures}{" "}
            {connection.failures === 1 ? "attempt has" : "attempts have"} failed so far.
          </p>
        </StateMessage>
      );
    }
    return <StateMessage kind="loading" title="Loading the cluster status…" />;
  }
  return (
    <StaleFrame isStale={connection.kind === "stale"}>
      {props.route === "overview" ? <OverviewPage /> : null}
      {props.route === "shards" ? <ShardsPage /> : null}
      {props.route === "transactions" ? <TransactionsPage /> : null}
      {props.route === "metrics" ? <MetricsPage /> : null}
    </StaleFrame>
  );
}

function StaleFrame(props: { isStale: boolean; children: ComponentChildren }) {
  return (
    <div class={props.isStale ? "data is-stale" : "data"} data-stale={String(props.isStale)}>
      {props.children}
    </div>
  );
}
