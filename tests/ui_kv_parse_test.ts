/**
 * The checked readers of key and action responses (ui/app/kv_parse.ts): bodies shaped as in
 * API.md come back equal; each kind of contract break is refused with the field named.
 */
import { deepEqual, throws } from "node:assert/strict";
import { JsonFormatError } from "../ui/app/json_read.ts";
import {
  parseDeleteKvResponse,
  parseGetKvResponse,
  parsePutKvResponse,
  parseRangeResponse,
  parseTransferLeaderResponse,
} from "../ui/app/kv_parse.ts";

const KV = {
  key: "users/42",
  value: "{}",
  version: 3,
  createRevision: 10,
  modRevision: 17,
  lease: 0,
};

Deno.test("the key readers accept API.md's shapes unchanged", () => {
  const page = { kvs: [KV], count: 9, more: true, next: "users/42" };
  deepEqual(parseRangeResponse(page), page);
  deepEqual(parseRangeResponse({ kvs: [], count: 0, more: false }), {
    kvs: [],
    count: 0,
    more: false,
  });
  deepEqual(parseGetKvResponse({ kv: KV, shard: 2, revision: 40 }), {
    kv: KV,
    shard: 2,
    revision: 40,
  });
  deepEqual(parsePutKvResponse({ shard: 1, revision: 5, version: 1 }), {
    shard: 1,
    revision: 5,
    version: 1,
  });
  deepEqual(parseDeleteKvResponse({ deleted: 1, shard: 0, revision: 6 }), {
    deleted: 1,
    shard: 0,
    revision: 6,
  });
  deepEqual(parseTransferLeaderResponse({ shard: 3, leader: 2 }), { shard: 3, leader: 2 });
});

Deno.test("the key readers name the field that breaks the contract", async (t) => {
  const cases: [string, () => unknown, RegExp][] = [
    ["a page without more", () => parseRangeResponse({ kvs: [], count: 0 }), /more is not/],
    [
      "more without a cursor",
      () => parseRangeResponse({ kvs: [], count: 1, more: true }),
      /next is missing/,
    ],
    [
      "a kv without a value",
      () => parseRangeResponse({ kvs: [{ ...KV, value: 4 }], count: 1, more: false }),
      /kvs\[0\]\.value is not a string/,
    ],
    [
      "a negative version",
      () => parseGetKvResponse({ kv: { ...KV, version: -1 }, shard: 0, revision: 1 }),
      /kv\.version is -1/,
    ],
    [
      "deleted 2",
      () => parseDeleteKvResponse({ deleted: 2, shard: 0, revision: 1 }),
      /deleted is 2 but must be 0 or 1/,
    ],
    ["a list body", () => parsePutKvResponse([]), /put result: response is not an object/],
    ["no leader", () => parseTransferLeaderResponse({ shard: 1 }), /leader is undefined/],
  ];
  for (const [name, parse, expected] of cases) {
    await t.step(name, () => {
      throws(parse, (error: unknown) => {
        return error instanceof JsonFormatError && expected.test(error.message);
      });
    });
  }
});
