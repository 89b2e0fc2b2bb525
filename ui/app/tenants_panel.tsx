/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The tenants table of the shards page: each tenant (`GET /v1/tenants`) with its shard, keys
 * and bytes, read again after each status poll, one request at a time.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { TenantsResponse } from "../../api/mod.ts";
import { useStore } from "./context.ts";
import { formatBytes, formatInteger } from "./format.ts";
import type { Loadable } from "./key_browser.ts";
import { parseTenantsResponse } from "./tenants.ts";
import { Panel } from "./widgets.tsx";

/** The tenants panel. */
export function TenantsPanel() {
  const list = useTenants();
  const note = list.kind === "ok"
    ? `${list.value.tenants.length} tenants; keys under name/ live on the tenant's shard`
    : "keys under name/ live on the tenant's shard";
  return (
    <Panel title="Tenants" id="tenants" note={note}>
      {list.kind === "loading" ? <p class="muted">Loading…</p> : null}
      {list.kind === "error" ? <p class="notice error" role="alert">{list.message}</p> : null}
      {list.kind === "ok" ? <TenantsTable tenants={list.value.tenants} /> : null}
    </Panel>
  );
}

function TenantsTable(props: { tenants: TenantsResponse["tenants"] }) {
  if (props.tenants.length === 0) {
    return <p class="muted">No tenants: every key is placed by hash (aspen tenant create).</p>;
  }
  return (
    <div class="table-scroll">
      <table class="grid-table tenant-table" aria-label="Tenants">
        <thead>
          <tr>
            <th scope="col">Tenant</th>
            <th scope="col" class="num">Shard</th>
            <th scope="col" class="num">Keys</th>
            <th scope="col" class="num">Bytes</th>
          </tr>
        </thead>
        <tbody>
          {props.tenants.map((tenant) => (
            <tr key={tenant.name} data-tenant={tenant.name}>
              <th scope="row">{tenant.name}</th>
              <td class="num" data-field="shard">{tenant.shard}</td>
              <td class="num" data-field="keys">{formatInteger(tenant.keys)}</td>
              <td class="num" data-field="bytes">{formatBytes(tenant.bytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The tenant list, read again after each status poll, one request at a time. */
function useTenants(): Loadable<TenantsResponse> {
  const store = useStore();
  const [list, setList] = useState<Loadable<TenantsResponse>>({ kind: "loading" });
  const inFlight = useRef(false);
  const latest = store.latest.value;
  useEffect(() => {
    if (inFlight.current) return;
    inFlight.current = true;
    store.request({ method: "GET", path: "/v1/tenants" })
      .then((body) => setList({ kind: "ok", value: parseTenantsResponse(body) }))
      .catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        setList({ kind: "error", message });
      })
      .finally(() => {
        inFlight.current = false;
      });
  }, [latest]);
  return list;
}
