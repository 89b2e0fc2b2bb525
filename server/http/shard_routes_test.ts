/**
 * The shard move routes (`POST /v1/shards`, `GET /v1/shards/moves`, `GET /v1/shards`): bad
 * bodies are 400 naming the problem and never reach the node, a started move is 202, a dry run
 * 200, and a move that runs already is 409 `move_in_progress`.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import type { AddShardsResponse } from "../../api/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import { createApp } from "./app.ts";
import { stubAppOptions } from "./_stub_app_options.ts";

function appWithMoves(added: { count: number; dryRun: boolean }[], isRunning = false) {
  return createApp({
    ...stubAppOptions(),
    shardMoves: {
      add: (request) => {
        if (isRunning) {
          return Promise.reject(new AspenError("move_in_progress", "Cannot add shards: running"));
        }
        added.push(request);
        const answer: AddShardsResponse = {
          dryRun: request.dryRun,
          fromCount: 2,
          toCount: 2 + request.count,
          sources: [],
          move: null,
        };
        return Promise.resolve(answer);
      },
      move: () => Promise.resolve(null),
      sizes: () => Promise.resolve({ epoch: 1, numShards: 2, shards: [] }),
    },
  });
}

function post(body: string) {
  return { method: "POST", body, headers: { "content-type": "application/json" } };
}

Deno.test("POST /v1/shards checks its body and answers by outcome", async () => {
  const added: { count: number; dryRun: boolean }[] = [];
  const app = appWithMoves(added);
  const bad: [string, RegExp][] = [
    ["", /the body must be/],
    ["[1]", /the body must be/],
    ['{"count": 0}', /"count" must be an integer of at least 1/],
    ['{"count": 1.5}', /"count" must be an integer/],
    ['{"count": "2"}', /"count" must be an integer/],
    ['{"count": 1, "dryRun": "yes"}', /"dryRun" must be a boolean/],
    ['{"count": 1, "shards": 3}', /unknown field "shards"/],
  ];
  for (const [body, message] of bad) {
    const response = await app.request("/v1/shards", post(body));
    equal(response.status, 400, body);
    const error = (await response.json()).error;
    equal(error.code, "bad_request");
    match(error.message, message);
  }
  equal(added.length, 0, "no bad body reached the node");
  equal((await app.request("/v1/shards", post('{"count": 2}'))).status, 202);
  equal((await app.request("/v1/shards", post('{"count": 1, "dryRun": true}'))).status, 200);
  deepEqual(added, [{ count: 2, dryRun: false }, { count: 1, dryRun: true }]);
  const running = await appWithMoves([], true).request("/v1/shards", post('{"count": 1}'));
  equal(running.status, 409);
  equal((await running.json()).error.code, "move_in_progress");
  deepEqual(await (await app.request("/v1/shards/moves")).json(), { move: null });
  equal((await (await app.request("/v1/shards")).json()).numShards, 2);
});
