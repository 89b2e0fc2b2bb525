/**
 * Reads every TypeScript source file of the project into a map of project-relative paths,
 * for the dependency and tidy tests.
 */

const SKIPPED_FOLDERS = new Set([
  ".git",
  "dist",
  "node_modules",
  "test-output",
  ".aspen-dev",
  "cov",
]);

/** The project root: the folder holding deno.json, one level above tests/. */
export const PROJECT_ROOT = new URL("../", import.meta.url).pathname;

/** Returns project-relative path -> source for every .ts and .tsx file. */
export async function readSourceFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const pending = [""];
  while (pending.length > 0) {
    const relative = pending.pop()!;
    for await (const entry of Deno.readDir(PROJECT_ROOT + relative)) {
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory && !SKIPPED_FOLDERS.has(entry.name)) pending.push(path);
      if (entry.isFile && /\.tsx?$/.test(entry.name)) {
        files.set(path, await Deno.readTextFile(PROJECT_ROOT + path));
      }
    }
  }
  return files;
}
