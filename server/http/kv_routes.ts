/**
 * The key, transaction and lease routes of the client API (API.md): parse and check the
 * request, call the KV service, shape the response.
 */
import type { Context, Hono } from "hono";
import type { LeaseResponse } from "../../api/mod.ts";
import {
  AspenError,
  type Compare,
  type KeyRange,
  OPTIMISTIC_READS_MAX,
  OPTIMISTIC_WRITES_MAX,
  RANGE_LIMIT_MAX,
  type ReadRecord,
  ROUTER_SHARDS_MAX,
  TXN_LIST_LIMIT_MAX,
  TXN_OPS_MAX,
  type TxnOp,
  type TxnStatus,
  validateKey,
} from "../../shard/mod.ts";
import { kvJson, valueEncoding, valueField } from "./value_encoding.ts";
import { checkedTxnId, type KvService } from "../node/mod.ts";
import {
  arrayField,
  asObject,
  booleanField,
  integerField,
  type JsonObject,
  nullableCountField,
  queryFlag,
  queryInteger,
  readJsonObject,
  stringField,
} from "./body.ts";

/** The default page size of a range read. */
export const RANGE_LIMIT_DEFAULT = 1_000;

/** The default number of transactions `GET /v1/txn` lists. */
export const TXN_LIST_LIMIT_DEFAULT = 20;
const TXN_LIST_PARAMETERS: readonly string[] = ["status", "limit"];
const TXN_STATUSES: readonly TxnStatus[] = ["pending", "committed", "aborted"];

/** Adds the key, txn and lease routes to `app`. */
export function addKvRoutes(app: Hono, service: KvService): void {
  // The range routes come first: Hono's /v1/kv/* would also match /v1/kv.
  app.get("/v1/kv", async (c) => {
    const action = "read range";
    const query = c.req.query();
    const encoding = valueEncoding(c, action);
    return kvJson(
      c,
      await service.range({
        range: rangeFromQuery(query, action),
        limit: queryInteger(query.limit, "limit", action, {
          min: 1,
          max: RANGE_LIMIT_MAX,
          defaultValue: RANGE_LIMIT_DEFAULT,
        }),
        after: query.after ?? null,
        keysOnly: queryFlag(query.keysOnly, "keysOnly", action),
        countOnly: queryFlag(query.countOnly, "countOnly", action),
        reverse: queryFlag(query.reverse, "reverse", action),
        serializable: consistency(c, action),
      }),
      encoding,
    );
  });
  app.delete("/v1/kv", async (c) => {
    const range = rangeFromQuery(c.req.query(), "delete range");
    const encoding = valueEncoding(c, "delete range");
    return kvJson(c, await service.deleteRange(range), encoding);
  });
  app.get("/v1/kv/*", async (c) => {
    const key = keyFromPath(c, "get key");
    const serializable = consistency(c, "get key");
    const encoding = valueEncoding(c, "get key");
    return kvJson(c, await service.get(key, serializable), encoding);
  });
  app.put("/v1/kv/*", async (c) => {
    const key = keyFromPath(c, "put key");
    const encoding = valueEncoding(c, "put key");
    const fields = ["value", "valueBase64", "lease", "prevKv"];
    const body = await readJsonObject(c.req.raw, "put key", fields);
    const value = valueField(body, `put key "${key}"`);
    const lease = integerField(body, "lease", "put key", 0);
    const prevKv = booleanField(body, "prevKv", "put key");
    return kvJson(c, await service.put(key, value, lease, prevKv), encoding);
  });
  app.delete("/v1/kv/*", async (c) => {
    const key = keyFromPath(c, "delete key");
    const prevKv = queryFlag(c.req.query("prevKv"), "prevKv", "delete key");
    const encoding = valueEncoding(c, "delete key");
    return kvJson(c, await service.delete(key, prevKv), encoding);
  });
  addTxnRoutes(app, service);
  addLeaseRoutes(app, service);
}

function addTxnRoutes(app: Hono, service: KvService): void {
  app.post("/v1/txn", async (c) => {
    const action = "run txn";
    const encoding = valueEncoding(c, action);
    const body = await readJsonObject(c.req.raw, action, ["compare", "success", "failure"]);
    const compare = arrayField(body, "compare", action, TXN_OPS_MAX).map((item, i) =>
      parseCompare(item, `${action}: compare[${i}]`)
    );
    const success = arrayField(body, "success", action, TXN_OPS_MAX).map((item, i) =>
      parseTxnOp(item, `${action}: success[${i}]`)
    );
    const failure = arrayField(body, "failure", action, TXN_OPS_MAX).map((item, i) =>
      parseTxnOp(item, `${action}: failure[${i}]`)
    );
    return kvJson(c, await service.txn(compare, success, failure), encoding);
  });
  app.post("/v1/txn/optimistic", async (c) => {
    const action = "commit optimistic txn";
    const body = await readJsonObject(c.req.raw, action, ["reads", "writes"]);
    const reads = arrayField(body, "reads", action, OPTIMISTIC_READS_MAX).map((item, i) =>
      parseRead(item, `${action}: reads[${i}]`)
    );
    const writes = arrayField(body, "writes", action, OPTIMISTIC_WRITES_MAX).map((item, i) => {
      const fields = ["op", "key", "value", "valueBase64"];
      const write = asObject(item, action, `writes[${i}]`, fields);
      const op = stringField(write, "op", action);
      const key = stringField(write, "key", action);
      if (op === "set") {
        return { op, key, value: valueField(write, `${action}: writes[${i}]`) } as const;
      }
      if (op === "delete") return { op, key } as const;
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: writes[${i}].op must be "set" or "delete"`,
      );
    });
    return c.json(await service.optimistic({ type: "optimisticTxn", reads, writes }));
  });
  app.get("/v1/txn", async (c) => {
    const action = "list txns";
    const query = c.req.query();
    const unknown = Object.keys(query).find((name) => !TXN_LIST_PARAMETERS.includes(name));
    if (unknown !== undefined) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: unknown query parameter "${unknown}" (allowed: status, limit)`,
        { parameter: unknown },
      );
    }
    return c.json(
      await service.txnList({
        status: txnStatusQuery(query.status, action),
        limit: queryInteger(query.limit, "limit", action, {
          min: 1,
          max: TXN_LIST_LIMIT_MAX,
          defaultValue: TXN_LIST_LIMIT_DEFAULT,
        }),
      }),
    );
  });
  app.get("/v1/txn/:id", async (c) => {
    const id = checkedTxnId(c.req.param("id"), "read");
    return c.json(await service.txnStatus(id));
  });
}

/** The `status` of `GET /v1/txn`: pending when absent. */
function txnStatusQuery(value: string | undefined, action: string): TxnStatus {
  if (value === undefined) return "pending";
  const status = TXN_STATUSES.find((known) => known === value);
  if (status === undefined) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: query parameter "status" is "${value}" but must be pending, ` +
        "committed or aborted",
      { parameter: "status" },
    );
  }
  return status;
}

function addLeaseRoutes(app: Hono, service: KvService): void {
  app.post("/v1/leases", async (c) => {
    const action = "grant lease";
    const body = await readJsonObject(c.req.raw, action, ["ttl", "key"]);
    const ttl = integerField(body, "ttl", action, -1);
    if (ttl < 1) throw new AspenError("bad_request", `Cannot ${action}: "ttl" must be 1 or more`);
    const key = body.key === undefined ? null : stringField(body, "key", action);
    if (key !== null) validateKey(key, action);
    const { id, ttl: granted } = await service.leaseGrant(ttl, key);
    return c.json({ id, ttl: granted } satisfies LeaseResponse);
  });
  app.post("/v1/leases/:id/keepalive", async (c) => {
    return c.json(await service.leaseKeepAlive(leaseId(c.req.param("id"), "keep lease alive")));
  });
  app.get("/v1/leases/:id", async (c) => {
    return c.json(await service.leaseInfo(leaseId(c.req.param("id"), "read lease")));
  });
  app.delete("/v1/leases/:id", async (c) => {
    return c.json(await service.leaseRevoke(leaseId(c.req.param("id"), "revoke lease")));
  });
}

/** The key named by the rest of the path after `/v1/kv/`, percent-decoded. */
function keyFromPath(c: Context, action: string): string {
  const path = rawPath(c.req.url);
  let key: string;
  try {
    key = decodeURIComponent(path.slice("/v1/kv/".length));
  } catch (error) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: the key is not valid percent-encoding`,
      {},
      {
        cause: error,
      },
    );
  }
  validateKey(key, action);
  return key;
}

/**
 * The path of a request URL as sent, still percent-encoded (what `new URL(url).pathname`
 * gives for the serialized URLs Deno.serve hands out; parsing a URL per request was 9% of the
 * CPU of serving a read).
 */
export function rawPath(url: string): string {
  const scheme = url.indexOf("://");
  const start = url.indexOf("/", scheme === -1 ? 0 : scheme + 3);
  if (start === -1) return "/";
  let end = url.length;
  for (let i = start; i < url.length; i++) {
    const char = url.charCodeAt(i);
    if (char === QUESTION_MARK || char === NUMBER_SIGN) {
      end = i;
      break;
    }
  }
  return url.slice(start, end);
}

const QUESTION_MARK = 0x3f;
const NUMBER_SIGN = 0x23;

function consistency(c: Context, action: string): boolean {
  const value = c.req.query("consistency");
  if (value === undefined || value === "linearizable") return false;
  if (value === "serializable") return true;
  throw new AspenError(
    "bad_request",
    `Cannot ${action}: consistency must be "linearizable" or "serializable", not "${value}"`,
  );
}

function rangeFromQuery(query: Record<string, string>, action: string): KeyRange {
  const { prefix, start, end } = query;
  if (prefix !== undefined) {
    if (start !== undefined || end !== undefined) {
      throw new AspenError("bad_request", `Cannot ${action}: give either prefix or start/end`);
    }
    return { prefix };
  }
  if (start === undefined || end === undefined) {
    throw new AspenError("bad_request", `Cannot ${action}: give prefix, or both start and end`);
  }
  return { start, end };
}

function leaseId(text: string, action: string): number {
  const id = Number(text);
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(id) || id < 1) {
    throw new AspenError("bad_request", `Cannot ${action}: "${text}" is not a lease id`);
  }
  return id;
}

const COMPARE_TARGETS = ["value", "version", "createRevision", "modRevision", "lease"];
const COMPARE_OPS = ["=", "!=", "<", ">"];

function parseCompare(item: unknown, where: string): Compare {
  const fields = ["key", "target", "op", "value", "valueBase64", "shard"];
  const object = asObject(item, where, "the compare", fields);
  const shard = readShardField(object, where);
  return shard === null
    ? parseCondition(object, where)
    : { ...parseCondition(object, where), shard };
}

/**
 * The optional `shard` of a read or compare (the shard it was read on), or null.
 *
 * @throws {AspenError} `bad_request` naming the field when it is no shard id.
 */
function readShardField(object: JsonObject, where: string): number | null {
  const shard = nullableCountField(object, "shard", where);
  if (shard !== null && shard >= ROUTER_SHARDS_MAX) {
    throw new AspenError(
      "bad_request",
      `Cannot ${where}: field "shard" is ${shard} but shard ids are below ${ROUTER_SHARDS_MAX} ` +
        "(ROUTER_SHARDS_MAX)",
      { field: "shard" },
    );
  }
  return shard;
}

function parseCondition(object: JsonObject, where: string): Compare {
  const key = stringField(object, "key", where);
  const target = stringField(object, "target", where);
  const op = stringField(object, "op", where) as Compare["op"];
  if (!COMPARE_TARGETS.includes(target)) {
    throw new AspenError(
      "bad_request",
      `Cannot ${where}: target must be one of ${COMPARE_TARGETS.join(", ")}`,
    );
  }
  if (!COMPARE_OPS.includes(op)) {
    throw new AspenError(
      "bad_request",
      `Cannot ${where}: op must be one of ${COMPARE_OPS.join(" ")}`,
    );
  }
  if (target === "value") return { key, target, op, value: valueField(object, where) };
  const value = object.value;
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new AspenError("bad_request", `Cannot ${where}: value must be an integer for ${target}`);
  }
  return { key, target: target as Exclude<Compare["target"], "value">, op, value };
}

/** One read of an optimistic transaction: a key and what was seen (shard/occ.ts). */
function parseRead(item: unknown, where: string): ReadRecord {
  const fields = ["key", "modRevision", "version", "revision", "shard"];
  const read = asObject(item, where, "the read", fields);
  const key = stringField(read, "key", where);
  const modRevision = nullableCountField(read, "modRevision", where);
  const version = nullableCountField(read, "version", where);
  if (modRevision === null && version === null) {
    throw new AspenError(
      "bad_request",
      `Cannot ${where}: name the "modRevision" the key had (preferred; 0: absent) or its ` +
        `"version"`,
      { field: "modRevision" },
    );
  }
  const revision = nullableCountField(read, "revision", where);
  const shard = readShardField(read, where);
  return { key, modRevision, version, revision, ...(shard === null ? {} : { shard }) };
}

function parseTxnOp(item: unknown, where: string): TxnOp {
  const object = asObject(item, where, "the operation", ["put", "delete", "get", "range"]);
  const [kind, ...others] = Object.keys(object);
  if (kind === undefined || others.length > 0) {
    throw new AspenError(
      "bad_request",
      `Cannot ${where}: name exactly one of put, delete, get, range`,
    );
  }
  const fields: Record<string, readonly string[]> = {
    put: ["key", "value", "valueBase64", "lease", "prevKv"],
    delete: ["key", "prevKv"],
    get: ["key"],
    range: ["prefix", "start", "end", "limit", "after", "keysOnly", "countOnly", "reverse"],
  };
  const body: JsonObject = asObject(object[kind], where, kind, fields[kind] ?? []);
  switch (kind) {
    case "put":
      return {
        type: "put",
        key: stringField(body, "key", where),
        value: valueField(body, where),
        lease: integerField(body, "lease", where, 0),
        prevKv: booleanField(body, "prevKv", where),
      };
    case "delete":
      return {
        type: "delete",
        key: stringField(body, "key", where),
        prevKv: booleanField(body, "prevKv", where),
      };
    case "get":
      return { type: "get", key: stringField(body, "key", where) };
    default:
      return { type: "range", request: parseTxnRange(body, where) };
  }
}

function parseTxnRange(body: JsonObject, where: string) {
  const range: KeyRange = body.prefix !== undefined
    ? { prefix: stringField(body, "prefix", where) }
    : { start: stringField(body, "start", where), end: stringField(body, "end", where) };
  return {
    range,
    limit: integerField(body, "limit", where, RANGE_LIMIT_DEFAULT),
    after: body.after === undefined ? null : stringField(body, "after", where),
    keysOnly: booleanField(body, "keysOnly", where),
    countOnly: booleanField(body, "countOnly", where),
    reverse: booleanField(body, "reverse", where),
  };
}
