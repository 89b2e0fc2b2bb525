/**
 * The Transactions view's logic (ui/app/txns.ts) and the status fields it reads
 * (ui/app/status.ts): cross-shard rates sum each node's own counter increase (a node down in
 * either snapshot adds nothing, a restarted node counts its new value, no counters give null,
 * never zero); intents per shard list the busiest first and keep "not reported" apart from 0;
 * the deadline text; and a `GET /v1/txn` answer is read checked, naming a bad field.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import type { ClusterStatus, CrossShardTxnCounts } from "../api/mod.ts";
import { JsonFormatError } from "../ui/app/json_read.ts";
import type { Sample } from "../ui/app/rates.ts";
import { parseClusterStatus } from "../ui/app/status.ts";
import {
  crossShardRates,
  deadlineText,
  hasCrossShardCounters,
  intentsPerShard,
  parseTxnListResponse,
  receiptLabel,
  statusText,
  txnListPath,
} from "../ui/app/txns.ts";
import { FakeCluster } from "./fixtures/ui_cluster.ts";

const BASE: ClusterStatus = new FakeCluster({ nodeCount: 2, shardCount: 3, replicationFactor: 2 })
  .status();

function counts(committed: number, conflict = 0, timeout = 0, error = 0): CrossShardTxnCounts {
  return { committed, conflict, timeout, error };
}

/** A snapshot at `second` whose node `i` reports `perNode[i]` (null: down). */
function sample(second: number, perNode: (CrossShardTxnCounts | null)[]): Sample {
  const nodes = BASE.nodes.map((node, i) => ({ ...node, crossShardTxns: perNode[i] ?? null }));
  return { atMs: second * 1_000, status: { ...BASE, nodes } };
}

Deno.test("crossShardRates() sums each node's own increase over the window", async (t) => {
  const cases: {
    name: string;
    samples: Sample[];
    commits: number | null;
    aborts: number | null;
    abortRate: number | null;
    conflictRate: number | null;
  }[] = [
    {
      name: "two nodes, two seconds",
      samples: [
        sample(0, [counts(10), counts(5)]),
        sample(1, [counts(14, 1), counts(7)]),
        sample(2, [counts(18, 2), counts(9, 0, 1, 1)]),
      ],
      commits: 6,
      aborts: 2,
      abortRate: 0.25,
      conflictRate: 0.125,
    },
    {
      name: "a node down in one snapshot adds nothing for its steps",
      samples: [
        sample(0, [counts(10), counts(100)]),
        sample(1, [counts(12), null]),
        sample(2, [counts(14), counts(900)]),
      ],
      commits: 2,
      aborts: 0,
      abortRate: 0,
      conflictRate: 0,
    },
    {
      name: "a restarted node counts its new value, never a negative step",
      samples: [sample(0, [counts(50), counts(0)]), sample(2, [counts(3, 1), counts(0)])],
      commits: 1.5,
      aborts: 0.5,
      abortRate: 0.25,
      conflictRate: 0.25,
    },
    {
      name: "no txn ended: rates are 0 per second, shares unknown",
      samples: [sample(0, [counts(4), counts(4)]), sample(1, [counts(4), counts(4)])],
      commits: 0,
      aborts: 0,
      abortRate: null,
      conflictRate: null,
    },
    {
      name: "no node reports counters: unknown",
      samples: [sample(0, [null, null]), sample(1, [null, null])],
      commits: null,
      aborts: null,
      abortRate: null,
      conflictRate: null,
    },
    {
      name: "one snapshot: unknown",
      samples: [sample(0, [counts(4), counts(4)])],
      commits: null,
      aborts: null,
      abortRate: null,
      conflictRate: null,
    },
  ];
  for (const item of cases) {
    await t.step(item.name, () => {
      const rates = crossShardRates(item.samples);
      equal(rates.commitsPerSecond, item.commits);
      equal(rates.abortsPerSecond, item.aborts);
      equal(rates.abortRate, item.abortRate);
      equal(rates.conflictRate, item.conflictRate);
    });
  }
});

Deno.test("hasCrossShardCounters() tells an old server from a down node", () => {
  equal(hasCrossShardCounters(BASE), false, "the fake cluster predates the counters");
  equal(hasCrossShardCounters(sample(0, [null, null]).status), true);
});

Deno.test("intentsPerShard() lists the busiest shard first and keeps unknown apart", () => {
  const shards = BASE.shards.map((shard, i) => {
    const intents = [3, undefined, 7][i];
    return intents === undefined ? shard : { ...shard, stats: { ...shard.stats, intents } };
  });
  deepEqual(
    intentsPerShard({ ...BASE, shards }).map((row) => [row.shard, row.intents]),
    [[2, 7], [0, 3], [1, null]],
  );
});

Deno.test("deadlineText() says how a pending txn stands against its deadline", () => {
  equal(deadlineText(31_000, 1_000), "deadline in 30 s");
  equal(deadlineText(1_200, 1_000), "deadline now");
  equal(deadlineText(1_000, 6_000), "5 s past its deadline: readers and the sweeper abort it");
  equal(deadlineText(0, 6_000), "no deadline known");
});

Deno.test("txnListPath() asks for the shown number of one status", () => {
  equal(txnListPath("aborted"), "/v1/txn?status=aborted&limit=20");
});

const ITEM = {
  txnId: "1.5.2",
  status: "pending",
  home: 1,
  participants: [0, 1],
  branch: null,
  createdRevision: 9,
  decidedRevision: null,
  reason: "",
  deadlineMs: 123,
  outcome: "pending",
  receipts: [
    { shard: 0, status: "pending", resolvedRevision: null, prepare: "prepared" },
    { shard: 1, status: "unknown", resolvedRevision: null, prepare: "unknown" },
  ],
};

Deno.test("parseTxnListResponse() reads a listing and names a bad field", () => {
  const body = { status: "pending", txns: [ITEM], unavailableShards: [2] };
  deepEqual(parseTxnListResponse(body), body);
  const bad = { ...body, txns: [{ ...ITEM, receipts: [{ ...ITEM.receipts[0], status: "done" }] }] };
  throws(() => parseTxnListResponse(bad), (error: unknown) => {
    equal(error instanceof JsonFormatError, true);
    equal(String((error as Error).message).includes("txns[0].receipts[0].status"), true);
    return true;
  });
  throws(() => parseTxnListResponse({ ...body, unavailableShards: undefined }), JsonFormatError);
  const noOutcome = { ...body, txns: [{ ...ITEM, outcome: "done" }] };
  throws(() => parseTxnListResponse(noOutcome), JsonFormatError);
  const badPrepare = {
    ...body,
    txns: [{ ...ITEM, receipts: [{ ...ITEM.receipts[0], prepare: "maybe" }] }],
  };
  throws(() => parseTxnListResponse(badPrepare), JsonFormatError);
});

Deno.test("receiptLabel() and statusText() say what the votes tell", () => {
  equal(receiptLabel({ status: "pending", prepare: "prepared" }), "pending, prepared");
  equal(receiptLabel({ status: "pending", prepare: "none" }), "pending, not prepared");
  equal(receiptLabel({ status: "pending", prepare: "aborted" }), "pending, refused");
  equal(receiptLabel({ status: "pending", prepare: "unknown" }), "pending");
  equal(receiptLabel({ status: "committed", prepare: "prepared" }), "committed");
  equal(receiptLabel({ status: "unknown", prepare: "unknown" }), "no answer");
  equal(statusText({ status: "committed", outcome: "committed" }), "committed");
  equal(statusText({ status: "pending", outcome: "committed" }), "pending, committed by its votes");
});

Deno.test("parseClusterStatus() reads the counters and intents, absent or null", () => {
  const raw = JSON.parse(JSON.stringify(BASE));
  raw.nodes[0].crossShardTxns = counts(3, 1);
  raw.nodes[1].crossShardTxns = null;
  raw.shards[0].stats.intents = 4;
  const status = parseClusterStatus(raw);
  deepEqual(status.nodes[0]!.crossShardTxns, counts(3, 1));
  equal(status.nodes[1]!.crossShardTxns, null);
  equal(status.shards[0]!.stats.intents, 4);
  equal("intents" in status.shards[1]!.stats, false, "absent stays absent");
  equal("crossShardTxns" in parseClusterStatus(JSON.parse(JSON.stringify(BASE))).nodes[0]!, false);
  raw.shards[0].stats.intents = -1;
  throws(() => parseClusterStatus(raw), /shards\[0\]\.stats\.intents/);
});
