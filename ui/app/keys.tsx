/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The key browser page: scan keys by prefix a page at a time, open a key to see its value and
 * metadata (version, revisions, lease, shard), and put or delete keys, each after a
 * confirmation that says exactly what will change.
 */
import { useEffect, useState } from "preact/hooks";
import { formatInteger, truncate } from "./format.ts";
import { type KeyBrowser, scanSummary, useKeyBrowser } from "./key_browser.ts";
import { KeyPanel } from "./key_panel.tsx";
import { SCAN_PAGE_KEYS, VALUE_PREVIEW_CHARS } from "./limits.ts";
import { Panel, StateMessage } from "./widgets.tsx";

/** The key browser page. */
export function KeysPage() {
  const browser = useKeyBrowser();
  const [editing, setEditing] = useState<"new" | null>(null);
  useEffect(() => {
    browser.runScan("", []).catch((error) => {
      throw new Error("Cannot run the first scan", { cause: error });
    });
  }, []);
  return (
    <div class="keys-layout">
      <Panel
        title="Keys"
        id="keys"
        class="keys-list"
        actions={
          <button
            type="button"
            class="button button-small button-primary"
            onClick={() => {
              setEditing("new");
              void browser.select(null);
            }}
          >
            New key
          </button>
        }
      >
        <ScanForm browser={browser} />
        <ScanResult
          browser={browser}
          onOpen={(key) => {
            setEditing(null);
            void browser.select(key);
          }}
        />
      </Panel>
      <KeyPanel browser={browser} isNew={editing === "new"} onNewDone={() => setEditing(null)} />
    </div>
  );
}

function ScanForm(props: { browser: KeyBrowser }) {
  const [prefix, setPrefix] = useState("");
  function onSubmit(event: Event) {
    event.preventDefault();
    void props.browser.runScan(prefix, []);
  }
  return (
    <form class="scan-form" role="search" onSubmit={onSubmit}>
      <label for="prefix" class="field-label">Key prefix</label>
      <div class="input-row">
        <input
          id="prefix"
          class="input mono"
          value={prefix}
          placeholder="for example users/"
          spellcheck={false}
          autoComplete="off"
          onInput={(event) => setPrefix((event.target as HTMLInputElement).value)}
        />
        <button type="submit" class="button">Scan</button>
      </div>
    </form>
  );
}

function ScanResult(props: { browser: KeyBrowser; onOpen: (key: string) => void }) {
  const { scan, selected } = props.browser;
  const result = scan.result;
  if (result.kind === "idle" || result.kind === "loading") {
    // Only the first scan shows this; later ones keep the page on screen while they load.
    return <StateMessage kind="loading" title="Scanning keys…" />;
  }
  if (result.kind === "error") {
    return <StateMessage kind="error" title="Cannot scan keys">{result.message}</StateMessage>;
  }
  const page = result.value;
  const where = scan.prefix === "" ? "in the cluster" : `with prefix "${scan.prefix}"`;
  if (page.kvs.length === 0) {
    return <StateMessage kind="empty" title={`No keys ${where}`} />;
  }
  const first = (scan.cursors.length - 1) * SCAN_PAGE_KEYS + 1;
  const last = first + page.kvs.length - 1;
  return (
    <div>
      <div class="table-scroll">
        <table class="grid-table key-table">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Value</th>
              <th scope="col" class="num">Version</th>
              <th scope="col" class="num">Mod revision</th>
            </tr>
          </thead>
          <tbody>
            {page.kvs.map((kv) => (
              <tr key={kv.key} class={kv.key === selected ? "is-selected" : ""} data-key={kv.key}>
                <th scope="row" class="mono">
                  <button
                    type="button"
                    class="link-button"
                    onClick={() =>
                      props.onOpen(kv.key)}
                  >
                    {truncate(kv.key, VALUE_PREVIEW_CHARS)}
                  </button>
                </th>
                <td class="mono value-preview">{truncate(kv.value, VALUE_PREVIEW_CHARS)}</td>
                <td class="num">{formatInteger(kv.version)}</td>
                <td class="num">{formatInteger(kv.modRevision)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        browser={props.browser}
        summary={scanSummary({ first, last, total: scan.total, where })}
      />
    </div>
  );
}

function Pager(props: { browser: KeyBrowser; summary: string }) {
  const { scan } = props.browser;
  const hasNext = scan.result.kind === "ok" && scan.result.value.more;
  return (
    <nav class="pager" aria-label="Key pages">
      <span class="muted" role="status">
        {scan.isLoading ? "Loading…" : props.summary}
      </span>
      <button
        type="button"
        class="button button-small"
        disabled={scan.isLoading || scan.cursors.length <= 1}
        onClick={() => void props.browser.previousPage()}
      >
        Previous
      </button>
      <button
        type="button"
        class="button button-small"
        disabled={scan.isLoading || !hasNext}
        onClick={() => void props.browser.nextPage()}
      >
        Next
      </button>
    </nav>
  );
}
