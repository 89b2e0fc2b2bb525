/**
 * `aspen kv watch` against a real node (one process, 3 shards): a prefix watch resumes from one
 * revision per shard (`--from-revisions`) and replays exactly the later writes of every shard; a
 * key watch replays from `--from-revision`; events arrive live too; and flag misuse is a usage
 * error naming the flag, before any request.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import { runCli } from "../cli/run_cli.ts";
import { captureCliIo as io } from "../cli/_capture_io.ts";
import { launchTestCluster } from "./_cluster.ts";

Deno.test("kv watch: flag misuse is a usage error naming the flag", async (t) => {
  const cases: [string[], RegExp][] = [
    [["kv", "watch"], /needs a <key> or --prefix/],
    [["kv", "watch", "k", "--prefix", "p"], /needs a <key> or --prefix P \(one of them\)/],
    [["kv", "watch", "--prefix", "p", "--from-revision", "3"], /--from-revision needs a <key>/],
    [["kv", "watch", "k", "--from-revisions", "0:3"], /--from-revisions is for --prefix/],
    [["kv", "watch", "--prefix", "p", "--from-revisions", "0:3,0:4"], /--from-revisions is "0:3/],
    [["kv", "watch", "--prefix", "p", "--from-revisions", "x"], /shard:revision pairs/],
    [["kv", "watch", "k", "--count", "0"], /--count/],
  ];
  for (const [argv, expected] of cases) {
    await t.step(argv.join(" "), async () => {
      const run = io();
      const code = await runCli([...argv, "--endpoints", "http://127.0.0.1:9"], run.io);
      equal(code, 2, run.err());
      match(run.err(), expected);
    });
  }
});

Deno.test({
  name: "kv watch replays from per-shard revisions and follows live writes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { cluster, close, lines } = await launchTestCluster({ nodes: 1, shards: 3 });
    try {
      await cluster.waitForLeaders();
      const flags = ["--endpoints", cluster.url(1), "--token", cluster.record.rootToken];
      const put = async (key: string, value: string) => {
        const run = io();
        equal(await runCli(["kv", "put", key, value, ...flags, "--json"], run.io), 0, run.err());
        return JSON.parse(run.out()) as { shard: number; revision: number };
      };
      // Before: one write per key; then the writes the watch must replay, in each shard's order.
      const first = new Map<number, number>();
      for (let i = 0; i < 12; i++) {
        const { shard, revision } = await put(`w/${i}`, "before");
        first.set(shard, Math.max(first.get(shard) ?? 0, revision));
      }
      ok(first.size === 3, "the keys fall on every shard");
      const after: string[] = [];
      for (let i = 0; i < 12; i++) {
        await put(`w/${i}`, "after");
        after.push(`w/${i}`);
      }
      const starts = [...first].map(([shard, revision]) => `${shard}:${revision + 1}`).join(",");
      const replay = io();
      const code = await runCli([
        "kv",
        "watch",
        "--prefix",
        "w/",
        "--from-revisions",
        starts,
        "--count",
        "12",
        "--json",
        ...flags,
      ], replay.io);
      equal(code, 0, replay.err());
      const events = replay.out().trim().split("\n").map((line) => JSON.parse(line));
      deepEqual(events.map((event) => event.kv.value), Array(12).fill("after"));
      deepEqual(events.map((event) => event.kv.key).sort(), [...after].sort());
      for (const shard of first.keys()) {
        const revisions = events.filter((event) => event.shard === shard).map((e) => e.revision);
        deepEqual(revisions, [...revisions].sort((a, b) => a - b), `shard ${shard} in order`);
      }

      const { revision } = await put("solo", "one");
      const live = io();
      const watching = runCli([
        "kv",
        "watch",
        "solo",
        "--from-revision",
        String(revision),
        "--count",
        "2",
        ...flags,
      ], live.io);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await put("solo", "two");
      equal(await watching, 0, live.err());
      const printed = live.out().trim().split("\n");
      equal(printed.length, 2, live.out());
      match(printed[0]!, new RegExp(`^PUT solo one shard=\\d+ revision=${revision}$`));
      match(printed[1]!, /^PUT solo two shard=\d+ revision=\d+$/);
    } catch (error) {
      console.error(lines.slice(-40).join("\n"));
      throw error;
    } finally {
      await close();
    }
  },
});

function ok(condition: boolean, message: string): void {
  equal(condition, true, message);
}
