/**
 * The `aspen` executable. The only module that reads the process environment, the real clock
 * and the standard streams; it wires them into the CLI and exits with the command's code.
 */
import { runCli } from "./cli/mod.ts";
import { ASPEN_VERSION } from "./server/mod.ts";

const encoder = new TextEncoder();
const shutdown = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => shutdown.abort());
}

const code = await runCli(Deno.args, {
  env: Deno.env.toObject(),
  stdout: (text) => Deno.stdout.writeSync(encoder.encode(text)),
  stderr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
  readTextFile: (path) => Deno.readTextFile(path),
  readFile: (path) => Deno.readFile(path),
  writeFile: (path, bytes) => Deno.writeFile(path, bytes),
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  shutdown: shutdown.signal,
  selfCommand: selfCommand(),
  randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
  writeNewFile: writeNewFile,
  versions: { aspen: ASPEN_VERSION, deno: Deno.version.deno },
});
Deno.exit(code);

async function writeNewFile(
  path: string,
  text: string,
  options: { readonly overwrite: boolean },
): Promise<boolean> {
  try {
    await Deno.writeTextFile(path, text, { mode: 0o600, createNew: !options.overwrite });
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
}

/** How to run this same executable: the compiled binary itself, or deno on this module. */
function selfCommand(): string[] {
  const exec = Deno.execPath();
  const isDeno = /(^|[/\\])deno(\.exe)?$/.test(exec);
  if (!isDeno) return [exec];
  return [exec, "run", "-A", "--unstable-net", new URL(Deno.mainModule).pathname];
}
