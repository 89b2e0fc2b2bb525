/**
 * `aspen cluster init|status|token` and `aspen shard list|add|transfer-leader`.
 */
import {
  ApiError,
  type ClusterStatus,
  type RemoveNodeResponse,
  type ShardSizesResponse,
  type TransferLeaderResponse,
} from "../api/mod.ts";
import { createCredentials, formatCredentials } from "../server/mod.ts";
import { createClusterCa } from "../transport/mod.ts";
import { type CliIo, type Command, type ParsedArgs, UsageError } from "./command.ts";
import {
  clientFrom,
  formatTable,
  onlyFlags,
  positional,
  withClientErrors,
} from "./client_commands.ts";
import { clusterCredentials, clusterIssueNode } from "./cluster_identity_command.ts";
import { CLIENT_FLAGS } from "./kv_command.ts";
import { clusterToken } from "./token_command.ts";
import { shardAdd } from "./shard_add_command.ts";

/** `aspen cluster`. */
export const CLUSTER_COMMAND: Command = {
  name: "cluster",
  summary: "create and inspect a cluster, issue node identities, manage client tokens",
  usage: [
    "cluster init --out FILE [--force]",
    "cluster issue-node --node-id N --data-dir DIR --cluster-file FILE [--force]",
    "cluster credentials --cluster-file FILE --without-ca-key --out FILE [--force]",
    "cluster status",
    "cluster remove-node <id>",
    "cluster replace-node <id>",
    "cluster token create --role root|read [--ttl DURATION] [--name NAME]",
    "cluster token list",
    "cluster token revoke <id>",
  ],
  details: "init writes new cluster credentials (id, peer secret, token hashes) to FILE and\n" +
    "prints a root token and a read-only token once; give FILE to the first nodes\n" +
    "(--cluster-file). issue-node, run where that full file is, writes node N's peer key and\n" +
    "certificate into DIR and prints the certificate's fingerprint; credentials\n" +
    "--without-ca-key writes a copy without the CA key for nodes given an issued identity.\n" +
    "remove-node drains a running node (its replicas move to the others, then it is removed\n" +
    "and stops); replace-node does the same for a dead node, rebuilding its replicas from the\n" +
    "survivors. Both return at once; follow the move with cluster status.\n" +
    "token creates, lists and revokes runtime tokens while the cluster runs (root token\n" +
    "needed); a created token is printed once, and a revoked one is refused on every node\n" +
    "within about a second.",
  flags: {
    ...CLIENT_FLAGS,
    out: {
      type: "string",
      valueName: "FILE",
      help: "init, credentials: where to write the credentials",
    },
    force: { type: "boolean", help: "init, credentials, issue-node: overwrite existing files" },
    "node-id": { type: "string", valueName: "N", help: "issue-node: the node's id" },
    "data-dir": { type: "string", valueName: "DIR", help: "issue-node: the node's data dir" },
    "cluster-file": {
      type: "string",
      valueName: "FILE",
      help: "issue-node, credentials: the full credentials file",
    },
    "without-ca-key": { type: "boolean", help: "credentials: leave the CA key out" },
    role: { type: "string", valueName: "ROLE", help: "token create: root or read" },
    ttl: {
      type: "string",
      valueName: "DURATION",
      help: "token create: lifetime (90s, 30m, 24h, 7d)",
      defaultText: "never expires",
    },
    name: { type: "string", valueName: "NAME", help: "token create: a label for the list" },
  },
  positionalsMax: 3,
  run(args, io) {
    const action = args.positionals[0];
    if (action === "token") return withClientErrors("cluster", io, () => clusterToken(args, io));
    if (action === "remove-node" || action === "replace-node") {
      return withClientErrors("cluster", io, () => clusterRemoveNode(args, io, action));
    }
    const extra = args.positionals[1];
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    if (action === "init") return clusterInit(args, io);
    if (action === "issue-node") return clusterIssueNode(args, io);
    if (action === "credentials") return clusterCredentials(args, io);
    if (action === "status") return withClientErrors("cluster", io, () => clusterStatus(args, io));
    throw new UsageError(
      `${action === undefined ? "missing action" : `unknown action "${action}"`}; ` +
        "expected init, issue-node, credentials, status, remove-node, replace-node or token",
    );
  },
};

/** `aspen shard`. */
export const SHARD_COMMAND: Command = {
  name: "shard",
  summary: "list shards, add shards online, move leadership (list, add, transfer-leader)",
  usage: [
    "shard list",
    "shard add [--count N] [--dry-run] [--follow]",
    "shard transfer-leader <shard> <node>",
  ],
  details: "add grows the cluster by N shards (default 1) while it serves: about 1/(n+1) of\n" +
    "each shard's keys move to the new shards. It prints progress and returns when the new\n" +
    "shard map is in force. Interrupted (Ctrl-C, exit 130), the move goes on in the cluster:\n" +
    "add --follow shows its progress again without starting a move (so does running add\n" +
    "again while it runs). --dry-run prints the keys and bytes that would move per shard and\n" +
    "changes nothing.",
  flags: {
    ...CLIENT_FLAGS,
    count: { type: "string", valueName: "N", help: "add: how many shards", defaultText: "1" },
    "dry-run": { type: "boolean", help: "add: only print what would move" },
    follow: { type: "boolean", help: "add: follow the move that runs; start none" },
  },
  positionalsMax: 3,
  run(args, io) {
    const action = args.positionals[0];
    if (action === "list") return withClientErrors("shard", io, () => shardList(args, io));
    if (action === "add") return withClientErrors("shard", io, () => shardAdd(args, io));
    if (action === "transfer-leader") {
      return withClientErrors("shard", io, () => shardTransfer(args, io));
    }
    throw new UsageError(
      `${action === undefined ? "missing action" : `unknown action "${action}"`}; ` +
        "expected list, add or transfer-leader",
    );
  },
};

async function clusterInit(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "cluster init", ["out", "force"]);
  const out = args.values.out;
  if (typeof out !== "string") throw new UsageError("cluster init needs --out FILE");
  const { credentials, rootToken, readToken } = await createCredentials(
    io.randomBytes,
    createClusterCa,
  );
  const isWritten = await io.writeNewFile(out, formatCredentials(credentials), {
    overwrite: args.values.force === true,
  });
  if (!isWritten) {
    throw new UsageError(`flag --out "${out}" exists; pass --force to replace it`);
  }
  if (args.values.json === true) {
    io.stdout(JSON.stringify({ clusterId: credentials.clusterId, rootToken, readToken }) + "\n");
  } else {
    io.stdout(
      `Cluster ${credentials.clusterId} credentials written to ${out}\n` +
        `Root token (shown once):      ${rootToken}\n` +
        `Read-only token (shown once): ${readToken}\n`,
    );
  }
  return 0;
}

async function clusterStatus(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "cluster status", []);
  const client = await clientFrom(args, io);
  const status = await client.request<ClusterStatus>({ method: "GET", path: "/v1/cluster/status" });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(status) + "\n");
    return 0;
  }
  io.stdout(
    `cluster ${status.clusterId}, answered by node ${status.node}, shard map epoch ` +
      `${status.shardMap.epoch} (${status.shardMap.numShards} shards)\n\n`,
  );
  io.stdout(formatTable(
    ["NODE", "STATUS", "HTTP", "PEER", "VERSION"],
    status.nodes.map((node) => [
      node.id,
      node.status,
      node.httpAddress,
      node.peerAddress,
      node.version,
    ]),
  ));
  if (status.members !== undefined && status.members !== null) {
    io.stdout("\n" + formatMembers(status));
  }
  io.stdout("\n" + formatShards(status));
  const differences = status.differences ?? [];
  if (differences.length > 0) {
    io.stdout(
      "\n" + formatTable(
        ["DIFFERENCE", "SHARD", "NODE", "DETAIL"],
        differences.map((item) => [item.kind, item.shard, item.node ?? "-", item.message]),
      ),
    );
  }
  return 0;
}

/** The members record's table, then the learners catching up (replicas in motion). */
function formatMembers(status: ClusterStatus): string {
  const members = formatTable(
    ["MEMBER", "STATE", "REPLICAS", "LEADERS", "PEER", "HTTP"],
    (status.members ?? []).map((member) => [
      member.id,
      member.state,
      member.replicas,
      member.leaders,
      member.peerAddress,
      member.httpAddress === "" ? "?" : member.httpAddress,
    ]),
  );
  const learners = status.learners ?? [];
  if (learners.length === 0) return members;
  return members + "\n" + formatTable(
    ["MOVING SHARD", "TO NODE", "MATCH", "LAG"],
    learners.map((learner) => [learner.shard, learner.node, learner.matchIndex, learner.lag]),
  );
}

async function clusterRemoveNode(
  args: ParsedArgs,
  io: CliIo,
  action: "remove-node" | "replace-node",
): Promise<number> {
  onlyFlags(args, `cluster ${action}`, []);
  const usage = `cluster ${action} <id>`;
  const node = positional(args, 1, "id", usage);
  const extra = args.positionals[2];
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (!/^[1-9][0-9]*$/.test(node)) throw new UsageError(`<id> is "${node}"; expected a node id`);
  const client = await clientFrom(args, io);
  const mode = action === "remove-node" ? "remove" : "replace";
  const result = await client.request<RemoveNodeResponse>({
    method: "POST",
    path: `/v1/cluster/nodes/${node}/${mode}`,
  });
  io.stdout(
    args.values.json === true
      ? JSON.stringify(result) + "\n"
      : `node ${result.node} is ${result.state} (was ${result.previousState}); its replicas ` +
        "move to the other nodes, then it is removed: follow with 'aspen cluster status'\n",
  );
  return 0;
}

async function shardList(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "shard list", []);
  const client = await clientFrom(args, io);
  const status = await client.request<ClusterStatus>({ method: "GET", path: "/v1/cluster/status" });
  // Servers before shard moves have no sizes: the list goes without them.
  const sizes = await client.request<ShardSizesResponse>({ method: "GET", path: "/v1/shards" })
    .catch((error: unknown) => {
      if (error instanceof ApiError && error.code === "not_found") return null;
      throw error;
    });
  if (args.values.json === true) {
    const byId = new Map(sizes?.shards.map((shard) => [shard.id, shard]) ?? []);
    const shards = status.shards.map((shard) => {
      const size = byId.get(shard.id);
      return size === undefined ? shard : { ...shard, keys: size.keys, bytes: size.bytes };
    });
    io.stdout(JSON.stringify(shards) + "\n");
    return 0;
  }
  io.stdout(formatShards(status, sizes));
  return 0;
}

async function shardTransfer(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "shard transfer-leader", []);
  const usage = "shard transfer-leader <shard> <node>";
  const shard = positional(args, 1, "shard", usage);
  const node = positional(args, 2, "node", usage);
  if (!/^[0-9]+$/.test(shard)) throw new UsageError(`<shard> is "${shard}"; expected a shard id`);
  if (!/^[0-9]+$/.test(node)) throw new UsageError(`<node> is "${node}"; expected a node id`);
  const client = await clientFrom(args, io);
  const result = await client.request<TransferLeaderResponse>({
    method: "POST",
    path: `/v1/shards/${shard}/transfer-leader`,
    body: { to: Number(node) },
  });
  io.stdout(
    args.values.json === true
      ? JSON.stringify(result) + "\n"
      : `shard ${result.shard} is now led by node ${result.leader}\n`,
  );
  return 0;
}

function formatShards(status: ClusterStatus, sizes: ShardSizesResponse | null = null): string {
  const byId = new Map(sizes?.shards.map((shard) => [shard.id, shard]) ?? []);
  const sized = sizes === null ? [] : ["KEYS", "BYTES"];
  return formatTable(
    ["SHARD", ...sized, "LEADER", "TERM", "COMMIT", "APPLIED", "LAST", "REPLICAS"],
    status.shards.map((shard) => [
      shard.id,
      ...(sizes === null
        ? []
        : [byId.get(shard.id)?.keys ?? "?", byId.get(shard.id)?.bytes ?? "?"]),
      shard.leader ?? "none",
      shard.term,
      shard.commitIndex,
      shard.appliedIndex,
      shard.lastIndex,
      shard.replicas.map((replica) =>
        `${replica.node}:${replica.role}${replica.status === "down" ? "(down)" : ""}` +
        `${replica.lag > 0 ? `+${replica.lag}` : ""}`
      ).join(" "),
    ]),
  );
}
