/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The right-hand side of the key browser: the selected key's value and metadata, the editor for
 * a new key or a new value, and the confirmations for put and delete. After a change, the key
 * and the current page are read again, so the screen shows what the cluster now holds.
 */
import { useState } from "preact/hooks";
import type { GetKvResponse } from "../../api/mod.ts";
import { formatInteger, formatValueSize } from "./format.ts";
import type { KeyBrowser } from "./key_browser.ts";
import { ConfirmDialog } from "./modal.tsx";
import { Panel, StateMessage } from "./widgets.tsx";

type Pending = { kind: "put"; key: string; value: string } | { kind: "delete"; key: string };

/** The details, editor and confirmations for the selected key or a new one. */
export function KeyPanel(props: { browser: KeyBrowser; isNew: boolean; onNewDone: () => void }) {
  const { browser } = props;
  const [isEditing, setEditing] = useState(false);
  const [pending, setPending] = useState<Pending | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const detail = browser.detail;
  let body;
  if (props.isNew) {
    body = <KeyEditor initialValue="" onCancel={props.onNewDone} onSubmit={setPending} />;
  } else if (browser.selected === null) {
    body = (
      <StateMessage kind="empty" title="No key selected">
        Pick a key from the list, or make a new one.
      </StateMessage>
    );
  } else if (detail.kind === "loading" || detail.kind === "idle") {
    body = <StateMessage kind="loading" title="Reading the key…" />;
  } else if (detail.kind === "error") {
    body = <StateMessage kind="error" title="Cannot read the key">{detail.message}</StateMessage>;
  } else if (detail.value === "missing") {
    body = <StateMessage kind="empty" title={`Key "${browser.selected}" does not exist`} />;
  } else if (isEditing) {
    body = (
      <KeyEditor
        fixedKey={detail.value.kv.key}
        initialValue={detail.value.kv.value}
        onCancel={() => setEditing(false)}
        onSubmit={setPending}
      />
    );
  } else {
    body = (
      <KeyDetails
        found={detail.value}
        onEdit={() => setEditing(true)}
        onDelete={() =>
          setPending({
            kind: "delete",
            key: detail.value === "missing" ? "" : detail.value.kv.key,
          })}
      />
    );
  }
  function onDone(message: string, key: string | null) {
    setPending(null);
    setEditing(false);
    setNotice(message);
    props.onNewDone();
    void browser.select(key);
    void browser.runScan(browser.scan.prefix, browser.scan.cursors);
  }
  return (
    <Panel title="Key details" id="key-detail" class="key-panel">
      <p class="notice" role="status">{notice ?? ""}</p>
      {body}
      {pending === null ? null : (
        <PendingDialog
          browser={browser}
          pending={pending}
          onCancel={() => setPending(null)}
          onDone={onDone}
        />
      )}
    </Panel>
  );
}

function KeyDetails(props: { found: GetKvResponse; onEdit: () => void; onDelete: () => void }) {
  const { kv, shard, revision } = props.found;
  return (
    <div class="key-details" data-key={kv.key}>
      <h3 class="key-name mono">{kv.key}</h3>
      <dl class="meta">
        <div>
          <dt>Version</dt>
          <dd class="num" data-field="version">{formatInteger(kv.version)}</dd>
        </div>
        <div>
          <dt>Create revision</dt>
          <dd class="num">{formatInteger(kv.createRevision)}</dd>
        </div>
        <div>
          <dt>Mod revision</dt>
          <dd class="num">{formatInteger(kv.modRevision)}</dd>
        </div>
        <div>
          <dt>Lease</dt>
          <dd class="num">{kv.lease === 0 ? "none" : kv.lease}</dd>
        </div>
        <div>
          <dt>Shard</dt>
          <dd class="num" data-field="shard">{shard}</dd>
        </div>
        <div>
          <dt>Shard revision</dt>
          <dd class="num">{formatInteger(revision)}</dd>
        </div>
      </dl>
      <div class="value-head">
        <span class="field-label">Value</span>
        <span class="muted">{formatValueSize(kv.value)}</span>
      </div>
      <pre class="value-box mono" data-field="value" tabIndex={0}>{kv.value}</pre>
      <div class="button-row">
        <button type="button" class="button" onClick={props.onEdit}>Edit value</button>
        <button type="button" class="button button-danger-outline" onClick={props.onDelete}>
          Delete…
        </button>
      </div>
    </div>
  );
}

function KeyEditor(props: {
  fixedKey?: string;
  initialValue: string;
  onCancel: () => void;
  onSubmit: (pending: Pending) => void;
}) {
  const [key, setKey] = useState(props.fixedKey ?? "");
  const [value, setValue] = useState(props.initialValue);
  function onSubmit(event: Event) {
    event.preventDefault();
    props.onSubmit({ kind: "put", key, value });
  }
  return (
    <form
      class="key-editor"
      onSubmit={onSubmit}
      aria-label={props.fixedKey === undefined ? "New key" : "Edit value"}
    >
      <label class="field-label" for="edit-key">Key</label>
      <input
        id="edit-key"
        class="input mono"
        value={key}
        required
        readOnly={props.fixedKey !== undefined}
        spellcheck={false}
        autoComplete="off"
        onInput={(event) => setKey((event.target as HTMLInputElement).value)}
      />
      <label class="field-label" for="edit-value">Value</label>
      <textarea
        id="edit-value"
        class="input mono"
        rows={8}
        value={value}
        spellcheck={false}
        onInput={(event) => setValue((event.target as HTMLTextAreaElement).value)}
      />
      <div class="button-row">
        <button type="submit" class="button button-primary" disabled={key === ""}>Put…</button>
        <button type="button" class="button" onClick={props.onCancel}>Cancel</button>
      </div>
    </form>
  );
}

function PendingDialog(props: {
  browser: KeyBrowser;
  pending: Pending;
  onCancel: () => void;
  onDone: (message: string, key: string | null) => void;
}) {
  const { pending, browser } = props;
  const [isBusy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function onConfirm() {
    setBusy(true);
    setError(null);
    try {
      if (pending.kind === "put") {
        const done = await browser.put(pending.key, pending.value);
        const where = `on shard ${done.shard}, revision ${done.revision}`;
        props.onDone(`Put "${pending.key}": version ${done.version} ${where}`, pending.key);
      } else {
        const done = await browser.remove(pending.key);
        const what = done.deleted === 1 ? "Deleted" : "Nothing to delete at";
        props.onDone(
          `${what} "${pending.key}" on shard ${done.shard}, revision ${done.revision}`,
          null,
        );
      }
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
      setBusy(false);
    }
  }
  const isPut = pending.kind === "put";
  return (
    <ConfirmDialog
      id="confirm-key"
      title={isPut ? "Put this key?" : "Delete this key?"}
      confirmLabel={isPut ? "Put key" : "Delete key"}
      isDanger={!isPut}
      isBusy={isBusy}
      error={error}
      onConfirm={() => void onConfirm()}
      onCancel={props.onCancel}
    >
      <p>
        {isPut ? "Write" : "Delete"} <code class="mono">{pending.key}</code>
        {pending.kind === "put"
          ? ` with a ${formatValueSize(pending.value)} value. An existing value is replaced.`
          : ". This cannot be undone."}
      </p>
    </ConfirmDialog>
  );
}
