/**
 * Online resharding (`aspen shard add`, `POST /v1/shards`): the move of keys from n shards to
 * n + N, driven by the leader of shard 0 from a record in its meta table (SHARD_MOVE_META), so
 * that a new leader resumes the move where the record says it is after any crash. Every step
 * is idempotent. The logic here is pure: it runs over {@linkcode MoveOps} (shard_mover.ts
 * wires them to the cluster; the unit tests to fakes).
 *
 * ```text
 *   copy     new shards marked inactive (they refuse clients), their leadership handed to
 *            the preferred leader the record names; each source's moving keys copied to
 *            their new shard by `import` (version, createRevision, lease kept)
 *   fence    each source refuses writes to moving keys (`wrong_shard`, retryable); the driver
 *            waits until no cross-shard intent is left on them
 *   delta    the same copy again: changed keys copied, keys deleted since removed
 *   handoff  each source refuses reads of moving keys (and range reads); the homes of leases
 *            with keys on a new shard count it among their holders; new shards activated
 *   flip     the shard map written with epoch + 1 and n + N shards; nodes route by it
 *   cleanup  each source drops the moved keys silently (no watch event) and settles
 *   done
 * ```
 *
 * Jump hash moves keys only from old shards to new ones, so every old shard is a source and
 * each new shard gets keys from every source.
 *
 * A tenant move (tenant_move.ts) runs the same phases with the same count: its one target is
 * the tenant's new shard, already in service for its other keys (it refuses the tenant's keys
 * until the hand-off, and its range reads leave out the keys copied so far), and its sources
 * hold the tenant's keys (every other shard when the move creates the tenant: keys under its
 * prefix placed by hash).
 */
import { assert } from "../../raft/mod.ts";
import {
  AspenError,
  HANDOFF_STAGE_PHASE,
  type KeyValue,
  MOVE_STAGES_PER_EPOCH,
  type Ownership,
  type TenantShards,
} from "../../shard/mod.ts";
import type { NewShardVoters } from "./rebalancer.ts";
import type { ShardMap } from "./shard_map.ts";

/** The meta record of shard 0 holding the move in progress (or the last one, done). */
export const SHARD_MOVE_META = "shardMove";
/** Keys per page of a move's copy. */
export const MOVE_PAGE_KEYS = 500;
/** How often the driver checks that no intent is left on moving keys while fenced. */
export const MOVE_DRAIN_POLL_MS = 100;
/** How often the driver records its progress while copying. */
export const MOVE_PROGRESS_EVERY_MS = 500;

/** The phases of a move, in order. */
export const MOVE_PHASES = [
  "copy",
  "fence",
  "delta",
  "handoff",
  "flip",
  "cleanup",
  "done",
] as const;
assert(
  MOVE_PHASES.indexOf("handoff") === HANDOFF_STAGE_PHASE,
  "ownership records read by the flipped map from the hand-off's phase on",
);
/** One of {@linkcode MOVE_PHASES}. */
export type MovePhase = typeof MOVE_PHASES[number];

/** What one source shard has copied so far. */
export interface SourceProgress {
  readonly shard: number;
  /** Keys and bytes (keys plus values) that move away from it. */
  readonly keysTotal: number;
  readonly bytesTotal: number;
  /** Keys and bytes copied in the current copy pass. */
  readonly keysCopied: number;
  readonly bytesCopied: number;
  /**
   * The source's revision when its copy pass began: the delta pass reads the values of keys
   * changed after it only (the others were copied). Absent before the copy pass measured it.
   */
  readonly copyRevision?: number;
}

/** The move record. */
export interface ShardMove {
  readonly fromCount: number;
  readonly toCount: number;
  readonly phase: MovePhase;
  /** Wall-clock ms. */
  readonly startedAtMs: number;
  readonly updatedAtMs: number;
  readonly sources: readonly SourceProgress[];
  /** The last error the driver met (it keeps trying); absent when none. */
  readonly lastError?: string;
  /** The shard map's epoch when the move began (absent on older records). */
  readonly epoch?: number;
  /** The tenants placed before and after the move (absent: none). */
  readonly fromTenants?: TenantShards;
  readonly toTenants?: TenantShards;
  /** A tenant move: the tenant, its shard after the move, and whether the move creates it. */
  readonly tenant?: { readonly name: string; readonly to: number; readonly isNew: boolean };
  /**
   * The voters each new shard is bootstrapped with, chosen from the members when the move was
   * started (rebalancer.ts `placeNewShards`), preferred leader first. Every node that opens a
   * new shard's replica reads them here, so a node that restarts mid-move bootstraps the same
   * group. Absent on records written before it existed, and on tenant moves (they create no
   * shard): the static placement (placement.ts) then.
   */
  readonly targetVoters?: readonly NewShardVoters[];
}

/** What the driver does to the cluster. */
export interface MoveOps {
  /** The move record and its text (for compare-and-swap), linearizably. */
  read(): Promise<{ readonly text: string | null; readonly move: ShardMove | null }>;
  /** Writes the record if it still holds `expected`; false when it did not. */
  swap(expected: string, move: ShardMove): Promise<boolean>;
  setOwnership(ownership: Ownership): Promise<void>;
  /** Intents on keys of `shard` whose shard among `count` (with `tenants`) is another. */
  intentsElsewhere(shard: number, count: number, tenants?: TenantShards): Promise<number>;
  /** Keys and bytes of `shard` per shard among `count` (with `tenants` placed). */
  sizes(
    shard: number,
    count: number,
    tenants?: TenantShards,
  ): Promise<Map<number, { keys: number; bytes: number }>>;
  /**
   * A page of the keys of `shard` whose shard among `count` is `target` and among `fromCount`
   * is `source` (moveScan).
   */
  scan(shard: number, query: {
    source: number;
    fromCount: number;
    target: number;
    count: number;
    after: string | null;
    until: string | null;
    /** Leave out the values of keys last changed at or before it; null: every value. */
    valuesAfter: number | null;
    /** The tenants placed with `fromCount` and with `count` (absent: none). */
    fromTenants?: TenantShards;
    tenants?: TenantShards;
  }): Promise<{ kvs: KeyValue[]; more: boolean; valueless?: readonly string[] }>;
  /** The applied index of `shard`'s leader (linearizable). */
  appliedIndex(shard: number): Promise<number>;
  /**
   * Writes `kvs` (leases as the source stores them) and removes `deletes` on `target`, in copy
   * pass `pass` (the target refuses another pass's imports).
   */
  importKeys(
    source: number,
    target: number,
    change: { pass: number; kvs: readonly KeyValue[]; deletes: readonly string[] },
  ): Promise<void>;
  /** The stand-ins of other shards' leases that hold keys on `shard` (foreign_lease.ts). */
  foreignLeases(shard: number): Promise<number[]>;
  /** Records on the home of the lease stored as `standIn` that `holder` holds keys of it. */
  addLeaseHolder(standIn: number, holder: number): Promise<void>;
  /** Removes a piece of the keys `shard` gave away; how many. */
  dropMoved(shard: number): Promise<number>;
  /**
   * Writes the shard map with `toCount` shards (epoch + 1) unless it has them already; with
   * `tenants`, with those tenants placed unless they are already.
   */
  flip(fromCount: number, toCount: number, tenants?: TenantShards): Promise<void>;
  /**
   * Hands `shard`'s leadership to `node` unless it leads already; best effort (a failure is
   * the caller's to log, never the move's). Absent: leaders stay where their elections put them.
   */
  preferLeader?(shard: number, node: number): Promise<void>;
  /** Whether this node still leads shard 0 (a driver that lost it stops). */
  isLeader(): boolean;
  wallMs(): number;
  sleep(ms: number): Promise<void>;
}

/**
 * The record of a new move from `map` to `toCount` shards, checked.
 *
 * @throws {AspenError} `bad_request` naming the problem, `move_in_progress` when `current`
 * is a move that is not done.
 */
export function planMove(
  map: ShardMap,
  current: ShardMove | null,
  request: { readonly toCount: number; readonly maxShards: number; readonly wallMs: number },
): ShardMove {
  const { toCount, maxShards } = request;
  if (current !== null && current.phase !== "done") {
    throw new AspenError(
      "move_in_progress",
      `Cannot add shards: a move from ${current.fromCount} to ${current.toCount} shards is ` +
        `running (phase ${current.phase}); wait for it (GET /v1/shards/moves)`,
      { fromCount: current.fromCount, toCount: current.toCount, phase: current.phase },
    );
  }
  if (!Number.isSafeInteger(toCount) || toCount <= map.numShards || toCount > maxShards) {
    throw new AspenError(
      "bad_request",
      `Cannot add shards: the cluster has ${map.numShards} shards, and the new count ` +
        `${toCount} must be above it and at most ${maxShards} (SHARDS_MAX)`,
      { numShards: map.numShards, max: maxShards },
    );
  }
  const sources = Array.from({ length: map.numShards }, (_, shard) => ({
    shard,
    keysTotal: 0,
    bytesTotal: 0,
    keysCopied: 0,
    bytesCopied: 0,
  }));
  const now = request.wallMs;
  return {
    fromCount: map.numShards,
    toCount,
    phase: "copy",
    startedAtMs: now,
    updatedAtMs: now,
    sources,
    epoch: map.epoch,
    ...(map.tenants === undefined ? {} : { fromTenants: map.tenants, toTenants: map.tenants }),
  };
}

/** The new shards of `move` (a tenant move: the tenant's new shard). */
export function targetsOf(move: Pick<ShardMove, "fromCount" | "toCount" | "tenant">): number[] {
  if (move.tenant !== undefined) return [move.tenant.to];
  return Array.from({ length: move.toCount - move.fromCount }, (_, i) => move.fromCount + i);
}

/** The voters `move` recorded for new shard `shard`, or null (static placement then). */
export function recordedVoters(
  move: Pick<ShardMove, "targetVoters"> | null,
  shard: number,
): readonly number[] | null {
  return move?.targetVoters?.find((item) => item.shard === shard)?.voters ?? null;
}

/** The phase after `phase`. */
export function nextPhase(phase: MovePhase): MovePhase {
  const index = MOVE_PHASES.indexOf(phase);
  return MOVE_PHASES[Math.min(index + 1, MOVE_PHASES.length - 1)]!;
}

/** Thrown when the record changed under the driver: another driver runs the move now. */
class LostRecord extends Error {}

/**
 * Drives the recorded move to its end from whatever phase it is in, while this node leads
 * shard 0. Returns the record as it left it (null: none), or stops early when another driver
 * changed the record.
 */
export async function driveMove(ops: MoveOps): Promise<ShardMove | null> {
  const first = await ops.read();
  if (first.move === null || first.text === null) return null;
  const recorder = new Recorder(ops, first.text, first.move);
  try {
    while (recorder.move.phase !== "done" && ops.isLeader()) {
      await runPhase(ops, recorder);
      await recorder.save({ ...recorder.move, phase: nextPhase(recorder.move.phase) });
    }
  } catch (error) {
    if (error instanceof LostRecord) return null;
    throw error;
  }
  return recorder.move;
}

/** Keeps the record's text for compare-and-swap and writes progress at most so often. */
class Recorder {
  readonly #ops: MoveOps;
  #text: string;
  #move: ShardMove;
  #savedAtMs = 0;
  #isSaving = false;

  constructor(ops: MoveOps, text: string, move: ShardMove) {
    this.#ops = ops;
    this.#text = text;
    this.#move = move;
  }

  get move(): ShardMove {
    return this.#move;
  }

  async save(move: ShardMove): Promise<void> {
    const next = { ...move, updatedAtMs: this.#ops.wallMs() };
    if (!(await this.#ops.swap(this.#text, next))) throw new LostRecord();
    this.#text = JSON.stringify(next);
    this.#move = next;
    this.#savedAtMs = this.#ops.wallMs();
  }

  /**
   * Records progress in memory, and in the record when the last save is old enough and none
   * is under way (sources copy at once: two saves from the same text would lose the record).
   */
  async progress(move: ShardMove): Promise<void> {
    this.#move = move;
    if (this.#isSaving) return;
    if (this.#ops.wallMs() - this.#savedAtMs < MOVE_PROGRESS_EVERY_MS) return;
    this.#isSaving = true;
    try {
      await this.save(this.#move);
    } finally {
      this.#isSaving = false;
    }
  }
}

async function runPhase(ops: MoveOps, recorder: Recorder): Promise<void> {
  const move = recorder.move;
  const { fromCount, toCount } = move;
  const sources = move.sources.map((source) => source.shard);
  switch (move.phase) {
    case "copy":
      for (const target of targetsOf(move)) {
        await ops.setOwnership(targetOwnership(target, move, 1));
        // The new shard's first election went to whichever voter woke first: the placer's
        // preferred leader (first of the recorded voters) takes it, before any key is copied.
        const preferred = recordedVoters(move, target)?.[0];
        if (preferred !== undefined) await ops.preferLeader?.(target, preferred);
      }
      return await copyAll(ops, recorder, 1);
    case "fence":
      // From here to the flip, writes to moving keys wait: every step of the fence, the delta
      // and the hand-off runs on all sources at once, and nothing in it reads more than the
      // moving keys.
      await Promise.all(
        sources.map((shard) => ops.setOwnership(sourceOwnership(shard, move, "fence"))),
      );
      await Promise.all(sources.map(async (shard) => {
        while ((await ops.intentsElsewhere(shard, toCount, move.toTenants)) > 0) {
          await ops.sleep(MOVE_DRAIN_POLL_MS);
        }
      }));
      return;
    case "delta":
      // From here the new shards refuse the first pass's imports: a driver that lost the
      // record while copying cannot write an old page over the delta.
      for (const target of targetsOf(move)) {
        await ops.setOwnership(targetOwnership(target, move, 2));
      }
      return await copyAll(ops, recorder, 2);
    case "handoff":
      await Promise.all(
        sources.map((shard) => ops.setOwnership(sourceOwnership(shard, move, "handoff"))),
      );
      // The keys are frozen now: the homes of the leases they hold learn of the new holders
      // before anyone can revoke those leases again (the sources refuse it while fenced).
      for (const target of targetsOf(move)) {
        for (const standIn of await ops.foreignLeases(target)) {
          await ops.addLeaseHolder(standIn, target);
        }
      }
      await Promise.all(
        targetsOf(move).map((target) => ops.setOwnership(activeTargetOwnership(target, move))),
      );
      return;
    case "flip":
      if (move.tenant !== undefined) return await ops.flip(fromCount, toCount, move.toTenants);
      return await ops.flip(fromCount, toCount);
    case "cleanup":
      for (const shard of sources) {
        while ((await ops.dropMoved(shard)) > 0) {
          // Each piece is one entry; the loop ends when a piece found nothing left.
        }
      }
      return;
    case "done":
      return;
  }
}

/** The parts of a move its ownership records depend on. */
type MoveShape = Pick<
  ShardMove,
  "fromCount" | "toCount" | "epoch" | "fromTenants" | "toTenants" | "tenant"
>;

/**
 * A new shard's ownership record while it is filled in copy pass `pass`; a tenant move's
 * target serves its other keys meanwhile (active, unsettled: the tenant's keys are refused
 * there until the hand-off, and range reads leave out the copied ones).
 */
export function targetOwnership(
  shard: number,
  move: Pick<ShardMove, "toCount"> & Partial<MoveShape>,
  pass: number,
): Ownership {
  const isTenantMove = move.tenant !== undefined;
  const tenants = isTenantMove ? move.fromTenants : move.toTenants;
  return {
    shard,
    readCount: move.toCount,
    writeCount: move.toCount,
    isActive: isTenantMove,
    isSettled: !isTenantMove,
    copyPass: pass,
    ...tenantFields(tenants, tenants),
    ...stageField(move, pass === 1 ? "copy" : "delta"),
  };
}

/** A target's ownership record from the hand-off: in service for the keys it took. */
export function activeTargetOwnership(shard: number, move: MoveShape): Ownership {
  if (move.tenant === undefined) {
    return { ...targetOwnership(shard, move, 2), isActive: true, ...stageField(move, "handoff") };
  }
  return {
    shard,
    readCount: move.toCount,
    writeCount: move.toCount,
    isActive: true,
    isSettled: true,
    copyPass: 0,
    ...tenantFields(move.toTenants, move.toTenants),
    ...stageField(move, "handoff"),
  };
}

/** A source's ownership record while fenced or handed off. */
export function sourceOwnership(
  shard: number,
  move: Pick<ShardMove, "fromCount" | "toCount"> & Partial<MoveShape>,
  phase: "fence" | "handoff",
): Ownership {
  return {
    shard,
    readCount: phase === "fence" ? move.fromCount : move.toCount,
    writeCount: move.toCount,
    isActive: true,
    isSettled: phase === "fence",
    copyPass: 0,
    ...tenantFields(phase === "fence" ? move.fromTenants : move.toTenants, move.toTenants),
    ...stageField(move, phase),
  };
}

function tenantFields(
  read: TenantShards | undefined,
  write: TenantShards | undefined,
): Pick<Ownership, "readTenants" | "writeTenants"> {
  return {
    ...(read === undefined ? {} : { readTenants: read }),
    ...(write === undefined ? {} : { writeTenants: write }),
  };
}

/** The record's stage: the move's epoch and the phase (absent for a record without epoch). */
function stageField(move: Partial<MoveShape>, phase: MovePhase): Pick<Ownership, "stage"> {
  if (move.epoch === undefined) return {};
  return { stage: move.epoch * MOVE_STAGES_PER_EPOCH + MOVE_PHASES.indexOf(phase) };
}

/**
 * Copy pass `pass` over every source (at once) and target. The copy measures the totals first;
 * the delta, which runs while writes to moving keys wait, keeps them (measuring reads every
 * key of the source, not only the moving ones).
 */
async function copyAll(ops: MoveOps, recorder: Recorder, pass: number): Promise<void> {
  const move = recorder.move;
  const sources: SourceProgress[] = [];
  for (const source of move.sources) {
    if (pass > 1) {
      sources.push({ ...source, keysCopied: 0, bytesCopied: 0 });
      continue;
    }
    // Taken before any page of the pass is read, so every key changed after it is read again.
    const copyRevision = await ops.appliedIndex(source.shard);
    const sizes = await ops.sizes(source.shard, move.toCount, move.toTenants);
    let keysTotal = 0;
    let bytesTotal = 0;
    for (const [shard, size] of sizes) {
      if (shard === source.shard) continue;
      keysTotal += size.keys;
      bytesTotal += size.bytes;
    }
    sources.push({ ...source, keysTotal, bytesTotal, keysCopied: 0, bytesCopied: 0, copyRevision });
  }
  await recorder.save({ ...move, sources });
  await Promise.all(sources.map(async (source) => {
    for (const target of targetsOf(move)) {
      const pair = {
        source: source.shard,
        fromCount: move.fromCount,
        target,
        count: move.toCount,
        pass,
        valuesAfter: pass === 1 ? null : source.copyRevision ?? null,
        ...(move.fromTenants === undefined ? {} : { fromTenants: move.fromTenants }),
        ...(move.toTenants === undefined ? {} : { tenants: move.toTenants }),
      };
      await syncMovedKeys(ops, pair, (page) => {
        const now = recorder.move;
        const updated = now.sources.map((item) =>
          item.shard === source.shard
            ? {
              ...item,
              keysCopied: item.keysCopied + page.keys,
              bytesCopied: item.bytesCopied + page.bytes,
            }
            : item
        );
        return recorder.progress({ ...now, sources: updated });
      });
    }
  }));
}

/**
 * `kvs` with their values: those whose value the page left out (`valueless`, unchanged since
 * the copy began, yet not on the new shard as they are: rare) are read again with values.
 */
async function withValues(
  ops: Pick<MoveOps, "scan">,
  span: Omit<Parameters<MoveOps["scan"]>[1], "valuesAfter">,
  kvs: readonly KeyValue[],
  valueless: readonly string[] = [],
): Promise<KeyValue[]> {
  const left = new Set(valueless);
  const needed = new Set(kvs.filter((kv) => left.has(kv.key)).map((kv) => kv.key));
  if (needed.size === 0) return [...kvs];
  const found = new Map<string, KeyValue>();
  let after = span.after;
  for (;;) {
    const page = await ops.scan(span.source, { ...span, after, valuesAfter: null });
    for (const kv of page.kvs) if (needed.has(kv.key)) found.set(kv.key, kv);
    const last = page.kvs[page.kvs.length - 1]?.key ?? null;
    if (!page.more || found.size === needed.size || last === null) break;
    after = last;
  }
  // A key gone meanwhile is left out: the next pass removes it from the new shard.
  return kvs.flatMap((kv) => needed.has(kv.key) ? found.get(kv.key) ?? [] : [kv]);
}

/**
 * Makes `target` hold exactly the keys of `source` that move to it, as the source holds them:
 * pages of the source's moving keys, each compared with the target's keys in the same span;
 * a key missing or different (version, createRevision) is imported, a key the source no
 * longer has is removed. Safe to run any number of times.
 */
export async function syncMovedKeys(
  ops: Pick<MoveOps, "scan" | "importKeys">,
  pair: {
    readonly source: number;
    readonly fromCount: number;
    readonly target: number;
    readonly count: number;
    readonly pass: number;
    /** The source's values of keys changed at or before it are not read (null: all are). */
    readonly valuesAfter?: number | null;
    readonly fromTenants?: TenantShards;
    readonly tenants?: TenantShards;
  },
  onPage: (page: { keys: number; bytes: number }) => Promise<void>,
): Promise<void> {
  const { source, target, pass } = pair;
  const query = {
    source,
    fromCount: pair.fromCount,
    target,
    count: pair.count,
    ...(pair.fromTenants === undefined ? {} : { fromTenants: pair.fromTenants }),
    ...(pair.tenants === undefined ? {} : { tenants: pair.tenants }),
  };
  const valuesAfter = pair.valuesAfter ?? null;
  let after: string | null = null;
  for (;;) {
    const page = await ops.scan(source, { ...query, after, until: null, valuesAfter });
    const until = page.more ? page.kvs[page.kvs.length - 1]?.key ?? null : null;
    const present = new Map<string, KeyValue>();
    let targetAfter = after;
    for (;;) {
      // The new shard's values are never needed: keys compare by version and createRevision.
      const theirs = await ops.scan(target, {
        ...query,
        after: targetAfter,
        until,
        valuesAfter: Number.MAX_SAFE_INTEGER,
      });
      for (const kv of theirs.kvs) present.set(kv.key, kv);
      if (!theirs.more) break;
      targetAfter = theirs.kvs[theirs.kvs.length - 1]?.key ?? null;
    }
    const stale = page.kvs.filter((kv) => {
      const there = present.get(kv.key);
      return there === undefined || there.version !== kv.version ||
        there.createRevision !== kv.createRevision;
    });
    const changed = await withValues(ops, { ...query, after, until }, stale, page.valueless);
    const kept = new Set(page.kvs.map((kv) => kv.key));
    const deletes = [...present.keys()].filter((key) => !kept.has(key));
    if (changed.length > 0 || deletes.length > 0) {
      await ops.importKeys(source, target, { pass, kvs: changed, deletes });
    }
    const bytes = page.kvs.reduce((sum, kv) => sum + kv.key.length + kv.value.length, 0);
    await onPage({ keys: page.kvs.length, bytes });
    if (until === null) return;
    after = until;
  }
}
