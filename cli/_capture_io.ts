/**
 * The `aspen` CLI's I/O for tests that run it in process (cli/'s own tests and tests/): output
 * is captured, files are absent unless a test passes its own readers and writers, and nothing
 * is random but the bytes. Test support only: nothing but tests imports it.
 */
import type { CliIo } from "./command.ts";

/** A CliIo whose output is kept, with what it printed so far. */
export interface CapturedCliIo {
  readonly io: CliIo;
  out(): string;
  err(): string;
}

/** A CliIo for one in-process run of `runCli`; `overrides` replace any of its parts. */
export function captureCliIo(overrides: Partial<CliIo> = {}): CapturedCliIo {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    env: {},
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
    readTextFile: (path) => Promise.reject(new Deno.errors.NotFound(path)),
    readFile: (path) => Promise.reject(new Deno.errors.NotFound(path)),
    writeFile: (path) => Promise.reject(new Error(`This test writes no file (${path})`)),
    nowMs: () => Date.now(),
    monotonicMs: () => performance.now(),
    shutdown: new AbortController().signal,
    selfCommand: ["aspen"],
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    writeNewFile: () => Promise.resolve(false),
    versions: { aspen: "test", deno: Deno.version.deno },
    ...overrides,
  };
  return { io, out: () => stdout, err: () => stderr };
}
