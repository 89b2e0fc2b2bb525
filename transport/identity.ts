/**
 * The cluster certificate authority and the node identities it issues, for QUIC's TLS.
 *
 * QUIC always runs TLS, so every listener needs a certificate, and a dialer needs a root to
 * verify it against. `aspen cluster init` makes one cluster CA ({@linkcode createClusterCa}) and
 * puts its key and certificate in the shared credentials file. Each node, on first start, makes
 * its own ECDSA P-256 key and has the CA issue it a certificate
 * ({@linkcode loadOrCreatePeerIdentity}), and keeps both in its data dir. Dialers trust the CA
 * certificate only, so a node needs nothing about its peers but their addresses (see the trust
 * model in mod.ts).
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
  /** Used only in the certificate's common name, for people reading it. */
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
 * Loads the identity kept in `directory`, or creates and stores one on first start.
 *
 * The stored files are reused when the certificate was issued by `ca` (its issuer names the CA
 * and the CA's key signed it); otherwise (the cluster was re-initialised with a new CA) a new
 * key and certificate replace them. The key file is written with mode 0600. Files are written
 * to a temporary name and renamed, so a crash never leaves half a key behind; a crash between
 * the two renames leaves an old certificate, which the next start replaces again. A change of
 * listen host keeps the certificate: dialers verify the name "localhost", which it carries.
 *
 * @throws {AspenError} `storage_corrupt` when only one of the two files exists, when a file
 *   does not parse, or when the key does not match a certificate issued by this CA;
 *   `bad_config` when the CA does not parse.
 */
export async function loadOrCreatePeerIdentity(
  options: PeerIdentityOptions & { readonly directory: string },
): Promise<PeerIdentity> {
  const ca = await loadCa(options.ca);
  const keyPath = `${options.directory}/${PEER_KEY_FILE}`;
  const certificatePath = `${options.directory}/${PEER_CERTIFICATE_FILE}`;
  const keyPem = await readTextIfExists(keyPath);
  const certificatePem = await readTextIfExists(certificatePath);
  const corrupt = corruptError(options.directory);
  if (keyPem !== null && certificatePem !== null) {
    const der = pemDecode("CERTIFICATE", certificatePem);
    if (der === null) throw corrupt(`${PEER_CERTIFICATE_FILE} holds no PEM CERTIFICATE`);
    const certificate = parseCertificate(der);
    if (certificate === null) throw corrupt(`${PEER_CERTIFICATE_FILE} is not a certificate`);
    if (await isIssuedBy(certificate, ca.certificate)) {
      await checkKeyMatches({ keyPem, spki: spkiOf(certificate), corrupt });
      return { keyPem, certificatePem, fingerprint: await fingerprintDer(der) };
    }
  } else if (keyPem !== null || certificatePem !== null) {
    throw corrupt(`found only ${keyPem === null ? PEER_CERTIFICATE_FILE : PEER_KEY_FILE}`);
  }
  const identity = await issueIdentity(options, ca);
  await Deno.mkdir(options.directory, { recursive: true });
  await writeFileAtomic(keyPath, identity.keyPem, 0o600);
  await writeFileAtomic(certificatePath, identity.certificatePem, 0o644);
  return identity;
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

/** Parses the CA and imports its key, checking that the two belong together. */
async function loadCa(ca: ClusterCa): Promise<LoadedCa> {
  const fail = (reason: string, cause?: unknown) =>
    new AspenError(
      "bad_config",
      `Cannot use the cluster CA: ${reason}`,
      {},
      cause === undefined ? undefined : { cause },
    );
  const der = pemDecode("CERTIFICATE", ca.certificatePem);
  const certificate = der === null ? null : parseCertificate(der);
  if (certificate === null) throw fail("its certificate does not parse");
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
  options: PeerIdentityOptions,
  ca: LoadedCa,
): Promise<PeerIdentity> {
  assert(Number.isSafeInteger(options.nodeId), "nodeId is an integer");
  const keyPair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keyPair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey));
  const certificate = await issueCertificate({
    profile: { kind: "leaf", listenHost: options.listenHost },
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
  return {
    keyPem: pemEncode("PRIVATE KEY", pkcs8),
    certificatePem: pemEncode("CERTIFICATE", der),
    fingerprint: await fingerprintDer(der),
  };
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
async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
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
