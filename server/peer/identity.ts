/**
 * A node's peer identity: an ECDSA P-256 key and a self-signed X.509 certificate for QUIC.
 *
 * QUIC always runs TLS, so every listener needs a certificate. Aspen nodes have no CA: each node
 * makes its own key and a self-signed end-entity certificate on first start and keeps both in
 * its data dir, so that its certificate (and so its fingerprint) stays the same across
 * restarts. Peers pin that certificate (see the trust model in mod.ts).
 *
 * The certificate follows what rustls (under Deno's QUIC) demands: a subjectAltName with
 * `DNS:localhost` (dialers always verify the name "localhost") plus the listen host when it is a
 * concrete IP or name, BasicConstraints with cA false (a CA certificate fails as an end entity),
 * and the key in PKCS8 PEM. The encoder lives in _der.ts; we add no npm dependency for it.
 */

import { assert } from "../../raft/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import {
  derBitString,
  derBoolean,
  derContext,
  derGeneralizedTime,
  derOctetString,
  derOid,
  derSequence,
  derSet,
  derSmallInteger,
  derTlv,
  derUnsignedInteger,
  derUtf8String,
  pemDecode,
  pemEncode,
} from "./_der.ts";

/** A node's TLS key and certificate for the peer channel, both as PEM text. */
export interface PeerIdentity {
  /** The ECDSA P-256 private key, PKCS8 PEM. Never leaves the node. */
  readonly keyPem: string;
  /** The self-signed certificate, PEM. Public: peers pin it. */
  readonly certificatePem: string;
  /** Lowercase hex SHA-256 of the certificate's DER bytes; shown in logs and membership. */
  readonly fingerprint: string;
}

/** Options for creating an identity. */
export interface PeerIdentityOptions {
  /** Used only in the certificate's common name, for people reading it. */
  readonly nodeId: number;
  /** The host part of the peer listen address; becomes a subjectAltName when concrete. */
  readonly listenHost: string;
}

/** File names inside the identity directory. */
export const PEER_KEY_FILE = "peer_key.pem";
/** File name of the certificate inside the identity directory. */
export const PEER_CERTIFICATE_FILE = "peer_cert.pem";

const OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
const OID_COMMON_NAME = "2.5.4.3";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_KEY_USAGE = "2.5.29.15";
const OID_EXTENDED_KEY_USAGE = "2.5.29.37";
const OID_SUBJECT_ALT_NAME = "2.5.29.17";
const OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const OID_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
/** Fixed and far in the past, so that clock skew between nodes never fails a handshake. */
const CERTIFICATE_NOT_BEFORE = new Date("2020-01-01T00:00:00Z");
/** RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration date". */
const CERTIFICATE_NOT_AFTER = new Date("9999-12-31T23:59:59Z");
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/**
 * Creates a fresh key and self-signed certificate in memory.
 *
 * @example
 * ```ts
 * const identity = await createPeerIdentity({ nodeId: 1, listenHost: "127.0.0.1" });
 * console.log(identity.fingerprint);
 * ```
 */
export async function createPeerIdentity(options: PeerIdentityOptions): Promise<PeerIdentity> {
  assert(Number.isSafeInteger(options.nodeId), "nodeId is an integer");
  const keyPair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keyPair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey));
  const tbs = buildTbsCertificate({ ...options, spki, serial: randomSerial() });
  const rawSignature = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keyPair.privateKey, tbs),
  );
  assert(rawSignature.length === 64, "a P-256 signature is r||s, 64 bytes");
  const signature = derSequence([
    derUnsignedInteger(rawSignature.subarray(0, 32)),
    derUnsignedInteger(rawSignature.subarray(32)),
  ]);
  const certificate = derSequence([tbs, signatureAlgorithm(), derBitString(signature)]);
  return {
    keyPem: pemEncode("PRIVATE KEY", pkcs8),
    certificatePem: pemEncode("CERTIFICATE", certificate),
    fingerprint: await fingerprintDer(certificate),
  };
}

/**
 * Loads the identity kept in `directory`, or creates and stores one on first start.
 *
 * The key file is written with mode 0600. Files are written to a temporary name and renamed,
 * so a crash never leaves half a key behind. A later change of listen host keeps the old
 * certificate on purpose: its fingerprint is what peers pinned, and dialers verify the name
 * "localhost", which every Aspen certificate carries.
 *
 * @throws {AspenError} `storage_corrupt` when only one of the two files exists, when a file
 *   does not parse, or when the key does not match the certificate.
 */
export async function loadOrCreatePeerIdentity(
  options: PeerIdentityOptions & { readonly directory: string },
): Promise<PeerIdentity> {
  const keyPath = `${options.directory}/${PEER_KEY_FILE}`;
  const certificatePath = `${options.directory}/${PEER_CERTIFICATE_FILE}`;
  const keyPem = await readTextIfExists(keyPath);
  const certificatePem = await readTextIfExists(certificatePath);
  if (keyPem === null && certificatePem === null) {
    const identity = await createPeerIdentity(options);
    await Deno.mkdir(options.directory, { recursive: true });
    await writeFileAtomic(keyPath, identity.keyPem, 0o600);
    await writeFileAtomic(certificatePath, identity.certificatePem, 0o644);
    return identity;
  }
  if (keyPem === null || certificatePem === null) {
    throw new AspenError(
      "storage_corrupt",
      `Cannot load the peer identity in "${options.directory}": ` +
        `found only ${keyPem === null ? PEER_CERTIFICATE_FILE : PEER_KEY_FILE}`,
      { directory: options.directory },
    );
  }
  await checkKeyMatchesCertificate({ keyPem, certificatePem, directory: options.directory });
  const der = pemDecode("CERTIFICATE", certificatePem);
  assert(der !== null, "checkKeyMatchesCertificate() parsed the certificate");
  return { keyPem, certificatePem, fingerprint: await fingerprintDer(der) };
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

function buildTbsCertificate(
  options: PeerIdentityOptions & { spki: Uint8Array; serial: Uint8Array },
): Uint8Array<ArrayBuffer> {
  const name = derSequence([
    derSet([derSequence([derOid(OID_COMMON_NAME), derUtf8String(`aspen-node-${options.nodeId}`)])]),
  ]);
  const extensions = derSequence([
    extension(OID_BASIC_CONSTRAINTS, true, derSequence([])),
    // KeyUsage digitalSignature: a BIT STRING with 7 unused bits and the first bit set.
    extension(OID_KEY_USAGE, true, derTlv(0x03, Uint8Array.of(7, 0x80))),
    extension(
      OID_EXTENDED_KEY_USAGE,
      false,
      derSequence([derOid(OID_SERVER_AUTH), derOid(OID_CLIENT_AUTH)]),
    ),
    extension(OID_SUBJECT_ALT_NAME, false, subjectAltNames(options.listenHost)),
  ]);
  return derSequence([
    derContext(0, derSmallInteger(2), { isConstructed: true }), // version v3
    derUnsignedInteger(options.serial),
    signatureAlgorithm(),
    name,
    derSequence([
      derGeneralizedTime(CERTIFICATE_NOT_BEFORE),
      derGeneralizedTime(CERTIFICATE_NOT_AFTER),
    ]),
    name,
    options.spki,
    derContext(3, extensions, { isConstructed: true }),
  ]);
}

function extension(oid: string, isCritical: boolean, value: Uint8Array): Uint8Array<ArrayBuffer> {
  const parts = [derOid(oid)];
  if (isCritical) parts.push(derBoolean(true)); // DER omits the default (false)
  parts.push(derOctetString(value));
  return derSequence(parts);
}

function signatureAlgorithm(): Uint8Array<ArrayBuffer> {
  return derSequence([derOid(OID_ECDSA_WITH_SHA256)]);
}

/** DNS:localhost, plus the listen host as an IP or DNS name unless it is a wildcard. */
function subjectAltNames(listenHost: string): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  const names = [derContext(2, encoder.encode("localhost"), { isConstructed: false })];
  const host = listenHost.replace(/^\[|\]$/g, "");
  const ip = parseIpAddress(host);
  if (ip !== null) {
    const isWildcard = ip.every((byte) => byte === 0);
    if (!isWildcard) names.push(derContext(7, ip, { isConstructed: false }));
  } else if (host !== "localhost" && /^[A-Za-z0-9.-]{1,253}$/.test(host)) {
    names.push(derContext(2, encoder.encode(host), { isConstructed: false }));
  }
  return derSequence(names);
}

/** Parses an IPv4 or IPv6 literal into 4 or 16 bytes; null when it is not one. */
export function parseIpAddress(text: string): Uint8Array<ArrayBuffer> | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4 !== null) {
    const bytes = v4.slice(1).map(Number);
    if (bytes.some((byte) => byte > 255)) return null;
    return Uint8Array.from(bytes);
  }
  if (!/^[0-9A-Fa-f:]{2,39}$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1]!.split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 && missing !== 0) return null;
  if (halves.length === 2 && missing < 1) return null;
  const groups = [...head, ...Array<string>(Math.max(missing, 0)).fill("0"), ...tail];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i += 1) {
    const group = groups[i]!;
    if (!/^[0-9A-Fa-f]{1,4}$/.test(group)) return null;
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  }
  return bytes;
}

function randomSerial(): Uint8Array<ArrayBuffer> {
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and never zero
  return serial;
}

async function checkKeyMatchesCertificate(
  options: { keyPem: string; certificatePem: string; directory: string },
): Promise<void> {
  const pkcs8 = pemDecode("PRIVATE KEY", options.keyPem);
  const der = pemDecode("CERTIFICATE", options.certificatePem);
  const corrupt = (reason: string, cause?: unknown) =>
    new AspenError(
      "storage_corrupt",
      `Cannot load the peer identity in "${options.directory}": ${reason}`,
      { directory: options.directory },
      cause === undefined ? undefined : { cause },
    );
  if (pkcs8 === null) throw corrupt(`${PEER_KEY_FILE} holds no PEM PRIVATE KEY`);
  if (der === null) throw corrupt(`${PEER_CERTIFICATE_FILE} holds no PEM CERTIFICATE`);
  let privateJwk: JsonWebKey;
  try {
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, ECDSA_P256, true, ["sign"]);
    privateJwk = await crypto.subtle.exportKey("jwk", key);
  } catch (error) {
    throw corrupt(`${PEER_KEY_FILE} is not a P-256 PKCS8 key`, error);
  }
  const spki = await spkiOfPrivateKey(privateJwk);
  if (indexOfBytes(der, spki) < 0) {
    throw corrupt(`the key in ${PEER_KEY_FILE} does not match ${PEER_CERTIFICATE_FILE}`);
  }
}

async function spkiOfPrivateKey(privateJwk: JsonWebKey): Promise<Uint8Array<ArrayBuffer>> {
  const publicJwk: JsonWebKey = {
    kty: privateJwk.kty!,
    crv: privateJwk.crv!,
    x: privateJwk.x!,
    y: privateJwk.y!,
  };
  const publicKey = await crypto.subtle.importKey("jwk", publicJwk, ECDSA_P256, true, ["verify"]);
  return new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (let i = 0; i + needle.length <= haystack.length; i += 1) {
    if (haystack[i] !== first) continue;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j += 1;
    if (j === needle.length) return i;
  }
  return -1;
}

async function readTextIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const temporaryPath = `${path}.tmp`;
  await Deno.writeTextFile(temporaryPath, text, { mode });
  await Deno.rename(temporaryPath, path);
}
