/**
 * A damaged data folder makes a node refuse to start, loudly, instead of serving wrong data.
 *
 * A real 1-node cluster (2 shards) takes writes and stops cleanly; its folder is kept as a
 * pristine copy. Then, one case at a time, the copy is restored, one file of shard 0 is
 * damaged (`state-machine.db` or `raft-log.db`: truncated to half, truncated to zero bytes,
 * overwritten with garbage, garbage after an intact SQLite header, deleted) and the node is
 * started again. Each time the process must exit on its own with a non-zero code and a
 * message naming `storage_corrupt` and the damaged file, without ever answering HTTP. Last,
 * the pristine copy starts and serves every key written before (the damage, not the copy,
 * was what stopped the node).
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { SeededPrng } from "../raft/mod.ts";
import { ChaosCluster } from "./chaos/cluster.ts";

/** How long a damaged node may take to give up. */
const REFUSAL_TIMEOUT_MS = 60_000;
/** The size of an SQLite file header, kept intact by the "garbage after the header" cases. */
const SQLITE_HEADER_BYTES = 100;

type Damage = "half" | "zero" | "garbage" | "garbage-after-header" | "missing";

const CASES: readonly { file: string; damage: Damage }[] = [
  "state-machine.db",
  "raft-log.db",
].flatMap((file) =>
  (["half", "zero", "garbage", "garbage-after-header", "missing"] as const).map((damage) => ({
    file,
    damage,
  }))
);

Deno.test({
  name: "a damaged state-machine.db or raft-log.db stops the node with storage_corrupt",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const chaos = await ChaosCluster.launch({
      nodes: 1,
      shards: 2,
      isFaultInjectionEnabled: false,
    });
    const nodeDir = chaos.cluster.nodes[0]!.dataDir;
    const pristine = `${chaos.dir}/pristine`;
    try {
      const written = new Map<string, string>();
      for (let i = 0; i < 120; i++) {
        const key = `corrupt/${i}`;
        const value = `value-${i}-${"x".repeat(200)}`;
        const answer = await chaos.call(1, {
          method: "PUT",
          path: `/v1/kv/${encodeURIComponent(key)}`,
          body: { value },
        });
        equal(answer.status, 200);
        written.set(key, value);
      }
      await chaos.cluster.stopNode(1);
      await copyDir(nodeDir, pristine);
      const prng = new SeededPrng(17);
      for (const { file, damage } of CASES) {
        await t.step(`${file}: ${damage}`, async () => {
          await restore(pristine, nodeDir);
          const path = `${nodeDir}/shard-0/${file}`;
          await damageFile(path, damage, prng);
          await expectRefusal(chaos, path);
        });
      }
      await t.step("the pristine copy starts and serves every key", async () => {
        await restore(pristine, nodeDir);
        chaos.cluster.start(1);
        await chaos.cluster.waitForLeaders(1, 30_000);
        for (const [key, value] of written) {
          const answer = await chaos.call(1, {
            method: "GET",
            path: `/v1/kv/${encodeURIComponent(key)}`,
          });
          equal((answer.json?.kv as { value?: string } | undefined)?.value, value, key);
        }
      });
    } finally {
      await chaos.destroy({ keepDir: false });
    }
  },
});

/** Starts node 1 and requires it to exit on its own, naming the file, without serving HTTP. */
async function expectRefusal(chaos: ChaosCluster, path: string): Promise<void> {
  const exitsBefore = chaos.unexpectedExits.length;
  const linesBefore = chaos.logsOf(1).length;
  chaos.cluster.start(1);
  const deadline = performance.now() + REFUSAL_TIMEOUT_MS;
  let hasServed = false;
  while (chaos.unexpectedExits.length === exitsBefore && performance.now() < deadline) {
    const health = await chaos.call(1, { method: "GET", path: "/v1/health", timeoutMs: 500 })
      .then((answer) => answer.status, () => null);
    if (health !== null) hasServed = true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (chaos.cluster.isRunning(1)) await chaos.cluster.kill(1, "SIGKILL");
  const output = chaos.logsOf(1).slice(Math.max(0, linesBefore - 1)).join("\n");
  const exit = chaos.unexpectedExits[exitsBefore];
  ok(exit !== undefined, `the node kept running with a damaged ${path}:\n${output.slice(-2000)}`);
  equal(hasServed, false, "the node answered HTTP with a damaged file");
  ok(exit.code !== null && exit.code !== 0, `exit code ${exit.code}`);
  match(output, /storage_corrupt/, output.slice(-2000));
  ok(output.includes(path), `the message names ${path}:\n${output.slice(-2000)}`);
  deepEqual(output.match(/Stack backtrace|AssertionError| {4}at /), null, "no stack trace");
  if (Deno.env.get("ASPEN_SHOW_REFUSALS") !== undefined) console.log(output.trim());
}

async function damageFile(path: string, damage: Damage, prng: SeededPrng): Promise<void> {
  const size = (await Deno.stat(path)).size;
  ok(size > 2 * SQLITE_HEADER_BYTES, `${path} holds data (${size} bytes)`);
  switch (damage) {
    case "half":
      return await Deno.truncate(path, Math.floor(size / 2));
    case "zero":
      return await Deno.truncate(path, 0);
    case "missing":
      return await Deno.remove(path);
    case "garbage":
      return await Deno.writeFile(path, randomBytes(prng, size));
    case "garbage-after-header": {
      const bytes = await Deno.readFile(path);
      bytes.set(randomBytes(prng, size - SQLITE_HEADER_BYTES), SQLITE_HEADER_BYTES);
      return await Deno.writeFile(path, bytes);
    }
  }
}

function randomBytes(prng: SeededPrng, count: number): Uint8Array {
  const bytes = new Uint8Array(count);
  for (let i = 0; i < count; i++) bytes[i] = prng.nextInt(256);
  return bytes;
}

async function restore(pristine: string, nodeDir: string): Promise<void> {
  await Deno.remove(nodeDir, { recursive: true });
  await copyDir(pristine, nodeDir);
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}
