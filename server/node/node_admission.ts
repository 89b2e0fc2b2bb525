/**
 * `POST /v1/cluster/join` on a member: admits a new node as `joining` in the members record
 * and certifies the public key it made for the peer channel (so its private key never leaves
 * it, and the CA key stays on the members started with the full credentials file). The
 * answer carries what the node needs to start: the credentials without the CA key, its
 * certificate, the members' peer addresses and the cluster's shape.
 */
import type { JoinRequest, JoinResponse } from "../../api/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import { issuePeerCertificate, readHostPort } from "../../transport/mod.ts";
import { type ClusterCredentials, formatCredentials, withoutCaKey } from "../auth.ts";
import { NODE_ID_MAX } from "../config.ts";
import { MEMBER_ADDRESS_CHARS_MAX, type MembersRecord, withJoiningMember } from "./members.ts";

/** The largest public key accepted, in bytes of DER (a P-256 SPKI is 91). */
export const JOIN_PUBLIC_KEY_BYTES_MAX = 512;

/** What an admission needs from the node. */
export interface AdmissionSources {
  readonly credentials: ClusterCredentials;
  update(change: (record: MembersRecord) => MembersRecord): Promise<MembersRecord>;
  readonly numShards: number;
  readonly replicationFactor: number;
}

/**
 * Admits the node `body` describes.
 *
 * @throws {AspenError} `bad_request` naming the bad field, `conflict` when the id is taken or
 * this node holds no CA key, `limit_exceeded` past the members limit, `shard_unavailable`
 * while shard 0 has no members record.
 */
export async function admitNode(sources: AdmissionSources, body: unknown): Promise<JoinResponse> {
  const request = parseJoinRequest(body);
  const caKeyPem = sources.credentials.caKeyPem;
  if (caKeyPem === null) {
    throw new AspenError(
      "conflict",
      `Cannot admit node ${request.nodeId}: this node holds no CA key to certify it; send the ` +
        "join to a member started with the full credentials file",
      { node: request.nodeId },
    );
  }
  const read = readHostPort(request.peerAddress, { isListen: false });
  if (!("hostPort" in read)) throw badJoin(`"peerAddress" ${read.problem}`);
  const certificate = await issuePeerCertificate({
    nodeId: request.nodeId,
    listenHost: read.hostPort.hostname,
    spki: request.spki,
    ca: { keyPem: caKeyPem, certificatePem: sources.credentials.caCertificatePem },
  });
  const record = await sources.update((latest) =>
    withJoiningMember(latest, {
      id: request.nodeId,
      peerAddress: request.peerAddress,
      httpAddress: request.httpAddress,
    })
  );
  return {
    clusterId: sources.credentials.clusterId,
    credentials: formatCredentials(withoutCaKey(sources.credentials)),
    certificatePem: certificate.certificatePem,
    members: record.members.filter((member) => member.state !== "removed")
      .map((member) => ({ id: member.id, peerAddress: member.peerAddress })),
    numShards: sources.numShards,
    replicationFactor: sources.replicationFactor,
  };
}

/**
 * Checks the body of a join.
 *
 * @throws {AspenError} `bad_request` naming the field.
 */
export function parseJoinRequest(
  body: unknown,
): Omit<JoinRequest, "publicKey"> & { readonly spki: Uint8Array<ArrayBuffer> } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badJoin("the body must be a JSON object");
  }
  const { nodeId, peerAddress, httpAddress, publicKey, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw badJoin(`unknown field "${extra}"`);
  if (typeof nodeId !== "number" || !Number.isSafeInteger(nodeId) || nodeId < 1) {
    throw badJoin(`"nodeId" must be an integer from 1 to ${NODE_ID_MAX}`);
  }
  if (nodeId > NODE_ID_MAX) throw badJoin(`"nodeId" must be an integer from 1 to ${NODE_ID_MAX}`);
  for (const [name, value] of [["peerAddress", peerAddress], ["httpAddress", httpAddress]]) {
    if (typeof value !== "string" || value.length === 0) {
      throw badJoin(`"${name}" must be a host:port string`);
    }
    if (value.length > MEMBER_ADDRESS_CHARS_MAX) {
      throw badJoin(`"${name}" is over ${MEMBER_ADDRESS_CHARS_MAX} characters`);
    }
    const read = readHostPort(value, { isListen: false });
    if (!("hostPort" in read)) throw badJoin(`"${name}" is "${value}": ${read.problem}`);
  }
  if (typeof publicKey !== "string" || publicKey.length > JOIN_PUBLIC_KEY_BYTES_MAX * 2) {
    throw badJoin('"publicKey" must be a base64 SPKI');
  }
  let spki: Uint8Array<ArrayBuffer>;
  try {
    spki = Uint8Array.from(atob(publicKey), (char) => char.charCodeAt(0));
  } catch {
    throw badJoin('"publicKey" is not base64');
  }
  if (spki.byteLength === 0 || spki.byteLength > JOIN_PUBLIC_KEY_BYTES_MAX) {
    throw badJoin(`"publicKey" must be 1 to ${JOIN_PUBLIC_KEY_BYTES_MAX} bytes`);
  }
  return { nodeId, peerAddress: peerAddress as string, httpAddress: httpAddress as string, spki };
}

function badJoin(problem: string): AspenError {
  return new AspenError("bad_request", `Cannot join: ${problem}`);
}
