/**
 * A new node joining a running cluster (`aspen node --join URL --join-token T`): on its first
 * start, with an empty data dir, it makes its own peer key, asks a member to admit it
 * (`POST /v1/cluster/join`, node_admission.ts) and writes what the answer gives: the
 * credentials without the CA key, its certificate beside its key, an empty hosted-shards list
 * (the rebalance driver moves replicas onto it) and `joined.json` (the members it starts
 * dialing). Later starts read `joined.json` and ask nothing; the members record tells the node
 * about members that came later.
 */
import type { JoinResponse } from "../../api/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import {
  certificateFingerprint,
  createPeerKey,
  PEER_CERTIFICATE_FILE,
  writeFileAtomic,
  writePeerIdentity,
} from "../../transport/mod.ts";
import { parseCredentials } from "../auth.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { HOSTED_SHARDS_FILE, writeHostedShards } from "./replica_host.ts";

/** The file a joined node keeps in its data dir. */
export const JOINED_FILE = "joined.json";
/** How long the join request may take. */
export const JOIN_TIMEOUT_MS = 15_000;
/** The largest join answer read, in bytes. */
export const JOIN_RESPONSE_BYTES_MAX = 256 * 1024;
/** How long a joining node keeps asking while the member cannot answer yet. */
export const JOIN_RETRY_MS = 60_000;
/** The pause between two of those attempts. */
export const JOIN_RETRY_PAUSE_MS = 1_000;
/** The member's error codes that mean "not yet" (a cluster still starting, a leader moving). */
const TRANSIENT_JOIN_CODES: readonly string[] = [
  "shard_unavailable",
  "not_leader",
  "timeout",
  "keys_moving",
];

/** What a joined node remembers. */
export interface JoinedState {
  readonly clusterId: string;
  /** The members when it joined (itself included): the peers it dials at start. */
  readonly members: readonly { readonly id: number; readonly address: string }[];
}

/**
 * The joined state of this node: read from `joined.json`, or made by joining now when
 * `[cluster] join` is set and the node never joined; null for a node of the static peers list.
 *
 * @throws {AspenError} `bad_config` when the data dir already holds another node's data, the
 * member's refusal (its code and message) when the join is refused, `shard_unavailable` when
 * the member cannot be reached.
 */
export async function joinedState(config: Config, logger: Logger): Promise<JoinedState | null> {
  const path = `${config.node.dataDir}/${JOINED_FILE}`;
  const text = await readIfExists(path);
  if (text !== null) return parseJoined(path, text);
  const url = config.cluster.join;
  const token = config.cluster.joinToken;
  if (url === null || token === null) return null;
  for (const file of [HOSTED_SHARDS_FILE, PEER_CERTIFICATE_FILE]) {
    if (await readIfExists(`${config.node.dataDir}/${file}`) !== null) {
      throw new AspenError(
        "bad_config",
        `Cannot join through "${url}": the data dir "${config.node.dataDir}" already holds a ` +
          `node (${file}); a joining node starts with an empty data dir`,
      );
    }
  }
  const key = await createPeerKey();
  const request = {
    nodeId: config.node.id,
    peerAddress: config.node.peerListen,
    httpAddress: config.node.httpListen,
    publicKey: btoa(String.fromCharCode(...key.spki)),
  };
  const answer = await askToJoinPatiently(url, token, request, logger);
  const state = await saveJoin(config, key.keyPem, answer);
  logger.info("Joined the cluster", {
    cluster: answer.clusterId,
    through: url,
    members: state.members.map((member) => member.id).join(","),
  });
  return state;
}

/**
 * askToJoin(), again while the member cannot answer yet (unreachable, or a cluster still
 * starting: shard 0 has no leader or has not written the members record) for up to
 * JOIN_RETRY_MS. A retry asks for the same id, addresses and key, which the member accepts as
 * the same join; every other refusal is final.
 */
async function askToJoinPatiently(
  url: string,
  token: string,
  body: Record<string, string | number>,
  logger: Logger,
): Promise<JoinResponse> {
  const deadline = performance.now() + JOIN_RETRY_MS;
  for (let attempt = 1;; attempt++) {
    try {
      return await askToJoin(url, token, body);
    } catch (error) {
      const isRetryable = error instanceof AspenError && error.code === "shard_unavailable";
      if (!isRetryable || performance.now() + JOIN_RETRY_PAUSE_MS > deadline) throw error;
      if (attempt === 1) {
        logger.warn("Cannot join yet; asking again", { through: url, reason: error.message });
      }
      await new Promise((resolve) => setTimeout(resolve, JOIN_RETRY_PAUSE_MS));
    }
  }
}

async function askToJoin(
  url: string,
  token: string,
  body: Record<string, string | number>,
): Promise<JoinResponse> {
  const target = new URL("/v1/cluster/join", url);
  let response: Response;
  try {
    response = await fetch(target, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(JOIN_TIMEOUT_MS),
    });
  } catch (error) {
    throw new AspenError("shard_unavailable", `Cannot join through "${url}": ${error}`, {}, {
      cause: error,
    });
  }
  const text = await response.text();
  if (text.length > JOIN_RESPONSE_BYTES_MAX) {
    throw new AspenError("bad_config", `Cannot join through "${url}": the answer is too large`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (response.status !== 200) {
    const error = (value as { error?: { code?: string; message?: string } } | null)?.error;
    const isTransient = response.status === 503 ||
      TRANSIENT_JOIN_CODES.includes(error?.code ?? "") ||
      /try again/.test(error?.message ?? "");
    const code = isTransient
      ? "shard_unavailable"
      : error?.code === "unauthorized" || error?.code === "forbidden"
      ? "bad_config"
      : "conflict";
    throw new AspenError(
      code,
      `Cannot join through "${url}": ${error?.message ?? `HTTP ${response.status}`}` +
        (error?.code === undefined ? "" : ` (${error.code})`),
    );
  }
  return value as JoinResponse;
}

/** Writes the credentials, the identity, the empty hosted list and `joined.json`. */
async function saveJoin(
  config: Config,
  keyPem: string,
  answer: JoinResponse,
): Promise<JoinedState> {
  const dataDir = config.node.dataDir;
  const credentialsPath = config.cluster.credentialsFile ?? `${dataDir}/cluster.json`;
  const credentials = parseCredentials(`the join answer`, answer.credentials);
  if (credentials.clusterId !== answer.clusterId) {
    throw new AspenError("bad_config", "Cannot join: the answer's credentials are another's");
  }
  if (await readIfExists(credentialsPath) === null) {
    await writeFileAtomic(credentialsPath, answer.credentials, 0o600);
  }
  const fingerprint = await certificateFingerprint(answer.certificatePem);
  await writePeerIdentity(dataDir, { keyPem, certificatePem: answer.certificatePem, fingerprint });
  await writeHostedShards(dataDir, []);
  const state: JoinedState = {
    clusterId: answer.clusterId,
    members: answer.members.map((member) => ({ id: member.id, address: member.peerAddress })),
  };
  const path = `${dataDir}/${JOINED_FILE}`;
  await writeFileAtomic(path, JSON.stringify(state) + "\n", 0o644);
  return state;
}

function parseJoined(path: string, text: string): JoinedState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AspenError("storage_corrupt", `Cannot read "${path}": not JSON`, {}, {
      cause: error,
    });
  }
  const state = value as Partial<JoinedState> | null;
  const members = state?.members;
  const isValid = typeof state?.clusterId === "string" && Array.isArray(members) &&
    members.every((member) =>
      Number.isSafeInteger(member?.id) && member.id > 0 && typeof member.address === "string"
    );
  if (!isValid) throw new AspenError("storage_corrupt", `Cannot read "${path}": malformed`);
  return state as JoinedState;
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
