/**
 * `aspen bench` against a real 1-node cluster (a real `aspen node` process on loopback): each
 * workload runs a fixed number of operations through the CLI and must report exactly that many
 * with no errors; the read workloads must have written their key space first (checked through
 * the HTTP API); cas and txn on a tiny key space must keep succeeding by learning versions; and
 * the human report and the progress line name what was measured.
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
  conflicts: number;
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
