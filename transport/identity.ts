/**
 * The cluster certificate authority and the node identities it issues, for QUIC's TLS.
 *
 * QUIC always runs TLS, so every listener needs a certificate, and a dialer needs a root to
 * verify it against. `aspen cluster init` makes one cluster CA ({@linkcode createClusterCa}) and
 * puts its key and certificate in the credentials file. Each node has its own ECDSA P-256 key and
 * a certificate the CA issued for its node id, kept in its data dir: made on first start where
 * the CA key is at hand ({@linkcode loadOrCreatePeerIdentity}), or issued elsewhere
 * ({@linkcode createPeerIdentity}, {@linkcode writePeerIdentity}: `aspen cluster issue-node`,
 * later the join flow). Peers check a node's certificate with {@linkcode checkPeerCertificate}.
 * Dialers trust the CA certificate only, so a node needs nothing about its peers but their
 * addresses (see the trust model in mod.ts).
 *
 * The certificates follow what rustls (under Deno's QUIC) demands; the profiles are described
 * in _x509.ts, which builds and reads them with `@peculiar/x509`.
 */

import { assert } from "../raft/mod.ts";
import { AspenError } from "../shard/mod.ts";
import {
  bytesEqual,
  commonName,
  derOf,
  ECDSA_P256,
  isIssuedBy,
  issueCertificate,
  isWithinValidity,
  nodeIdsOf,
  parseCertificate,
  pemDecode,
  pemEncode,
  spkiOf,
  type X509Certificate,
} from "./_x509.ts";

/** The cluster CA: made once per cluster, shared by every node through the credentials file. */
export interface ClusterCa {
  /** The CA's ECDSA P-256 private key, PKCS8 PEM. Whoever holds it can mint node identities. */
  readonly keyPem: string;
  /** The self-signed CA certificate, PEM: the one root that dialers trust. */
  readonly certificatePem: string;
}

/** A node's TLS key and CA-issued certificate for the peer channel, both as PEM text. */
export interface PeerIdentity {
  /** The node's ECDSA P-256 private key, PKCS8 PEM. Never leaves the node. */
  readonly keyPem: string;
  /** The node's certificate, issued by the cluster CA, PEM. */
  readonly certificatePem: string;
  /** Lowercase hex SHA-256 of the certificate's DER bytes; shown in logs. */
  readonly fingerprint: string;
}

/** Options for creating an identity. */
export interface PeerIdentityOptions {
  /**
   * The node the certificate is for: named in its subjectAltNames (`URI:aspen://node/<id>`,
   * `DNS:node-<id>.aspen.invalid`), which the handshake and the dialer's TLS check, and in its
   * common name for people reading it.
   */
  readonly nodeId: number;
  /** The host part of the peer listen address; becomes a subjectAltName when concrete. */
  readonly listenHost: string;
  /** The cluster CA that issues the certificate. */
  readonly ca: ClusterCa;
}

/** File names inside the identity directory. */
export const PEER_KEY_FILE = "peer_key.pem";
/** File name of the certificate inside the identity directory. */
export const PEER_CERTIFICATE_FILE = "peer_cert.pem";

/**
 * The CA's common name. Every Aspen CA has the same one on purpose: a dialer then refuses
 * another cluster's node because the signature does not verify, not merely because a name
 * differs, and the tests exercise exactly that check.
 */
const CA_COMMON_NAME = "aspen-cluster-ca";

/** A CA, parsed and with its signing key imported. */
interface LoadedCa {
  readonly certificate: X509Certificate;
  readonly privateKey: CryptoKey;
}

/**
 * Creates a cluster CA: an ECDSA P-256 key and a self-signed certificate with BasicConstraints
 * cA true (critical, pathLen 0), keyUsage keyCertSign and cRLSign, valid from 2020 to 9999.
 *
 * @example
 * ```ts
 * const ca = await createClusterCa();
 * const identity = await createPeerIdentity({ nodeId: 1, listenHost: "127.0.0.1", ca });
 * ```
 */
export async function createClusterCa(): Promise<ClusterCa> {
  const keyPair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keyPair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey));
  const name = commonName(CA_COMMON_NAME);
  const certificate = await issueCertificate({
    profile: { kind: "ca" },
    subjectName: name,
    subjectSpki: spki,
    issuer: { name, spki, privateKey: keyPair.privateKey },
  });
  return {
    keyPem: pemEncode("PRIVATE KEY", pkcs8),
    certificatePem: pemEncode("CERTIFICATE", derOf(certificate)),
  };
}

/**
 * Creates a fresh node key and has the CA issue its certificate, in memory.
 *
 * @throws {AspenError} `bad_config` when the CA certificate or key does not parse, or when the
 *   key does not belong to the certificate.
 * @example
 * ```ts
 * const identity = await createPeerIdentity({ nodeId: 1, listenHost: "127.0.0.1", ca });
 * console.error(identity.fingerprint);
 * ```
 */
export async function createPeerIdentity(options: PeerIdentityOptions): Promise<PeerIdentity> {
  return await issueIdentity(options, await loadCa(options.ca));
}

/**
 * The CA as a node sees it: its certificate always, its key only where the operator put it
 * (the first nodes' full credentials file). Without the key a node cannot issue itself an
 * identity and must be given one (`aspen cluster issue-node`, {@linkcode writePeerIdentity}).
 */
export interface TrustedCa {
  /** The self-signed CA certificate, PEM. */
  readonly certificatePem: string;
  /** The CA's private key, PKCS8 PEM, or null when this node does not hold it. */
  readonly keyPem: string | null;
}

/**
 * Loads the identity kept in `directory`, or creates and stores one on first start.
 *
 * The stored files are reused when the certificate was issued by `ca` (its issuer names the CA
 * and the CA's key signed it) and names this node's id (`URI:aspen://node/<id>`). Otherwise, if
 * the CA key is at hand, a new key and certificate replace them: the cluster was re-initialised
 * with a new CA, the certificate predates node-bound certificates, or it is another node's.
 * Without the CA key that is a configuration error naming what is missing. The key file is
 * written with mode 0600. Files are written to a temporary name and renamed, so a crash never
 * leaves half a key behind; a crash between the two renames leaves an old certificate, which
 * the next start replaces again. A change of listen host keeps the certificate: dialers verify
 * the node's name, `node-<id>.aspen.invalid`, which it carries.
 *
 * @throws {AspenError} `storage_corrupt` when only one of the two files exists, when a file
 *   does not parse, or when the key does not match a certificate issued by this CA;
 *   `bad_config` when the CA does not parse, or when there is no usable identity and no CA key.
 */
export async function loadOrCreatePeerIdentity(
  options: Omit<PeerIdentityOptions, "ca"> & {
    readonly directory: string;
    readonly ca: TrustedCa;
  },
): Promise<PeerIdentity> {
  const stored = await loadStoredIdentity(options);
  if (stored.identity !== null) return stored.identity;
  const caKeyPem = options.ca.keyPem;
  if (caKeyPem === null) {
    throw new AspenError(
      "bad_config",
      `Cannot start node ${options.nodeId}: ${stored.problem} in "${options.directory}", and ` +
        "the cluster credentials hold no CA key to issue one. Run 'aspen cluster issue-node " +
        `--node-id ${options.nodeId} --data-dir ${options.directory} --cluster-file FILE' ` +
        "where the full credentials file is, or start with credentials that include caKeyPem",
      { node: options.nodeId, directory: options.directory },
    );
  }
  const ca = await loadCa({ keyPem: caKeyPem, certificatePem: options.ca.certificatePem });
  const identity = await issueIdentity(options, ca);
  await writePeerIdentity(options.directory, identity);
  return identity;
}

/**
 * Stores `identity` in `directory` (created if needed) as {@linkcode PEER_KEY_FILE} (mode
 * 0600) and {@linkcode PEER_CERTIFICATE_FILE}, each written atomically.
 */
export async function writePeerIdentity(directory: string, identity: PeerIdentity): Promise<void> {
  await Deno.mkdir(directory, { recursive: true });
  await writeFileAtomic(`${directory}/${PEER_KEY_FILE}`, identity.keyPem, 0o600);
  await writeFileAtomic(`${directory}/${PEER_CERTIFICATE_FILE}`, identity.certificatePem, 0o644);
}

/** The stored identity when it is usable, else why not (for the error message). */
async function loadStoredIdentity(options: {
  readonly directory: string;
  readonly nodeId: number;
  readonly ca: TrustedCa;
}): Promise<{ identity: PeerIdentity; problem: null } | { identity: null; problem: string }> {
  const caCertificate = parseCaCertificate(options.ca.certificatePem);
  const keyPem = await readTextIfExists(`${options.directory}/${PEER_KEY_FILE}`);
  const certificatePem = await readTextIfExists(`${options.directory}/${PEER_CERTIFICATE_FILE}`);
  const corrupt = corruptError(options.directory);
  if (keyPem === null && certificatePem === null) {
    return { identity: null, problem: "there is no peer identity" };
  }
  if (keyPem === null || certificatePem === null) {
    throw corrupt(`found only ${keyPem === null ? PEER_CERTIFICATE_FILE : PEER_KEY_FILE}`);
  }
  const der = pemDecode("CERTIFICATE", certificatePem);
  if (der === null) throw corrupt(`${PEER_CERTIFICATE_FILE} holds no PEM CERTIFICATE`);
  const certificate = parseCertificate(der);
  if (certificate === null) throw corrupt(`${PEER_CERTIFICATE_FILE} is not a certificate`);
  if (!await isIssuedBy(certificate, caCertificate)) {
    return { identity: null, problem: "the peer certificate was issued by another CA" };
  }
  const nodeIds = nodeIdsOf(certificate);
  if (nodeIds.length === 0) {
    return {
      identity: null,
      problem: "the peer certificate names no node id (it predates node-bound certificates)",
    };
  }
  if (nodeIds.length !== 1 || nodeIds[0] !== options.nodeId) {
    return {
      identity: null,
      problem: `the peer certificate is for node ${nodeIds.join(", ")}, not ${options.nodeId}`,
    };
  }
  await checkKeyMatches({ keyPem, spki: spkiOf(certificate), corrupt });
  const identity = { keyPem, certificatePem, fingerprint: await fingerprintDer(der) };
  return { identity, problem: null };
}

/**
 * True when `certificatePem` was issued by the CA of `caCertificatePem`: its issuer names the
 * CA and the CA's key signed it. False when either text holds no parsable certificate.
 */
export async function isCertificateIssuedBy(
  certificatePem: string,
  caCertificatePem: string,
): Promise<boolean> {
  const der = pemDecode("CERTIFICATE", certificatePem);
  const caDer = pemDecode("CERTIFICATE", caCertificatePem);
  if (der === null || caDer === null) return false;
  const certificate = parseCertificate(der);
  const ca = parseCertificate(caDer);
  if (certificate === null || ca === null) return false;
  return await isIssuedBy(certificate, ca);
}

/** A peer's certificate that passed {@linkcode checkPeerCertificate}. */
export interface CheckedPeerCertificate {
  readonly nodeId: number;
  /** Lowercase hex SHA-256 of the certificate's DER bytes. */
  readonly fingerprint: string;
  /** The certificate's key, for checking the peer's handshake signature. */
  readonly publicKey: CryptoKey;
}

/**
 * Checks a certificate a peer sent in the handshake: it parses, the cluster CA issued it, it is
 * within its validity at `now`, and it names exactly one node id, `nodeId`. Revocation is the
 * transport's business (it knows the refused set); the signature is checked by the caller with
 * the returned key.
 *
 * @returns the checked certificate, or the reason it is refused (for the log line).
 */
export async function checkPeerCertificate(
  der: Uint8Array,
  options: { readonly ca: X509Certificate; readonly nodeId: number; readonly now: Date },
): Promise<CheckedPeerCertificate | { readonly refused: string }> {
  const bytes = der.slice();
  const certificate = parseCertificate(bytes);
  if (certificate === null) return { refused: "its certificate does not parse" };
  const fingerprint = await fingerprintDer(bytes);
  if (!await isIssuedBy(certificate, options.ca)) {
    return { refused: `its certificate ${fingerprint} was not issued by the cluster CA` };
  }
  if (!isWithinValidity(certificate, options.now)) {
    return { refused: `its certificate ${fingerprint} is not valid now` };
  }
  const nodeIds = nodeIdsOf(certificate);
  if (nodeIds.length !== 1 || nodeIds[0] !== options.nodeId) {
    const named = nodeIds.length === 0 ? "no node" : `node ${nodeIds.join(", ")}`;
    return {
      refused: `its certificate ${fingerprint} names ${named}, not node ${options.nodeId}`,
    };
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await crypto.subtle.importKey("spki", spkiOf(certificate), ECDSA_P256, false, [
      "verify",
    ]);
  } catch (error) {
    if (!(error instanceof DOMException)) throw error;
    return { refused: `its certificate ${fingerprint} holds no P-256 key` };
  }
  return { nodeId: options.nodeId, fingerprint, publicKey };
}

/**
 * Imports the identity's private key for signing handshake transcripts.
 *
 * @throws {AspenError} `bad_config` when the key is not a P-256 PKCS8 key.
 */
export async function importPeerSigningKey(identity: PeerIdentity): Promise<CryptoKey> {
  const pkcs8 = pemDecode("PRIVATE KEY", identity.keyPem);
  try {
    if (pkcs8 === null) throw new Error("no PEM PRIVATE KEY");
    return await crypto.subtle.importKey("pkcs8", pkcs8, ECDSA_P256, false, ["sign"]);
  } catch (error) {
    throw new AspenError(
      "bad_config",
      "Cannot use the peer identity: its key is not a P-256 PKCS8 key",
      { identity: identity.fingerprint },
      { cause: error },
    );
  }
}

/** The DER bytes of a PEM certificate, or null when the text holds none. */
export function certificateDer(certificatePem: string): Uint8Array<ArrayBuffer> | null {
  return pemDecode("CERTIFICATE", certificatePem);
}

/**
 * Returns the lowercase hex SHA-256 fingerprint of a PEM certificate.
 *
 * @throws {AspenError} `bad_config` when the text holds no PEM certificate.
 */
export async function certificateFingerprint(certificatePem: string): Promise<string> {
  const der = pemDecode("CERTIFICATE", certificatePem);
  if (der === null) {
    throw new AspenError("bad_config", "Cannot read a certificate: no PEM CERTIFICATE block");
  }
  return await fingerprintDer(der);
}

/** SHA-256 of DER bytes as lowercase hex. */
export async function fingerprintDer(der: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Parses the CA certificate.
 *
 * @throws {AspenError} `bad_config` when it does not parse.
 */
export function parseCaCertificate(certificatePem: string): X509Certificate {
  const der = pemDecode("CERTIFICATE", certificatePem);
  const certificate = der === null ? null : parseCertificate(der);
  if (certificate === null) {
    throw new AspenError("bad_config", "Cannot use the cluster CA: its certificate does not parse");
  }
  return certificate;
}

/** Parses the CA and imports its key, checking that the two belong together. */
async function loadCa(ca: ClusterCa): Promise<LoadedCa> {
  const fail = (reason: string, cause?: unknown) =>
    new AspenError(
      "bad_config",
      `Cannot use the cluster CA: ${reason}`,
      {},
      cause === undefined ? undefined : { cause },
    );
  const certificate = parseCaCertificate(ca.certificatePem);
  const pkcs8 = pemDecode("PRIVATE KEY", ca.keyPem);
  if (pkcs8 === null) throw fail("its key holds no PEM PRIVATE KEY");
  let privateKey: CryptoKey;
  let spki: Uint8Array;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ECDSA_P256, true, ["sign"]);
    spki = await spkiOfPrivateKey(privateKey);
  } catch (error) {
    throw fail("its key is not a P-256 PKCS8 key", error);
  }
  if (!bytesEqual(spki, spkiOf(certificate))) throw fail("its key does not match its certificate");
  return { certificate, privateKey };
}

async function issueIdentity(
  options: Pick<PeerIdentityOptions, "nodeId" | "listenHost">,
  ca: LoadedCa,
): Promise<PeerIdentity> {
  const key = await createPeerKey();
  const issued = await issueFor(options, key.spki, ca);
  return { keyPem: key.keyPem, ...issued };
}

/** Issues the certificate of `spki` for node `options.nodeId`, checked against the CA. */
async function issueFor(
  options: Pick<PeerIdentityOptions, "nodeId" | "listenHost">,
  spki: Uint8Array<ArrayBuffer>,
  ca: LoadedCa,
): Promise<{ certificatePem: string; fingerprint: string }> {
  checkIssuableNodeId(options.nodeId);
  const certificate = await issueCertificate({
    profile: { kind: "leaf", listenHost: options.listenHost, nodeId: options.nodeId },
    subjectName: commonName(`aspen-node-${options.nodeId}`),
    subjectSpki: spki,
    issuer: {
      name: ca.certificate.subjectName,
      spki: spkiOf(ca.certificate),
      privateKey: ca.privateKey,
    },
  });
  const der = derOf(certificate);
  const issued = parseCertificate(der);
  assert(issued !== null, "an issued certificate parses back");
  assert(await isIssuedBy(issued, ca.certificate), "an issued certificate verifies with the CA");
  assert(nodeIdsOf(issued).join() === String(options.nodeId), "it names exactly its node");
  return { certificatePem: pemEncode("CERTIFICATE", der), fingerprint: await fingerprintDer(der) };
}

/**
 * A fresh node key (ECDSA P-256) made where it will be used: a joining node sends only the
 * public half (`spki`, DER) to be certified, so neither its key nor the CA key travels.
 */
export async function createPeerKey(): Promise<{
  readonly keyPem: string;
  readonly spki: Uint8Array<ArrayBuffer>;
}> {
  const keyPair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keyPair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey));
  return { keyPem: pemEncode("PRIVATE KEY", pkcs8), spki };
}

/**
 * Has the CA certify a public key (`spki`, DER) for node `nodeId` (a join: the node made its
 * own key). The key must be an ECDSA P-256 public key.
 *
 * @throws {AspenError} `bad_request` for a key that is not one, `bad_config` for a CA that
 *   does not parse.
 */
export async function issuePeerCertificate(options: {
  readonly nodeId: number;
  readonly listenHost: string;
  readonly spki: Uint8Array<ArrayBuffer>;
  readonly ca: ClusterCa;
}): Promise<{ readonly certificatePem: string; readonly fingerprint: string }> {
  try {
    await crypto.subtle.importKey("spki", options.spki, ECDSA_P256, true, ["verify"]);
  } catch (error) {
    throw new AspenError(
      "bad_request",
      `Cannot certify node ${options.nodeId}: the public key is not an ECDSA P-256 key`,
      {},
      { cause: error },
    );
  }
  return await issueFor(options, options.spki, await loadCa(options.ca));
}

/** The largest node id, as on the wire (u32). */
const NODE_ID_MAX = 2 ** 32 - 1;

function checkIssuableNodeId(nodeId: number): void {
  if (!Number.isSafeInteger(nodeId) || nodeId < 1 || nodeId > NODE_ID_MAX) {
    throw new AspenError(
      "bad_config",
      `Cannot issue a peer certificate for node id ${nodeId}: must be 1..2^32-1`,
      { node: nodeId },
    );
  }
}

async function checkKeyMatches(options: {
  keyPem: string;
  spki: Uint8Array;
  corrupt: (reason: string, cause?: unknown) => AspenError;
}): Promise<void> {
  const { corrupt } = options;
  const pkcs8 = pemDecode("PRIVATE KEY", options.keyPem);
  if (pkcs8 === null) throw corrupt(`${PEER_KEY_FILE} holds no PEM PRIVATE KEY`);
  let spki: Uint8Array;
  try {
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, ECDSA_P256, true, ["sign"]);
    spki = await spkiOfPrivateKey(key);
  } catch (error) {
    throw corrupt(`${PEER_KEY_FILE} is not a P-256 PKCS8 key`, error);
  }
  if (!bytesEqual(spki, options.spki)) {
    throw corrupt(`the key in ${PEER_KEY_FILE} does not match ${PEER_CERTIFICATE_FILE}`);
  }
}

/** The SPKI of the public half of an extractable P-256 private key. */
async function spkiOfPrivateKey(privateKey: CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  const privateJwk = await crypto.subtle.exportKey("jwk", privateKey);
  const publicJwk: JsonWebKey = {
    kty: privateJwk.kty!,
    crv: privateJwk.crv!,
    x: privateJwk.x!,
    y: privateJwk.y!,
  };
  const publicKey = await crypto.subtle.importKey("jwk", publicJwk, ECDSA_P256, true, ["verify"]);
  return new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
}

function corruptError(directory: string): (reason: string, cause?: unknown) => AspenError {
  return (reason, cause) =>
    new AspenError(
      "storage_corrupt",
      `Cannot load the peer identity in "${directory}": ${reason}`,
      { directory },
      cause === undefined ? undefined : { cause },
    );
}

async function readTextIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * Writes `text` to `path` so that a crash or a power loss leaves the old file or the new one:
 * the temporary file is synced before the rename (else the rename may reach the disk before
 * the data, leaving an empty file), and the folder after it.
 */
export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const temporaryPath = `${path}.tmp`;
  const file = await Deno.open(temporaryPath, { write: true, create: true, truncate: true, mode });
  try {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(temporaryPath, path);
  const folder = await Deno.open(path.slice(0, path.lastIndexOf("/")) || "/", { read: true });
  try {
    await folder.sync();
  } finally {
    folder.close();
  }
}
