/**
 * `aspen txn status <id>`: a cross-shard transaction's record (`GET /v1/txn/{id}`), with one
 * receipt per participant shard, as a table or as JSON.
 */
import type { TxnStatusResponse } from "../api/mod.ts";
import { type CliIo, type Command, type ParsedArgs, UsageError } from "./command.ts";
import {
  clientFrom,
  formatTable,
  onlyFlags,
  positional,
  withClientErrors,
} from "./client_commands.ts";
import { CLIENT_FLAGS } from "./kv_command.ts";

/** `aspen txn`. */
export const TXN_COMMAND: Command = {
  name: "txn",
  summary: "inspect cross-shard transactions (status)",
  usage: ["txn status <id>   (the txnId of a cross-shard txn reply)"],
  details: "status prints the transaction's outcome (pending, committed or aborted; committed\n" +
    "as soon as every participant prepared, even before the record on its home shard says so)\n" +
    "and one receipt per participant shard: how the transaction resolved there, and how its\n" +
    "prepare went (prepared, conflict, aborted, none yet, or unknown).",
  flags: { ...CLIENT_FLAGS },
  positionalsMax: 2,
  run(args, io) {
    const action = args.positionals[0];
    if (action !== "status") {
      throw new UsageError(
        `${action === undefined ? "missing action" : `unknown action "${action}"`}; ` +
          "expected status",
      );
    }
    return withClientErrors("txn", io, () => txnStatus(args, io));
  },
};

async function txnStatus(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "txn status", []);
  const id = positional(args, 1, "id", "txn status <id>");
  const client = await clientFrom(args, io);
  const record = await client.txnStatus(id);
  if (args.values.json === true) {
    io.stdout(JSON.stringify(record) + "\n");
    return 0;
  }
  io.stdout(formatRecord(record));
  return 0;
}

/** The record as two tables: the transaction, then its receipts. */
export function formatRecord(record: TxnStatusResponse): string {
  const decided = record.decidedRevision === null ? "-" : String(record.decidedRevision);
  const head = formatTable(
    ["TXN", "STATUS", "HOME", "BRANCH", "CREATED", "DECIDED", "REASON"],
    [[
      record.txnId,
      record.status,
      record.home,
      record.branch ?? "-",
      record.createdRevision,
      decided,
      record.reason === "" ? "-" : record.reason,
    ]],
  );
  const receipts = formatTable(
    ["SHARD", "STATUS", "RESOLVED", "PREPARE"],
    record.receipts.map((receipt) => [
      receipt.shard,
      receipt.status,
      receipt.resolvedRevision ?? "-",
      receipt.prepare,
    ]),
  );
  return `${head}${recordNote(record)}\n${receipts}`;
}

/**
 * A line under the transaction when its outcome is ahead of its record (parallel commits: the
 * votes decided it, the home shard's resolve has not marked the record yet); "" otherwise.
 */
function recordNote(record: TxnStatusResponse): string {
  // A server that predates `recordStatus` leaves it out: its status is the record's.
  const recorded: string | undefined = record.recordStatus;
  if (recorded === undefined || record.status === recorded) return "";
  const why = record.status === "committed"
    ? "every participant prepared without a conflict"
    : "a participant refused its prepare or found a conflict";
  return `note: ${record.status} because ${why}; the record on shard ${record.home} still ` +
    `says ${recorded} until its resolve applies\n`;
}
