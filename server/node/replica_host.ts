/**
 * Which shard replicas this node hosts, and how that changes while it runs: the rebalance
 * driver asks a node to host a replica (an empty one, before adding it to the group as a
 * learner: the leader then sends it the log or a snapshot) and to drop one (after removing it
 * from the group). The node creates replicas only on that explicit call, never because a Raft
 * message arrived for a shard it does not host: a message from a stale leader must not bring a
 * dropped replica back.
 *
 * The list survives restarts in `<data_dir>/hosted-shards.json` (written atomically: a
 * temporary file, then a rename). A node without the file hosts what the static placement
 * gives it (placement.ts) and writes the file.
 */
import { assert } from "../../raft/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import { writeFileAtomic } from "../../transport/mod.ts";
import type { Logger } from "../log.ts";
import type { LocalShard } from "./local_shard.ts";

/** The file's name in the data dir. */
export const HOSTED_SHARDS_FILE = "hosted-shards.json";
/** The largest file read, in bytes. */
export const HOSTED_SHARDS_FILE_BYTES_MAX = 64 * 1024;

/** What `hosted-shards.json` holds. */
export interface HostedShardsFile {
  /** The shards hosted, sorted. */
  readonly shards: number[];
  /**
   * Per dropped shard, the term of the leader whose configuration no longer listed the
   * replica when it was dropped: a request to host it again from an older view is refused.
   */
  readonly dropped: Map<number, number>;
}

/**
 * Reads the hosted shards of `dataDir`, or null when the file is absent.
 *
 * @throws {AspenError} `storage_corrupt` for a file that is not a list of shard ids.
 */
export async function readHostedShards(
  dataDir: string,
  shardsMax: number,
): Promise<number[] | null> {
  return (await readHostedShardsFile(dataDir, shardsMax))?.shards ?? null;
}

/**
 * Reads `hosted-shards.json` of `dataDir` whole, or null when it is absent. A file without
 * `dropped` (written before it existed) has none.
 *
 * @throws {AspenError} `storage_corrupt` for a file that does not hold shard ids and terms.
 */
export async function readHostedShardsFile(
  dataDir: string,
  shardsMax: number,
): Promise<HostedShardsFile | null> {
  const path = `${dataDir}/${HOSTED_SHARDS_FILE}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const corrupt = (why: string) =>
    new AspenError("storage_corrupt", `Cannot read the hosted shards "${path}": ${why}`);
  if (text.length > HOSTED_SHARDS_FILE_BYTES_MAX) throw corrupt("the file is too large");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt("not JSON");
  }
  const fields = (typeof value === "object" && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  const shards = fields.shards;
  if (!Array.isArray(shards)) throw corrupt("no shards list");
  const checkShard = (shard: unknown): number => {
    if (typeof shard !== "number" || !Number.isSafeInteger(shard) || shard < 0) {
      throw corrupt(`${JSON.stringify(shard)} is not a shard id`);
    }
    if (shard >= shardsMax) throw corrupt(`shard ${shard} is past the limit ${shardsMax}`);
    return shard;
  };
  const ids = [...new Set((shards as unknown[]).map(checkShard))].sort((a, b) => a - b);
  const dropped = new Map<number, number>();
  const droppedField = fields.dropped ?? {};
  if (typeof droppedField !== "object" || droppedField === null || Array.isArray(droppedField)) {
    throw corrupt("dropped is not an object of terms");
  }
  for (const [key, term] of Object.entries(droppedField)) {
    const shard = checkShard(/^(0|[1-9][0-9]{0,9})$/.test(key) ? Number(key) : key);
    if (typeof term !== "number" || !Number.isSafeInteger(term) || term < 0) {
      throw corrupt(`the dropped term of shard ${shard} is not a term`);
    }
    dropped.set(shard, term);
  }
  return { shards: ids, dropped };
}

/**
 * The shard ids of the `shard-<id>` folders in `dataDir`: replicas whose files exist. A node
 * opens them at start beside its list, so that a replica opened just before a crash (before the
 * list was written) is not forgotten; one the list already dropped is dropped again by the
 * rebalancer (no group lists it).
 */
export async function shardDirsOf(dataDir: string, shardsMax: number): Promise<number[]> {
  const shards: number[] = [];
  for await (const entry of Deno.readDir(dataDir)) {
    const match = /^shard-(0|[1-9][0-9]{0,5})$/.exec(entry.name);
    if (match === null || !entry.isDirectory) continue;
    const shard = Number(match[1]);
    if (shard < shardsMax) shards.push(shard);
    if (shards.length >= shardsMax) break;
  }
  return shards.sort((a, b) => a - b);
}

/** Writes the hosted shards of `dataDir` (and the dropped replicas' terms) atomically. */
export async function writeHostedShards(
  dataDir: string,
  shards: Iterable<number>,
  dropped: ReadonlyMap<number, number> = new Map(),
): Promise<void> {
  const sorted = [...shards].sort((a, b) => a - b);
  const path = `${dataDir}/${HOSTED_SHARDS_FILE}`;
  const droppedField = Object.fromEntries([...dropped].sort(([a], [b]) => a - b));
  const body = dropped.size === 0 ? { shards: sorted } : { shards: sorted, dropped: droppedField };
  // Synced before and after the rename: a power loss must not leave an empty list (the node
  // would refuse to start, chaos_load_test's power loss found it).
  await writeFileAtomic(path, JSON.stringify(body) + "\n", 0o644);
}

/** Opens and drops replicas on the driver's demand, one change at a time. */
export class ReplicaHost {
  readonly #shards: Map<number, LocalShard>;
  readonly #dataDir: string;
  readonly #shardsMax: number;
  readonly #open: (
    shard: number,
    voters: readonly number[],
    termFloor?: number,
  ) => Promise<LocalShard>;
  readonly #logger: Logger;
  #tail: Promise<unknown> = Promise.resolve();
  #saved = "";
  /** The dropped replicas' terms (HostedShardsFile.dropped); read from the file on first use. */
  #dropped: Map<number, number> | null = null;

  constructor(options: {
    readonly shards: Map<number, LocalShard>;
    readonly dataDir: string;
    readonly shardsMax: number;
    /**
     * Opens a replica of `shard`; `voters` bootstrap new storage (none: an empty replica that
     * waits for its leader to send it the log or a snapshot, starting at term `termFloor`).
     */
    readonly open: (
      shard: number,
      voters: readonly number[],
      termFloor?: number,
    ) => Promise<LocalShard>;
    readonly logger: Logger;
  }) {
    this.#shards = options.shards;
    this.#dataDir = options.dataDir;
    this.#shardsMax = options.shardsMax;
    this.#open = options.open;
    this.#logger = options.logger;
  }

  /** The shards hosted now, sorted. */
  hosted(): number[] {
    return [...this.#shards.keys()].sort((a, b) => a - b);
  }

  /**
   * Writes the hosted list when it changed since the last write (at start, and after a shard
   * move opened new shards).
   */
  saveIfChanged(): Promise<void> {
    return this.#serialized(() => this.#save());
  }

  async #save(): Promise<void> {
    const dropped = await this.#droppedTerms();
    const key = `${this.hosted().join(",")};${[...dropped].join(";")}`;
    if (key === this.#saved) return;
    await writeHostedShards(this.#dataDir, this.#shards.keys(), dropped);
    this.#saved = key;
  }

  async #droppedTerms(): Promise<Map<number, number>> {
    if (this.#dropped === null) {
      const file = await readHostedShardsFile(this.#dataDir, this.#shardsMax);
      this.#dropped = file?.dropped ?? new Map();
    }
    return this.#dropped;
  }

  /**
   * Hosts a replica of `shard` for a group led in `term`: opens an empty one unless it is
   * hosted already. The new replica starts at the later of `term` and the term its previous
   * incarnation was dropped at, so a leader older than that drop, which may still count on the
   * dropped log (its progress says so), is refused as stale instead of sending a commit index
   * past the empty log.
   *
   * @throws {AspenError} `conflict` when this node dropped the replica on the word of a leader
   *   of a later term than `term` (the asker's view is older); `bad_request` for a shard id
   *   past the limit; the open's errors.
   */
  async host(
    shard: number,
    term?: number,
  ): Promise<{ readonly shard: number; readonly isNew: boolean }> {
    this.#checkShard(shard);
    return await this.#serialized(async () => {
      if (this.#shards.has(shard)) return { shard, isNew: false };
      const droppedAt = (await this.#droppedTerms()).get(shard) ?? 0;
      if (term !== undefined && droppedAt > term) {
        throw new AspenError(
          "conflict",
          `Cannot host shard ${shard} for a leader of term ${term}: its replica here was ` +
            `dropped when a leader of term ${droppedAt} no longer listed it`,
          { shard },
        );
      }
      const opened = await this.#open(shard, [], Math.max(droppedAt, term ?? 0));
      this.#shards.set(shard, opened);
      await this.#save();
      this.#logger.info("Hosting a new replica", { shard });
      return { shard, isNew: true };
    });
  }

  /**
   * The replica of `shard`, opened now with `voters` when it is not hosted (a shard move's new
   * shard, bootstrapped from the static placement). Serialized with host() and drop(), so a
   * shard is never opened twice.
   */
  async openFor(shard: number, voters: readonly number[]): Promise<LocalShard> {
    this.#checkShard(shard);
    return await this.#serialized(async () => {
      const hosted = this.#shards.get(shard);
      if (hosted !== undefined) return hosted;
      const opened = await this.#open(shard, voters);
      this.#shards.set(shard, opened);
      await this.#save();
      return opened;
    });
  }

  /**
   * Drops this node's replica of `shard` (after the group removed it): closes it, forgets it
   * and deletes its files. Nothing when it is not hosted. `termMax` is the term of the leader
   * whose configuration lacks this replica. The term recorded for the drop is the later of
   * `termMax` and the replica's own, so a replica hosted again starts past both.
   *
   * @throws {AspenError} `conflict` when the replica has seen a later term than `termMax` and
   *   holds a log (one no leader ever filled has nothing to lose: it saw that term in a vote
   *   request, and refusing would keep it forever, as its group never writes to it).
   */
  async drop(
    shard: number,
    termMax: number,
  ): Promise<{ readonly shard: number; readonly isDropped: boolean }> {
    this.#checkShard(shard);
    return await this.#serialized(async () => {
      const local = this.#shards.get(shard);
      if (local === undefined) return { shard, isDropped: false };
      const status = local.replica.status();
      const term = status.term;
      const isEmpty = status.lastIndex === 0 && status.confState.voters.length === 0;
      if (term > termMax && !isEmpty) {
        throw new AspenError(
          "conflict",
          `Cannot drop the replica of shard ${shard}: it has seen term ${term}, after the ` +
            `leader (term ${termMax}) that no longer lists it`,
          { shard },
        );
      }
      this.#shards.delete(shard);
      const dropped = await this.#droppedTerms();
      dropped.set(shard, Math.max(dropped.get(shard) ?? 0, termMax, term));
      await this.#save();
      local.close();
      await Deno.remove(`${this.#dataDir}/shard-${shard}`, { recursive: true });
      this.#logger.info("Dropped a replica", { shard });
      return { shard, isDropped: true };
    });
  }

  #checkShard(shard: number): void {
    if (!Number.isSafeInteger(shard) || shard < 0 || shard >= this.#shardsMax) {
      throw new AspenError("bad_request", `Cannot host shard ${shard}: not a shard id`, { shard });
    }
  }

  #serialized<T>(run: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(run, run);
    this.#tail = next.catch(() => undefined);
    assert(this.#tail !== next, "the tail never rejects");
    return next;
  }
}
