/**
 * Tidy rules (STYLE §1, §4, §9): raft/ stays pure, lines fit in 100 columns, no debug output is
 * left in production code, and no function runs past 70 lines. The checker runs on the real tree
 * and is shown to catch each rule broken in planted sources.
 */
import { deepEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { checkTidy, stripCommentsAndStrings } from "./_tidy_rules.ts";
import { readSourceFiles } from "./_source_files.ts";

Deno.test("the project's sources pass the tidy rules", async () => {
  const violations = [];
  for (const [path, source] of await readSourceFiles()) {
    violations.push(...checkTidy(path, source));
  }
  assertEquals(violations, []);
});

Deno.test("checkTidy() catches planted violations in raft/", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["the wall clock", "const now = Date.now();", /wall clock/],
    ["a timer", "setTimeout(() => tick(), 10);", /timers/],
    ["randomness", "const jitter = Math.random();", /randomness/],
    ["crypto", "crypto.getRandomValues(bytes);", /crypto/],
    ["I/O", 'Deno.writeTextFileSync("x", "y");', /Deno APIs/],
    ["fetch", 'fetch("http://x");', /fetch/],
    ["console", 'console.error("x");', /console output/],
    ["async", "export async function step() {}", /async functions/],
    ["await", "const x = await y;", /await/],
    ["a Promise", "const p = Promise.resolve(1);", /Promises/],
    ["performance", "const t = performance.now();", /performance/],
  ];
  for (const [name, line, expected] of cases) {
    await t.step(name, () => {
      assertMatch(checkTidy("raft/planted.ts", line).join("\n"), expected);
    });
  }
});

Deno.test("checkTidy() ignores banned words in comments and strings", () => {
  const source = '// Date and Promise are fine here\nassert(x, "a Date or a Promise");';
  assertEquals(checkTidy("raft/clean.ts", source), []);
});

Deno.test("checkTidy() allows clocks outside raft/ and in raft tests", () => {
  assertEquals(checkTidy("shard/driver.ts", "const now = Date.now();"), []);
  assertEquals(checkTidy("raft/log_test.ts", "const p = Promise.resolve();"), []);
});

Deno.test("checkTidy() catches long lines, debug output and long functions", () => {
  assertMatch(checkTidy("server/a.ts", "x".repeat(101)).join(), /101 columns/);
  assertMatch(checkTidy("server/a.ts", 'console.log("here");').join(), /debug output/);
  const body = Array.from({ length: 70 }, (_, i) => `  const v${i} = ${i};`).join("\n");
  const long = `export function big(): void {\n${body}\n}`;
  assertMatch(checkTidy("shard/a.ts", long).join(), /function is 72 lines/);
  const method = `class A {\n  run(x: number): void {\n${body}\n  }\n}`;
  assertMatch(checkTidy("shard/a.ts", method).join(), /function is 72 lines/);
  const short = `export function small(): void {\n  const x = 1;\n}`;
  assertEquals(checkTidy("shard/a.ts", short), []);
});

Deno.test("stripCommentsAndStrings() keeps line structure", () => {
  const source = 'a /* b\nc */ "d" `e\nf` // g\nh';
  const stripped = stripCommentsAndStrings(source);
  assertEquals(stripped.split("\n").length, source.split("\n").length);
  assertEquals(stripped.includes("g"), false);
  assertEquals(stripped.includes("d"), false);
  assertEquals(stripped.endsWith("h"), true);
});
