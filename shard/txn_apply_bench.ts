/**
 * Benchmarks of applying the phases of a cross-shard transaction, one entry per batch (what a
 * replica applies at 1 client), against a single-shard cas and a put on the same state machine.
 *
 * One state machine on a WAL file with synchronous=normal (as nodes run it), filled before
 * timing: 10,000 keys of 256 B, a full watch history, and more than TXN_RECORDS_RETAIN decided
 * records and resolved participant rows (so every resolve also prunes one, as in steady state).
 * Each op is a cas as `aspen bench cas` sends it (compare the key's modRevision, success: put
 * 256 B, failure: get the key), built as the coordinator builds it and encoded with the real
 * encoder (encoding is not timed):
 *
 * - `txn cas`: the single-shard path, one `txn` entry.
 * - `txnPrepare`: as a participant that is not the home shard, and as the home (it also writes
 *   the staging record); the commit-resolve that follows is applied untimed.
 * - `txnResolve commit`: after a prepare applied untimed, as the non-home and as the home
 *   (which also decides the record).
 * - `put`: a plain put of 256 B.
 *
 * Run with: deno bench -A shard/txn_apply_bench.ts
 */

import type { Command, TxnOp } from "./command.ts";
import { encodeCommand } from "./command_codec.ts";
import { TXN_RECORDS_RETAIN } from "./limits.ts";
import { type ApplyEntry, StateMachine } from "./state_machine.ts";

const KEYS = 10_000;
const VALUE = "v".repeat(256);
/** Puts before timing: fills the key space and the watch history (50,000 events). */
const FILL_PUTS = 60_000;
/** Cross-shard transactions before timing: past retention on both tables. */
const FILL_TXNS = TXN_RECORDS_RETAIN + 200;
const FILL_BATCH_ENTRIES = 500;
/** Timed iterations of each benchmark (a fixed count keeps rounds of A/B runs comparable). */
const ITERATIONS = 2_000;
const WARMUP_ITERATIONS = 100;
const HOME = 0;
const OTHER = 1;

const directory = Deno.makeTempDirSync({ prefix: "aspen-txn-bench-" });
const sm = StateMachine.open({ path: `${directory}/sm.db`, synchronous: "normal" });
let index = 0;
let keyCursor = 0;
let txnCount = 0;

function nextKey(): string {
  keyCursor = (keyCursor + 7919) % KEYS;
  return `bench/${keyCursor}`;
}

function entry(command: Command): ApplyEntry {
  index++;
  return { index, data: encodeCommand(command) };
}

/** The branches of a cas on `key` as `aspen bench cas` sends them. */
function casParts(key: string) {
  const modRevision = sm.get(key)?.modRevision ?? 0;
  const success: TxnOp[] = [{ type: "put", key, value: VALUE, lease: 0, prevKv: false }];
  const failure: TxnOp[] = [{ type: "get", key }];
  const compare = [{ key, target: "modRevision", op: "=", value: modRevision } as const];
  return { compare, success, failure };
}

function prepare(shard: number): { command: Command; txnId: string } {
  // As a coordinator names them: `<nodeId>.<wall clock ms>.<sequence>`, ascending.
  txnCount++;
  const txnId = `1.${1_700_000_000_000 + txnCount}.${txnCount}`;
  const command: Command = {
    type: "txnPrepare",
    txnId,
    shard,
    home: HOME,
    participants: [HOME, OTHER],
    deadlineMs: 1_700_000_010_000,
    ...casParts(nextKey()),
    reads: [],
    leases: [],
  };
  return { command, txnId };
}

function resolve(txnId: string): Command {
  return { type: "txnResolve", txnId, outcome: "commit", branch: "success" };
}

function applyOne(item: ApplyEntry): void {
  const [result] = sm.apply([item]);
  if (result === undefined || result.type === "error") {
    throw new Error(`bench: entry ${item.index} failed: ${JSON.stringify(result)}`);
  }
}

function fill(): void {
  let entries: ApplyEntry[] = [];
  const flush = () => {
    sm.apply(entries);
    entries = [];
  };
  for (let i = 0; i < FILL_PUTS; i++) {
    entries.push(entry({ type: "put", key: nextKey(), value: VALUE, lease: 0, prevKv: false }));
    if (entries.length === FILL_BATCH_ENTRIES) flush();
  }
  // As the home: each one leaves a decided record and a resolved row.
  for (let i = 0; i < FILL_TXNS; i++) {
    const { command, txnId } = prepare(HOME);
    entries.push(entry(command), entry(resolve(txnId)));
    if (entries.length >= FILL_BATCH_ENTRIES) flush();
  }
  flush();
}

fill();

Deno.bench({
  name: "txn cas (single-shard, one entry)",
  group: "one entry per batch",
  n: ITERATIONS,
  warmup: WARMUP_ITERATIONS,
  baseline: true,
  fn(context) {
    const item = entry({ type: "txn", ...casParts(nextKey()) });
    context.start();
    applyOne(item);
    context.end();
  },
});

for (const [shard, role] of [[OTHER, "non-home"], [HOME, "home"]] as const) {
  Deno.bench({
    name: `txnPrepare (${role})`,
    group: "one entry per batch",
    n: ITERATIONS,
    warmup: WARMUP_ITERATIONS,
    fn(context) {
      const { command, txnId } = prepare(shard);
      const item = entry(command);
      context.start();
      applyOne(item);
      context.end();
      applyOne(entry(resolve(txnId)));
    },
  });
  Deno.bench({
    name: `txnResolve commit (${role})`,
    group: "one entry per batch",
    n: ITERATIONS,
    warmup: WARMUP_ITERATIONS,
    fn(context) {
      const { command, txnId } = prepare(shard);
      applyOne(entry(command));
      const item = entry(resolve(txnId));
      context.start();
      applyOne(item);
      context.end();
    },
  });
}

Deno.bench({
  name: "put",
  group: "one entry per batch",
  n: ITERATIONS,
  warmup: WARMUP_ITERATIONS,
  fn(context) {
    const item = entry({ type: "put", key: nextKey(), value: VALUE, lease: 0, prevKv: false });
    context.start();
    applyOne(item);
    context.end();
  },
});

globalThis.addEventListener("unload", () => {
  sm.close();
  Deno.removeSync(directory, { recursive: true });
});
