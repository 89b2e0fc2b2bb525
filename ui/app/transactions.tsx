/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The Transactions page: cross-shard commit, abort and conflict rates (from the nodes'
 * counters in successive status snapshots), the oldest pending cross-shard transactions with
 * each participant shard's receipt (or the latest committed or aborted ones), and the intents
 * each shard holds. The list is read from `GET /v1/txn` again after every status poll, one
 * request at a time; a failed read keeps the last list on screen and says why.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { TxnListItem, TxnListResponse, TxnStatus } from "../../api/mod.ts";
import { useStore } from "./context.ts";
import { formatCompact, formatInteger, formatPercent } from "./format.ts";
import type { Loadable } from "./key_browser.ts";
import { RATE_WINDOW_SAMPLES, TXN_LIST_SHOWN } from "./limits.ts";
import {
  crossShardRates,
  deadlineText,
  hasCrossShardCounters,
  intentsPerShard,
  parseTxnListResponse,
  receiptLabel,
  statusText,
  txnListPath,
} from "./txns.ts";
import { Panel, StatCard, StateMessage } from "./widgets.tsx";

const LIST_CHOICES: readonly { readonly status: TxnStatus; readonly label: string }[] = [
  { status: "pending", label: "Oldest pending" },
  { status: "committed", label: "Latest committed" },
  { status: "aborted", label: "Latest aborted" },
];

/** The Transactions page. */
export function TransactionsPage() {
  const [status, setStatus] = useState<TxnStatus>("pending");
  const list = useTxnList(status);
  return (
    <div class="stack">
      <TxnFigures />
      <Panel
        title="Cross-shard transactions"
        id="txn-list"
        note={`up to ${TXN_LIST_SHOWN}, across all shards`}
        actions={
          <div class="segmented" role="group" aria-label="Which transactions">
            {LIST_CHOICES.map((choice) => (
              <button
                key={choice.status}
                type="button"
                class="button button-small"
                aria-pressed={choice.status === status}
                data-list={choice.status}
                onClick={() => setStatus(choice.status)}
              >
                {choice.label}
              </button>
            ))}
          </div>
        }
      >
        <TxnList list={list} status={status} />
      </Panel>
      <Panel title="Intents per shard" id="intents" note="keys locked by cross-shard txns">
        <IntentsTable />
      </Panel>
    </div>
  );
}

/** The list of `status`, read again after each status poll, one request at a time. */
function useTxnList(status: TxnStatus): Loadable<TxnListResponse> {
  const store = useStore();
  const [list, setList] = useState<Loadable<TxnListResponse>>({ kind: "loading" });
  const inFlight = useRef(false);
  const shown = useRef(status);
  const latest = store.latest.value;
  useEffect(() => {
    if (shown.current !== status) {
      shown.current = status;
      setList({ kind: "loading" });
    }
    if (inFlight.current) return;
    inFlight.current = true;
    store.request({ method: "GET", path: txnListPath(status) })
      .then((body) => {
        if (shown.current === status) setList({ kind: "ok", value: parseTxnListResponse(body) });
      })
      .catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        if (shown.current === status) setList({ kind: "error", message });
      })
      .finally(() => {
        inFlight.current = false;
      });
  }, [latest, status]);
  return list;
}

function TxnFigures() {
  const store = useStore();
  const latest = store.latest.value!;
  const rates = crossShardRates(store.history.value.slice(-(RATE_WINDOW_SAMPLES + 1)));
  const isReported = hasCrossShardCounters(latest.status);
  const intents = intentsPerShard(latest.status);
  const held = intents.some((entry) => entry.intents !== null)
    ? intents.reduce((sum, entry) => sum + (entry.intents ?? 0), 0)
    : null;
  const window = `last ${RATE_WINDOW_SAMPLES} s`;
  const noCounters = "the node does not report them";
  return (
    <div class="stats" role="group" aria-label="Cross-shard transaction figures">
      <StatCard
        label="Cross-shard commits / s"
        field="xs-commits"
        value={formatCompact(rates.commitsPerSecond)}
        detail={isReported ? `${window}, all nodes` : noCounters}
      />
      <StatCard
        label="Aborts / s"
        field="xs-aborts"
        value={formatCompact(rates.abortsPerSecond)}
        detail={rates.abortRate === null
          ? "no txn ended in the window"
          : `${formatPercent(rates.abortRate)} of those that ended`}
        tone={rates.abortRate !== null && rates.abortRate > 0 ? "warn" : "ok"}
      />
      <StatCard
        label="Conflict rate"
        field="xs-conflicts"
        value={formatPercent(rates.conflictRate)}
        detail="conflicts / txns ended"
      />
      <StatCard
        label="Intents held"
        field="xs-intents"
        value={formatInteger(held)}
        detail="keys locked, all shards"
        tone={held !== null && held > 0 ? "warn" : "ok"}
      />
    </div>
  );
}

function TxnList(props: { list: Loadable<TxnListResponse>; status: TxnStatus }) {
  const { list, status } = props;
  if (list.kind === "loading" || list.kind === "idle") {
    return <StateMessage kind="loading" title="Loading the transactions…" />;
  }
  if (list.kind === "error") {
    return (
      <StateMessage kind="error" title="Cannot list the transactions">
        <p>{list.message}</p>
        <p class="muted">Tried again after each status poll.</p>
      </StateMessage>
    );
  }
  const { txns, unavailableShards } = list.value;
  const gap = unavailableShards.length === 0
    ? null
    : (
      <p class="notice notice-warn" role="status" data-field="unavailable">
        Shards {unavailableShards.join(", ")} did not answer: their transactions are missing here.
      </p>
    );
  if (txns.length === 0) {
    return (
      <>
        {gap}
        <StateMessage kind="empty" title={emptyTitle(status)}>
          <p class="muted">{emptyDetail(status)}</p>
        </StateMessage>
      </>
    );
  }
  return (
    <>
      {gap}
      <TxnTable txns={txns} />
    </>
  );
}

function emptyTitle(status: TxnStatus): string {
  if (status === "pending") return "No cross-shard transaction is pending";
  return `No ${status} cross-shard transaction is remembered`;
}

function emptyDetail(status: TxnStatus): string {
  if (status === "pending") {
    return "Every cross-shard transaction that started has been decided: no record waits " +
      "for its coordinator, and no key waits on one.";
  }
  return "Single-shard transactions have no record; home shards keep the latest 10,000 " +
    "decided records.";
}

function TxnTable(props: { txns: readonly TxnListItem[] }) {
  const store = useStore();
  const nowMs = store.latest.value!.status.generatedAtMs ?? store.clockMs.value;
  return (
    <div class="table-scroll">
      <table class="grid-table txn-table">
        <thead>
          <tr>
            <th scope="col">Txn id</th>
            <th scope="col">Status</th>
            <th scope="col" class="num">Home</th>
            <th scope="col">Deadline or decision</th>
            <th scope="col">Receipts (shard → state)</th>
          </tr>
        </thead>
        <tbody>
          {props.txns.map((txn) => (
            <tr key={txn.txnId} data-txn={txn.txnId}>
              <th scope="row" class="mono">{txn.txnId}</th>
              <td data-field="status" data-outcome={txn.outcome}>
                {statusText(txn)}
                {txn.reason === "" ? null : <span class="muted">{` (${txn.reason})`}</span>}
              </td>
              <td class="num" data-field="home">{txn.home < 0 ? "—" : txn.home}</td>
              <td data-field="deadline">
                {txn.status === "pending"
                  ? deadlineText(txn.deadlineMs, nowMs)
                  : `decided at revision ${formatInteger(txn.decidedRevision)}`}
              </td>
              <td data-field="receipts">
                {txn.receipts.length === 0
                  ? <span class="muted">no participants known</span>
                  : txn.receipts.map((receipt) => (
                    <span
                      key={receipt.shard}
                      class={`chip receipt receipt-${receipt.status}`}
                      data-shard={receipt.shard}
                      data-receipt={receipt.status}
                    >
                      {`${receipt.shard} → ${receiptLabel(receipt)}`}
                    </span>
                  ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function IntentsTable() {
  const store = useStore();
  const rows = intentsPerShard(store.latest.value!.status);
  if (rows.every((row) => row.intents === null)) {
    return (
      <StateMessage kind="empty" title="The node does not report intents">
        <p class="muted">It predates cross-shard transactions in the status.</p>
      </StateMessage>
    );
  }
  return (
    <div class="table-scroll">
      <table class="grid-table intents-table">
        <thead>
          <tr>
            <th scope="col">Shard</th>
            <th scope="col" class="num">Intents</th>
            <th scope="col">Leader</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.shard} data-shard={row.shard}>
              <th scope="row">{row.shard}</th>
              <td class="num" data-field="intents">{formatInteger(row.intents)}</td>
              <td>{row.leader === null ? "None" : `Node ${row.leader}`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
