/**
 * The client subcommands: `aspen kv`, `aspen shard` and `aspen cluster status`. They talk to
 * any node over the HTTP API, print tables for people and `--json` for scripts, and name the
 * flag or argument when the command line is wrong.
 *
 * Endpoints and token come from `--endpoints`/`--token`, then `ASPEN_ENDPOINTS`/`ASPEN_TOKEN`,
 * then, for convenience after `aspen dev`, from `.aspen-dev/dev-cluster.json` in the current
 * folder.
 */
import { ApiError, AspenClient } from "../api/mod.ts";
import { type CliIo, type ParsedArgs, UsageError } from "./command.ts";

/** The default endpoint when none is given. */
export const DEFAULT_ENDPOINT = "http://127.0.0.1:8001";

/** Builds a client from flags, environment or the dev cluster record. */
export async function clientFrom(args: ParsedArgs, io: CliIo): Promise<AspenClient> {
  const { endpoints, token } = await clientEndpoints(args, io);
  return new AspenClient({ endpoints, token });
}

/** The endpoints and token from flags, environment or the dev cluster record. */
export async function clientEndpoints(
  args: ParsedArgs,
  io: CliIo,
): Promise<{ endpoints: string[]; token: string | null }> {
  let endpoints = (args.values.endpoints as string | undefined) ?? io.env.ASPEN_ENDPOINTS;
  let token = (args.values.token as string | undefined) ?? io.env.ASPEN_TOKEN ?? null;
  if (endpoints === undefined || token === null) {
    const dev = await readDevRecord(io);
    endpoints ??= dev?.endpoints.join(",");
    token ??= dev?.token ?? null;
  }
  const list = (endpoints ?? DEFAULT_ENDPOINT).split(",").map((item) => item.trim());
  for (const endpoint of list) {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
      throw new UsageError(`flag --endpoints has "${endpoint}"; expected http://host:port`);
    }
  }
  return { endpoints: list.map((endpoint) => endpoint.replace(/\/+$/, "")), token };
}

async function readDevRecord(
  io: CliIo,
): Promise<{ endpoints: string[]; token: string } | null> {
  let text: string;
  try {
    text = await io.readTextFile(".aspen-dev/dev-cluster.json");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const record = JSON.parse(text) as {
    nodes?: { httpAddress: string }[];
    rootToken?: string;
  };
  if (record.nodes === undefined || record.rootToken === undefined) return null;
  return {
    endpoints: record.nodes.map((node) => `http://${node.httpAddress}`),
    token: record.rootToken,
  };
}

/** Runs a client action, printing API errors as `aspen <cmd>: <code>: <message>` (exit 1). */
export async function withClientErrors(
  name: string,
  io: CliIo,
  action: () => Promise<number>,
): Promise<number> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof ApiError) {
      io.stderr(`aspen ${name}: ${error.code}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

/** Renders rows as a left-aligned table with a header line. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly unknown[])[],
): string {
  const cells = [header, ...rows.map((row) => row.map((cell) => String(cell ?? "")))];
  const widths = header.map((_, column) =>
    Math.max(...cells.map((row) => (row[column] ?? "").length))
  );
  return cells.map((row) =>
    row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd()
  ).join("\n") + "\n";
}

/** Reads a whole-number flag, naming the flag when it is not one. */
export function integerFlag(
  args: ParsedArgs,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  const text = args.values[flag];
  if (text === undefined) return undefined;
  const value = Number(text);
  if (typeof text !== "string" || !/^[0-9]+$/.test(text) || value < min || value > max) {
    throw new UsageError(
      `flag --${flag} is "${text}" but must be an integer from ${min} to ${max}`,
    );
  }
  return value;
}

/** Rejects flags that do not apply to the chosen action. */
export function onlyFlags(args: ParsedArgs, action: string, allowed: readonly string[]): void {
  const always = ["endpoints", "token", "json", "help"];
  for (const [flag, value] of Object.entries(args.values)) {
    if (value === undefined || always.includes(flag) || allowed.includes(flag)) continue;
    throw new UsageError(`flag --${flag} does not apply to ${action}`);
  }
}

/** Returns the positional argument at `index`, naming it when missing. */
export function positional(args: ParsedArgs, index: number, name: string, usage: string): string {
  const value = args.positionals[index];
  if (value === undefined) throw new UsageError(`missing <${name}>: usage is aspen ${usage}`);
  return value;
}
