/**
 * The integrity checks run when a shard replica's files open: a lost, truncated or replaced
 * Raft log or state machine must stop the node with `storage_corrupt` rather than be rebuilt
 * silently (SQLite opens a missing or empty file as a new, healthy database).
 *
 * Files live in `<data_dir>/shard-<id>/`: `raft-log.db`, its latest snapshot
 * `raft-log.db.snapshot-<index>-<random>` and `state-machine.db`.
 */
import { type ConfState, replicaId } from "../../raft/mod.ts";
import { AspenError, SqliteLogStorage, StateMachine } from "../../shard/mod.ts";

/** What opening a shard's files needs. */
export interface ShardFilesOptions {
  readonly shard: number;
  readonly dir: string;
  /** The initial membership, used only when the shard's storage is new. */
  readonly voters: readonly number[];
}

/** A shard's two databases, checked against each other. */
export interface ShardFiles {
  readonly storage: SqliteLogStorage;
  readonly stateMachine: StateMachine;
}

/**
 * Opens (or creates) a shard's Raft log and state machine and checks that they belong
 * together; a refused start leaves the folder as it found it.
 *
 * @throws {AspenError} `storage_corrupt` when a file is damaged.
 */
export async function openCheckedShardFiles(options: ShardFilesOptions): Promise<ShardFiles> {
  await Deno.mkdir(options.dir, { recursive: true });
  const paths: ShardPaths = {
    log: `${options.dir}/raft-log.db`,
    stateMachine: `${options.dir}/state-machine.db`,
  };
  // Decide before opening: opening creates a missing file, and a refused start must leave
  // the folder as it found it.
  const isLogNew = await isMissingOrEmpty(paths.log);
  const isStateMachineNew = await isMissingOrEmpty(paths.stateMachine);
  if (isLogNew && !isStateMachineNew) {
    throw logLostError(options.shard, paths, "missing or empty");
  }
  const confState: ConfState = { voters: options.voters.map(replicaId), learners: [] };
  // Log fsyncs run off the event loop (see SqliteLogStorage.flush): a FULL commit blocked
  // every shard of the node for the whole fsync, once per shard and Ready.
  const storage = SqliteLogStorage.open({
    path: paths.log,
    bootstrap: confState,
    isFlushDeferred: true,
  });
  let stateMachine: StateMachine | null = null;
  try {
    if (isStateMachineNew) checkNothingCommitted(storage, paths, options);
    stateMachine = StateMachine.open({ path: paths.stateMachine, synchronous: "normal" });
    checkLogCoversApplied(storage, stateMachine, paths, options.shard);
  } catch (error) {
    stateMachine?.close();
    storage.close();
    throw error;
  }
  return { storage, stateMachine };
}

/** The two files of a replica. */
interface ShardPaths {
  readonly log: string;
  readonly stateMachine: string;
}

/**
 * Checks that a new (missing or empty) state machine goes with a log that committed nothing
 * but its bootstrap membership (one entry per voter): both files are created together, before
 * anything commits. SQLite opens an empty file as a new, healthy database, so without this
 * check a truncated state machine would be rebuilt silently or, past compaction, served empty.
 *
 * @throws {AspenError} `storage_corrupt` naming the state machine file.
 */
function checkNothingCommitted(
  storage: SqliteLogStorage,
  paths: ShardPaths,
  options: ShardFilesOptions,
): void {
  const commit = storage.initialState().hardState.commit;
  if (commit <= options.voters.length) return;
  throw new AspenError(
    "storage_corrupt",
    `Cannot open shard ${options.shard}: the state machine "${paths.stateMachine}" is ` +
      `missing or empty but the Raft log has committed entries up to ${commit}; the file ` +
      "was lost or truncated",
    { path: paths.stateMachine, shard: options.shard },
  );
}

/**
 * Checks that the log still holds every entry the state machine applied.
 * Invariant: an entry is in the log before it is applied, and applied entries are committed,
 * so never truncated: applied index <= last index.
 *
 * @throws {AspenError} `storage_corrupt` naming the log file.
 */
function checkLogCoversApplied(
  storage: SqliteLogStorage,
  stateMachine: StateMachine,
  paths: ShardPaths,
  shard: number,
): void {
  const applied = stateMachine.appliedIndex();
  const last = storage.lastIndex();
  if (applied <= last) return;
  throw logLostError(shard, paths, `ends at index ${last} but ${applied} entries were applied`);
}

function logLostError(shard: number, paths: ShardPaths, detail: string): AspenError {
  return new AspenError(
    "storage_corrupt",
    `Cannot open shard ${shard}: the Raft log "${paths.log}" ${detail} while the state ` +
      `machine "${paths.stateMachine}" holds data; the log file was lost, truncated or replaced`,
    { path: paths.log, shard },
  );
}

/** True when `path` does not exist or holds no bytes (SQLite would start a new database). */
async function isMissingOrEmpty(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).size === 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}
