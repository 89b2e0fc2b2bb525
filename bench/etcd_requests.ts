/**
 * The benchmark's operations in etcd's dialect: etcd 3.4's JSON gateway (`/v3/kv/put`,
 * `/v3/kv/range`, `/v3/kv/txn`; keys and values base64, 64-bit integers as strings), so that
 * `deno task bench:cluster` can run the same workloads with the same client against etcd on
 * the same machine and report ratios (issue 16; the guide's yardstick).
 *
 * Each etcd operation is the counterpart of Aspen's: a put is a put, a linearizable get is a
 * range of one key (a ReadIndex round in etcd, as in Aspen), `serializable` is etcd's own
 * serializable range, a cas is a txn comparing the key's mod_revision then putting it (failure:
 * a range of the key, which teaches the client the key's mod_revision, as Aspen's failure
 * branch does), a read-only txn is a txn of ranges. etcd has no optimistic transaction: that
 * workload is refused with a BenchSetupError.
 */

/** The operation a builder makes (the runner's BenchRequest minus its bookkeeping). */
export interface EtcdCall {
  readonly method: "POST";
  readonly path: string;
  readonly body: string;
}

const encoder = new TextEncoder();

/** Standard base64 of a string's UTF-8 bytes (the gateway's encoding of `bytes` fields). */
export function base64(text: string): string {
  let binary = "";
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** A put of `key` (its value already base64). */
export function etcdPut(key: string, valueBase64: string): EtcdCall {
  return {
    method: "POST",
    path: "/v3/kv/put",
    body: `{"key":"${base64(key)}","value":"${valueBase64}"}`,
  };
}

/** A range of the one key `key`. */
export function etcdGet(key: string, serializable: boolean): EtcdCall {
  const body = serializable
    ? `{"key":"${base64(key)}","serializable":true}`
    : `{"key":"${base64(key)}"}`;
  return { method: "POST", path: "/v3/kv/range", body };
}

/** A range of at most `limit` keys from `start` (inclusive) to `end` (exclusive). */
export function etcdScan(start: string, end: string, limit: number): EtcdCall {
  return {
    method: "POST",
    path: "/v3/kv/range",
    body: JSON.stringify({ key: base64(start), range_end: base64(end), limit: String(limit) }),
  };
}

/**
 * A compare-and-swap of several keys: every key's mod_revision equals the one given (0: the key
 * does not exist), then put every key; else read every key.
 */
export function etcdCas(
  keys: readonly { readonly key: string; readonly modRevision: number }[],
  valueBase64: string,
): EtcdCall {
  return {
    method: "POST",
    path: "/v3/kv/txn",
    body: JSON.stringify({
      compare: keys.map(({ key, modRevision }) => ({
        key: base64(key),
        target: "MOD",
        result: "EQUAL",
        mod_revision: String(modRevision),
      })),
      success: keys.map(({ key }) => ({ request_put: { key: base64(key), value: valueBase64 } })),
      failure: keys.map(({ key }) => ({ request_range: { key: base64(key) } })),
    }),
  };
}

/** A transaction of ranges only: no compare, so it always runs them. */
export function etcdReadTxn(keys: readonly string[]): EtcdCall {
  return {
    method: "POST",
    path: "/v3/kv/txn",
    body: JSON.stringify({
      compare: [],
      success: keys.map((key) => ({ request_range: { key: base64(key) } })),
      failure: [],
    }),
  };
}

/** What a cas teaches its client: each key's mod_revision now (null: nothing learned). */
export interface EtcdCasOutcome {
  readonly succeeded: boolean;
  readonly modRevisions: readonly (number | null)[];
}

/**
 * Reads a txn answer of {@linkcode etcdCas} for `count` keys: a success put every key at the
 * header's revision; a failure read each key's mod_revision (0 for a key that is absent). The
 * gateway leaves `succeeded` out when it is false.
 */
export function etcdCasOutcome(body: unknown, count: number): EtcdCasOutcome {
  const answer = body as {
    header?: { revision?: string };
    succeeded?: boolean;
    responses?: { response_range?: { kvs?: { mod_revision?: string }[] } }[];
  } | null;
  if (answer?.succeeded === true) {
    const revision = integer(answer.header?.revision);
    return { succeeded: true, modRevisions: new Array(count).fill(revision) };
  }
  const modRevisions = Array.from({ length: count }, (_, i) => {
    const range = answer?.responses?.[i]?.response_range;
    if (range === undefined) return null;
    return integer(range.kvs?.[0]?.mod_revision ?? "0");
  });
  return { succeeded: false, modRevisions };
}

/** An etcd error answer's code: `etcd_<gRPC code>`, or `http_<status>` without a body. */
export function etcdErrorOf(status: number, body: unknown): string {
  const code = (body as { code?: unknown } | null)?.code;
  return typeof code === "number" ? `etcd_${code}` : `http_${status}`;
}

function integer(text: string | undefined): number | null {
  if (text === undefined) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}
