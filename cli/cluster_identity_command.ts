/**
 * `aspen cluster issue-node` and `aspen cluster credentials`: per-node identities, so that the
 * cluster CA's key need not live on every node. Run them where the full credentials file is
 * (the operator's machine, or a first node); give a node its data dir with the issued identity
 * and a credentials file without the CA key.
 */
import {
  type ClusterCredentials,
  formatCredentials,
  parseCredentials,
  withoutCaKey,
} from "../server/mod.ts";
import {
  createPeerIdentity,
  PEER_CERTIFICATE_FILE,
  PEER_KEY_FILE,
  writePeerIdentity,
} from "../transport/mod.ts";
import { type CliIo, type ParsedArgs, UsageError } from "./command.ts";
import { onlyFlags } from "./client_commands.ts";

/** The largest node id (it travels as u32 on the peer channel). */
const NODE_ID_MAX = 2 ** 32 - 1;

/** `aspen cluster issue-node --node-id N --data-dir DIR --cluster-file FILE [--force]`. */
export async function clusterIssueNode(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "cluster issue-node", ["node-id", "data-dir", "cluster-file", "force"]);
  const nodeId = parseNodeId(args.values["node-id"]);
  const dataDir = requiredString(args, "data-dir", "DIR");
  const credentials = await readCredentials(args, io);
  if (credentials.caKeyPem === null) {
    throw new UsageError(
      `flag --cluster-file "${args.values["cluster-file"]}" holds no CA key (caKeyPem), so it ` +
        "cannot issue certificates; use the full file from 'aspen cluster init'",
    );
  }
  if (args.values.force !== true) {
    for (const file of [PEER_KEY_FILE, PEER_CERTIFICATE_FILE]) {
      if (await exists(io, `${dataDir}/${file}`)) {
        throw new UsageError(`"${dataDir}/${file}" exists; pass --force to replace it`);
      }
    }
  }
  const identity = await createPeerIdentity({
    nodeId,
    // Dialers verify the node's name, node-<id>.aspen.invalid; the listen host is not needed.
    listenHost: "0.0.0.0",
    ca: { keyPem: credentials.caKeyPem, certificatePem: credentials.caCertificatePem },
  });
  await writePeerIdentity(dataDir, identity);
  if (args.values.json === true) {
    io.stdout(JSON.stringify({ node: nodeId, dataDir, certificate: identity.fingerprint }) + "\n");
  } else {
    io.stdout(
      `Node ${nodeId} identity written to ${dataDir} (${PEER_KEY_FILE}, ` +
        `${PEER_CERTIFICATE_FILE})\nCertificate fingerprint: ${identity.fingerprint}\n`,
    );
  }
  return 0;
}

/** `aspen cluster credentials --cluster-file FILE --without-ca-key --out OUT [--force]`. */
export async function clusterCredentials(args: ParsedArgs, io: CliIo): Promise<number> {
  onlyFlags(args, "cluster credentials", ["cluster-file", "without-ca-key", "out", "force"]);
  if (args.values["without-ca-key"] !== true) {
    throw new UsageError("cluster credentials needs --without-ca-key (the only variant so far)");
  }
  const out = requiredString(args, "out", "FILE");
  const credentials = await readCredentials(args, io);
  const isWritten = await io.writeNewFile(out, formatCredentials(withoutCaKey(credentials)), {
    overwrite: args.values.force === true,
  });
  if (!isWritten) throw new UsageError(`flag --out "${out}" exists; pass --force to replace it`);
  io.stdout(
    args.values.json === true
      ? JSON.stringify({ clusterId: credentials.clusterId, out }) + "\n"
      : `Cluster ${credentials.clusterId} credentials without the CA key written to ${out}\n`,
  );
  return 0;
}

async function readCredentials(args: ParsedArgs, io: CliIo): Promise<ClusterCredentials> {
  const path = requiredString(args, "cluster-file", "FILE");
  let text: string;
  try {
    text = await io.readTextFile(path);
  } catch (error) {
    throw new UsageError(`flag --cluster-file "${path}" cannot be read: ${String(error)}`);
  }
  return parseCredentials(path, text);
}

function requiredString(args: ParsedArgs, flag: string, valueName: string): string {
  const value = args.values[flag];
  if (typeof value !== "string" || value === "") {
    throw new UsageError(`missing --${flag} ${valueName}`);
  }
  return value;
}

function parseNodeId(value: string | boolean | undefined): number {
  if (
    typeof value !== "string" || !/^[1-9][0-9]{0,9}$/.test(value) || Number(value) > NODE_ID_MAX
  ) {
    throw new UsageError(`flag --node-id is "${String(value)}"; expected 1..${NODE_ID_MAX}`);
  }
  return Number(value);
}

async function exists(io: CliIo, path: string): Promise<boolean> {
  try {
    await io.readTextFile(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
