/**
 * `aspen shard add [--count N] [--dry-run]`: grows the cluster by N shards while it serves
 * (POST /v1/shards), shows the move's progress per source shard (keys and bytes copied, an
 * estimate of the time left) and returns once the new shard map is in force. Interrupted and
 * run again, it attaches to the move that runs (which goes on without it).
 */
import {
  type AddShardsResponse,
  ApiError,
  type AspenClient,
  type ShardMovesResponse,
  type ShardMoveStatus,
} from "../api/mod.ts";
import type { CliIo, ParsedArgs } from "./command.ts";
import { clientFrom, formatTable, integerFlag, onlyFlags } from "./client_commands.ts";

/** How often `shard add` asks for the move's progress. */
export const SHARD_ADD_POLL_MS = 500;
/** The most shards one `shard add` asks for (the server checks the cluster's limit). */
export const SHARD_ADD_COUNT_MAX = 1_024;

/** Runs `aspen shard add`. */
export async function shardAdd(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "shard add", ["count", "dry-run"]);
  const count = integerFlag(args, "count", 1, SHARD_ADD_COUNT_MAX) ?? 1;
  const dryRun = args.values["dry-run"] === true;
  const client = await clientFrom(args, io);
  let started: AddShardsResponse | null = null;
  try {
    started = await client.request<AddShardsResponse>({
      method: "POST",
      path: "/v1/shards",
      body: { count, dryRun },
    });
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "move_in_progress") || dryRun) throw error;
    io.stderr("a move is already running: following it\n");
  }
  if (started !== null && started.dryRun) {
    io.stdout(args.values.json === true ? JSON.stringify(started) + "\n" : formatDryRun(started));
    return 0;
  }
  const done = await followMove(client, io);
  io.stdout(
    args.values.json === true
      ? JSON.stringify(done) + "\n"
      : `the cluster has ${done.toCount} shards (was ${done.fromCount})\n`,
  );
  return 0;
}

function formatDryRun(answer: AddShardsResponse): string {
  const rows = answer.sources.map((source) => [
    source.shard,
    source.keys,
    formatBytes(source.bytes),
  ]);
  return `dry run: ${answer.fromCount} -> ${answer.toCount} shards; nothing changed\n` +
    formatTable(["SOURCE", "KEYS TO MOVE", "BYTES TO MOVE"], rows);
}

/**
 * Polls the move (a shard add or a tenant move) until it is done, printing a line when its
 * progress changes.
 */
export async function followMove(client: AspenClient, io: CliIo): Promise<ShardMoveStatus> {
  let last = "";
  const startedMs = io.monotonicMs();
  for (;;) {
    const answer = await client.request<ShardMovesResponse>({
      method: "GET",
      path: "/v1/shards/moves",
    });
    const move = answer.move;
    if (move !== null) {
      const line = progressLine(move, io.monotonicMs() - startedMs);
      if (line !== last) io.stderr(line + "\n");
      last = line;
      if (move.phase === "done") return move;
    }
    if (io.shutdown.aborted) throw new ApiError({ code: "client_timeout", httpStatus: 0 }, "stop");
    await new Promise((resolve) => setTimeout(resolve, SHARD_ADD_POLL_MS));
  }
}

/** One line of progress: the phase, each source's copy, and the time left while copying. */
export function progressLine(move: ShardMoveStatus, elapsedMs: number): string {
  const copied = move.sources.reduce((sum, source) => sum + source.bytesCopied, 0);
  const total = move.sources.reduce((sum, source) => sum + source.bytesTotal, 0);
  const parts = move.sources.map((source) =>
    `shard ${source.shard} ${source.keysCopied}/${source.keysTotal} keys ` +
    `${formatBytes(source.bytesCopied)}/${formatBytes(source.bytesTotal)}`
  );
  const isCopying = move.phase === "copy" || move.phase === "delta";
  const leftMs = isCopying && copied > 0 && total > copied
    ? Math.round(elapsedMs * (total - copied) / copied)
    : null;
  const eta = leftMs === null ? "" : `, about ${Math.ceil(leftMs / 1000)} s left`;
  const what = move.tenant === undefined
    ? `${move.fromCount} -> ${move.toCount} shards`
    : `tenant "${move.tenant.name}" -> shard ${move.tenant.to}`;
  return `${what}, ${move.phase}: ${parts.join("; ")}${eta}`;
}

/** Bytes as B, KiB or MiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
