/**
 * The node's alarms: storage conditions an operator must act on, shown per node in
 * `/v1/cluster/status`, as `aspen_alarm` in `/metrics` and in the console (after etcd's
 * NOSPACE alarm). Every alarm clears by itself once its condition is gone.
 *
 * - `no_space` of the node (no shard): the data folder's file system has less free space than
 *   the reserve (`[node] disk_reserve_mib`). The shard leaders of this node refuse writes at
 *   once with `no_space`, except deletes (see `isDeleteOnly`), so that what was accepted
 *   before still fits: entries in flight, their apply, hard states and heartbeats. This is
 *   prevention: it trips before SQLite ever meets a full disk.
 * - `no_space` or `storage_error` of a shard: its replica is stalled, holding a write that
 *   failed on storage and retrying it (see shard/_storage_stall.ts); it refuses every write.
 *   This is the backstop when the reserve was not enough (or is 0).
 * - `storage_error` of the node: its free space cannot be read (writes are not refused for it).
 *   A process not allowed to read it (Deno without `--allow-sys=statfs`) raises no alarm: it
 *   logs once that the reserve is not enforced.
 *
 * A timer samples the disk every DISK_CHECK_INTERVAL_MS and logs each alarm as it is raised
 * and cleared. Writes sample it too, at most every DISK_RECHECK_ON_WRITE_MS: four clients
 * writing 64 KiB values filled the 8 MiB left under a 16 MiB reserve on a tmpfs before the next
 * timer sample (tests/no_space_node_test.ts, before this was added). The timer's check looks
 * only at the replicas that may be awake (a stalled replica is never asleep: see `awake`) and
 * at those whose alarm it logged, so an idle node's check does not visit every shard; the list
 * shown in the status and metrics covers every shard.
 */
import { statfsSync } from "node:fs";
import {
  AspenError,
  type Command,
  isDeleteOnly,
  type StorageFailureKind,
  type StorageStallStatus,
} from "../../shard/mod.ts";
import type { Logger } from "../log.ts";

/** How often a node reads the free space of its data folder's file system. */
export const DISK_CHECK_INTERVAL_MS = 1_000;
/** How old a free-space sample may be when a write asks whether it must be refused. */
export const DISK_RECHECK_ON_WRITE_MS = 20;

const MIB = 1024 * 1024;

/** The kinds of alarm: the storage failure kinds. */
export type AlarmType = StorageFailureKind;

/** Every alarm type, in the order metrics list them. */
export const ALARM_TYPES: readonly AlarmType[] = ["no_space", "storage_error"];

/** One raised alarm. */
export interface Alarm {
  readonly type: AlarmType;
  /** The shard whose replica raised it; absent for the node's own alarm (its disk). */
  readonly shard?: number;
  /** When it was raised: wall-clock milliseconds since the Unix epoch. */
  readonly sinceMs: number;
  /** What is wrong and what is refused, in a sentence. */
  readonly message: string;
}

/** The free space of the data folder's file system against the reserve. */
export interface DiskSpace {
  /** Null when it cannot be read. */
  readonly freeBytes: number | null;
  readonly reserveBytes: number;
}

/** A local replica, as far as alarms see it. */
export interface AlarmShard {
  readonly replica: {
    storageStall(): StorageStallStatus | null;
  };
}

/** What the alarms need from the node. */
export interface NodeAlarmsOptions {
  readonly nodeId: number;
  readonly dataDir: string;
  readonly reserveBytes: number;
  readonly shards: ReadonlyMap<number, AlarmShard>;
  /**
   * The shards whose replica may be awake (the node timer's set, NodeShards): a stalled replica
   * is never asleep (ShardReplica.isAsleep), so it is in this set. The periodic check looks only
   * at these. Absent: it looks at every shard.
   */
  readonly awake?: ReadonlySet<number>;
  /** Monotonic milliseconds (the replicas' clock). */
  readonly nowMs: () => number;
  /** Wall-clock milliseconds, for `sinceMs`. */
  readonly wallMs: () => number;
  readonly logger: Logger;
  /** Free bytes for unprivileged writers on the file system of `path`: statfs by default. */
  readonly freeBytes?: (path: string) => number;
}

/** The alarms of one node. */
export class NodeAlarms {
  readonly #options: NodeAlarmsOptions;
  readonly #freeBytesOf: (path: string) => number;
  #space: DiskSpace;
  /** The node's own alarm, kept while its condition lasts (so `sinceMs` stays). */
  #diskAlarm: Alarm | null = null;
  /** The alarms logged as raised, by type and shard. */
  #logged = new Map<string, Alarm>();
  /** Whether the process may not read the free space (warned once; no reserve then). */
  #isStatfsDenied = false;
  /** When the free space was last read, monotonic ms. */
  #sampledAtMs = Number.NEGATIVE_INFINITY;
  #timer: ReturnType<typeof setInterval> | null = null;

  constructor(options: NodeAlarmsOptions) {
    this.#options = options;
    this.#freeBytesOf = options.freeBytes ?? freeBytesOnDisk;
    this.#space = { freeBytes: null, reserveBytes: options.reserveBytes };
    this.check();
  }

  /** Starts sampling the disk every DISK_CHECK_INTERVAL_MS. */
  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.check(), DISK_CHECK_INTERVAL_MS);
  }

  /** Stops sampling. */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Reads the free space now, and logs the alarms raised and cleared since the last check. */
  check(): void {
    this.#diskAlarm = this.#readDisk();
    const awake = this.#options.awake;
    let alarms: Alarm[];
    if (awake === undefined) alarms = this.list();
    else {
      // The shards whose alarm is logged too: one that fell asleep has its alarm cleared.
      const loggedShards = [...this.#logged.values()].map((alarm) => alarm.shard);
      const ids = new Set([...awake, ...loggedShards.filter((id) => id !== undefined)]);
      alarms = this.#alarmsOf([...ids]);
    }
    const current = new Map(alarms.map((alarm) => [alarmKey(alarm), alarm]));
    const logger = this.#options.logger;
    for (const [key, alarm] of current) {
      if (this.#logged.has(key)) continue;
      logger.warn("Alarm raised", { type: alarm.type, shard: alarm.shard, reason: alarm.message });
    }
    for (const [key, alarm] of this.#logged) {
      if (!current.has(key)) logger.info("Alarm cleared", { type: alarm.type, shard: alarm.shard });
    }
    this.#logged = current;
  }

  /** Every alarm raised now: the node's own first, then one per stalled replica by shard. */
  list(): Alarm[] {
    return this.#alarmsOf([...this.#options.shards.keys()]);
  }

  /** The node's own alarm, then those of the stalled replicas among `ids`, by shard. */
  #alarmsOf(ids: number[]): Alarm[] {
    const alarms: Alarm[] = this.#diskAlarm === null ? [] : [this.#diskAlarm];
    const now = this.#options.nowMs();
    const wall = this.#options.wallMs();
    ids.sort((a, b) => a - b);
    for (const shard of ids) {
      const stall = this.#options.shards.get(shard)?.replica.storageStall() ?? null;
      if (stall === null) continue;
      alarms.push({
        type: stall.kind,
        shard,
        sinceMs: Math.round(wall - (now - stall.sinceMs)),
        message: `Shard ${shard} cannot write (${stall.stage} failed ${stall.attempts} ` +
          `times, retrying): ${stall.reason}`,
      });
    }
    return alarms;
  }

  /** The free space last read, and the reserve. */
  space(): DiskSpace {
    return this.#space;
  }

  /**
   * The error for a write a shard leader on this node must refuse while the disk is below
   * its reserve, or null: deletes pass (they let an operator make room).
   */
  refusal(shard: number, command: Command): AspenError | null {
    if (this.#options.nowMs() - this.#sampledAtMs >= DISK_RECHECK_ON_WRITE_MS) {
      this.#diskAlarm = this.#readDisk();
    }
    const alarm = this.#diskAlarm;
    if (alarm?.type !== "no_space" || isDeleteOnly(command)) return null;
    return new AspenError(
      alarm.type,
      `Cannot write to shard ${shard} on node ${this.#options.nodeId}: ${alarm.message}`,
      { shard, node: this.#options.nodeId },
    );
  }

  /** Reads the free space; the node's own alarm, kept if it was already raised. */
  #readDisk(): Alarm | null {
    const { dataDir, reserveBytes } = this.#options;
    if (this.#isStatfsDenied) return null;
    this.#sampledAtMs = this.#options.nowMs();
    let type: AlarmType | null = null;
    let message = "";
    try {
      const freeBytes = this.#freeBytesOf(dataDir);
      this.#space = { freeBytes, reserveBytes };
      if (freeBytes < reserveBytes) {
        type = "no_space";
        message = `the data disk of "${dataDir}" has ${formatMib(freeBytes)} MiB free, below ` +
          `the reserve of ${formatMib(reserveBytes)} MiB ([node] disk_reserve_mib); writes ` +
          "other than deletes are refused until space is freed";
      }
    } catch (error) {
      this.#space = { freeBytes: null, reserveBytes };
      if (error instanceof Deno.errors.NotCapable) {
        this.#isStatfsDenied = true;
        this.#options.logger.warn("Cannot check free disk space: the reserve is not enforced", {
          reason: error.message,
        });
        return null;
      }
      type = "storage_error";
      message = `Cannot read the free space of "${dataDir}": ` +
        (error instanceof Error ? error.message : String(error));
    }
    if (type === null) return null;
    const previous = this.#diskAlarm;
    const sinceMs = previous?.type === type ? previous.sinceMs : this.#options.wallMs();
    return { type, sinceMs, message };
  }
}

/** Free bytes for unprivileged writers on the file system that holds `path`. */
export function freeBytesOnDisk(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

function alarmKey(alarm: Alarm): string {
  return `${alarm.type}/${alarm.shard ?? "node"}`;
}

function formatMib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}
