/**
 * Dependency rules (STYLE §2): the real tree has no forbidden import edge, no deep import that
 * skips a folder's mod.ts, and no cycle; and the checker itself is shown to catch each kind of
 * violation planted in a small synthetic tree.
 */
import { deepEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { checkImports, findImports } from "./_import_rules.ts";
import { readSourceFiles } from "./_source_files.ts";

Deno.test("the project's import graph follows the dependency rules", async () => {
  const files = await readSourceFiles();
  assertEquals(checkImports(files), []);
});

const CLEAN: Readonly<Record<string, string>> = {
  "main.ts": 'import { runCli } from "./cli/mod.ts";',
  "cli/mod.ts": 'import "../server/mod.ts";\nimport "../bench/mod.ts";',
  "bench/mod.ts": "export function runBench() {}",
  "bench/cluster.ts": 'import "../cli/mod.ts";\nimport "./mod.ts";',
  "raft/mod.ts": 'export { assert } from "./assert.ts";',
  "raft/assert.ts": "export function assert() {}",
  "shard/mod.ts": 'import { assert } from "../raft/mod.ts";\nimport "node:sqlite";',
  "transport/mod.ts": 'import "../shard/mod.ts";\nimport "node:timers";',
  "server/mod.ts": 'import { Hono } from "hono";\nimport "../transport/mod.ts";',
  "api/mod.ts":
    'export type { Status } from "./types.ts";\nexport { ApiError } from "./errors.ts";',
  "api/types.ts": "export type Status = {};",
  "api/errors.ts": "export class ApiError {}",
  "shard/errors.ts": 'export { ApiError } from "../api/mod.ts";',
  "ui/app.tsx": 'import { type Status, ApiError } from "../api/mod.ts";\nimport "preact";',
  "bench/runner.ts": 'import { ApiError } from "../api/mod.ts";',
  "tests/x_test.ts": 'import "../raft/assert.ts";',
};

function planted(extra: Record<string, string>): string[] {
  return checkImports(new Map(Object.entries({ ...CLEAN, ...extra })));
}

Deno.test("checkImports() accepts a clean tree", () => {
  assertEquals(checkImports(new Map(Object.entries(CLEAN))), []);
});

Deno.test("checkImports() catches planted violations", async (t) => {
  const cases: { name: string; files: Record<string, string>; expected: RegExp }[] = [
    {
      name: "raft imports shard",
      files: { "raft/bad.ts": 'import "../shard/mod.ts";' },
      expected: /raft\/ must not import shard\//,
    },
    {
      name: "raft imports an npm package",
      files: { "raft/bad.ts": 'import { Hono } from "npm:hono";' },
      expected: /raft\/ must not import packages/,
    },
    {
      name: "raft imports a node built-in",
      files: { "raft/bad.ts": 'import * as fs from "node:fs";' },
      expected: /raft\/ must not import packages/,
    },
    {
      name: "a raft test may use node:assert, raft code may not",
      files: {
        "raft/ok_test.ts": 'import "node:assert/strict";',
        "raft/bad.ts": 'import "node:assert";',
      },
      expected: /raft\/bad\.ts: raft\/ must not import packages/,
    },
    {
      name: "shard imports server",
      files: { "shard/bad.ts": 'export { x } from "../server/mod.ts";' },
      expected: /shard\/ must not import server\//,
    },
    {
      name: "shard imports transport",
      files: { "shard/bad.ts": 'import "../transport/mod.ts";' },
      expected: /shard\/ must not import transport\//,
    },
    {
      name: "transport imports the node runtime",
      files: { "transport/bad.ts": 'import "../server/mod.ts";' },
      expected: /transport\/ must not import server\//,
    },
    {
      name: "the node runtime imports the command line",
      files: { "server/bad.ts": 'import { runCli } from "../cli/mod.ts";' },
      expected: /server\/ must not import cli\//,
    },
    {
      name: "the bench runner imports the command line",
      files: { "bench/runner.ts": 'import "../cli/mod.ts";' },
      expected: /bench\/ must not import cli\//,
    },
    {
      name: "the bench script imports the node runtime",
      files: { "bench/cluster.ts": 'import "../server/mod.ts";' },
      expected: /bench\/cluster\.ts must not import server\//,
    },
    {
      name: "the command line imports the bench script",
      files: { "cli/bad.ts": 'import "../bench/cluster.ts";' },
      expected: /imports the script "\.\.\/bench\/cluster\.ts"/,
    },
    {
      name: "a folder imports a script",
      files: { "cli/bad.ts": 'import "../main.ts";' },
      expected: /imports the script "\.\.\/main\.ts"/,
    },
    {
      name: "shard imports an npm package",
      files: { "shard/bad.ts": 'import "npm:left-pad";' },
      expected: /shard\/ may import only node:/,
    },
    {
      name: "ui imports runtime code",
      files: { "ui/bad.ts": 'import { Hono } from "../server/mod.ts";' },
      expected: /ui\/ must not import server\//,
    },
    {
      name: "the contract imports shard",
      files: { "api/bad.ts": 'import { AspenError } from "../shard/mod.ts";' },
      expected: /api\/ must not import shard\//,
    },
    {
      name: "the contract imports a package",
      files: { "api/bad.ts": 'import "node:fs";' },
      expected: /api\/ must not import packages/,
    },
    {
      name: "raft imports the contract",
      files: { "raft/bad.ts": 'import type { Status } from "../api/mod.ts";' },
      expected: /raft\/ must not import api\//,
    },
    {
      name: "ui imports the contract past its mod.ts",
      files: { "ui/bad.ts": 'import type { Status } from "../api/types.ts";' },
      expected: /go through api\/mod\.ts/,
    },
    {
      name: "a deep import skips mod.ts",
      files: { "shard/bad.ts": 'import { assert } from "../raft/assert.ts";' },
      expected: /go through raft\/mod\.ts/,
    },
    {
      name: "a private file is imported from another folder",
      files: { "raft/_hidden.ts": "", "raft/sub/x.ts": 'import "../_hidden.ts";' },
      expected: /private to raft\//,
    },
    {
      name: "a dynamic import crosses a boundary",
      files: { "raft/bad.ts": 'const m = await import("../server/mod.ts");' },
      expected: /raft\/ must not import server\//,
    },
    {
      name: "an import cycle",
      files: { "raft/a.ts": 'import "./b.ts";', "raft/b.ts": 'import "./a.ts";' },
      expected: /import cycle: raft\/a\.ts -> raft\/b\.ts -> raft\/a\.ts/,
    },
  ];
  for (const item of cases) {
    await t.step(item.name, () => {
      const violations = planted(item.files);
      assertEquals(violations.length >= 1, true, `expected a violation, got none`);
      assertMatch(violations.join("\n"), item.expected);
    });
  }
});

Deno.test("findImports() ignores imports inside comments and finds re-exports", () => {
  const source = '/** import "../server/mod.ts"; */\n// import "x"\nexport * from "./y.ts";';
  assertEquals(findImports("raft/a.ts", source).map((edge) => edge.to), ["raft/y.ts"]);
});
