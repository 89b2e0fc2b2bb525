/**
 * Logger: level filtering, text and JSON line formats, child fields, with an injected clock
 * and sink so that lines are compared exactly.
 */
import { deepEqual, equal } from "node:assert/strict";
import { Logger } from "./log.ts";

function capture(level: "debug" | "info" | "warn" | "error", format: "text" | "json") {
  const lines: string[] = [];
  const logger = new Logger({ level, format, write: (line) => lines.push(line), nowMs: () => 0 });
  return { lines, logger };
}

Deno.test("Logger writes text lines with quoted fields when needed", () => {
  const { lines, logger } = capture("info", "text");
  logger.child({ node: 1 }).info("Elected leader", { shard: 2, reason: "timed out" });
  deepEqual(lines, [
    '1970-01-01T00:00:00.000Z INFO  Elected leader node=1 shard=2 reason="timed out"',
  ]);
});

Deno.test("Logger writes JSON lines", () => {
  const { lines, logger } = capture("debug", "json");
  logger.debug("Applied", { index: 7, skipped: undefined });
  deepEqual(JSON.parse(lines[0]!), {
    time: "1970-01-01T00:00:00.000Z",
    level: "debug",
    msg: "Applied",
    index: 7,
  });
});

Deno.test("Logger drops lines below its level", () => {
  const { lines, logger } = capture("warn", "text");
  logger.debug("a");
  logger.info("b");
  logger.warn("c");
  logger.error("d");
  equal(lines.length, 2);
  equal(logger.isEnabled("info"), false);
});
