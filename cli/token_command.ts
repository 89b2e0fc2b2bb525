/**
 * `aspen cluster token create|list|revoke`: runtime client tokens over `/v1/auth/tokens`
 * (root token needed). A created token is printed once; the cluster keeps only its hash.
 */
import type { CliIo, ParsedArgs } from "./command.ts";
import { UsageError } from "./command.ts";
import { clientFrom, formatTable, onlyFlags, positional } from "./client_commands.ts";

/** A token as the API returns it. */
interface TokenView {
  readonly id: string;
  readonly role: string;
  readonly name: string | null;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly isExpired: boolean;
}

/** The longest `--ttl`, in seconds (the server's TOKEN_TTL_SECONDS_MAX: five years). */
const TTL_SECONDS_MAX = 5 * 365 * 24 * 60 * 60;
const TTL_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** Runs `cluster token <action>`; `args.positionals[0]` is "token". */
export async function clusterToken(args: ParsedArgs, io: CliIo): Promise<number> {
  const action = args.positionals[1];
  if (action === "create") return await tokenCreate(args, io);
  if (action === "list") return await tokenList(args, io);
  if (action === "revoke") return await tokenRevoke(args, io);
  throw new UsageError(
    `${action === undefined ? "missing token action" : `unknown token action "${action}"`}; ` +
      "expected create, list or revoke",
  );
}

async function tokenCreate(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "cluster token create", ["role", "ttl", "name"]);
  noExtra(args, 2);
  const role = args.values.role;
  if (role !== "root" && role !== "read") {
    throw new UsageError(
      role === undefined
        ? "cluster token create needs --role root|read"
        : `flag --role is "${role}" but must be root or read`,
    );
  }
  const ttl = args.values.ttl;
  const name = args.values.name;
  const body = {
    role,
    ...(typeof ttl === "string" ? { ttlSeconds: parseTtl(ttl) } : {}),
    ...(typeof name === "string" ? { name } : {}),
  };
  const client = await clientFrom(args, io);
  const created = await client.request<TokenView & { token: string }>({
    method: "POST",
    path: "/v1/auth/tokens",
    body,
  });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(created) + "\n");
    return 0;
  }
  io.stdout(
    `Token ${created.id} (${created.role}${created.name === null ? "" : `, ${created.name}`}), ` +
      `expires ${created.expiresAt ?? "never"}\n` +
      `Token (shown once): ${created.token}\n`,
  );
  return 0;
}

async function tokenList(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "cluster token list", []);
  noExtra(args, 2);
  const client = await clientFrom(args, io);
  const { tokens } = await client.request<{ tokens: TokenView[] }>({
    method: "GET",
    path: "/v1/auth/tokens",
  });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(tokens) + "\n");
    return 0;
  }
  io.stdout(formatTable(
    ["ID", "ROLE", "NAME", "CREATED", "EXPIRES"],
    tokens.map((token) => [
      token.id,
      token.role,
      token.name ?? "",
      token.createdAt,
      `${token.expiresAt ?? "never"}${token.isExpired ? " (expired)" : ""}`,
    ]),
  ));
  return 0;
}

async function tokenRevoke(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "cluster token revoke", []);
  const usage = "cluster token revoke <id>";
  const id = positional(args, 2, "id", usage);
  if (!/^[0-9a-f]{16}$/.test(id)) {
    throw new UsageError(`<id> is "${id}"; expected a token id (16 hex digits)`);
  }
  const client = await clientFrom(args, io);
  const result = await client.request<{ revoked: boolean; token: TokenView }>({
    method: "DELETE",
    path: `/v1/auth/tokens/${id}`,
  });
  io.stdout(args.values.json === true ? JSON.stringify(result) + "\n" : `revoked token ${id}\n`);
  return 0;
}

/**
 * Parses `--ttl`: a whole number with a unit, s, m, h or d (`90s`, `30m`, `24h`, `7d`), or
 * plain seconds.
 *
 * @throws {UsageError} naming the flag and the value.
 */
export function parseTtl(text: string): number {
  const match = /^([0-9]{1,12})([smhd]?)$/.exec(text);
  const seconds = match === null ? NaN : Number(match[1]) * TTL_UNITS[match[2] || "s"]!;
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > TTL_SECONDS_MAX) {
    throw new UsageError(
      `flag --ttl is "${text}" but must be a duration such as 90s, 30m, 24h or 7d, ` +
        `from 1s to ${TTL_SECONDS_MAX / TTL_UNITS.d!}d`,
    );
  }
  return seconds;
}

function noExtra(args: ParsedArgs, count: number): void {
  const extra = args.positionals[count];
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
}
