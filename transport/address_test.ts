/**
 * Checks the one "host:port" parser: IPv4, names and bracketed IPv6 parse; port 0 only for
 * listen addresses; anything else is a bad_config error whose message quotes the value and
 * names the reason, word for word, since config errors and CLI errors show it to operators.
 */

import assert from "node:assert/strict";
import { AspenError } from "../shard/mod.ts";
import { formatHostPort, parseHostPort, readHostPort } from "./address.ts";

Deno.test("parseHostPort() parses good addresses and formats them back", async (t) => {
  const cases = [
    { name: "IPv4", text: "127.0.0.1:7001", hostname: "127.0.0.1", port: 7001 },
    { name: "host name", text: "node-3.internal:65535", hostname: "node-3.internal", port: 65535 },
    { name: "single-label name", text: "localhost:80", hostname: "localhost", port: 80 },
    { name: "underscore in name", text: "aspen_1:7000", hostname: "aspen_1", port: 7000 },
    { name: "IPv6 loopback", text: "[::1]:7000", hostname: "::1", port: 7000 },
    {
      name: "IPv6 full",
      text: "[2001:db8::8a2e:370:7334]:1",
      hostname: "2001:db8::8a2e:370:7334",
      port: 1,
    },
    { name: "IPv4-mapped IPv6", text: "[::ffff:10.0.0.1]:9", hostname: "::ffff:10.0.0.1", port: 9 },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, () => {
      const parsed = parseHostPort(testCase.text, { what: "x", isListen: false });
      assert.deepEqual(parsed, { hostname: testCase.hostname, port: testCase.port });
      assert.equal(formatHostPort(parsed), testCase.text);
    });
  }
});

Deno.test("parseHostPort() refuses bad addresses with bad_config naming the reason", async (t) => {
  const cases = [
    {
      name: "missing port",
      text: "127.0.0.1",
      reason: 'expected "host:port" but there is no port',
    },
    { name: "empty port", text: "host:", reason: 'the port "" is not a number from 0 to 65535' },
    { name: "empty host", text: ":7000", reason: "the host is empty" },
    {
      name: "unbracketed IPv6",
      text: "::1:7000",
      reason: 'an IPv6 host must be in brackets, as in "[::1]:7000"',
    },
    {
      name: "IPv6 without port",
      text: "[::1]",
      reason: 'expected "host:port" but there is no port',
    },
    { name: "open bracket", text: "[::1:7000", reason: "an IPv6 host needs a closing bracket" },
    {
      name: "empty brackets",
      text: "[]:7000",
      reason: 'the host "[]" is not an IPv6 address in brackets',
    },
    {
      name: "bracketed name",
      text: "[host]:7000",
      reason: 'the host "[host]" is not an IPv6 address in brackets',
    },
    {
      name: "bracketed IPv4",
      text: "[10.0.0.1]:7000",
      reason: 'the host "[10.0.0.1]" is not an IPv6 address in brackets',
    },
    {
      name: "space in host",
      text: "my host:7000",
      reason: 'the host "my host" has a character not allowed there',
    },
    {
      name: "scheme",
      text: "http://host:7000",
      reason: 'an IPv6 host must be in brackets, as in "[::1]:7000"',
    },
    {
      name: "long host",
      text: `${"a".repeat(254)}:1`,
      reason: "the host is 254 characters but the limit is 253",
    },
    {
      name: "port word",
      text: "host:port",
      reason: 'the port "port" is not a number from 0 to 65535',
    },
    {
      name: "negative port",
      text: "host:-1",
      reason: 'the port "-1" is not a number from 0 to 65535',
    },
    {
      name: "port too long",
      text: "host:700000",
      reason: 'the port "700000" is not a number from 0 to 65535',
    },
    {
      name: "port over max",
      text: "host:65536",
      reason: "the port is 65536 but must be from 1 to 65535",
    },
    { name: "port 0 to dial", text: "host:0", reason: "the port is 0 but must be from 1 to 65535" },
    {
      name: "port with sign",
      text: "host:+80",
      reason: 'the port "+80" is not a number from 0 to 65535',
    },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, () => {
      assert.throws(
        () => parseHostPort(testCase.text, { what: "the address", isListen: false }),
        (error) => {
          assert.ok(error instanceof AspenError);
          assert.equal(error.code, "bad_config");
          assert.equal(
            error.message,
            `Cannot use the address "${testCase.text}": ${testCase.reason}`,
          );
          assert.deepEqual(error.details, { value: testCase.text });
          return true;
        },
      );
    });
  }
});

Deno.test("readHostPort() allows port 0 only for listen addresses", () => {
  assert.deepEqual(readHostPort("[::1]:0", { isListen: true }), {
    hostPort: { hostname: "::1", port: 0 },
  });
  assert.deepEqual(readHostPort("[::1]:0", { isListen: false }), {
    problem: "the port is 0 but must be from 1 to 65535",
  });
  assert.deepEqual(readHostPort("0.0.0.0:65536", { isListen: true }), {
    problem: "the port is 65536 but must be from 0 to 65535",
  });
});
