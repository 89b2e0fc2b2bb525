/**
 * Change-driven re-reads of shard 0's meta records (the runtime tokens, the shard map, the shard
 * move, the members and placement records), so that an idle node does not read shard 0 every
 * second and shard 0 can stay quiesced.
 *
 * Every node hosting a replica of shard 0 puts a {@linkcode MetaStamp} on each node heartbeat
 * (every 250 ms to each peer, node_liveness.ts): a random number drawn when the node started and
 * its replica's StateMachine.metaVersion, which changes whenever a meta record may have changed
 * there. A node's own replica is watched the same way, at each run of the node timer. When a
 * stamp differs from the one last acknowledged for that node, the watch runs the node's refresh
 * (linearizable reads that start after the stamp arrived); once the refresh has succeeded, the
 * stamps seen before it started are acknowledged. A failed refresh is tried again, at most
 * every {@linkcode META_WATCH_RETRY_MS}, while the stamp stays unacknowledged.
 *
 * So a change committed on shard 0 reaches a node within one node heartbeat of the first
 * replica that applied it (the leader applies before it answers the change) plus one read. The
 * owners keep a slow safety re-read of their own (token_registry.ts, shard_map.ts,
 * shard_mover.ts, membership.ts) in case no stamp arrives, e.g. from peers of an older version.
 */

/** Bytes of an encoded stamp on a node heartbeat: incarnation (u32), then version (u32). */
export const META_STAMP_BYTES = 8;
/** The least time between a failed refresh and the next one the watch starts. */
export const META_WATCH_RETRY_MS = 1_000;
/** The most nodes a watch tracks (far above any cluster's member count). */
export const META_WATCH_NODES_MAX = 1_024;

/** What one node's replica of shard 0 reports of its meta records. */
export interface MetaStamp {
  /** Drawn at random when the node started: a restarted node's versions start over. */
  readonly incarnation: number;
  /** StateMachine.metaVersion, modulo 2^32. */
  readonly version: number;
}

/** The heartbeat payload carrying `stamp`. */
export function encodeMetaStamp(stamp: MetaStamp): Uint8Array {
  const bytes = new Uint8Array(META_STAMP_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, stamp.incarnation >>> 0);
  view.setUint32(4, stamp.version >>> 0);
  return bytes;
}

/**
 * The stamp on a node heartbeat, or null when it carries none (the node hosts no replica of
 * shard 0, or is of a version that sends empty heartbeats) or a payload of another size.
 */
export function decodeMetaStamp(payload: Uint8Array): MetaStamp | null {
  if (payload.byteLength !== META_STAMP_BYTES) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return { incarnation: view.getUint32(0), version: view.getUint32(4) };
}

/** What a {@linkcode MetaWatch} needs. */
export interface MetaWatchOptions {
  /**
   * Re-reads everything the node keeps of shard 0's meta records, with reads that start after
   * this call; resolves true when all of them succeeded.
   */
  readonly refresh: () => Promise<boolean>;
  /** Monotonic milliseconds. */
  readonly nowMs: () => number;
}

/** The stamps seen from each node, and the refreshes they cause. */
export class MetaWatch {
  readonly #options: MetaWatchOptions;
  /** The latest stamp from each node, as `incarnation:version`. */
  readonly #latest = new Map<number, string>();
  /** The stamp of each node that a successful refresh started after. */
  readonly #acknowledged = new Map<number, string>();
  #running: Promise<void> | null = null;
  #retryAtMs = -Infinity;
  #isClosed = false;
  #refreshes = 0;

  constructor(options: MetaWatchOptions) {
    this.#options = options;
  }

  /** Refreshes started so far (for tests and metrics). */
  get refreshes(): number {
    return this.#refreshes;
  }

  /** `node` reports `stamp` (its own replica's or a peer's, from a heartbeat). */
  note(node: number, stamp: MetaStamp): void {
    if (this.#isClosed) return;
    if (!this.#latest.has(node) && this.#latest.size >= META_WATCH_NODES_MAX) return;
    this.#latest.set(node, `${stamp.incarnation}:${stamp.version}`);
    this.#maybeRun();
  }

  /**
   * Stops starting refreshes. One under way is not waited for: its reads end on their own
   * deadlines (a shard move read may take seconds while the peers stop), and their owners
   * close after this and wait for their own reads.
   */
  close(): void {
    this.#isClosed = true;
  }

  #isChanged(): boolean {
    for (const [node, stamp] of this.#latest) {
      if (this.#acknowledged.get(node) !== stamp) return true;
    }
    return false;
  }

  #maybeRun(): void {
    if (this.#running !== null || this.#isClosed || !this.#isChanged()) return;
    if (this.#options.nowMs() < this.#retryAtMs) return;
    const seen = new Map(this.#latest);
    this.#refreshes++;
    this.#running = this.#options.refresh()
      .catch(() => false)
      .then((isDone) => {
        if (!isDone) {
          this.#retryAtMs = this.#options.nowMs() + META_WATCH_RETRY_MS;
          return;
        }
        for (const [node, stamp] of seen) this.#acknowledged.set(node, stamp);
      })
      .finally(() => {
        this.#running = null;
        this.#maybeRun();
      });
  }
}
