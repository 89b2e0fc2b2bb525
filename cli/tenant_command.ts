/**
 * `aspen tenant create NAME [--shard S]`, `aspen tenant list`, `aspen tenant move NAME --to S`:
 * tenants place the keys under `NAME/` on one shard (POST /v1/tenants, GET /v1/tenants,
 * POST /v1/tenants/{name}/move). create and move run the fenced copy of `shard add` and print
 * its progress like it; they return once the tenant is on its shard.
 */
import { AspenClient, type TenantMoveResponse, type TenantsResponse } from "../api/mod.ts";
import {
  type CliIo,
  type Command,
  EXIT_INTERRUPTED,
  type ParsedArgs,
  UsageError,
} from "./command.ts";
import {
  clientEndpoints,
  clientFrom,
  formatTable,
  integerFlag,
  onlyFlags,
  positional,
  withClientErrors,
} from "./client_commands.ts";
import { CLIENT_FLAGS } from "./kv_command.ts";
import { followMove, formatBytes } from "./shard_add_command.ts";

/** The highest shard id the CLI passes on (the server checks the cluster's count). */
const TENANT_SHARD_MAX = 1_023;
/**
 * How long `tenant create` waits for its answer: the node answers once the creating move is
 * done, or after 30 s (TENANT_CREATE_WAIT_MS) while it still runs; this leaves room above it.
 */
export const TENANT_CREATE_TIMEOUT_MS = 40_000;

/** `aspen tenant`. */
export const TENANT_COMMAND: Command = {
  name: "tenant",
  summary: "place the keys under a prefix on one shard (create, list, move)",
  usage: [
    "tenant create <name> [--shard S]",
    "tenant list",
    "tenant move <name> --to S",
  ],
  details: "A tenant's keys are those under <name>/ (the name: 1 to 64 letters, digits, '.',\n" +
    "'_' or '-'); they live on the tenant's shard instead of where the hash puts them.\n" +
    "create places a new tenant on --shard (default: the shard with the fewest keys) and\n" +
    "moves the keys already under its prefix there; move moves a tenant to shard --to.\n" +
    "Both copy while the cluster serves, print progress, and return when done.",
  flags: {
    ...CLIENT_FLAGS,
    shard: { type: "string", valueName: "S", help: "create: the tenant's shard" },
    to: { type: "string", valueName: "S", help: "move: the tenant's new shard" },
  },
  positionalsMax: 2,
  run(args, io) {
    const action = args.positionals[0];
    if (action === "create") return withClientErrors("tenant", io, () => tenantCreate(args, io));
    if (action === "list") return withClientErrors("tenant", io, () => tenantList(args, io));
    if (action === "move") return withClientErrors("tenant", io, () => tenantMove(args, io));
    throw new UsageError(
      `${action === undefined ? "missing action" : `unknown action "${action}"`}; ` +
        "expected create, list or move",
    );
  },
};

async function tenantCreate(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "tenant create", ["shard"]);
  const name = positional(args, 1, "name", "tenant create <name> [--shard S]");
  const shard = integerFlag(args, "shard", 0, TENANT_SHARD_MAX);
  const { endpoints, token } = await clientEndpoints(args, io);
  const client = new AspenClient({ endpoints, token, timeoutMs: TENANT_CREATE_TIMEOUT_MS });
  const started = await client.request<TenantMoveResponse>({
    method: "POST",
    path: "/v1/tenants",
    body: shard === undefined ? { name } : { name, shard },
  });
  if (started.move.phase !== "done" && await followMove(client, io) === "interrupted") {
    return EXIT_INTERRUPTED;
  }
  io.stdout(
    args.values.json === true
      ? JSON.stringify({ name: started.name, shard: started.shard }) + "\n"
      : `tenant "${started.name}" is on shard ${started.shard}\n`,
  );
  return 0;
}

async function tenantMove(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "tenant move", ["to"]);
  const name = positional(args, 1, "name", "tenant move <name> --to S");
  const to = integerFlag(args, "to", 0, TENANT_SHARD_MAX);
  if (to === undefined) throw new UsageError("tenant move needs --to S (the new shard)");
  const client = await clientFrom(args, io);
  const started = await client.request<TenantMoveResponse>({
    method: "POST",
    path: `/v1/tenants/${encodeURIComponent(name)}/move`,
    body: { to },
  });
  if (await followMove(client, io) === "interrupted") return EXIT_INTERRUPTED;
  io.stdout(
    args.values.json === true
      ? JSON.stringify({ name: started.name, shard: started.shard }) + "\n"
      : `tenant "${started.name}" is on shard ${started.shard}\n`,
  );
  return 0;
}

async function tenantList(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "tenant list", []);
  const client = await clientFrom(args, io);
  const answer = await client.request<TenantsResponse>({ method: "GET", path: "/v1/tenants" });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(answer) + "\n");
    return 0;
  }
  const rows = answer.tenants.map((tenant) => [
    tenant.name,
    tenant.shard,
    tenant.keys,
    formatBytes(tenant.bytes),
  ]);
  io.stdout(formatTable(["TENANT", "SHARD", "KEYS", "BYTES"], rows));
  return 0;
}
