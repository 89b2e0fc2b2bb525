/**
 * `aspen shard add` against a fake node: run while a move runs, it follows that move (409
 * `move_in_progress` is not an error then) and prints its progress until the move is done;
 * `--follow` follows without starting one; a dry run prints what would move; the progress line
 * estimates the time left while copying. A real `aspen` process interrupted with SIGINT while
 * it follows exits 130 and says that the move goes on and how to follow it.
 */
import { equal, match } from "node:assert/strict";
import type { ShardMoveStatus } from "../api/mod.ts";
import { captureCliIo } from "./_capture_io.ts";
import { EXIT_INTERRUPTED, EXIT_USAGE } from "./command.ts";
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

/**
 * A node that answers the shard routes from `moves` (one per poll, the last one repeated); a
 * POST starts a move when `isStarting`, else it is refused (one runs); `posts` counts them.
 */
async function withFakeNode(
  moves: readonly ShardMoveStatus[],
  run: (endpoint: string, posts: { count: number }) => Promise<void>,
  isStarting = false,
): Promise<void> {
  let polls = 0;
  const posts = { count: 0 };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (request.method === "POST" && path === "/v1/shards") {
      posts.count++;
      if (isStarting) {
        const first = moves[0]!;
        const body = { dryRun: false, fromCount: 2, toCount: 3, sources: [], move: first };
        return Response.json(body, { status: 202 });
      }
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
    await run(`http://127.0.0.1:${server.addr.port}`, posts);
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

Deno.test("shard add --follow follows the move and starts none; it takes no --count", async () => {
  await withFakeNode([move("delta", 100), move("done", 100)], async (url, posts) => {
    const captured = captureCliIo({ env: { ASPEN_TOKEN: "t" } });
    const code = await runCli(["shard", "add", "--follow", "--endpoints", url], captured.io);
    equal(code, 0, captured.err());
    equal(posts.count, 0, "no move was asked for");
    match(captured.err(), /2 -> 3 shards, delta/);
    equal(captured.out(), "the cluster has 3 shards (was 2)\n");
    const usage = captureCliIo({ env: { ASPEN_TOKEN: "t" } });
    const refused = await runCli(
      ["shard", "add", "--follow", "--count", "2", "--endpoints", url],
      usage.io,
    );
    equal(refused, EXIT_USAGE);
    match(usage.err(), /flag --follow starts no move: it takes no --count/);
  });
});

Deno.test("a real shard add process stopped by SIGINT exits 130: the move goes on", async () => {
  await withFakeNode([move("copy", 10)], async (url, posts) => {
    const main = new URL("../main.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "shard", "add", "--endpoints", url],
      env: { ASPEN_TOKEN: "t", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    // Interrupted once it follows the move it started (its first progress line is out).
    while (!text.includes("2 -> 3 shards, copy")) {
      const chunk = await stderr.read();
      if (chunk.done) break;
      text += chunk.value;
    }
    child.kill("SIGINT");
    for (let chunk = await stderr.read(); !chunk.done; chunk = await stderr.read()) {
      text += chunk.value;
    }
    const status = await child.status;
    await child.stdout.cancel();
    equal(posts.count, 1);
    equal(status.code, EXIT_INTERRUPTED, text);
    match(text, /interrupted: the move from 2 to 3 shards \(phase copy\) goes on in the cluster/);
    match(text, /'aspen shard add --follow' shows its progress again/);
  }, true);
});
