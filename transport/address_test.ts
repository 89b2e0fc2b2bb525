/**
 * Checks "host:port" parsing: IPv4, names and bracketed IPv6 parse; port 0 only for listen
 * addresses; anything else is a bad_config error that quotes the value.
 */

import assert from "node:assert/strict";
import { AspenError } from "../shard/mod.ts";
import { formatHostPort, parseHostPort } from "./address.ts";

Deno.test("parseHostPort() parses good addresses and formats them back", async (t) => {
  const cases = [
    { text: "127.0.0.1:7001", hostname: "127.0.0.1", port: 7001 },
    { text: "node-3.internal:65535", hostname: "node-3.internal", port: 65535 },
    { text: "[::1]:1", hostname: "::1", port: 1 },
  ];
  for (const testCase of cases) {
    await t.step(testCase.text, () => {
      const parsed = parseHostPort(testCase.text, { what: "x", isListen: false });
      assert.deepEqual(parsed, { hostname: testCase.hostname, port: testCase.port });
      assert.equal(formatHostPort(parsed), testCase.text);
    });
  }
});

Deno.test("parseHostPort() refuses bad addresses with bad_config", async (t) => {
  const cases = [
    { text: "127.0.0.1", isListen: false },
    { text: ":7000", isListen: false },
    { text: "::1:7000", isListen: false },
    { text: "[::1:7000", isListen: false },
    { text: "host:port", isListen: false },
    { text: "host:65536", isListen: false },
    { text: "host:0", isListen: false },
    { text: "host:-1", isListen: true },
  ];
  for (const testCase of cases) {
    await t.step(testCase.text, () => {
      assert.throws(
        () => parseHostPort(testCase.text, { what: "the address", isListen: testCase.isListen }),
        (error) =>
          error instanceof AspenError && error.code === "bad_config" &&
          error.message.includes(`"${testCase.text}"`),
      );
    });
  }
  await t.step("port 0 is fine for a listen address", () => {
    assert.equal(parseHostPort("127.0.0.1:0", { what: "x", isListen: true }).port, 0);
  });
});
