/**
 * `deno task bench:cluster` (bench/cluster.ts): the script run for real on a 1-node cluster
 * with tiny durations must write BENCHMARKS-style Markdown and JSON holding every requested row
 * and the cas/txn comparison; and the Markdown renderer, fed a synthetic run, must state the
 * machine, the shared cores and the parameters, and judge each target from the right row.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { MachineInfo } from "../bench/machine.ts";
import type { RowResult, RunResult } from "../bench/plan.ts";
import { formatMarkdown } from "../bench/report.ts";
import { findEtcd } from "../bench/etcd.ts";
import { PROJECT_ROOT } from "./_source_files.ts";

/** Runs bench/cluster.ts with `flags`; returns what it printed, failing on a non-zero exit. */
async function runScript(flags: readonly string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", `${PROJECT_ROOT}bench/cluster.ts`, ...flags],
    env: { NO_COLOR: "1" },
  }).output();
  equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

Deno.test("bench/cluster.ts names a bad flag and prints its usage on --help", async () => {
  const run = async (flags: readonly string[]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", `${PROJECT_ROOT}bench/cluster.ts`, ...flags],
      env: { NO_COLOR: "1" },
    }).output();
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
  };
  const unknown = await run(["--bogus"]);
  equal(unknown.code, 2);
  match(unknown.stderr, /^bench:cluster: .*--bogus/);
  match(unknown.stderr, /usage: deno task bench:cluster/);
  const invalid = await run(["--rounds=x"]);
  equal(invalid.code, 2);
  match(invalid.stderr, /--rounds is "x"/);
  const help = await run(["--help"]);
  equal(help.code, 0);
  match(help.stdout, /usage: deno task bench:cluster .*--clusters/);
});

Deno.test("bench/cluster.ts writes the table and the JSON of a run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-bench-script-" });
  try {
    const stdout = await runScript([
      "--clusters=1x1",
      // A 1-shard cluster skips the 2-shard row.
      "--rows=put-1,get-256,cas-2sh-1",
      "--duration=1",
      "--warmup=0",
      "--rounds=1",
      "--round-seconds=1",
      "--etcd=off",
      `--out=${dir}/B`,
    ]);
    match(stdout, /1 node \/ 1 shard/);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/B.json`));
    deepEqual(json.rows.map((row: RowResult) => row.id), ["put-1", "get-256"]);
    for (const row of json.rows as RowResult[]) {
      ok(row.report.operations > 0, `${row.id} ran operations`);
      deepEqual(row.report.errors, {}, `${row.id} had no errors`);
    }
    equal(json.comparisons.length, 1);
    equal(json.comparisons[0].casOpsPerSecond.length, 1);
    deepEqual(json.crossShard, [], "a 1-shard cluster has no 2-shard rounds");
    equal(typeof json.machine.cores, "number");
    const markdown = await Deno.readTextFile(`${dir}/B.md`);
    match(markdown, /\| 1 node \/ 1 shard \| put \| 1 \|/);
    match(markdown, /\| 1 node \/ 1 shard \| get, linearizable \| 256 \|/);
    match(markdown, /## CAS against the equivalent optimistic transaction/);
    // --render rewrites the Markdown from the JSON alone: the same table, nothing measured.
    await Deno.remove(`${dir}/B.md`);
    const rendered = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${PROJECT_ROOT}bench/cluster.ts`,
        `--render=${dir}/B.json`,
        `--out=${dir}/B`,
      ],
      env: { NO_COLOR: "1" },
    }).output();
    equal(rendered.code, 0, new TextDecoder().decode(rendered.stderr));
    equal(await Deno.readTextFile(`${dir}/B.md`), markdown);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench/cluster.ts runs the same rows against etcd beside Aspen's", async () => {
  // .ci/run installs etcd (Debian's etcd-server); without it the run says so and has no rows.
  const etcd = await findEtcd(null);
  const dir = await Deno.makeTempDir({ prefix: "aspen-bench-etcd-" });
  try {
    const stdout = await runScript([
      "--clusters=1x1",
      // etcd has no optimistic transaction: the txn row is Aspen's only.
      "--rows=put-1,cas-1,txn-256",
      "--duration=1",
      "--warmup=0",
      "--rounds=0",
      `--out=${dir}/B`,
    ]);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/B.json`));
    const markdown = await Deno.readTextFile(`${dir}/B.md`);
    if (etcd === null) {
      match(stdout, /no etcd on PATH/);
      equal(json.etcdVersion, null);
      match(markdown, /## Against etcd\n\nNot measured/);
      return;
    }
    match(stdout, /etcd, 1 member/);
    match(json.etcdVersion, /^3\./);
    const etcdRows = (json.rows as RowResult[]).filter((row) => row.cluster.system === "etcd");
    deepEqual(etcdRows.map((row) => row.id), ["put-1", "cas-1"]);
    for (const row of etcdRows) {
      ok(row.report.operations > 0, `etcd ${row.id} ran operations`);
      deepEqual(row.report.errors, {}, `etcd ${row.id} had no errors`);
      ok(row.cpu.nodesUsPerOp !== null, `etcd ${row.id}: its CPU was measured`);
    }
    // The cas client learns its 100 keys' mod_revisions from etcd's answers: after the first
    // miss of each key, its compares succeed.
    const cas = etcdRows[1]!.report;
    ok(cas.conflicts < cas.operations / 2, `etcd cas: ${cas.conflicts} of ${cas.operations}`);
    match(markdown, /\| 1 node \/ 1 shard \| put \| 1 \| [\d,]+ \| [\d,]+ \| [\d.]+x \|/);
    match(markdown, /\| etcd, 1 member \| cas, 100 keys \| 1 \|/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const MACHINE: MachineInfo = {
  cores: 2,
  cpuModel: "Test CPU",
  memoryGiB: 24,
  os: "linux 6.1",
  deno: "2.9.6",
  v8: "15.0",
  commit: "abc123",
  isDirty: false,
  loadAverage: [0.5, 0.4, 0.3],
};

function row(nodes: number, shards: number, id: string, ops: number, p50Ms = 1): RowResult {
  return {
    cluster: { nodes, shards },
    id,
    title: id,
    loadAverage: 0.5,
    cpu: { clientPercent: 20, nodePercents: [50, 40, 40], nodesUsPerOp: 100 },
    report: {
      workload: id.split("-")[0]!,
      clients: id.endsWith("-1") ? 1 : 256,
      conns: 1,
      keySize: 8,
      valueSize: 256,
      keyspace: 10_000,
      keysPerTxn: 1,
      shardsPerTxn: 1,
      elapsedMs: 10_000,
      operations: ops * 10,
      operationsPerSecond: ops,
      latency: { count: ops * 10, meanMs: p50Ms, p50Ms, p90Ms: 2, p99Ms: 3, maxMs: 9 },
      conflicts: 0,
      aborts: 0,
      errors: {},
    },
  };
}

function run(
  putOps: number,
  shardedPutOps: number,
  overheadPercent: number,
  crossShardP50Ms = 7,
): RunResult {
  return {
    startedAt: "2026-01-01T00:00:00.000Z",
    parameters: {
      durationSeconds: 10,
      warmupSeconds: 2,
      keySize: 8,
      valueSize: 256,
      keyspace: 10_000,
      connsMax: 256,
      endpoints: "all",
      casTxnRounds: 2,
      casTxnRoundSeconds: 3,
    },
    rows: [
      row(3, 1, "put-1", 900, 1.5),
      row(3, 1, "put-256", putOps),
      row(3, 1, "get-256", 41_000),
      row(3, 4, "put-256", shardedPutOps),
      row(3, 4, "cas-1", 250, 4),
      row(3, 1, "cas-2sh-1", 1, 100),
      row(3, 4, "cas-2sh-1", 90, crossShardP50Ms),
    ],
    comparisons: [{
      cluster: { nodes: 3, shards: 1 },
      casOpsPerSecond: [1000, 1000],
      txnOpsPerSecond: [990, 980],
      casNodesUsPerOp: [100, 100],
      txnNodesUsPerOp: [101, 102],
      throughputOverheadPercent: overheadPercent,
      cpuOverheadPercent: 1.5,
      casConflicts: 3,
      txnConflicts: 4,
      operations: 12_000,
    }],
  };
}

Deno.test("formatMarkdown states the machine, the shared cores and the parameters", () => {
  const markdown = formatMarkdown(MACHINE, run(16_000, 17_000, 1.5), "## Notes\n\nBy hand.");
  match(markdown, /2 cores \(Test CPU\), 24 GiB memory/);
  match(markdown, /Deno 2\.9\.6/);
  match(markdown, /commit `abc123`/);
  match(markdown, /benchmark client and every node share these 2 cores/);
  match(markdown, /at least 8 bytes\), 10,000 distinct keys/);
  match(
    markdown,
    /\| 3 nodes \/ 4 shards \| put-256 \| 256 \| 17,000 \| 1\.00 \| 2\.00 \| 3\.00 \|/,
  );
  match(markdown, /## Notes\n\nBy hand\.\n$/);
});

Deno.test("formatMarkdown judges each target from the right row", async (t) => {
  await t.step("all met", () => {
    const markdown = formatMarkdown(MACHINE, run(16_000, 16_000, 1.5));
    match(markdown, /put >= 15,000\/s on 1 shard \| 16,000\/s \| yes/);
    match(markdown, /single-client put p50 < 2 ms \| 1\.50 ms \| yes/);
    match(markdown, /linearizable get >= 40,000\/s \| 41,000\/s \| yes/);
    match(markdown, /4 shards put no less than 1 shard \| 1\.00x \| yes/);
    match(markdown, /optimistic txn overhead < 5% vs CAS \| 1\.5% \| yes/);
    match(markdown, /2-shard cas p50 <= 2x 1-shard cas, 1 client, 4 shards \| 1\.75x \| yes/);
  });
  await t.step("some missed", () => {
    const markdown = formatMarkdown(MACHINE, run(9_000, 8_000, 7, 12));
    match(markdown, /put >= 15,000\/s on 1 shard \| 9,000\/s \| no/);
    match(markdown, /4 shards put no less than 1 shard \| 0\.89x \| no/);
    match(markdown, /optimistic txn overhead < 5% vs CAS \| 7\.0% \| no/);
    match(markdown, /2-shard cas p50 <= 2x 1-shard cas, 1 client, 4 shards \| 3\.00x \| no/);
  });
  await t.step("the 2-shard ratio from alternating rounds, when the run has them", () => {
    const rounds: RunResult = {
      ...run(9_000, 8_000, 7, 12),
      crossShard: [{
        cluster: { nodes: 3, shards: 4 },
        oneShardP50Ms: [3, 4, 3],
        twoShardP50Ms: [5.4, 9, 6],
        oneShardNodesUsPerOp: [4000, 4200, null],
        twoShardNodesUsPerOp: [9000, 9900, 9500],
        p50Ratio: 2,
      }],
    };
    const markdown = formatMarkdown(MACHINE, rounds);
    match(markdown, /## A cas over 2 shards against a cas on 1, at 1 client/);
    match(
      markdown,
      /\| 3 nodes \/ 4 shards \| 3\.00, 4\.00, 3\.00 \| 5\.40, 9\.00, 6\.00 \| 2x \|/,
    );
    match(
      markdown,
      /1 client, 4 shards \(median of the rounds above\) \| 2\.00x \| yes/,
    );
  });
});

Deno.test("formatMarkdown sets etcd's rows beside Aspen's and judges issue 16's targets", () => {
  const etcd = (id: string, ops: number, p50Ms: number): RowResult => {
    const base = row(3, 1, id, ops, p50Ms);
    return { ...base, cluster: { nodes: 3, shards: 1, system: "etcd" } };
  };
  const base = run(16_000, 16_000, 1.5);
  const markdown = formatMarkdown(MACHINE, {
    ...base,
    rows: [
      ...base.rows,
      row(3, 1, "get-1", 500, 1),
      etcd("put-1", 1_000, 1.2),
      etcd("put-256", 6_400, 1),
      etcd("get-256", 8_000, 1),
      etcd("get-1", 400, 0.9),
    ],
    etcdVersion: "3.4.23",
  });
  match(markdown, /etcd 3\.4\.23 ran on the same machine/);
  // Aspen's put-1 makes 900/s at p50 1.5 ms, etcd's 1,000/s at 1.2 ms.
  match(
    markdown,
    /\| 3 nodes \/ 1 shard \| put-1 \| 1 \| 900 \| 1,000 \| 0\.90x \| 1\.50 \| 1\.20 \| 0\.80x \|/,
  );
  match(markdown, /\| etcd, 3 members \| put-256 \| 256 \| 6,400 \|/);
  match(markdown, /put, 256 clients, >= 2x etcd's \| 2\.50x \| yes/);
  match(markdown, /linearizable get, 256 clients, >= 6x etcd's \| 5\.13x \| no/);
  match(markdown, /single-client put >= 1x etcd's \| 0\.90x \| no/);
  match(markdown, /single-client put p50 no higher than etcd's \| 1\.25x \| no/);
  match(markdown, /single-client linearizable get >= 1x etcd's \| 1\.25x \| yes/);
  // An etcd row is never taken for an Aspen one: the Aspen targets read Aspen's rows.
  match(markdown, /put >= 15,000\/s on 1 shard \| 16,000\/s \| yes/);
});
