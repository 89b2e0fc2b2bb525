/**
 * `POST /v1/cluster/nodes/{id}/remove` and `/replace` at the HTTP edge, in process with a stub
 * node: a bad id is a 400 naming it (the node is never asked), the node's refusals keep their
 * codes and statuses (409 insufficient_capacity, 404 node_not_found), and an accepted call is a
 * 202 with the node's answer.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { createApp } from "./app.ts";
import { stubAppOptions } from "./_stub_app_options.ts";

function appWith(remove: (node: number, mode: "remove" | "replace") => Promise<unknown>) {
  const calls: [number, string][] = [];
  const app = createApp({
    ...stubAppOptions(),
    members: {
      remove: (node, mode) => {
        calls.push([node, mode]);
        return remove(node, mode) as never;
      },
      join: () => Promise.reject(new AspenError("conflict", "no join here")),
    },
  });
  return { app, calls };
}

Deno.test("remove and replace answer 202 with the node's answer", async () => {
  const { app, calls } = appWith((node) =>
    Promise.resolve({ node, state: "draining", previousState: "active" })
  );
  const removed = await app.request("/v1/cluster/nodes/4/remove", { method: "POST" });
  equal(removed.status, 202);
  deepEqual(await removed.json(), { node: 4, state: "draining", previousState: "active" });
  const replaced = await app.request("/v1/cluster/nodes/12/replace", { method: "POST" });
  equal(replaced.status, 202);
  deepEqual(calls, [[4, "remove"], [12, "replace"]]);
});

Deno.test("a bad node id is a 400 naming it, and the node is not asked", async (t) => {
  const { app, calls } = appWith(() => Promise.reject(new Error("not asked")));
  for (const id of ["0", "-1", "abc", "1.5", "65536", "0012"]) {
    await t.step(id, async () => {
      const response = await app.request(`/v1/cluster/nodes/${id}/remove`, { method: "POST" });
      equal(response.status, 400);
      const body = await response.json() as { error: { code: string; message: string } };
      equal(body.error.code, "bad_request");
      match(body.error.message, new RegExp(`"${id.replace(".", "\\.")}"`));
    });
  }
  deepEqual(calls, []);
});

Deno.test("the node's refusals keep their codes and statuses", async () => {
  const { app } = appWith((node) =>
    Promise.reject(
      node === 3
        ? new AspenError("insufficient_capacity", "Cannot remove node 3: 2 healthy node(s)")
        : new AspenError("node_not_found", `Cannot remove node ${node}: it is not a member`),
    )
  );
  const full = await app.request("/v1/cluster/nodes/3/remove", { method: "POST" });
  equal(full.status, 409);
  equal((await full.json() as { error: { code: string } }).error.code, "insufficient_capacity");
  const unknown = await app.request("/v1/cluster/nodes/9/remove", { method: "POST" });
  equal(unknown.status, 404);
  equal((await unknown.json() as { error: { code: string } }).error.code, "node_not_found");
});
