/**
 * The app's single error handler: an expected error keeps its code and status, an unexpected
 * one becomes a 500 with a request id and no internals, and an assertion failure (a bug) is
 * also handed to `onBug`, which ends the process in a node (STYLE §6): a bug is never answered
 * with a 500 while the node carries on.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import type { Hono } from "hono";
import { AssertionError } from "../../raft/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import { createApp } from "./app.ts";
import { stubAppOptions } from "./_stub_app_options.ts";

function appThrowing(error: Error, bugs: AssertionError[]): Hono {
  return createApp({
    ...stubAppOptions(),
    extend: (app) => {
      app.get("/v1/test/throw", () => {
        throw error;
      });
    },
    onBug: (bug) => bugs.push(bug),
  });
}

Deno.test("createApp() answers errors by kind and hands bugs to onBug", async (t) => {
  await t.step("an expected error keeps its code and status", async () => {
    const bugs: AssertionError[] = [];
    const app = appThrowing(new AspenError("conflict", "Cannot commit: k moved"), bugs);
    const response = await app.request("/v1/test/throw");
    equal(response.status, 409);
    deepEqual(await response.json(), {
      error: { code: "conflict", message: "Cannot commit: k moved" },
    });
    equal(bugs.length, 0);
  });
  await t.step("an unexpected error is a 500 with a request id", async () => {
    const bugs: AssertionError[] = [];
    const response = await appThrowing(new TypeError("x is undefined"), bugs)
      .request("/v1/test/throw");
    equal(response.status, 500);
    const body = await response.json();
    equal(body.error.code, "internal");
    match(body.error.message, /request id 1-1/);
    equal(bugs.length, 0, "not every unexpected error is a bug of ours");
  });
  await t.step("an assertion failure is answered 500 and handed to onBug", async () => {
    const bugs: AssertionError[] = [];
    const bug = new AssertionError("replica loop re-entered");
    const response = await appThrowing(bug, bugs).request("/v1/test/throw");
    equal(response.status, 500);
    equal((await response.json()).error.code, "internal");
    deepEqual(bugs, [bug]);
  });
});

Deno.test("createApp() never answers wrong_shard: it is keys_moving with Retry-After", async () => {
  const refusal = new AspenError("wrong_shard", 'Cannot serve key "k" on shard 1: it moved', {
    shard: 1,
    key: "k",
    numShards: 3,
  });
  const response = await appThrowing(refusal, []).request("/v1/test/throw");
  equal(response.status, 503);
  equal(response.headers.get("Retry-After"), "1");
  const body = await response.json();
  equal(body.error.code, "keys_moving");
  equal(body.error.shard, 1);
  equal(body.error.key, "k");
  equal(body.error.retryAfterMs, 1_000);
  match(body.error.message, /shard 1 is moving keys/);
});
