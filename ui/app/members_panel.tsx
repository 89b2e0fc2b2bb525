/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The members panel of the overview: every member of the cluster's members record with its
 * state, addresses, replicas and leaderships (the balance per node) and the replicas moving
 * onto it; "Drain…" beside an active member that is up asks for confirmation and then calls
 * `POST /v1/cluster/nodes/{id}/remove` with the session's token, and "Replace…" beside a
 * member that is down does the same with `POST /v1/cluster/nodes/{id}/replace`. A refusal
 * (409 insufficient_capacity, for one) stays in the dialog with the server's message.
 */
import { useState } from "preact/hooks";
import type { ClusterStatus, MemberStatus } from "../../api/mod.ts";
import { useStore } from "./context.ts";
import { formatInteger } from "./format.ts";
import {
  drainLoad,
  drainNotice,
  httpAddressLabel,
  type MemberAction,
  type MemberRow,
  membersSummary,
  memberStateLabel,
  membersView,
  parseRemoveNodeResponse,
} from "./members.ts";
import { ConfirmDialog } from "./modal.tsx";
import { Panel } from "./widgets.tsx";

/** The members panel. */
export function MembersPanel(props: { status: ClusterStatus }) {
  const view = membersView(props.status);
  const [asked, setAsked] = useState<
    { readonly member: MemberStatus; readonly action: MemberAction } | null
  >(null);
  const [notice, setNotice] = useState<string | null>(null);
  const note = view.kind === "rows" ? membersSummary(view.rows) : undefined;
  return (
    <Panel title="Members" id="members" {...(note === undefined ? {} : { note })}>
      {notice === null ? null : <p class="notice" role="status">{notice}</p>}
      {view.kind === "unreported"
        ? <p class="muted">This node predates membership changes: no members record.</p>
        : null}
      {view.kind === "unknown"
        ? <p class="muted">The members record is not known to this node yet (shard 0).</p>
        : null}
      {view.kind === "rows"
        ? (
          <MembersTable
            rows={view.rows}
            onAction={(member, action) => setAsked({ member, action })}
          />
        )
        : null}
      {asked === null ? null : (
        <MemberActionDialog
          member={asked.member}
          action={asked.action}
          onDone={(message) => {
            setAsked(null);
            if (message !== null) setNotice(message);
          }}
        />
      )}
    </Panel>
  );
}

type OnMemberAction = (member: MemberStatus, action: MemberAction) => void;

function MembersTable(props: { rows: readonly MemberRow[]; onAction: OnMemberAction }) {
  if (props.rows.length === 0) return <p class="muted">The members record lists no node.</p>;
  return (
    <div class="table-scroll">
      <table class="grid-table members-table" aria-label="Members">
        <thead>
          <tr>
            <th scope="col">Member</th>
            <th scope="col">State</th>
            <th scope="col">Peer address</th>
            <th scope="col">HTTP address</th>
            <th scope="col" class="num">Replicas</th>
            <th scope="col" class="num">Leaders</th>
            <th scope="col">Replicas in motion</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <MemberLine key={row.member.id} row={row} onAction={props.onAction} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function MemberLine(props: { row: MemberRow; onAction: OnMemberAction }) {
  const { member, moving } = props.row;
  return (
    <tr data-member={member.id}>
      <th scope="row">
        Node {member.id}
        {props.row.isDown && member.state !== "removed"
          ? <span class="chip chip-down member-down">Down</span>
          : null}
      </th>
      <td data-field="state">
        <span class={`chip chip-member-${member.state}`} data-state={member.state}>
          {memberStateLabel(member.state)}
        </span>
      </td>
      <td class="mono" data-field="peerAddress">{member.peerAddress}</td>
      <td class="mono" data-field="httpAddress">{httpAddressLabel(member)}</td>
      <td class="num" data-field="replicas">{formatInteger(member.replicas)}</td>
      <td class="num" data-field="leaders">{formatInteger(member.leaders)}</td>
      <td data-field="moving">
        {moving.length === 0 ? <span class="muted">none</span> : (
          <ul class="moving-list">
            {moving.map((replica) => (
              <li key={replica.shard}>
                shard {replica.shard}: {formatInteger(replica.lag)} entries behind
              </li>
            ))}
          </ul>
        )}
      </td>
      <td>
        {props.row.canDrain
          ? (
            <button
              type="button"
              class="button button-small"
              aria-label={`Drain node ${member.id}`}
              onClick={() => props.onAction(member, "drain")}
            >
              Drain…
            </button>
          )
          : null}
        {props.row.canReplace
          ? (
            <button
              type="button"
              class="button button-small"
              aria-label={`Replace node ${member.id}`}
              onClick={() => props.onAction(member, "replace")}
            >
              Replace…
            </button>
          )
          : null}
      </td>
    </tr>
  );
}

function MemberActionDialog(props: {
  member: MemberStatus;
  action: MemberAction;
  onDone: (message: string | null) => void;
}) {
  const store = useStore();
  const { member, action } = props;
  const [isBusy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const route = action === "drain" ? "remove" : "replace";
  async function onConfirm() {
    setBusy(true);
    setError(null);
    try {
      const body = parseRemoveNodeResponse(
        await store.request({ method: "POST", path: `/v1/cluster/nodes/${member.id}/${route}` }),
      );
      props.onDone(drainNotice(body, action));
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
      setBusy(false);
    }
  }
  const verb = action === "drain" ? "Drain" : "Replace";
  return (
    <ConfirmDialog
      id={action}
      title={`${verb} node ${member.id}?`}
      confirmLabel={`${verb} node`}
      isDanger
      isBusy={isBusy}
      error={error}
      onConfirm={() => void onConfirm()}
      onCancel={() => props.onDone(null)}
    >
      {action === "drain"
        ? (
          <p>
            Node {member.id}{" "}
            {drainLoad(member)}. Draining moves every replica to the other nodes and then removes
            the node from the cluster; it cannot be undone from here (the node would have to join
            again with a new id).
          </p>
        )
        : (
          <p>
            Node {member.id} is down and {drainLoad(member)}{" "}
            as last reported. Replacing rebuilds each of its replicas on the other nodes from the
            surviving replicas and then removes the node from the cluster for good: if it comes back
            with its old data it is refused and stops (wipe its data dir and join it as a new node).
            It cannot be undone from here.
          </p>
        )}
    </ConfirmDialog>
  );
}
