/**
 * `aspen tenant` against a fake node: create sends the name and shard and returns at once when
 * the node answers 201 (the move done), move follows the move's progress until it is done,
 * list prints a table, the node's 4xx reaches the user with its message, and a bad flag is a
 * usage error naming it before any request.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import type { ShardMoveStatus, TenantMoveResponse } from "../api/mod.ts";
import { captureCliIo } from "./_capture_io.ts";
import { runCli } from "./run_cli.ts";

function move(phase: ShardMoveStatus["phase"], isNew: boolean): ShardMoveStatus {
  return {
    fromCount: 2,
    toCount: 2,
    phase,
    startedAtMs: 0,
    updatedAtMs: 0,
    sources: [{ shard: 0, keysTotal: 10, bytesTotal: 400, keysCopied: 10, bytesCopied: 400 }],
    tenant: { name: "acme", to: 1, isNew },
  };
}

/** A node answering the tenant routes; it records each request it got. */
async function withFakeNode(
  run: (endpoint: string, requests: string[]) => Promise<void>,
): Promise<void> {
  const requests: string[] = [];
  let polls = 0;
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      const body = request.method === "POST" ? await request.text() : "";
      requests.push(`${request.method} ${path} ${body}`.trim());
      if (path === "/v1/tenants" && request.method === "POST") {
        const answer: TenantMoveResponse = { name: "acme", shard: 1, move: move("done", true) };
        return Response.json(answer, { status: 201 });
      }
      if (path === "/v1/tenants/acme/move") {
        const answer: TenantMoveResponse = { name: "acme", shard: 1, move: move("copy", false) };
        return Response.json(answer, { status: 202 });
      }
      if (path === "/v1/tenants/zeta/move") {
        return Response.json({
          error: { code: "tenant_not_found", message: 'Cannot move tenant "zeta": no such tenant' },
        }, { status: 404 });
      }
      if (path === "/v1/shards/moves") {
        const phases = ["copy", "fence", "done"] as const;
        return Response.json({ move: move(phases[Math.min(polls++, 2)]!, false) });
      }
      if (path === "/v1/tenants") {
        return Response.json({
          epoch: 4,
          tenants: [{ name: "acme", shard: 1, keys: 12, bytes: 2048 }],
        });
      }
      return Response.json({ error: { code: "not_found", message: path } }, { status: 404 });
    },
  );
  try {
    await run(`http://127.0.0.1:${server.addr.port}`, requests);
  } finally {
    await server.shutdown();
  }
}

async function aspen(args: string[]) {
  const captured = captureCliIo({ env: { ASPEN_TOKEN: "t" } });
  const code = await runCli(args, captured.io);
  return { code, out: captured.out(), err: captured.err() };
}

Deno.test("tenant create, move and list talk to the tenant routes", async () => {
  await withFakeNode(async (url, requests) => {
    const created = await aspen(["tenant", "create", "acme", "--shard", "1", "--endpoints", url]);
    equal(created.code, 0, created.err);
    equal(created.out, 'tenant "acme" is on shard 1\n');
    deepEqual(requests, ['POST /v1/tenants {"name":"acme","shard":1}']);
    const moved = await aspen(["tenant", "move", "acme", "--to", "1", "--endpoints", url]);
    equal(moved.code, 0, moved.err);
    match(moved.err, /tenant "acme" -> shard 1, copy: shard 0 10\/10 keys/);
    match(moved.err, /tenant "acme" -> shard 1, done/);
    equal(moved.out, 'tenant "acme" is on shard 1\n');
    equal(requests[1], 'POST /v1/tenants/acme/move {"to":1}');
    const listed = await aspen(["tenant", "list", "--endpoints", url]);
    equal(listed.code, 0, listed.err);
    equal(listed.out, "TENANT  SHARD  KEYS  BYTES\nacme    1      12    2.0 KiB\n");
  });
});

Deno.test("tenant errors: the node's refusal, and bad flags before any request", async () => {
  await withFakeNode(async (url, requests) => {
    const unknown = await aspen(["tenant", "move", "zeta", "--to", "1", "--endpoints", url]);
    equal(unknown.code, 1);
    match(unknown.err, /no such tenant/);
    const count = requests.length;
    const cases: [string[], RegExp][] = [
      [["tenant", "move", "acme"], /--to/],
      [["tenant", "move", "acme", "--to", "x"], /flag --to is "x"/],
      [["tenant", "create", "acme", "--shard", "-1"], /--shard/],
      [["tenant", "create", "acme", "--to", "1"], /flag --to does not apply to tenant create/],
      [["tenant", "create"], /missing <name>/],
      [["tenant", "rename"], /unknown action "rename"/],
    ];
    for (const [args, message] of cases) {
      const result = await aspen([...args, "--endpoints", url]);
      equal(result.code, 2, args.join(" "));
      match(result.err, message);
    }
    equal(requests.length, count, "no bad command reached the node");
  });
});
