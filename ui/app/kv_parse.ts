/**
 * Checked reading of the key and action responses the console uses (API.md): a scan page, a
 * key, the results of put, delete and leadership transfer.
 */
import type {
  DeleteKvResponse,
  GetKvResponse,
  Kv,
  PutKvResponse,
  RangeResponse,
  TransferLeaderResponse,
} from "../../api/mod.ts";
import { JsonReader } from "./json_read.ts";
import { SCAN_PAGE_KEYS } from "./limits.ts";

/** @throws {JsonFormatError} for a scan page that breaks the contract. */
export function parseRangeResponse(body: unknown): RangeResponse {
  const read: JsonReader = new JsonReader("the key scan");
  const fields = read.object(body, "response");
  const kvs = read.list(fields.kvs, "kvs", SCAN_PAGE_KEYS);
  const more = fields.more;
  if (typeof more !== "boolean") read.fail("more", "is not true or false");
  const next = fields.next === undefined ? undefined : read.text(fields.next, "next");
  if (more && next === undefined) read.fail("next", "is missing although more is true");
  return {
    kvs: kvs.map((kv, i) => parseKv(read, kv, `kvs[${i}]`)),
    count: read.count(fields.count, "count"),
    more,
    ...(next === undefined ? {} : { next }),
  };
}

/** @throws {JsonFormatError} for a key response that breaks the contract. */
export function parseGetKvResponse(body: unknown): GetKvResponse {
  const read: JsonReader = new JsonReader("the key");
  const fields = read.object(body, "response");
  return {
    kv: parseKv(read, fields.kv, "kv"),
    shard: read.count(fields.shard, "shard"),
    revision: read.count(fields.revision, "revision"),
  };
}

/** @throws {JsonFormatError} for a put response that breaks the contract. */
export function parsePutKvResponse(body: unknown): PutKvResponse {
  const read: JsonReader = new JsonReader("the put result");
  const fields = read.object(body, "response");
  return {
    shard: read.count(fields.shard, "shard"),
    revision: read.count(fields.revision, "revision"),
    version: read.count(fields.version, "version"),
  };
}

/** @throws {JsonFormatError} for a delete response that breaks the contract. */
export function parseDeleteKvResponse(body: unknown): DeleteKvResponse {
  const read: JsonReader = new JsonReader("the delete result");
  const fields = read.object(body, "response");
  const deleted = read.count(fields.deleted, "deleted");
  if (deleted !== 0 && deleted !== 1) read.fail("deleted", `is ${deleted} but must be 0 or 1`);
  return {
    deleted,
    shard: read.count(fields.shard, "shard"),
    revision: read.count(fields.revision, "revision"),
  };
}

/** @throws {JsonFormatError} for a transfer response that breaks the contract. */
export function parseTransferLeaderResponse(body: unknown): TransferLeaderResponse {
  const read: JsonReader = new JsonReader("the leadership transfer result");
  const fields = read.object(body, "response");
  return {
    shard: read.count(fields.shard, "shard"),
    leader: read.count(fields.leader, "leader"),
  };
}

function parseKv(read: JsonReader, value: unknown, where: string): Kv {
  const fields = read.object(value, where);
  return {
    key: read.text(fields.key, `${where}.key`),
    value: read.text(fields.value, `${where}.value`),
    version: read.count(fields.version, `${where}.version`),
    createRevision: read.count(fields.createRevision, `${where}.createRevision`),
    modRevision: read.count(fields.modRevision, `${where}.modRevision`),
    lease: read.count(fields.lease, `${where}.lease`),
  };
}
