/**
 * The key browser's summary line (ui/app/key_browser.ts scanSummary): it names the total the
 * `countOnly` read found, not the length of the page on screen, and claims no total when that
 * read failed.
 */
import { equal } from "node:assert/strict";
import { scanSummary } from "../ui/app/key_browser.ts";

Deno.test("scanSummary() names the whole scan's total, not the page's length", async (t) => {
  const cases: [string, Parameters<typeof scanSummary>[0], string][] = [
    [
      "the first page of many keys",
      { first: 1, last: 25, total: 22_542, where: "in the cluster" },
      "Keys 1–25 of 22,542 in the cluster",
    ],
    [
      "a later page under a prefix",
      { first: 26, last: 50, total: 60, where: 'with prefix "a/"' },
      'Keys 26–50 of 60 with prefix "a/"',
    ],
    [
      "no total",
      { first: 1, last: 25, total: null, where: "in the cluster" },
      "Keys 1–25 in the cluster (total unknown)",
    ],
  ];
  for (const [name, options, expected] of cases) {
    await t.step(name, () => equal(scanSummary(options), expected));
  }
});
