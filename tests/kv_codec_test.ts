/**
 * Tests of the command encoding: every command type round-trips to an equal object and to the
 * same bytes (one encoding per command), and malformed bytes of every kind (truncated at every
 * position, unknown tags, trailing bytes, non-canonical varints, bad UTF-8, oversized) fail
 * with an AspenError and never with any other error. Commands come from the seeded workload
 * generator, so every type and option appears.
 */

import assert from "node:assert/strict";
import {
  AspenError,
  type Command,
  decodeCommand,
  encodeCommand,
  KEY_BYTES_MAX,
  REQUEST_BYTES_MAX,
} from "../shard/mod.ts";
import { Prng, Workload } from "./kv_workload.ts";

function commands(count: number): Command[] {
  const workload = new Workload(42);
  const list: Command[] = [];
  for (let i = 0; i < count; i++) list.push(workload.command());
  return list;
}

function decodeError(bytes: Uint8Array): AspenError {
  try {
    decodeCommand(bytes);
  } catch (error) {
    if (error instanceof AspenError) return error;
    throw error;
  }
  throw new Error("decodeCommand accepted bad bytes");
}

Deno.test("encodeCommand() and decodeCommand() round-trip every command type", () => {
  const seen = new Set<string>();
  for (const command of commands(3000)) {
    seen.add(command.type);
    const bytes = encodeCommand(command);
    const decoded = decodeCommand(bytes);
    assert.deepEqual(decoded, command);
    assert.deepEqual(encodeCommand(decoded), bytes, "one encoding per command");
  }
  assert.equal(seen.size, 11, "every command type was generated");
});

Deno.test("decodeCommand() reads optimistic txns written before reads named modRevision", () => {
  // Tag 5, as logs written before issue 12 hold it: reads are (key, version). Format 1, tag 5,
  // 1 read ("k", version 3), 1 write (set "k" to "v").
  const old = Uint8Array.from([1, 5, 1, 1, 0x6b, 3, 1, 1, 0x6b, 1, 1, 0x76]);
  const command: Command = {
    type: "optimisticTxn",
    reads: [{ key: "k", modRevision: null, version: 3, revision: null }],
    writes: [{ op: "set", key: "k", value: "v" }],
  };
  assert.deepEqual(decodeCommand(old), command);
  const current = encodeCommand(command);
  assert.deepEqual([...current.subarray(0, 2)], [1, 11], "new entries use tag 11");
  assert.deepEqual(decodeCommand(current), command);
  assert.equal(decodeError(Uint8Array.from([...old, 0])).code, "bad_request", "no extra bytes");
});

Deno.test("encodeCommand() writes each field of a read, null or not", () => {
  const reads = [
    { key: "a", modRevision: 7, version: null, revision: null },
    { key: "b", modRevision: null, version: 2, revision: 9 },
    { key: "c", modRevision: 0, version: 0, revision: 0 },
  ];
  const command: Command = { type: "optimisticTxn", reads, writes: [] };
  const bytes = encodeCommand(command);
  // Per read: key, then (present, value) for modRevision, version and revision.
  assert.deepEqual([...bytes], [
    ...[1, 11, 3],
    ...[1, 0x61, 1, 7, 0, 0],
    ...[1, 0x62, 0, 1, 2, 1, 9],
    ...[1, 0x63, 1, 0, 1, 0, 1, 0],
    0,
  ]);
  assert.deepEqual(decodeCommand(bytes), command);
});

Deno.test("decodeCommand() rejects a read that names neither modRevision nor version", () => {
  const bytes = Uint8Array.from([1, 11, 1, 1, 0x6b, 0, 0, 1, 4, 0]);
  const error = decodeError(bytes);
  assert.equal(error.code, "bad_request");
  assert.match(error.message, /neither a modRevision nor a version/);
});

Deno.test("decodeCommand() reads empty data as a noop", () => {
  assert.deepEqual(decodeCommand(new Uint8Array()), { type: "noop" });
});

Deno.test("decodeCommand() throws only AspenError on truncated commands", () => {
  for (const command of commands(300)) {
    const bytes = encodeCommand(command);
    for (let length = 1; length < bytes.length; length++) {
      assert.equal(decodeError(bytes.subarray(0, length)).code, "bad_request");
    }
  }
});

Deno.test("decodeCommand() throws only AspenError on random bytes", () => {
  const prng = new Prng(7);
  for (let i = 0; i < 20_000; i++) {
    const bytes = new Uint8Array(1 + prng.int(40));
    for (let j = 0; j < bytes.length; j++) bytes[j] = prng.int(256);
    if (prng.chance(0.8)) bytes[0] = 1;
    try {
      decodeCommand(bytes);
    } catch (error) {
      assert.ok(error instanceof AspenError, `only AspenError: ${error}`);
    }
  }
});

Deno.test("decodeCommand() rejects malformed bytes", async (t) => {
  const put = encodeCommand({ type: "put", key: "k", value: "v", lease: 0, prevKv: false });
  const cases: [string, number[] | Uint8Array, string][] = [
    ["unknown format", [2, 0], "unknown format 2"],
    ["unknown command tag", [1, 200], "unknown command tag 200"],
    ["trailing bytes", [...put, 0], "1 bytes follow the command"],
    ["bool that is not 0 or 1", [...put.subarray(0, put.length - 1), 2], "not a boolean"],
    ["non-canonical varint", [1, 7, 0x81, 0x00], "canonical"],
    ["varint beyond safe integers", [1, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], "safe"],
    ["invalid UTF-8", [1, 1, 1, 0xff, 1, 0x61, 0, 0], "not UTF-8"],
    ["string longer than the data", [1, 1, 5, 0x61], "truncated"],
    ["unknown range kind", [1, 2, 9], "unknown range kind 9"],
    ["unknown txn op", [1, 4, 0, 1, 9], "unknown txn op tag 9"],
  ];
  for (const [name, bytes, message] of cases) {
    await t.step(name, () => {
      const error = decodeError(Uint8Array.from(bytes));
      assert.equal(error.code, "bad_request");
      assert.match(error.message, new RegExp(message));
    });
  }
});

Deno.test("decodeCommand() applies every limit to hand-made bytes", async (t) => {
  await t.step("a key past KEY_BYTES_MAX is key_too_large", () => {
    // put: format 1, tag 0, key length as a varint (4097 = 0x81 0x20), key, value "v", lease 0,
    // prevKv false.
    const key = new Uint8Array(KEY_BYTES_MAX + 1).fill(0x6b);
    const bytes = Uint8Array.from([1, 0, 0x81, 0x20, ...key, 1, 0x76, 0, 0]);
    assert.equal(decodeError(bytes).code, "key_too_large");
  });
  await t.step("an empty key is bad_request", () => {
    assert.equal(decodeError(Uint8Array.from([1, 0, 0, 1, 0x76, 0, 0])).code, "bad_request");
  });
  await t.step("data past REQUEST_BYTES_MAX is request_too_large", () => {
    const error = decodeError(new Uint8Array(REQUEST_BYTES_MAX + 1));
    assert.equal(error.code, "request_too_large");
  });
  await t.step("a lease ttl of 0 is bad_request", () => {
    assert.equal(decodeError(Uint8Array.from([1, 6, 0])).code, "bad_request");
  });
});

Deno.test("encodeCommand() keeps a leading byte order mark and astral characters", () => {
  const command: Command = {
    type: "put",
    key: "\uFEFFkey\u{1F600}",
    value: "\uFEFF",
    lease: 0,
    prevKv: true,
  };
  assert.deepEqual(decodeCommand(encodeCommand(command)), command);
});
