/**
 * The drift guard's checker on planted answers: a field the contract does not name is listed
 * by its path, at the top, inside a nested object and inside array items; null and absent
 * values are not looked into; a wrong kind of value is named. The key lists' types are checked
 * too: `@ts-expect-error` lines show that a list with an extra or a missing key does not compile
 * (deno check fails on an expected error that does not happen).
 */
import { deepEqual } from "node:assert/strict";
import {
  CLUSTER_STATUS_KEYS,
  GET_KV_KEYS,
  type KeyShape,
  keysOutsideContract,
  KV_KEYS,
  RANGE_KEYS,
} from "./contract_keys.ts";
import type { ClusterStatus, GetKvResponse } from "./types.ts";

const KV = { key: "a", value: "1", version: 1, createRevision: 2, modRevision: 2, lease: 0 };

function status(stats: Record<string, unknown>): ClusterStatus & Record<string, unknown> {
  return {
    clusterId: "c",
    node: 1,
    generatedAtMs: 0,
    nodes: [{
      id: 1,
      peerAddress: "127.0.0.1:7001",
      httpAddress: "127.0.0.1:8001",
      status: "up",
      version: "0",
      uptimeMs: 5,
      alarms: [{ type: "no_space", sinceMs: 1, message: "full" }],
    }],
    shardMap: { epoch: 1, numShards: 1 },
    shards: [{
      id: 0,
      leader: 1,
      term: 2,
      commitIndex: 3,
      appliedIndex: 3,
      lastIndex: 3,
      replicas: [{ node: 1, role: "leader", matchIndex: 3, lag: 0, status: "up" }],
      committedReplicas: [1],
      stats: {
        proposalsPerSecond: 0,
        optimisticTxns: 0,
        conflicts: 0,
        applyBatchMsP99: null,
        applyLatencyP99Ms: null,
        turnMsMax: 1,
        ...stats,
      },
    }],
  };
}

Deno.test("keysOutsideContract() lists every field the contract does not name", async (t) => {
  const cases: {
    name: string;
    value: unknown;
    shape: typeof GET_KV_KEYS | object;
    want: string[];
  }[] = [
    {
      name: "an answer within the contract",
      value: { kv: KV, shard: 0, revision: 2 },
      shape: GET_KV_KEYS,
      want: [],
    },
    {
      name: "a planted top-level field",
      value: { kv: KV, shard: 0, revision: 2, leader: 1 },
      shape: GET_KV_KEYS,
      want: ["leader"],
    },
    {
      name: "a planted field in a nested kv",
      value: { kv: { ...KV, valueBytes: 1 }, shard: 0, revision: 2 },
      shape: GET_KV_KEYS,
      want: ["kv.valueBytes"],
    },
    {
      name: "a planted field in an array item",
      value: { kvs: [KV, { ...KV, ttl: 3 }], count: 2, more: false },
      shape: RANGE_KEYS,
      want: ["kvs[1].ttl"],
    },
    {
      name: "a planted stat deep in the cluster status",
      value: status({ applyMsMax: 4 }),
      shape: CLUSTER_STATUS_KEYS,
      want: ["shards[0].stats.applyMsMax"],
    },
    {
      name: "the status as the contract has it",
      value: status({}),
      shape: CLUSTER_STATUS_KEYS,
      want: [],
    },
    {
      name: "null and absent values are not looked into",
      value: { kv: null, shard: 0, revision: 2 },
      shape: GET_KV_KEYS,
      want: [],
    },
    {
      name: "a wrong kind of value",
      value: { kvs: { 0: KV }, count: 1, more: false },
      shape: RANGE_KEYS,
      want: ["kvs: expected an array"],
    },
    {
      name: "an answer that is not an object",
      value: [KV],
      shape: KV_KEYS,
      want: ["(answer): expected an object"],
    },
  ];
  for (const item of cases) {
    await t.step(item.name, () => {
      deepEqual(keysOutsideContract(item.value, item.shape as typeof KV_KEYS), item.want);
    });
  }
});

Deno.test("a key list must name exactly the keys of its type", () => {
  // @ts-expect-error: "leader" is not a key of GetKvResponse.
  const extra = { ...GET_KV_KEYS, leader: true } satisfies KeyShape<GetKvResponse>;
  // @ts-expect-error: "revision" is missing.
  const missing = { kv: KV_KEYS, shard: true } satisfies KeyShape<GetKvResponse>;
  // @ts-expect-error: a nested shape must name every key of a kv (or be `true`).
  const wrong = { kv: { key: true }, shard: true, revision: true } satisfies KeyShape<
    GetKvResponse
  >;
  deepEqual([Object.keys(extra).length, Object.keys(missing).length, Object.keys(wrong).length], [
    4,
    2,
    3,
  ]);
});
