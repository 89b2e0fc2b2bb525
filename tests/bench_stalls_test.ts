/**
 * `deno task bench:stalls` (bench/stalls.ts): run for real on a 1-node cluster with a tiny
 * snapshot interval, it must load the node, see the snapshots it took, and write its figures
 * as text and JSON; its `/metrics` parser must sum a node's per-shard counters and take each
 * stall threshold from its own line; a bad flag is named.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { formatStalls, parseStalls } from "../bench/stalls.ts";
import { PROJECT_ROOT } from "./_source_files.ts";

async function runScript(flags: readonly string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", `${PROJECT_ROOT}bench/stalls.ts`, ...flags],
    env: { NO_COLOR: "1" },
  }).output();
}

Deno.test("parseStalls sums the shards' counters and reads each stall threshold", () => {
  const text = [
    "# TYPE aspen_node_event_loop_stall_ms_max gauge",
    'aspen_node_event_loop_stall_ms_max{node="2"} 217',
    'aspen_node_event_loop_stalls_total{node="2",over_ms="100"} 5',
    'aspen_node_event_loop_stalls_total{node="2",over_ms="500"} 1',
    'aspen_shard_snapshots_created_total{node="2",shard="0"} 2',
    'aspen_shard_snapshots_created_total{node="2",shard="1"} 3',
    'aspen_shard_snapshots_restored_total{node="2",shard="1"} 1',
    'aspen_shard_snapshots_created_total_other{node="2",shard="1"} 100',
  ].join("\n");
  deepEqual(parseStalls(text), {
    stallMsMax: 217,
    stallsOver100: 5,
    stallsOver500: 1,
    snapshotsCreated: 5,
    snapshotsRestored: 1,
  });
});

Deno.test("bench/stalls.ts loads a node across its snapshots and reports its stalls", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-bench-stalls-" });
  try {
    const output = await runScript([
      "--nodes=1",
      "--seconds=3",
      "--clients=8",
      "--snapshot-interval=200",
      `--json=${dir}/stalls.json`,
    ]);
    const stdout = new TextDecoder().decode(output.stdout);
    equal(output.code, 0, new TextDecoder().decode(output.stderr));
    match(stdout, /^ {2}node 1: stall max \d+/m);
    match(stdout, /load: \d+ puts, \d+ ops\/s; p50 [\d.]+ ms/);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/stalls.json`));
    equal(json.nodes.length, 1);
    const [node] = json.nodes;
    ok(json.report.operations >= 400, `enough puts for two snapshots: ${json.report.operations}`);
    ok(
      node.after.snapshotsCreated - node.before.snapshotsCreated >= 1,
      `the load made snapshots: ${JSON.stringify(node)}`,
    );
    ok(node.after.stallMsMax >= node.before.stallMsMax, "the stall maximum never falls");
    deepEqual(json.report.errors, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench/stalls.ts names a bad flag", async () => {
  const output = await runScript(["--clients=0"]);
  ok(output.code !== 0);
  match(new TextDecoder().decode(output.stderr), /--clients must be a positive integer/);
});

Deno.test("bench/stalls.ts refuses a lagging node it cannot run", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--nodes=1", "--lag-node=1"], /--lag-node needs --nodes of 2 or more/],
    [["--nodes=3", "--lag-node=4"], /--lag-node is 4 but the limit is 3/],
    [["--seconds=10", "--lag-node=2", "--lag-seconds=7"], /--lag-seconds 7 does not end/],
  ];
  for (const [flags, expected] of cases) {
    await t.step(flags.join(" "), async () => {
      const output = await runScript(flags);
      ok(output.code !== 0);
      match(new TextDecoder().decode(output.stderr), expected);
    });
  }
});

Deno.test("formatStalls counts a restarted node's figures from its restart", () => {
  const sample = (stallMsMax: number, snapshotsRestored: number) => ({
    stallMsMax,
    stallsOver100: 2,
    stallsOver500: 0,
    snapshotsCreated: 1,
    snapshotsRestored,
  });
  const zero = { ...sample(0, 0), stallsOver100: 0, snapshotsCreated: 0 };
  const text = formatStalls(
    [
      { node: 1, before: sample(90, 0), after: sample(180, 0) },
      { node: 2, before: zero, after: sample(140, 1), isRestarted: true },
    ],
    {
      operations: 1000,
      operationsPerSecond: 100,
      latency: { p50Ms: 1, p99Ms: 2, maxMs: 3 },
      errors: {},
    } as unknown as Parameters<typeof formatStalls>[1],
  );
  match(text, /^ {2}node 1: stall max 180 ms; stalls over 100 ms 0, over 500 ms 0;/m);
  match(text, /^ {2}node 2 \(restarted, since then\): stall max 140 ms; stalls over 100 ms 2, /m);
  match(text, /node 2 .* installed 1$/m);
});
