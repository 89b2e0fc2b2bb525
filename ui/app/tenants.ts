/**
 * The checked reading of a `GET /v1/tenants` answer for the shards page's tenants table.
 */
import type { TenantsResponse } from "../../api/mod.ts";
import { JsonReader } from "./json_read.ts";
import { TENANTS_LISTED_MAX } from "./limits.ts";

/** @throws {JsonFormatError} for a tenants answer that breaks the contract. */
export function parseTenantsResponse(body: unknown): TenantsResponse {
  const read = new JsonReader("the tenant list");
  const fields = read.object(body, "response");
  const tenants = read.list(fields.tenants, "tenants", TENANTS_LISTED_MAX);
  return {
    epoch: read.count(fields.epoch, "epoch"),
    tenants: tenants.map((tenant, i) => {
      const item = read.object(tenant, `tenants[${i}]`);
      return {
        name: read.text(item.name, `tenants[${i}].name`),
        shard: read.count(item.shard, `tenants[${i}].shard`),
        keys: read.count(item.keys, `tenants[${i}].keys`),
        bytes: read.count(item.bytes, `tenants[${i}].bytes`),
      };
    }),
  };
}
