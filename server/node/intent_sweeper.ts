/**
 * Finishes cross-shard transactions that nobody finishes: a coordinator that stopped after its
 * prepares leaves intents, and until now only a reader or writer meeting one pushed it. Keys no
 * client touches stayed locked, their record pending and a lease over them unable to expire.
 *
 * Every INTENT_SWEEP_MS each shard this node leads that holds intents lists up to
 * INTENT_SWEEP_KEYS_MAX of them; a transaction whose intent was already there at the previous
 * sweep is pushed (TxnCoordinator.push: it resolves a decided transaction and recovers one
 * whose record is absent or past its deadline by fencing its participants, committing it when
 * all had prepared and aborting it otherwise, and leaves a live one alone until its own
 * deadline). Seeing a holder twice first leaves a transaction in flight its normal course.
 *
 * The sweeper visits only the shards in {@linkcode IntentShards}: a shard enters when an apply
 * (or a snapshot, or its opening) leaves it holding intents and leaves when a sweep finds none.
 * While no shard holds intents the sweeper's timer is stopped, so an idle node does no sweep
 * work at all, however many shards it hosts.
 */
import type { KeyRange, TxnHolder } from "../../shard/mod.ts";
import type { Logger } from "../log.ts";

/** How often the shards this node leads are swept for intents. */
export const INTENT_SWEEP_MS = 1_000;
/** The most intents read per shard and sweep. */
export const INTENT_SWEEP_KEYS_MAX = 64;
/** How long one push of a sweep may take before the next sweep tries again. */
export const INTENT_SWEEP_PUSH_MS = 2_000;

const EVERY_KEY: KeyRange = { prefix: "" };

/** What the sweeper needs of one local shard. */
export interface SweptShard {
  readonly replica: { leader(): number | null };
  readonly stateMachine: {
    intentCount(): number;
    intentsIn(range: KeyRange, limit: number): { key: string; holder: TxnHolder }[];
  };
}

/**
 * The local shards that may hold intents: a superset of those that do (LocalShard reports each
 * apply that leaves intents; the sweeper drops a shard it finds without). Node-level, built
 * before the shards, which report into it.
 */
export class IntentShards {
  readonly #ids = new Set<number>();
  #onNoted: (() => void) | null = null;

  /** The shards noted and not dropped since. */
  get ids(): ReadonlySet<number> {
    return this.#ids;
  }

  /** Shard `shard` holds intents now. Cheap when it is already noted (every apply calls it). */
  note(shard: number): void {
    if (this.#ids.has(shard)) return;
    this.#ids.add(shard);
    this.#onNoted?.();
  }

  /** A sweep found no intent on `shard` (or it is no longer hosted). */
  drop(shard: number): void {
    this.#ids.delete(shard);
  }

  /** Calls `onNoted` whenever a shard is noted that was not (the sweeper starts its timer). */
  listen(onNoted: (() => void) | null): void {
    this.#onNoted = onNoted;
  }
}

/** What an {@linkcode IntentSweeper} works with. */
export interface IntentSweeperOptions {
  readonly nodeId: number;
  readonly shards: ReadonlyMap<number, SweptShard>;
  /** The shards that may hold intents, the only ones swept. */
  readonly candidates: IntentShards;
  /** TxnCoordinator.push. */
  readonly push: (shard: number, key: string, holder: TxnHolder, deadlineMs: number) => Promise<
    void
  >;
  /** Monotonic milliseconds (the push deadline's clock). */
  readonly nowMs: () => number;
  readonly logger: Logger;
}

/** Pushes the intents of transactions that outlived a sweep, on the shards this node leads. */
export class IntentSweeper {
  readonly #options: IntentSweeperOptions;
  /** Per shard, the transactions whose intents the previous sweep saw. */
  #seen = new Map<number, ReadonlySet<string>>();
  #timer: ReturnType<typeof setInterval> | null = null;
  #sweeping: Promise<unknown> | null = null;
  #isStarted = false;

  constructor(options: IntentSweeperOptions) {
    this.#options = options;
  }

  /**
   * Sweeps every INTENT_SWEEP_MS while some shard may hold intents, until
   * {@linkcode IntentSweeper.close}.
   */
  start(): void {
    this.#isStarted = true;
    this.#options.candidates.listen(() => this.#startTimer());
    this.#startTimer();
  }

  /** Stops sweeping and waits for a sweep under way. */
  async close(): Promise<void> {
    this.#isStarted = false;
    this.#options.candidates.listen(null);
    this.#stopTimer();
    await this.#sweeping;
  }

  /** Whether the sweep timer runs (for tests). */
  get isTimerRunning(): boolean {
    return this.#timer !== null;
  }

  #startTimer(): void {
    if (!this.#isStarted || this.#timer !== null) return;
    if (this.#options.candidates.ids.size === 0) return;
    this.#timer = setInterval(() => {
      this.#sweeping ??= this.sweep()
        .catch((error: unknown) => {
          this.#options.logger.warn("Intent sweep failed", {
            error: error instanceof Error ? error.message : String(error),
          });
        })
        .finally(() => {
          this.#sweeping = null;
          // Stopped only between sweeps: a shard noted during one restarts nothing twice.
          if (this.#options.candidates.ids.size === 0) this.#stopTimer();
        });
    }, INTENT_SWEEP_MS);
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One sweep; returns the transactions it pushed, as `shard:txnId`. */
  async sweep(): Promise<string[]> {
    const pushed: string[] = [];
    const seen = new Map<number, ReadonlySet<string>>();
    const candidates = this.#options.candidates;
    for (const shard of [...candidates.ids]) {
      const local = this.#options.shards.get(shard);
      if (local === undefined || local.stateMachine.intentCount() === 0) {
        candidates.drop(shard);
        continue;
      }
      if (local.replica.leader() !== this.#options.nodeId) continue;
      const firstKeyOf = new Map<string, { key: string; holder: TxnHolder }>();
      for (const intent of local.stateMachine.intentsIn(EVERY_KEY, INTENT_SWEEP_KEYS_MAX)) {
        if (!firstKeyOf.has(intent.holder.txnId)) firstKeyOf.set(intent.holder.txnId, intent);
      }
      seen.set(shard, new Set(firstKeyOf.keys()));
      const before = this.#seen.get(shard);
      for (const [txnId, intent] of firstKeyOf) {
        if (before?.has(txnId) !== true) continue;
        pushed.push(`${shard}:${txnId}`);
        await this.#push(shard, intent);
      }
    }
    this.#seen = seen;
    return pushed;
  }

  async #push(shard: number, intent: { key: string; holder: TxnHolder }): Promise<void> {
    const deadlineMs = this.#options.nowMs() + INTENT_SWEEP_PUSH_MS;
    try {
      await this.#options.push(shard, intent.key, intent.holder, deadlineMs);
    } catch (error) {
      // A live transaction, or a shard without a leader: the next sweep tries again.
      this.#options.logger.debug("Intent sweep could not finish a transaction yet", {
        shard,
        txnId: intent.holder.txnId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
