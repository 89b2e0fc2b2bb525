/**
 * The dependency rules of STYLE §2, as a pure function over a set of source files, so that the
 * same checker runs on the real tree and on planted violations (a test of the test).
 *
 * Rules checked:
 * - api/ (the client HTTP contract) is a leaf: it imports nothing of ours and no package (its
 *   `_test.ts` files may use test packages). Every folder but raft/ may import it, through
 *   api/mod.ts; ui/ too, at run time, since it pulls nothing else into the browser bundle.
 * - raft/ imports only raft/ files: no other folder of ours, no npm package, no `node:` module
 *   (its `_test.ts` and `_bench.ts` files may use test packages such as `node:assert`).
 * - shard/ may import raft/ (through raft/mod.ts) and `node:` modules; no npm package.
 * - transport/ (the QUIC peer channel) may import shard/ and raft/ (through their mod.ts), npm
 *   packages and `node:`; it needs nothing from the node runtime.
 * - server/ may import transport/, shard/ and raft/ (through their mod.ts), npm packages and
 *   `node:`.
 * - cli/ (the `aspen` command line and the local-cluster launcher) may import server/,
 *   transport/, shard/, raft/ and bench/ through their mod.ts, npm packages and `node:`.
 * - bench/ (the `aspen bench` runner) imports nothing of ours but bench/ and api/.
 * - ui/ imports nothing from raft/, shard/, transport/ or server/: its one link to them is HTTP,
 *   through the contract in api/. server/ may import ui/mod.ts (the built console).
 * - Nothing but cli/, the scripts and tests/ imports server/.
 * - Scripts are run, never imported: main.ts (the `aspen` executable), bench/cluster.ts
 *   (`deno task bench:cluster`), bench/idle.ts (`deno task bench:idle`), bench/reshard.ts and
 *   bench/rebalance.ts. They stand above every folder and may import cli/; nothing but tests/
 *   imports them, so cli/ importing bench/ never closes a loop.
 * - An import into another folder goes through that folder's mod.ts (a deep import that skips
 *   mod.ts is an error); `_private.ts` files are imported only from their own folder.
 * - No import cycles among the files.
 */

/** One import found in a file. */
export interface ImportEdge {
  readonly from: string;
  readonly specifier: string;
  /** The resolved project-relative path for relative specifiers; null for packages. */
  readonly to: string | null;
  readonly isTypeOnly: boolean;
}

const IMPORT_PATTERN =
  /(?:^|[\s;])(import|export)\s+(type\s+)?(?:[\w*\s{},$]*?\s+from\s+)?["']([^"']+)["']/g;
const DYNAMIC_PATTERN = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Lists the static, re-export and dynamic imports of one file. */
export function findImports(path: string, source: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const code = stripComments(source);
  for (const match of code.matchAll(IMPORT_PATTERN)) {
    const specifier = match[3] ?? "";
    const isTypeOnly = match[2] !== undefined;
    edges.push({ from: path, specifier, to: resolve(path, specifier), isTypeOnly });
  }
  for (const match of code.matchAll(DYNAMIC_PATTERN)) {
    const specifier = match[1] ?? "";
    edges.push({ from: path, specifier, to: resolve(path, specifier), isTypeOnly: false });
  }
  return edges;
}

/** Checks every rule over `files` (project-relative path to source) and lists violations. */
export function checkImports(files: ReadonlyMap<string, string>): string[] {
  const violations: string[] = [];
  const graph = new Map<string, string[]>();
  for (const [path, source] of files) {
    const targets: string[] = [];
    for (const edge of findImports(path, source)) {
      const problem = checkEdge(edge, files);
      if (problem !== null) violations.push(`${path}: ${problem}`);
      if (edge.to !== null && !edge.isTypeOnly) targets.push(edge.to);
    }
    graph.set(path, targets);
  }
  for (const cycle of findCycles(graph)) violations.push(`import cycle: ${cycle.join(" -> ")}`);
  return violations;
}

function checkEdge(edge: ImportEdge, files: ReadonlyMap<string, string>): string | null {
  const from = topFolder(edge.from);
  if (edge.to === null) return checkPackage(isTestFile(edge.from) ? "tests" : from, edge.specifier);
  if (!files.has(edge.to)) return `imports "${edge.specifier}", which does not exist`;
  if (edge.to in SCRIPTS && from !== "tests") {
    return `imports the script "${edge.specifier}"; scripts are run, not imported`;
  }
  const to = topFolder(edge.to);
  const folderProblem = checkFolders(from, to, edge);
  if (folderProblem !== null) return folderProblem;
  if (from === "tests") return null;
  return checkEntry(edge);
}

/** Tests and benchmarks beside the code may use test packages (`node:assert`). */
function isTestFile(path: string): boolean {
  return path.endsWith("_test.ts") || path.endsWith("_bench.ts");
}

function checkPackage(from: string, specifier: string): string | null {
  const isNode = specifier.startsWith("node:");
  if (from === "raft") return `raft/ must not import packages, but imports "${specifier}"`;
  if (from === "api") return `api/ must not import packages, but imports "${specifier}"`;
  if (from === "shard" && !isNode) {
    return `shard/ may import only node: built-ins, but imports "${specifier}"`;
  }
  if (specifier.startsWith("jsr:")) return `imports "${specifier}", but JSR is unreachable`;
  return null;
}

const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  api: ["api"],
  raft: ["raft"],
  shard: ["shard", "raft", "api"],
  transport: ["transport", "shard", "raft", "api"],
  server: ["server", "transport", "shard", "raft", "ui", "api"],
  cli: ["cli", "server", "transport", "shard", "raft", "bench", "api"],
  ui: ["ui", "api"],
  bench: ["bench", "api"],
  tests: ["tests", "cli", "server", "transport", "shard", "raft", "ui", "main.ts", "bench", "api"],
};

/** What each script may import, in place of its folder's rule (see the module comment). */
const SCRIPTS: Readonly<Record<string, readonly string[]>> = {
  "main.ts": ["cli", "server", "transport", "shard", "raft", "api"],
  "bench/cluster.ts": ["bench", "cli", "api"],
  "bench/reshard.ts": ["bench", "cli", "api"],
  "bench/idle.ts": ["bench", "cli", "api"],
  "bench/rebalance.ts": ["bench", "cli", "api"],
  "bench/stalls.ts": ["bench", "cli", "api"],
};

function checkFolders(from: string, to: string, edge: ImportEdge): string | null {
  const script = SCRIPTS[edge.from];
  if (script !== undefined) {
    if (!script.includes(to)) return `${edge.from} must not import ${to}/ ("${edge.specifier}")`;
    return null;
  }
  const allowed = ALLOWED[from] ?? [];
  if (!allowed.includes(to)) return `${from}/ must not import ${to}/ ("${edge.specifier}")`;
  return null;
}

/** A cross-folder import must target a mod.ts; `_private` files stay in their folder. */
function checkEntry(edge: ImportEdge): string | null {
  const target = edge.to ?? "";
  const fromDir = dirname(edge.from);
  const toDir = dirname(target);
  const base = target.slice(toDir.length + 1);
  if (base.startsWith("_") && toDir !== fromDir) {
    return `imports "${edge.specifier}", a file private to ${toDir}/`;
  }
  const isSameOrAncestor = fromDir === toDir || fromDir.startsWith(`${toDir}/`);
  const isSameTop = topFolder(edge.from) === topFolder(target);
  if (isSameOrAncestor && isSameTop) return null;
  if (base === "mod.ts") return null;
  return `imports "${edge.specifier}" directly; go through ${toDir}/mod.ts`;
}

/** Finds cycles with an iterative depth-first search (no recursion, STYLE §4). */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const cycles: string[][] = [];
  for (const root of graph.keys()) {
    if (state.has(root)) continue;
    const stack: { node: string; next: number }[] = [{ node: root, next: 0 }];
    state.set(root, "open");
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const targets = graph.get(frame.node) ?? [];
      if (frame.next >= targets.length) {
        state.set(frame.node, "done");
        stack.pop();
        continue;
      }
      const target = targets[frame.next++]!;
      if (state.get(target) === "open") {
        const start = stack.findIndex((item) => item.node === target);
        cycles.push([...stack.slice(start).map((item) => item.node), target]);
      } else if (!state.has(target) && graph.has(target)) {
        state.set(target, "open");
        stack.push({ node: target, next: 0 });
      }
    }
  }
  return cycles;
}

function topFolder(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? "." : path.slice(0, slash);
}

function resolve(from: string, specifier: string): string | null {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return null;
  const parts = dirname(from) === "." ? [] : dirname(from).split("/");
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/** Removes comments so that examples in doc comments are not taken for imports. */
export function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}
