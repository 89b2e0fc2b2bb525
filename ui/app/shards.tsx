/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The shards page: one card per shard with its Raft state (term, leader, commit, applied and
 * last index), its rates, each replica's match index and lag as a bar, and the action that
 * moves its leadership to another replica; a move in progress, and the tenants table.
 */
import { useState } from "preact/hooks";
import type { ShardMoveStatus, ShardStatus } from "../../api/mod.ts";
import { useStore } from "./context.ts";
import { formatCompact, formatInteger, formatLatencyMs, formatPercent } from "./format.ts";
import { parseTransferLeaderResponse } from "./kv_parse.ts";
import { LAG_BAR_FULL_ENTRIES_MIN, RATE_WINDOW_SAMPLES } from "./limits.ts";
import { ConfirmDialog } from "./modal.tsx";
import { shardRates } from "./rates.ts";
import { LagBar, RoleChip } from "./widgets.tsx";
import { TenantsPanel } from "./tenants_panel.tsx";

/**
 * A shard move in progress (`shardMove` of the status): its phase, and per source shard a bar
 * of the bytes copied in the current copy pass. Hidden once the move is done.
 */
export function MovePanel(props: { move: ShardMoveStatus | null | undefined }) {
  const move = props.move;
  if (move === null || move === undefined || move.phase === "done") return null;
  return (
    <section class="card move-panel" aria-labelledby="move-title">
      <h2 id="move-title">
        {move.tenant === undefined
          ? `Adding shards: ${move.fromCount} → ${move.toCount} `
          : `Moving tenant ${move.tenant.name} → shard ${move.tenant.to} `}
        <span class="chip">{move.phase}</span>
      </h2>
      <ul class="move-sources">
        {move.sources.map((source) => (
          <li key={source.shard}>
            <span>shard {source.shard}</span>
            <CopyBar copied={source.bytesCopied} total={source.bytesTotal} shard={source.shard} />
            <span class="num">
              {formatInteger(source.keysCopied)} / {formatInteger(source.keysTotal)} keys
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** A source shard's copy progress: bytes copied of the bytes that move. */
function CopyBar(props: { copied: number; total: number; shard: number }) {
  const ratio = props.total <= 0 ? 1 : Math.min(1, props.copied / props.total);
  return (
    <span class="lag">
      <span
        class="lag-track"
        role="progressbar"
        aria-label={`shard ${props.shard}: bytes copied`}
        aria-valuemin={0}
        aria-valuemax={props.total}
        aria-valuenow={Math.min(props.copied, props.total)}
      >
        <span class="lag-fill tone-ok" style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
      </span>
      <span class="lag-text num">{formatPercent(ratio)}</span>
    </span>
  );
}

/** The shards page. */
export function ShardsPage() {
  const store = useStore();
  const status = store.latest.value!.status;
  const [transfer, setTransfer] = useState<number | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const lagMax = Math.max(
    LAG_BAR_FULL_ENTRIES_MIN,
    ...status.shards.flatMap((shard) => shard.replicas.map((replica) => replica.lag)),
  );
  const shard = status.shards.find((entry) => entry.id === transfer);
  return (
    <div class="stack">
      <p class="notice" role="status">{notice ?? ""}</p>
      <MovePanel move={status.shardMove} />
      <TenantsPanel />
      <div class="shard-grid">
        {status.shards.map((entry) => (
          <ShardCard
            key={entry.id}
            shard={entry}
            lagFull={lagMax}
            onTransfer={() => setTransfer(entry.id)}
          />
        ))}
      </div>
      {shard === undefined ? null : (
        <TransferDialog
          shard={shard}
          onDone={(message) => {
            setTransfer(null);
            if (message !== null) setNotice(message);
          }}
        />
      )}
    </div>
  );
}

function ShardCard(props: { shard: ShardStatus; lagFull: number; onTransfer: () => void }) {
  const store = useStore();
  const { shard } = props;
  const rates = shardRates(store.history.value.slice(-(RATE_WINDOW_SAMPLES + 1)), shard.id);
  const titleId = `shard-${shard.id}-title`;
  const canTransfer = transferTargets(shard).length > 0;
  return (
    <article class="panel shard-card" aria-labelledby={titleId} data-shard={shard.id}>
      <header class="panel-head">
        <h2 id={titleId}>Shard {shard.id}</h2>
        <span class="panel-note" data-field="leader">
          {shard.leader === null ? "No leader" : `Leader: node ${shard.leader}`}
        </span>
        <div class="panel-actions">
          <button
            type="button"
            class="button button-small"
            onClick={props.onTransfer}
            disabled={!canTransfer}
            aria-label={`Transfer leadership of shard ${shard.id}`}
          >
            Transfer leadership…
          </button>
        </div>
      </header>
      <dl class="figures">
        <Figure label="Term" field="term" value={formatInteger(shard.term)} />
        <Figure label="Commit index" field="commitIndex" value={formatInteger(shard.commitIndex)} />
        <Figure
          label="Applied index"
          field="appliedIndex"
          value={formatInteger(shard.appliedIndex)}
        />
        <Figure label="Last index" field="lastIndex" value={formatInteger(shard.lastIndex)} />
        <Figure
          label="Proposals / s"
          field="proposals"
          value={formatCompact(rates.proposalsPerSecond)}
        />
        <Figure
          label="Optimistic txns / s"
          field="txns"
          value={formatCompact(rates.optimisticTxnsPerSecond)}
        />
        <Figure
          label="Conflict rate"
          field="conflictRate"
          value={formatPercent(rates.conflictRate)}
        />
        <Figure
          label="p99 apply"
          field="applyLatency"
          value={formatLatencyMs(rates.applyLatencyP99Ms)}
        />
      </dl>
      <ReplicaTable shard={shard} lagFull={props.lagFull} />
    </article>
  );
}

function Figure(props: { label: string; value: string; field: string }) {
  return (
    <div class="figure">
      <dt>{props.label}</dt>
      <dd class="num" data-field={props.field}>{props.value}</dd>
    </div>
  );
}

function ReplicaTable(props: { shard: ShardStatus; lagFull: number }) {
  const { shard } = props;
  return (
    <table class="grid-table replicas">
      <caption class="sr-only">Replicas of shard {shard.id}</caption>
      <thead>
        <tr>
          <th scope="col">Replica</th>
          <th scope="col">Role</th>
          <th scope="col" class="num">Match index</th>
          <th scope="col" class="lag-col">Lag (entries)</th>
        </tr>
      </thead>
      <tbody>
        {[...shard.replicas].sort((a, b) => a.node - b.node).map((replica) => (
          <tr key={replica.node} data-node={replica.node}>
            <th scope="row">Node {replica.node}</th>
            <td data-field="role">
              <RoleChip role={replica.role} status={replica.status} />
            </td>
            <td class="num" data-field="matchIndex">{formatInteger(replica.matchIndex)}</td>
            <td>
              <LagBar
                lag={replica.lag}
                lagFull={props.lagFull}
                label={`Lag of node ${replica.node} on shard ${shard.id}`}
              />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Replicas that may take over leadership: up, not learners, not the leader already. */
function transferTargets(shard: ShardStatus): number[] {
  return shard.replicas
    .filter((replica) => replica.status === "up" && replica.role !== "learner")
    .filter((replica) => replica.node !== shard.leader)
    .map((replica) => replica.node);
}

function TransferDialog(props: { shard: ShardStatus; onDone: (message: string | null) => void }) {
  const store = useStore();
  const { shard } = props;
  const targets = transferTargets(shard);
  const [target, setTarget] = useState<number>(targets[0] ?? 0);
  const [isBusy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function onConfirm() {
    setBusy(true);
    setError(null);
    try {
      const body = parseTransferLeaderResponse(
        await store.request({
          method: "POST",
          path: `/v1/shards/${shard.id}/transfer-leader`,
          body: { to: target },
        }),
      );
      props.onDone(`Shard ${body.shard}: leadership moved to node ${body.leader}`);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
      setBusy(false);
    }
  }
  return (
    <ConfirmDialog
      id="transfer"
      title={`Transfer leadership of shard ${shard.id}`}
      confirmLabel="Transfer leadership"
      isBusy={isBusy}
      error={error}
      onConfirm={() => void onConfirm()}
      onCancel={() => props.onDone(null)}
    >
      <p>
        The leader is {shard.leader === null ? "unknown" : `node ${shard.leader}`} in term{" "}
        {shard.term}. Writes to this shard pause briefly while the new leader takes over.
      </p>
      <label class="field-label" for="transfer-target">New leader</label>
      <select
        id="transfer-target"
        class="input"
        value={String(target)}
        onChange={(event) => setTarget(Number((event.target as HTMLSelectElement).value))}
      >
        {targets.map((node) => <option key={node} value={String(node)}>Node {node}</option>)}
      </select>
    </ConfirmDialog>
  );
}
