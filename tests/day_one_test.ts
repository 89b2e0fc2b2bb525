/**
 * Day one from a checkout, as real processes: `aspen dev` (run from source, in a folder of its
 * own) prints a banner whose "Try" command exists on a fresh machine, and `deno task aspen ...`
 * (the deno.json task) talks to that running dev cluster: a text value, and a binary value put
 * with `--value-file` and read back with `--out` and `--base64`, byte for byte.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { PROJECT_ROOT } from "./_source_files.ts";

const DENO = Deno.execPath();

/** How long the dev cluster may take to print its banner. */
const BANNER_WAIT_MS = 60_000;

interface Output {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `deno task aspen <args>` in the checkout against the cluster named by `env`. */
async function aspenTask(args: string[], env: Record<string, string>): Promise<Output> {
  const output = await new Deno.Command(DENO, {
    args: ["task", "--quiet", "aspen", ...args],
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Reads `stream` until `text` appears; returns everything read so far. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  text: string,
): Promise<string> {
  let seen = "";
  const deadline = Date.now() + BANNER_WAIT_MS;
  while (!seen.includes(text)) {
    ok(Date.now() < deadline, `"${text}" within ${BANNER_WAIT_MS} ms; got: ${seen}`);
    const { done, value } = await reader.read();
    ok(!done, `the dev cluster printed "${text}" before exiting; got: ${seen}`);
    seen += value;
  }
  return seen;
}

Deno.test("aspen dev's banner names deno task aspen, which reaches the cluster", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-day-one-" });
  const dev = new Deno.Command(DENO, {
    args: ["run", "-A", "--config", `${PROJECT_ROOT}deno.json`, `${PROJECT_ROOT}main.ts`, "dev"]
      .concat(["--nodes=1", "--shards=1"]),
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = dev.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const banner = await readUntil(reader, "Press Ctrl-C to stop.");
    match(banner, /Try: +deno task aspen kv put hello world +\(from this folder\)/);
    match(banner, /deno install -A -g -n aspen --config deno\.json main\.ts/);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/.aspen-dev/dev-cluster.json`)) as {
      nodes: { httpAddress: string }[];
      rootToken: string;
    };
    const env = {
      ASPEN_ENDPOINTS: record.nodes.map((node) => `http://${node.httpAddress}`).join(","),
      ASPEN_TOKEN: record.rootToken,
    };
    await t.step("deno task aspen kv put hello world", async () => {
      const put = await aspenTask(["kv", "put", "hello", "world"], env);
      equal(put.code, 0, put.stderr);
      match(put.stdout, /^OK shard=0 revision=\d+ version=1\n$/);
      const get = await aspenTask(["kv", "get", "hello", "--json"], env);
      equal(get.code, 0, get.stderr);
      equal((JSON.parse(get.stdout) as { kv: { value: string } }).kv.value, "world");
    });
    await t.step("binary values through --value-file, --out and --base64", async () => {
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      await Deno.writeFile(`${dir}/in.bin`, bytes);
      const put = await aspenTask(["kv", "put", "blob", "--value-file", `${dir}/in.bin`], env);
      equal(put.code, 0, put.stderr);
      const out = await aspenTask(["kv", "get", "blob", "--out", `${dir}/out.bin`], env);
      equal(out.code, 0, out.stderr);
      deepEqual(await Deno.readFile(`${dir}/out.bin`), bytes);
      const base64 = await aspenTask(["kv", "get", "blob", "--base64"], env);
      equal(base64.stdout, btoa(String.fromCharCode(...bytes)) + "\n");
      const again = await aspenTask(["kv", "put", "blob2", base64.stdout.trim(), "--base64"], env);
      equal(again.code, 0, again.stderr);
      const copy = await aspenTask(["kv", "get", "blob2", "--out", `${dir}/copy.bin`], env);
      equal(copy.code, 0, copy.stderr);
      deepEqual(await Deno.readFile(`${dir}/copy.bin`), bytes);
    });
  } finally {
    dev.kill("SIGINT");
    await reader.cancel();
    await dev.status;
    await Deno.remove(dir, { recursive: true });
  }
});
