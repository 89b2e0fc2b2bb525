/**
 * The real `aspen` executable, as real processes: main.ts run from source, and the offline
 * stand-in for `deno compile` (PLATFORM.md): `deno bundle --platform deno` of main.ts copied into
 * an empty folder and run with an empty DENO_DIR and network access denied. If the bundle
 * answers there, every module and asset it needs is inside it, and so will the compiled binary:
 * it prints its version and help, and runs a node that serves the API and the console.
 */
import { equal, match } from "node:assert/strict";
import { PROJECT_ROOT } from "./_source_files.ts";

const DENO = Deno.execPath();

interface Output {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function runDeno(
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<Output> {
  const output = await new Deno.Command(DENO, {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
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

Deno.test("main.ts runs as a process: help, version, errors, print-config", async () => {
  const cwd = PROJECT_ROOT;
  const help = await runDeno(["run", "-A", "main.ts", "help"], { cwd });
  equal(help.code, 0);
  match(help.stdout, /Usage: aspen <command>/);
  const unknown = await runDeno(["run", "-A", "main.ts", "nope"], { cwd });
  equal(unknown.code, 2);
  match(unknown.stderr, /unknown command "nope"/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/x.toml`, "[sharding]\nenabled = true\nnum_shards = 0\n");
    const bad = await runDeno(["run", "-A", "main.ts", "node", "--config", `${dir}/x.toml`], {
      cwd,
    });
    equal(bad.code, 2);
    match(bad.stderr, /sharding\.num_shards in ".*x\.toml" is 0 but must be an integer from 1/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bundled executable runs offline from an empty folder", async () => {
  const work = await Deno.makeTempDir();
  try {
    const bundle = `${work}/build/aspen.bundle.js`;
    const built = await runDeno(["bundle", "--platform", "deno", "-o", bundle, "main.ts"], {
      cwd: PROJECT_ROOT,
    });
    equal(built.code, 0, built.stderr);
    const empty = `${work}/empty`;
    await Deno.mkdir(`${empty}/deno-dir`, { recursive: true });
    await Deno.copyFile(bundle, `${empty}/aspen.bundle.js`);
    const run = (args: string[]) =>
      runDeno(["run", "--allow-read", "--allow-env", "--deny-net", "aspen.bundle.js", ...args], {
        cwd: empty,
        env: { DENO_DIR: `${empty}/deno-dir` },
      });
    const version = await run(["version"]);
    equal(version.code, 0, version.stderr);
    match(version.stdout, /^aspen \d+\.\d+\.\d+ \(deno /);
    const help = await run(["help"]);
    equal(help.code, 0, help.stderr);
    match(help.stdout, /Commands:/);
    const config = await run(["node", "--print-config", "--node-id", "4"]);
    equal(config.code, 0, config.stderr);
    match(config.stdout, /id = 4/);
    await serveFromBundle(empty);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

/** Runs a one-node cluster from the bundle alone and uses its API and console over HTTP. */
async function serveFromBundle(folder: string): Promise<void> {
  const [http, peer] = [freePort(), freePort()];
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "--unstable-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-net=127.0.0.1",
      "aspen.bundle.js",
      "node",
      "--data-dir=data",
      `--http-listen=127.0.0.1:${http}`,
      `--peer-listen=127.0.0.1:${peer}`,
    ],
    cwd: folder,
    env: { DENO_DIR: `${folder}/deno-dir`, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) lines.push(chunk);
  })();
  try {
    const base = `http://127.0.0.1:${http}`;
    let token = "";
    for (let i = 0; i < 200 && token === ""; i++) {
      token = /rootToken=(\S+)/.exec(lines.join(""))?.[1] ?? "";
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const auth = { authorization: `Bearer ${token}` };
    let put: Response | null = null;
    for (let i = 0; i < 100; i++) {
      put = await fetch(`${base}/v1/kv/bundled`, {
        method: "PUT",
        headers: auth,
        body: JSON.stringify({ value: "works" }),
      }).catch(() => null);
      if (put?.ok) break;
      await put?.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    equal(put?.status, 200, lines.join(""));
    await put?.body?.cancel();
    const got = await (await fetch(`${base}/v1/kv/bundled`, { headers: auth })).json();
    equal(got.kv.value, "works");
    const page = await fetch(`${base}/`);
    equal(page.status, 200);
    match(await page.text(), /<html/i);
    const script = await fetch(`${base}/app.js`);
    equal(script.status, 200);
    await script.body?.cancel();
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
