/**
 * The console's number formatting, table-driven: each formatter on typical values, on the
 * boundaries between its styles, and on unknown (null) values, which must never read as zero.
 */
import { equal } from "node:assert/strict";
import {
  formatAgo,
  formatBytes,
  formatClock,
  formatCompact,
  formatDuration,
  formatInteger,
  formatLatencyMs,
  formatPercent,
  truncate,
  UNKNOWN,
} from "../ui/app/format.ts";

async function table<T>(
  t: Deno.TestContext,
  format: (value: T) => string,
  cases: readonly (readonly [T, string])[],
): Promise<void> {
  for (const [value, expected] of cases) {
    await t.step(`${String(value)} -> ${expected}`, () => equal(format(value), expected));
  }
}

Deno.test("formatInteger() groups thousands and keeps the sign", async (t) => {
  await table(t, formatInteger, [
    [0, "0"],
    [999, "999"],
    [1_000, "1,000"],
    [1_234_567, "1,234,567"],
    [-45_000, "-45,000"],
    [12.6, "13"],
    [null, UNKNOWN],
  ]);
});

Deno.test("formatCompact() switches style at 10, 1000 and 1e6", async (t) => {
  await table(t, formatCompact, [
    [0, "0"],
    [0.04, "0"],
    [3.44, "3.4"],
    [9.96, "10"],
    [10, "10"],
    [999.4, "999"],
    [1_000, "1k"],
    [12_345, "12.3k"],
    [123_456, "123k"],
    [2_500_000, "2.5M"],
    [null, UNKNOWN],
  ]);
});

Deno.test("formatPercent() shows tiny ratios as <0.1% and rounds only true 100%", async (t) => {
  await table(t, formatPercent, [
    [0, "0%"],
    [0.0004, "<0.1%"],
    [0.125, "12.5%"],
    [0.5, "50%"],
    [0.9994, "99.9%"],
    [1, "100%"],
    [null, UNKNOWN],
  ]);
});

Deno.test("formatLatencyMs() picks precision by size", async (t) => {
  await table(t, formatLatencyMs, [
    [0, "0 ms"],
    [0.423, "0.42 ms"],
    [4.25, "4.3 ms"],
    [42.4, "42 ms"],
    [1_250, "1.3 s"],
    [null, UNKNOWN],
  ]);
});

Deno.test("formatDuration() shows the two largest units", async (t) => {
  await table(t, formatDuration, [
    [0, "0 s"],
    [42_900, "42 s"],
    [725_000, "12 m 5 s"],
    [3 * 3_600_000 + 12 * 60_000, "3 h 12 m"],
    [4 * 86_400_000 + 3 * 3_600_000, "4 d 3 h"],
    [-5, "0 s"],
    [null, UNKNOWN],
  ]);
});

Deno.test("formatAgo(), formatClock(), formatBytes() and truncate()", () => {
  equal(formatAgo(400), "just now");
  equal(formatAgo(12_000), "12 s ago");
  equal(formatClock(new Date(2024, 0, 1, 9, 5, 7).getTime()), "09:05:07");
  equal(formatBytes(512), "512 B");
  equal(formatBytes(1_536), "1.5 KiB");
  equal(formatBytes(2 * 1_048_576), "2 MiB");
  equal(truncate("abcdef", 10), "abcdef");
  equal(truncate("abcdef", 4), "abc…");
  equal(truncate("añb😀cd", 4), "añb…");
});
