/**
 * The real `aspen` executable, as real processes: main.ts run from source, and the offline
 * stand-in for `deno compile` (PLATFORM.md): `deno bundle --platform deno` of main.ts copied into
 * an empty folder and run with an empty DENO_DIR and network access denied. If the bundle
 * answers there, every module and asset it needs is inside it, and so will the compiled binary.
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
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
