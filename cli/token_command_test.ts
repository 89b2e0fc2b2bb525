/**
 * `--ttl` of `aspen cluster token create`: durations with a unit (or plain seconds) become
 * seconds, and anything else is a usage error naming the flag and the value.
 */
import { equal, throws } from "node:assert/strict";
import { UsageError } from "./command.ts";
import { parseTtl } from "./token_command.ts";

Deno.test("parseTtl() reads s, m, h, d and plain seconds", async (t) => {
  const cases: [string, number][] = [
    ["1", 1],
    ["90s", 90],
    ["30m", 1_800],
    ["24h", 86_400],
    ["7d", 604_800],
    ["1825d", 157_680_000],
  ];
  for (const [text, seconds] of cases) {
    await t.step(text, () => equal(parseTtl(text), seconds));
  }
});

Deno.test("parseTtl() refuses other durations, naming --ttl", async (t) => {
  for (const text of ["", "0", "0h", "1y", "1.5h", "-1h", "h", "24 h", "1826d", "9999999999999"]) {
    await t.step(JSON.stringify(text), () => {
      throws(() => parseTtl(text), (error: unknown) => {
        return error instanceof UsageError && error.message.startsWith(`flag --ttl is "${text}"`);
      });
    });
  }
});
