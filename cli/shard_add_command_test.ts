/**
 * `aspen shard add` against a fake node: run while a move runs, it follows that move (409
 * `move_in_progress` is not an error then) and prints its progress until the move is done;
 * a dry run prints what would move; the progress line estimates the time left while copying.
 */
import { equal, match } from "node:assert/strict";
import type { ShardMoveStatus } from "../api/mod.ts";
import { captureCliIo } from "./_capture_io.ts";
import { runCli } from "./run_cli.ts";
import { progressLine } from "./shard_add_command.ts";

function move(phase: ShardMoveStatus["phase"], copied: number): ShardMoveStatus {
  return {
    fromCount: 2,
    toCount: 3,
    phase,
    startedAtMs: 0,
    updatedAtMs: 0,
    sources: [0, 1].map((shard) => ({
      shard,
      keysTotal: 100,
      bytesTotal: 4_000,
      keysCopied: copied,
      bytesCopied: copied * 40,
    })),
  };
}

/** A node that answers the shard routes from `moves` (one per poll, the last one repeated). */
async function withFakeNode(
  moves: readonly ShardMoveStatus[],
  run: (endpoint: string) => Promise<void>,
): Promise<void> {
  let polls = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (request.method === "POST" && path === "/v1/shards") {
      return Response.json({
        error: { code: "move_in_progress", message: "Cannot add shards: a move is running" },
      }, { status: 409 });
    }
    if (path === "/v1/shards/moves") {
      return Response.json({ move: moves[Math.min(polls++, moves.length - 1)] });
    }
    return Response.json({ error: { code: "not_found", message: path } }, { status: 404 });
  });
  try {
    await run(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("shard add follows a move that runs already until it is done", async () => {
  await withFakeNode([move("copy", 10), move("copy", 60), move("done", 100)], async (url) => {
    const captured = captureCliIo({ env: { ASPEN_TOKEN: "t" } });
    const code = await runCli(["shard", "add", "--endpoints", url], captured.io);
    equal(code, 0, captured.err());
    match(captured.err(), /a move is already running: following it/);
    match(captured.err(), /2 -> 3 shards, copy: shard 0 10\/100 keys/);
    match(captured.err(), /2 -> 3 shards, done/);
    equal(captured.out(), "the cluster has 3 shards (was 2)\n");
  });
});

Deno.test("the progress line estimates the time left while copying", () => {
  match(progressLine(move("copy", 25), 10_000), /about 30 s left$/);
  equal(progressLine(move("fence", 100), 10_000).includes("left"), false);
  match(progressLine(move("copy", 0), 10_000), /shard 1 0\/100 keys 0 B\/3\.9 KiB$/);
});
