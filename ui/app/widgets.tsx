/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * Small building blocks shared by the console's pages: panels, figures, role and status chips,
 * lag bars, and the loading, empty and error states. Colour never carries meaning alone: every
 * chip and bar also says what it means in text.
 */
import type { ComponentChildren } from "preact";
import type { ReplicaRole, UpDown } from "../../api/mod.ts";
import { formatInteger } from "./format.ts";

/** A titled section of a page. */
export function Panel(props: {
  title: string;
  id: string;
  actions?: ComponentChildren;
  note?: ComponentChildren;
  children: ComponentChildren;
  class?: string;
}) {
  const headingId = `${props.id}-title`;
  return (
    <section class={`panel ${props.class ?? ""}`} aria-labelledby={headingId} id={props.id}>
      <header class="panel-head">
        <h2 id={headingId}>{props.title}</h2>
        {props.note === undefined ? null : <span class="panel-note">{props.note}</span>}
        {props.actions === undefined ? null : <div class="panel-actions">{props.actions}</div>}
      </header>
      <div class="panel-body">{props.children}</div>
    </section>
  );
}

/** One headline figure, with an optional line below it. */
export function StatCard(props: {
  label: string;
  value: string;
  detail?: string;
  tone?: "ok" | "warn" | "bad";
  field: string;
}) {
  return (
    <div class={`stat ${props.tone === undefined ? "" : `tone-${props.tone}`}`}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value" data-field={props.field}>{props.value}</div>
      <div class="stat-detail">{props.detail ?? "\u00a0"}</div>
    </div>
  );
}

const ROLE_LABELS: Readonly<Record<ReplicaRole, string>> = {
  leader: "Leader",
  follower: "Follower",
  learner: "Learner",
  candidate: "Candidate",
};

/** A replica's role, or "Down" when its node does not answer. */
export function RoleChip(props: { role: ReplicaRole; status: UpDown }) {
  if (props.status === "down") {
    return <span class="chip chip-down" title={`Down (was ${props.role})`}>Down</span>;
  }
  return <span class={`chip chip-${props.role}`}>{ROLE_LABELS[props.role]}</span>;
}

/** A node's up or down state. */
export function StatusPill(props: { status: UpDown }) {
  const isUp = props.status === "up";
  return (
    <span class={`pill ${isUp ? "pill-up" : "pill-down"}`} data-status={props.status}>
      <span class="dot" aria-hidden="true" />
      {isUp ? "Up" : "Down"}
    </span>
  );
}

/** A replica's lag as a bar scaled to `lagFull` entries, with the number beside it. */
export function LagBar(props: { lag: number; lagFull: number; label: string }) {
  const ratio = props.lagFull <= 0 ? 0 : Math.min(1, props.lag / props.lagFull);
  const tone = ratio > 0.66 ? "bad" : ratio > 0.33 ? "warn" : "ok";
  return (
    <span class="lag">
      <span
        class="lag-track"
        role="meter"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={props.lagFull}
        aria-valuenow={Math.min(props.lag, props.lagFull)}
      >
        <span class={`lag-fill tone-${tone}`} style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
      </span>
      <span class="lag-text num">{formatInteger(props.lag)}</span>
    </span>
  );
}

/** A message where content would be: loading, empty or failed. */
export function StateMessage(props: {
  kind: "loading" | "empty" | "error";
  title: string;
  children?: ComponentChildren;
}) {
  const role = props.kind === "error" ? "alert" : "status";
  return (
    <div class={`state state-${props.kind}`} role={role}>
      {props.kind === "loading" ? <span class="spinner" aria-hidden="true" /> : null}
      <div>
        <p class="state-title">{props.title}</p>
        {props.children === undefined ? null : <div class="state-body">{props.children}</div>}
      </div>
    </div>
  );
}
