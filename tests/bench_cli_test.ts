/**
 * `aspen bench` against a real 1-node cluster (a real `aspen node` process on loopback): each
 * workload runs a fixed number of operations through the CLI and must report exactly that many
 * with no errors; the read workloads must have written their key space first (checked through
 * the HTTP API); cas and txn on a tiny key space must keep succeeding by learning versions; and
 * the human report and the progress line name what was measured. Against a 1-node, 4-shard
 * cluster, `--shards-per-txn` must make every cas, txn and read-txn a cross-shard transaction
 * (counted by the node's /metrics), `--keys-per-txn` on one shard none, and shapes the cluster
 * or the flags cannot give must be usage errors naming why.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { type CliIo, runCli } from "../cli/mod.ts";
import { ASPEN_COMMAND, launchTestCluster } from "./_cluster.ts";

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function aspen(argv: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    env: {},
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
    readTextFile: (path) => Deno.readTextFile(path),
    readFile: (path) => Deno.readFile(path),
    writeFile: (path, bytes) => Deno.writeFile(path, bytes),
    nowMs: () => Date.now(),
    monotonicMs: () => performance.now(),
    shutdown: new AbortController().signal,
    selfCommand: ASPEN_COMMAND,
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    writeNewFile: () => Promise.resolve(false),
    versions: { aspen: "test", deno: Deno.version.deno },
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}

interface JsonReport {
  workload: string;
  operations: number;
  clients: number;
  conns: number;
  keysPerTxn: number;
  shardsPerTxn: number;
  conflicts: number;
  aborts: number;
  errors: Record<string, number>;
  latency: { count: number; p50Ms: number; maxMs: number };
}

Deno.test("aspen bench runs every workload against a real 1-node cluster", async (t) => {
  const { cluster, lines, close } = await launchTestCluster({ nodes: 1, shards: 1 });
  try {
    await cluster.waitForLeaders();
    const flags = [`--endpoints=${cluster.url(1)}`, `--token=${cluster.record.rootToken}`];
    const bench = async (workload: string, extra: string[]) => {
      const run = await aspen(["bench", workload, ...flags, "--json", ...extra]);
      equal(run.code, 0, `${workload} exits 0; stderr: ${run.stderr}`);
      return JSON.parse(run.stdout) as JsonReport;
    };
    await t.step("put", async () => {
      const report = await bench("put", ["--total=300", "--clients=8", "--conns=2"]);
      deepEqual(
        [report.workload, report.operations, report.clients, report.conns],
        ["put", 300, 8, 2],
      );
      deepEqual(report.errors, {});
      equal(report.latency.count, 300);
      ok(report.latency.p50Ms > 0 && report.latency.p50Ms <= report.latency.maxMs);
    });
    await t.step("get, after writing the key space", async () => {
      const report = await bench("get", ["--total=200", "--clients=4", "--keyspace=40"]);
      equal(report.operations, 200);
      deepEqual(report.errors, {}, "every key was written before the reads");
      const response = await fetch(`${cluster.url(1)}/v1/kv/${encodeURIComponent("bench/39")}`, {
        headers: { authorization: `Bearer ${cluster.record.rootToken}` },
      });
      const body = await response.json() as { kv: { value: string } };
      equal(body.kv.value, "v".repeat(256), "the last key of the space holds a 256-byte value");
    });
    for (const workload of ["mixed", "scan"]) {
      await t.step(workload, async () => {
        const report = await bench(workload, ["--total=100", "--clients=4", "--keyspace=40"]);
        equal(report.operations, 100);
        deepEqual(report.errors, {});
      });
    }
    await t.step("get, serializable", async () => {
      const extra = ["--total=100", "--keyspace=40", "--consistency=serializable"];
      deepEqual((await bench("get", extra)).errors, {});
    });
    for (const workload of ["cas", "txn"]) {
      await t.step(`${workload} on a contended key space`, async () => {
        const report = await bench(workload, ["--total=200", "--clients=4", "--keyspace=3"]);
        equal(report.operations, 200);
        deepEqual(report.errors, {});
        ok(report.conflicts < 200, "versions are learned, so most operations succeed");
      });
    }
    for (const workload of ["cas", "txn"]) {
      await t.step(`${workload} with --client-keys fails only each key's first write`, async () => {
        // Keys 0..7 were written above, so each client's first compare on a key (version 0)
        // fails once and learns it; no other client ever writes its keys after that.
        const extra = ["--total=200", "--clients=4", "--keyspace=8", "--client-keys"];
        const report = await bench(workload, extra);
        equal(report.operations, 200);
        deepEqual(report.errors, {});
        ok(report.conflicts <= 8, `at most one conflict per key (${report.conflicts})`);
      });
    }
    await t.step("the human report", async () => {
      const run = await aspen(["bench", "put", ...flags, "--total=50", "--key-size=16"]);
      equal(run.code, 0);
      match(run.stdout, /^put: 50 ops in [\d.]+s with 1 clients over 1 connections/);
      match(run.stdout, /key 16 B, value 256 B, keyspace 10000/);
      match(run.stdout, /OPS\/S +MEAN MS +P50 MS +P90 MS +P99 MS +MAX MS +CONFLICTS +ERRORS/);
    });
  } catch (error) {
    console.error(lines.slice(-40).join("\n"));
    throw error;
  } finally {
    await close();
  }
});

/** The node's committed cross-shard transactions, from /metrics. */
async function crossShardCommitted(url: string, token: string): Promise<number> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  const found = /^aspen_cross_shard_transactions_total\{[^}]*outcome="committed"\} (\d+)$/m
    .exec(text);
  ok(found !== null, "the node reports its committed cross-shard transactions");
  return Number(found[1]);
}

Deno.test("aspen bench --shards-per-txn runs cross-shard txns on a 4-shard node", async (t) => {
  const { cluster, lines, close } = await launchTestCluster({ nodes: 1, shards: 4 });
  try {
    await cluster.waitForLeaders();
    const url = cluster.url(1);
    const token = cluster.record.rootToken;
    const flags = [`--endpoints=${url}`, `--token=${token}`, "--keyspace=40"];
    const bench = async (workload: string, extra: string[]) => {
      const before = await crossShardCommitted(url, token);
      const run = await aspen(["bench", workload, ...flags, "--json", ...extra]);
      equal(run.code, 0, `${workload} ${extra.join(" ")} exits 0; stderr: ${run.stderr}`);
      const report = JSON.parse(run.stdout) as JsonReport;
      return { report, crossShard: (await crossShardCommitted(url, token)) - before };
    };
    for (const workload of ["cas", "txn", "read-txn"]) {
      await t.step(`${workload} over 2 shards: every txn is a cross-shard one`, async () => {
        const extra = ["--total=60", "--clients=2", "--client-keys", "--shards-per-txn=2"];
        const { report, crossShard } = await bench(workload, extra);
        deepEqual([report.operations, report.keysPerTxn, report.shardsPerTxn], [60, 2, 2]);
        deepEqual(report.errors, {});
        // Failed compares commit their failure branch; optimistic conflicts are 409s.
        equal(report.aborts, workload === "txn" ? report.conflicts : 0);
        equal(crossShard, 60 - report.aborts, "each operation that got through was cross-shard");
      });
    }
    await t.step("3 keys on 3 shards, with contention between clients", async () => {
      const extra = ["--total=60", "--clients=4", "--shards-per-txn=3", "--keyspace=8"];
      const { report, crossShard } = await bench("txn", extra);
      equal(report.operations, 60);
      deepEqual(report.errors, {}, "locks met are conflicts, not errors");
      equal(report.aborts, report.conflicts, "an optimistic conflict wrote nothing");
      equal(crossShard, 60 - report.aborts);
    });
    await t.step("2 keys on 1 shard: multi-key, single-shard", async () => {
      const extra = ["--total=40", "--keys-per-txn=2", "--shards-per-txn=1", "--client-keys"];
      const { report, crossShard } = await bench("cas", extra);
      deepEqual([report.operations, report.keysPerTxn, report.shardsPerTxn], [40, 2, 1]);
      equal(crossShard, 0, "no transaction left its shard");
    });
    await t.step("the human report names the shape and the conflict rate", async () => {
      const run = await aspen(["bench", "cas", ...flags, "--total=20", "--shards-per-txn=2"]);
      equal(run.code, 0);
      match(run.stdout, /with 1 clients over 1 connections \(2 keys on 2 shards per txn, key 8 B/);
      match(
        run.stdout,
        /conflict rate: [\d.]+% \(\d+ of 20 failed a compare or met a conflict; 0 aborted with 409/,
      );
    });
    await t.step("shapes the cluster or the flags cannot give are usage errors", async () => {
      const cases = [
        {
          args: ["cas", "--shards-per-txn=5"],
          want: /5 shards per transaction, but the cluster has 4 shard\(s\)/,
        },
        {
          args: ["txn", "--shards-per-txn=2", "--keys-per-txn=1"],
          want: /--keys-per-txn is 1 but must be at least/,
        },
        { args: ["put", "--shards-per-txn=2"], want: /apply to cas, txn and read-txn, not put/ },
        {
          args: ["cas", "--shards-per-txn=2", "--clients=40", "--client-keys"],
          want: /Client \d+'s 1 keys give 1 shard\(s\)/,
        },
      ];
      for (const { args, want } of cases) {
        const run = await aspen(["bench", ...args, ...flags, "--total=1"]);
        equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
        match(run.stderr, want);
      }
    });
  } catch (error) {
    console.error(lines.slice(-40).join("\n"));
    throw error;
  } finally {
    await close();
  }
});
