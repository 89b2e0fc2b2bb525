/**
 * A small real file system for tests that fill a disk: a tmpfs mounted on a new temporary
 * folder (this needs root; CI runs as root). Tests fill it with a ballast file until the kernel
 * answers ENOSPC, and free it by removing the ballast, so that "disk full" and "space is back"
 * are real file system states rather than simulated ones.
 */
import { statfsSync } from "node:fs";

/** Bytes written to the ballast per call while filling. */
const BALLAST_CHUNK_BYTES = 64 * 1024;

/** Why a disk-filling test cannot run here, or null when it can. */
export const TMPFS_SKIP_REASON: string | null = Deno.uid() === 0
  ? null
  : "needs root to mount a small tmpfs (CI runs as root)";

/**
 * The test options that run `name` only where a tmpfs can be mounted; elsewhere the test is
 * ignored, and its name says why.
 */
export function tmpfsTestOptions(name: string): { name: string; ignore: boolean } {
  if (TMPFS_SKIP_REASON === null) return { name, ignore: false };
  return { name: `${name} (skipped: ${TMPFS_SKIP_REASON})`, ignore: true };
}

/** A mounted tmpfs, its ballast, and how to get rid of it. */
export interface SmallFilesystem {
  /** The mount point: an empty folder on the new file system. */
  readonly dir: string;
  /**
   * Writes the ballast file until the file system is full, or until it holds `bytesMax` bytes;
   * returns the bytes written.
   */
  fill(bytesMax?: number): Promise<number>;
  /** Removes the ballast file, giving its space back. */
  free(): Promise<void>;
  /** Free bytes as the file system reports them. */
  freeBytes(): number;
  /** Unmounts the file system and removes the folder. */
  close(): Promise<void>;
}

/**
 * Mounts a tmpfs of `sizeMib` MiB on a new temporary folder.
 *
 * @throws when mounting fails (check {@linkcode TMPFS_SKIP_REASON} first).
 */
export async function mountSmallFilesystem(sizeMib: number): Promise<SmallFilesystem> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-small-fs-" });
  await run("mount", ["-t", "tmpfs", "-o", `size=${sizeMib}m`, "tmpfs", dir]);
  const ballast = `${dir}/ballast`;
  return {
    dir,
    fill: (bytesMax = Number.MAX_SAFE_INTEGER) => fillFile(ballast, bytesMax),
    free: async () => {
      await Deno.remove(ballast);
    },
    freeBytes: () => freeBytesOf(dir),
    close: async () => {
      await run("umount", ["-l", dir]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Free bytes available to unprivileged writers on the file system holding `path`. */
export function freeBytesOf(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

async function fillFile(path: string, bytesMax: number): Promise<number> {
  const chunk = new Uint8Array(BALLAST_CHUNK_BYTES).fill(0x5a);
  const file = await Deno.open(path, { write: true, create: true, append: true });
  let written = 0;
  try {
    while (written < bytesMax) {
      try {
        written += await file.write(chunk.subarray(0, Math.min(chunk.length, bytesMax - written)));
      } catch (error) {
        if (error instanceof Error && "code" in error && error.code === "ENOSPC") break;
        throw error;
      }
    }
  } finally {
    file.close();
  }
  return written;
}

async function run(command: string, args: readonly string[]): Promise<void> {
  const output = await new Deno.Command(command, { args: [...args], stderr: "piped" }).output();
  if (!output.success) {
    const detail = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`Cannot run "${command} ${args.join(" ")}": ${detail}`);
  }
}
