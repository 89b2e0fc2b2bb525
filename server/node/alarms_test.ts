/**
 * NodeAlarms with an injected free-space reading, injected clocks and stand-in replicas: the
 * node's own `no_space` alarm follows the free space against the reserve (raised below it,
 * kept with its first `sinceMs`, cleared above it); a stalled replica shows as its shard's
 * alarm, stamped on the wall clock; a failing statfs is a `storage_error` (refusing nothing),
 * and one the process may not run is warned about once; writes are refused with the alarm's
 * code only while the disk is below the reserve (a write samples it again when the last sample
 * is old), and deletes never; every
 * alarm is logged once when raised and once when cleared, and the periodic check visits only the
 * replicas that may be awake and those whose alarm it logged. The metrics page shows the alarms.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { Command, StorageStallStatus } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import { DISK_RECHECK_ON_WRITE_MS, NodeAlarms } from "./alarms.ts";
import { formatMetrics, HttpLatency } from "./metrics.ts";
import { CrossShardStats } from "./cross_shard_stats.ts";
import { LoopStalls } from "./loop_stalls.ts";

const MIB = 1024 * 1024;
const PUT: Command = { type: "put", key: "k", value: "v", lease: 0, prevKv: false };
const DELETE: Command = { type: "delete", key: "k", prevKv: false };

function setup(awake?: ReadonlySet<number>) {
  const lines: string[] = [];
  const visits: number[] = [];
  const clock = { monotonicMs: 1_000, wallMs: 1_700_000_000_000 };
  const disk: { freeBytes: number | Error } = { freeBytes: 100 * MIB };
  const stalls = new Map<number, StorageStallStatus | null>([[0, null], [3, null]]);
  const shards = new Map(
    [...stalls.keys()].map((id) => [id, {
      replica: {
        storageStall: () => {
          visits.push(id);
          return stalls.get(id)!;
        },
      },
    }]),
  );
  const alarms = new NodeAlarms({
    nodeId: 4,
    dataDir: "/data",
    reserveBytes: 64 * MIB,
    shards,
    ...(awake === undefined ? {} : { awake }),
    nowMs: () => clock.monotonicMs,
    wallMs: () => clock.wallMs,
    logger: new Logger({
      level: "info",
      format: "text",
      write: (line) => lines.push(line),
      nowMs: () => 0,
    }),
    freeBytes: (path) => {
      equal(path, "/data");
      if (disk.freeBytes instanceof Error) throw disk.freeBytes;
      return disk.freeBytes;
    },
  });
  return { alarms, lines, clock, disk, stalls, visits };
}

Deno.test("NodeAlarms raises no_space below the reserve and refuses writes but deletes", () => {
  const { alarms, lines, clock, disk } = setup();
  deepEqual(alarms.list(), []);
  equal(alarms.refusal(0, PUT), null);
  disk.freeBytes = 10 * MIB;
  alarms.check();
  const raised = alarms.list();
  equal(raised.length, 1);
  equal(raised[0]!.type, "no_space");
  equal(raised[0]!.shard, undefined);
  equal(raised[0]!.sinceMs, clock.wallMs);
  match(raised[0]!.message, /"\/data" has 10\.0 MiB free, below the reserve of 64\.0 MiB/);
  const refusal = alarms.refusal(2, PUT);
  equal(refusal?.code, "no_space");
  equal(refusal?.details.shard, 2);
  match(refusal?.message ?? "", /^Cannot write to shard 2 on node 4: the data disk/);
  equal(alarms.refusal(2, DELETE), null, "deletes pass");
  clock.wallMs += 5_000;
  alarms.check();
  equal(alarms.list()[0]!.sinceMs, clock.wallMs - 5_000, "a lasting alarm keeps its start");
  disk.freeBytes = 64 * MIB;
  alarms.check();
  deepEqual(alarms.list(), []);
  equal(alarms.refusal(2, PUT), null);
  equal(lines.filter((line) => line.includes("Alarm raised")).length, 1);
  equal(lines.filter((line) => line.includes("Alarm cleared")).length, 1);
  deepEqual(alarms.space(), { freeBytes: 64 * MIB, reserveBytes: 64 * MIB });
});

Deno.test("NodeAlarms shows a stalled replica as its shard's alarm, on the wall clock", () => {
  const { alarms, lines, clock, stalls } = setup();
  stalls.set(3, {
    kind: "storage_error",
    stage: "apply",
    reason: "disk I/O error",
    sinceMs: clock.monotonicMs - 2_000,
    attempts: 4,
  });
  alarms.check();
  deepEqual(alarms.list(), [{
    type: "storage_error",
    shard: 3,
    sinceMs: clock.wallMs - 2_000,
    message: "Shard 3 cannot write (apply failed 4 times, retrying): disk I/O error",
  }]);
  equal(alarms.refusal(3, PUT), null, "the replica refuses by itself");
  ok(lines.some((line) => line.includes("Alarm raised") && line.includes("shard=3")));
  stalls.set(3, null);
  alarms.check();
  deepEqual(alarms.list(), []);
  ok(lines.some((line) => line.includes("Alarm cleared") && line.includes("shard=3")));
});

Deno.test("NodeAlarms.check() visits the awake replicas and those with a logged alarm", () => {
  const awake = new Set<number>();
  const { alarms, lines, clock, stalls, visits } = setup(awake);
  alarms.check();
  deepEqual(visits, [], "every replica asleep: none visited");
  stalls.set(3, {
    kind: "no_space",
    stage: "apply",
    reason: "disk full",
    sinceMs: clock.monotonicMs,
    attempts: 1,
  });
  awake.add(3); // A stalled replica is never asleep: it is in the node timer's set.
  alarms.check();
  deepEqual(visits, [3]);
  ok(lines.some((line) => line.includes("Alarm raised") && line.includes("shard=3")));
  equal(alarms.list().length, 1, "the list covers every shard");
  stalls.set(3, null);
  awake.delete(3); // It wrote, then fell asleep before the next check.
  visits.length = 0;
  alarms.check();
  deepEqual(visits, [3], "its alarm was logged: looked at again, and cleared");
  ok(lines.some((line) => line.includes("Alarm cleared") && line.includes("shard=3")));
  visits.length = 0;
  alarms.check();
  deepEqual(visits, [], "nothing logged, nothing awake");
});

Deno.test("NodeAlarms reports an unreadable free space as storage_error, refusing nothing", () => {
  const { alarms, disk } = setup();
  disk.freeBytes = Object.assign(new Error("ENOENT: no such file or directory"), {
    code: "ENOENT",
  });
  alarms.check();
  equal(alarms.list()[0]?.type, "storage_error");
  match(alarms.list()[0]?.message ?? "", /Cannot read the free space of "\/data": ENOENT/);
  equal(alarms.space().freeBytes, null);
  equal(alarms.refusal(0, PUT), null, "not knowing the free space refuses no write");
});

Deno.test("NodeAlarms without permission to read the free space warns once, with no alarm", () => {
  const { alarms, disk, lines } = setup();
  disk.freeBytes = new Deno.errors.NotCapable('Requires sys access to "statfs"');
  alarms.check();
  alarms.check();
  deepEqual(alarms.list(), []);
  equal(alarms.refusal(0, PUT), null);
  equal(lines.filter((line) => line.includes("the reserve is not enforced")).length, 1);
});

Deno.test("formatMetrics() shows one aspen_alarm gauge per type and the disk space", () => {
  const { alarms, disk } = setup();
  disk.freeBytes = 3 * MIB;
  alarms.check();
  const text = formatMetrics({
    nodeId: 4,
    shards: new Map(),
    router: {
      forwarded: 0,
      retries: 0,
      followerReads: 0,
      followerReadFallbacks: 0,
      abandonedOnPeerDown: 0,
    },
    peers: () => ({
      nodeId: 4,
      listenAddress: "127.0.0.1:7004",
      peers: [],
      inboundHandshakeFailures: 0,
      malformedFrameConnections: 0,
      unknownPeerDrops: 0,
    }),
    http: new HttpLatency(),
    alarms,
    crossShard: new CrossShardStats(),
    wallMs: Date.now,
    loopStalls: new LoopStalls(() => {}),
  });
  match(text, /^aspen_alarm\{node="4",type="no_space"\} 1$/m);
  match(text, /^aspen_alarm\{node="4",type="storage_error"\} 0$/m);
  match(text, new RegExp(`^aspen_disk_free_bytes\\{node="4"\\} ${3 * MIB}$`, "m"));
  match(text, new RegExp(`^aspen_disk_reserve_bytes\\{node="4"\\} ${64 * MIB}$`, "m"));
});

Deno.test("NodeAlarms: a write samples the free space again once the last sample is old", () => {
  const { alarms, clock, disk } = setup();
  disk.freeBytes = 1 * MIB;
  equal(alarms.refusal(0, PUT), null, "the sample taken a moment ago still holds");
  clock.monotonicMs += DISK_RECHECK_ON_WRITE_MS;
  equal(alarms.refusal(0, PUT)?.code, "no_space", "a write between timer checks sees it");
  equal(alarms.list()[0]?.type, "no_space");
});
