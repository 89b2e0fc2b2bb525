/**
 * isDeleteOnly() decides which commands a node short of disk space still accepts: one case per
 * command type, and transactions with and without a put in either branch.
 */
import { equal } from "node:assert/strict";
import { type Command, isDeleteOnly } from "./command.ts";

const RANGE = { start: "a", end: "b" };

Deno.test("isDeleteOnly() accepts deletes and refuses anything that writes data", async (t) => {
  const put = { type: "put", key: "k", value: "v", lease: 0, prevKv: false } as const;
  const remove = { type: "delete", key: "k", prevKv: false } as const;
  const cases: [string, Command, boolean][] = [
    ["put", put, false],
    ["delete", remove, true],
    ["delete range", { type: "deleteRange", range: RANGE }, true],
    ["multi-put", { type: "multiPut", puts: [{ key: "k", value: "v", lease: 0 }] }, false],
    ["txn of deletes and gets", {
      type: "txn",
      compare: [],
      success: [remove, { type: "get", key: "k" }],
      failure: [],
    }, true],
    ["txn with a put on failure", {
      type: "txn",
      compare: [],
      success: [remove],
      failure: [put],
    }, false],
    ["optimistic txn of deletes", {
      type: "optimisticTxn",
      reads: [{ key: "k", modRevision: 3, version: 1, revision: null }],
      writes: [{ op: "delete", key: "k" }],
    }, true],
    ["optimistic txn with a set", {
      type: "optimisticTxn",
      reads: [],
      writes: [{ op: "delete", key: "k" }, { op: "set", key: "j", value: "v" }],
    }, false],
    ["lease grant", { type: "leaseGrant", ttlSeconds: 10 }, false],
    ["lease revoke", { type: "leaseRevoke", id: 1 }, true],
    ["lease expiry (internal)", { type: "leaseExpire", ids: [1] }, false],
    ["meta (internal)", { type: "meta", name: "n", value: "v" }, false],
    ["noop (internal)", { type: "noop" }, false],
  ];
  for (const [name, command, expected] of cases) {
    await t.step(name, () => equal(isDeleteOnly(command), expected));
  }
});
