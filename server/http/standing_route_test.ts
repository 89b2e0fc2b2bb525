/**
 * The standing route (server/node/standing.ts answers it): a question proven with the cluster
 * secret is answered without any token (the node asking holds none), an unproven or malformed
 * one is refused, and every other route still needs a token.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import type { MemberState } from "../../api/mod.ts";
import { answerProof, answerStanding, questionProof } from "../node/mod.ts";
import { createApp } from "./app.ts";
import { stubAppOptions } from "./_stub_app_options.ts";

const SECRET = "11".repeat(32);
const OTHER_SECRET = "22".repeat(32);
const NONCE = "ab".repeat(32);

/** A member's app (tokens on: every other route needs one) answering from `states`. */
function memberApp(states: Readonly<Record<number, MemberState>>) {
  return createApp({
    ...stubAppOptions(),
    tokens: {
      verify: () => Promise.resolve({ kind: "unknown" }),
      create: () => Promise.reject(new Error("not in this test")),
      list: () => Promise.resolve([]),
      revoke: () => Promise.reject(new Error("not in this test")),
    },
    members: {
      remove: () => Promise.reject(new Error("not in this test")),
      join: () => Promise.reject(new Error("not in this test")),
      standing: (node, body) =>
        answerStanding(body, node, {
          secret: SECRET,
          stateOf: (id) => Promise.resolve(states[id] ?? null),
        }),
    },
  });
}

function ask(app: ReturnType<typeof memberApp>, node: number, body: unknown) {
  return app.request(`/v1/cluster/nodes/${node}/standing`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("the standing route answers a proven question without a token", async () => {
  const app = memberApp({ 4: "removed" });
  const response = await ask(app, 4, { nonce: NONCE, proof: questionProof(SECRET, 4, NONCE) });
  equal(response.status, 200);
  deepEqual(await response.json(), {
    node: 4,
    state: "removed",
    proof: answerProof(SECRET, 4, NONCE, "removed"),
  });
  const unknown = await ask(app, 9, { nonce: NONCE, proof: questionProof(SECRET, 9, NONCE) });
  deepEqual((await unknown.json() as { state: unknown }).state, null);
  // Every other route still needs a token.
  equal((await app.request("/v1/cluster/status")).status, 401);
});

Deno.test("the standing route refuses unproven and malformed questions", async (t) => {
  const app = memberApp({ 4: "removed" });
  const cases: [string, number, unknown, number, RegExp][] = [
    [
      "another secret",
      4,
      { nonce: NONCE, proof: questionProof(OTHER_SECRET, 4, NONCE) },
      401,
      /secret/,
    ],
    [
      "another node's proof",
      4,
      { nonce: NONCE, proof: questionProof(SECRET, 3, NONCE) },
      401,
      /secret/,
    ],
    ["no proof", 4, { nonce: NONCE }, 400, /"proof"/],
    ["a short nonce", 4, { nonce: "ab", proof: questionProof(SECRET, 4, "ab") }, 400, /"nonce"/],
    ["an unknown field", 4, { nonce: NONCE, proof: "00".repeat(32), extra: 1 }, 400, /extra/],
    ["a bad id", 0, { nonce: NONCE, proof: questionProof(SECRET, 0, NONCE) }, 400, /"0"/],
  ];
  for (const [name, node, body, status, message] of cases) {
    await t.step(name, async () => {
      const response = await ask(app, node, body);
      equal(response.status, status);
      match((await response.json() as { error: { message: string } }).error.message, message);
    });
  }
});
