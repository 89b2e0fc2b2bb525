/**
 * `aspen shard add [--count N] [--dry-run] [--follow]`: grows the cluster by N shards while it
 * serves (POST /v1/shards), shows the move's progress per source shard (keys and bytes copied,
 * an estimate of the time left) and returns once the new shard map is in force. The move runs
 * in the cluster, not in this process: interrupted (SIGINT, Ctrl-C), the command says that the
 * move goes on and how to follow it, and exits 130. Run again while the move runs, or with
 * `--follow`, it attaches to the move and shows its progress.
 */
import {
  type AddShardsResponse,
  ApiError,
  type AspenClient,
  type ShardMovesResponse,
  type ShardMoveStatus,
} from "../api/mod.ts";
import { type CliIo, EXIT_INTERRUPTED, type ParsedArgs, UsageError } from "./command.ts";
import { clientFrom, formatTable, integerFlag, onlyFlags } from "./client_commands.ts";

/** How often `shard add` asks for the move's progress. */
export const SHARD_ADD_POLL_MS = 500;
/** The most shards one `shard add` asks for (the server checks the cluster's limit). */
export const SHARD_ADD_COUNT_MAX = 1_024;

/** What a wait for the cluster ended with: its answer, or the user's interruption. */
type Interruptible<T> = { readonly value: T } | "interrupted";

/** Runs `aspen shard add`. */
export async function shardAdd(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "shard add", ["count", "dry-run", "follow"]);
  const count = integerFlag(args, "count", 1, SHARD_ADD_COUNT_MAX) ?? 1;
  const dryRun = args.values["dry-run"] === true;
  const isFollowing = args.values.follow === true;
  if (isFollowing && (dryRun || args.values.count !== undefined)) {
    const flag = dryRun ? "--dry-run" : "--count";
    throw new UsageError(`flag --follow starts no move: it takes no ${flag}`);
  }
  const client = await clientFrom(args, io);
  let started: AddShardsResponse | null = null;
  if (!isFollowing) {
    const answer = await interruptible(io, startMove(client, io, { count, dryRun }));
    if (answer === "interrupted") {
      io.stderr(
        "interrupted before the node answered: the move may have started, and if so it goes " +
          "on in the cluster; 'aspen shard add --follow' shows it\n",
      );
      return EXIT_INTERRUPTED;
    }
    started = answer.value;
  }
  if (started !== null && started.dryRun) {
    io.stdout(args.values.json === true ? JSON.stringify(started) + "\n" : formatDryRun(started));
    return 0;
  }
  const done = await followMove(client, io);
  if (done === "interrupted") return EXIT_INTERRUPTED;
  if (done === null) {
    io.stderr("no shard move has run in this cluster\n");
    return 0;
  }
  io.stdout(
    args.values.json === true
      ? JSON.stringify(done) + "\n"
      : `the cluster has ${done.toCount} shards (was ${done.fromCount})\n`,
  );
  return 0;
}

/** Starts the move (or the dry run); null when one runs already (then it is followed). */
async function startMove(
  client: AspenClient,
  io: CliIo,
  request: { readonly count: number; readonly dryRun: boolean },
): Promise<AddShardsResponse | null> {
  try {
    return await client.request<AddShardsResponse>({
      method: "POST",
      path: "/v1/shards",
      body: request,
    });
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "move_in_progress") || request.dryRun) {
      throw error;
    }
    io.stderr("a move is already running: following it\n");
    return null;
  }
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
/**
 * Polls the move (a shard add or a tenant move) until it is done, printing a line when its
 * progress changes; null when no move ever ran. Interrupted, it says that the move goes on and
 * how to follow it.
 */
export async function followMove(
  client: AspenClient,
  io: CliIo,
): Promise<ShardMoveStatus | null | "interrupted"> {
  let last = "";
  let move: ShardMoveStatus | null = null;
  const startedMs = io.monotonicMs();
  for (;;) {
    const answer = await interruptible(
      io,
      client.request<ShardMovesResponse>({ method: "GET", path: "/v1/shards/moves" }),
    );
    if (answer === "interrupted") break;
    move = answer.value.move;
    if (move === null) return null;
    const line = progressLine(move, io.monotonicMs() - startedMs);
    if (line !== last) io.stderr(line + "\n");
    last = line;
    if (move.phase === "done") return move;
    const paused = await interruptible(io, sleep(SHARD_ADD_POLL_MS, io.shutdown));
    if (paused === "interrupted") break;
  }
  const what = move === null
    ? "the move"
    : `the move from ${move.fromCount} to ${move.toCount} shards (phase ${move.phase})`;
  io.stderr(
    `interrupted: ${what} goes on in the cluster; 'aspen shard add --follow' shows its ` +
      "progress again\n",
  );
  return "interrupted";
}

/** `work`'s result, or "interrupted" as soon as the process is asked to stop. */
async function interruptible<T>(io: CliIo, work: Promise<T>): Promise<Interruptible<T>> {
  const signal = io.shutdown;
  if (signal.aborted) return "interrupted";
  let onAbort = () => {};
  const aborted = new Promise<"interrupted">((resolve) => {
    onAbort = () => resolve("interrupted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  const answered = work.then((value) => ({ value }));
  try {
    const first = await Promise.race([answered, aborted]);
    // The user stopped waiting: the request's outcome no longer matters here (the move, if it
    // started, is shown by --follow), and its failure must not end the process unhandled.
    if (first === "interrupted") answered.catch(() => {});
    return first;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Waits `ms`, or less when the process is asked to stop (the timer is cleared then). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
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
