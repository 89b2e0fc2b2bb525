/**
 * Binary values (API.md, "Binary values"), end to end: in process with `app.request()` against
 * a real one-node cluster (real SQLite, real Raft) with 2 shards, every byte 0..255 is written
 * with `valueBase64` (alone and all in one value) and read back byte for byte through get,
 * range, txn and `?encoding=base64`, compared, and written by an optimistic transaction; bad
 * input is a 400 naming the fields; and the bytes survive a node restart and, on a state
 * machine, a snapshot restored into another replica.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { encodeBase64 } from "../server/http/value_encoding.ts";
import { encodeCommand, StateMachine, VALUE_BYTES_MAX, valueFromBytes } from "../shard/mod.ts";
import {
  callInProcess,
  type InProcessNode as Harness,
  startInProcessNode,
} from "./_in_process_node.ts";

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

const call = callInProcess;

function base64Of(bytes: Uint8Array): string {
  return encodeBase64(bytes);
}

function bytesOf(base64: unknown): Uint8Array {
  ok(typeof base64 === "string", `valueBase64 is a string: ${String(base64)}`);
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

async function getKv(harness: Harness, key: string, query = ""): Promise<Record<string, unknown>> {
  const { status, json } = await call(harness, "GET", `/v1/kv/${key}${query}`);
  equal(status, 200, JSON.stringify(json));
  return json.kv as Record<string, unknown>;
}

Deno.test("binary values round-trip over HTTP and survive a restart", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-binary-" });
  let harness = await startInProcessNode({ shards: 2, dir });
  try {
    await t.step("every byte, alone and all together", async () => {
      const puts = Array.from({ length: 256 }, (_, byte) => {
        const body = { valueBase64: base64Of(Uint8Array.of(byte)) };
        return call(harness, "PUT", `/v1/kv/byte/${byte}`, body);
      });
      for (const put of await Promise.all(puts)) equal(put.status, 200, JSON.stringify(put.json));
      const all = await call(harness, "PUT", "/v1/kv/all", { valueBase64: base64Of(ALL_BYTES) });
      equal(all.status, 200);
      for (let byte = 0; byte < 256; byte++) {
        const kv = await getKv(harness, `byte/${byte}`);
        if (byte < 0x80) {
          equal(kv.value, String.fromCharCode(byte), "a UTF-8 byte is text");
          equal(kv.valueBase64, undefined, "text carries no valueBase64 unless asked");
        } else {
          equal(kv.value, "\ufffd", "an invalid byte reads as U+FFFD in value");
          deepEqual(bytesOf(kv.valueBase64), Uint8Array.of(byte));
        }
        const asked = await getKv(harness, `byte/${byte}`, "?encoding=base64");
        deepEqual(bytesOf(asked.valueBase64), Uint8Array.of(byte));
      }
      deepEqual(bytesOf((await getKv(harness, "all")).valueBase64), ALL_BYTES);
    });
    await t.step("range, txn compare and optimistic writes keep the bytes", async () => {
      const range = await call(harness, "GET", "/v1/kv?prefix=byte/&limit=1000");
      const kvs = range.json.kvs as Record<string, unknown>[];
      equal(kvs.length, 256);
      for (const kv of kvs) {
        const byte = Number(String(kv.key).slice("byte/".length));
        if (byte >= 0x80) deepEqual(bytesOf(kv.valueBase64), Uint8Array.of(byte));
      }
      const reversed = ALL_BYTES.slice().reverse();
      const txn = await call(harness, "POST", "/v1/txn?encoding=base64", {
        compare: [{ key: "all", target: "value", op: "=", valueBase64: base64Of(ALL_BYTES) }],
        success: [{ put: { key: "all", valueBase64: base64Of(reversed) } }, {
          get: { key: "all" },
        }],
      });
      equal(txn.status, 200, JSON.stringify(txn.json));
      equal(txn.json.succeeded, true);
      deepEqual(bytesOf((await getKv(harness, "all")).valueBase64), reversed);
      const read = await getKv(harness, "all");
      const optimistic = await call(harness, "POST", "/v1/txn/optimistic", {
        reads: [{ key: "all", modRevision: read.modRevision }],
        writes: [{ op: "set", key: "all", valueBase64: base64Of(ALL_BYTES) }],
      });
      equal(optimistic.status, 200, JSON.stringify(optimistic.json));
      deepEqual(bytesOf((await getKv(harness, "all")).valueBase64), ALL_BYTES);
    });
    await t.step("bad input is a 400 naming the fields", async () => {
      const cases: [unknown, RegExp][] = [
        [{ value: "a", valueBase64: "YQ==" }, /either "value" or "valueBase64", not both/],
        [{}, /field "value" \(or "valueBase64"\) must be a string and is missing/],
        [{ valueBase64: "not base64!" }, /"valueBase64" is not padded base64/],
        [{ valueBase64: "YQ" }, /"valueBase64" is not padded base64/],
        [{ valueBase64: 7 }, /"valueBase64" must be a string/],
      ];
      for (const [body, message] of cases) {
        const put = await call(harness, "PUT", "/v1/kv/bad", body);
        equal(put.status, 400, JSON.stringify(body));
        match((put.json.error as { message: string }).message, message);
      }
      const txn = await call(harness, "POST", "/v1/txn", {
        success: [{ put: { key: "bad", value: "a", valueBase64: "YQ==" } }],
      });
      equal(txn.status, 400);
      const encoding = await call(harness, "GET", "/v1/kv/all?encoding=hex");
      equal(encoding.status, 400);
      match((encoding.json.error as { message: string }).message, /"encoding" must be/);
      const big = new Uint8Array(VALUE_BYTES_MAX + 1).fill(0xff);
      const tooLarge = await call(harness, "PUT", "/v1/kv/bad", { valueBase64: base64Of(big) });
      equal((tooLarge.json.error as { code: string }).code, "value_too_large");
      const fits = await call(harness, "PUT", "/v1/kv/big", {
        valueBase64: base64Of(big.subarray(1)),
      });
      equal(fits.status, 200, "the limit counts decoded bytes");
      equal((await call(harness, "GET", "/v1/kv/bad")).status, 404, "nothing was written");
    });
    await t.step("a restarted node serves the same bytes", async () => {
      await harness.close();
      harness = await startInProcessNode({ shards: 2, dir, restart: harness });
      deepEqual(bytesOf((await getKv(harness, "all")).valueBase64), ALL_BYTES);
      deepEqual(bytesOf((await getKv(harness, "byte/255")).valueBase64), Uint8Array.of(255));
    });
  } finally {
    await harness.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a snapshot carries binary values to another replica", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-binary-snapshot-" });
  const leader = StateMachine.open({ path: `${dir}/leader.db`, synchronous: "normal" });
  const follower = StateMachine.open({ path: `${dir}/follower.db`, synchronous: "normal" });
  try {
    const value = valueFromBytes(ALL_BYTES);
    leader.apply([{
      index: 1,
      data: encodeCommand({ type: "put", key: "all", value, lease: 0, prevKv: false }),
    }]);
    follower.restore(leader.snapshot());
    equal(follower.stateHash(), leader.stateHash());
    equal(follower.range({ range: { prefix: "" }, limit: 10, after: null }).kvs[0]?.value, value);
  } finally {
    leader.close();
    follower.close();
    await Deno.remove(dir, { recursive: true });
  }
});
