/**
 * X.509 v3 certificates for the peer channel, private to the peer folder: issuing one (ECDSA
 * P-256 with SHA-256) and reading back the few fields Aspen checks (who issued a certificate,
 * and whether the issuer's key signed it).
 *
 * Two profiles, both shaped by what rustls (under Deno's QUIC) and webpki accept:
 * - `ca`: the cluster CA. BasicConstraints cA true with pathLen 0 (it issues node certificates
 *   only), keyUsage keyCertSign and cRLSign, both critical, and a SubjectKeyIdentifier.
 * - `leaf`: a node certificate. BasicConstraints cA false (a CA certificate fails as an end
 *   entity), keyUsage digitalSignature, EKU serverAuth and clientAuth, a subjectAltName with
 *   `DNS:localhost` (dialers verify that name) plus the listen host when concrete, and the
 *   Subject and Authority key identifiers that RFC 5280 asks for (webpki chains by name).
 */

import { assert } from "../raft/mod.ts";
import {
  derBitString,
  derBoolean,
  derChildren,
  derContent,
  derContext,
  type DerElement,
  derGeneralizedTime,
  derOctetString,
  derOid,
  derRead,
  derSequence,
  derSet,
  derSmallInteger,
  derTlv,
  derUnsignedInteger,
  derUtf8String,
  derWhole,
} from "./_der.ts";

/** Which kind of certificate to issue. */
export type CertificateProfile =
  | { readonly kind: "ca" }
  | { readonly kind: "leaf"; readonly listenHost: string };

/** The signer of a certificate; for a self-signed one, the subject itself. */
export interface CertificateIssuer {
  /** The issuer's subject Name, DER; copied byte for byte into the new certificate. */
  readonly name: Uint8Array;
  /** The issuer's SubjectPublicKeyInfo, DER, for the AuthorityKeyIdentifier. */
  readonly spki: Uint8Array;
  /** The issuer's ECDSA P-256 private key. */
  readonly privateKey: CryptoKey;
}

/** The fields of a certificate that Aspen reads, as views into its DER bytes. */
export interface CertificateFields {
  /** The whole TBSCertificate element: the signed bytes. */
  readonly tbs: Uint8Array;
  readonly issuerName: Uint8Array;
  readonly subjectName: Uint8Array;
  /** The whole SubjectPublicKeyInfo element. */
  readonly spki: Uint8Array;
  /** The whole outer signatureAlgorithm element. */
  readonly signatureAlgorithm: Uint8Array;
  /** The BIT STRING contents after the unused-bits byte: a DER Ecdsa-Sig-Value. */
  readonly signature: Uint8Array;
}

/** ECDSA over P-256, the only key type Aspen makes or accepts. */
export const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

const OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
const OID_COMMON_NAME = "2.5.4.3";
const OID_SUBJECT_KEY_IDENTIFIER = "2.5.29.14";
const OID_KEY_USAGE = "2.5.29.15";
const OID_SUBJECT_ALT_NAME = "2.5.29.17";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_AUTHORITY_KEY_IDENTIFIER = "2.5.29.35";
const OID_EXTENDED_KEY_USAGE = "2.5.29.37";
const OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const OID_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
/** Fixed and far in the past, so that clock skew between nodes never fails a handshake. */
const CERTIFICATE_NOT_BEFORE = new Date("2020-01-01T00:00:00Z");
/** RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration date". */
const CERTIFICATE_NOT_AFTER = new Date("9999-12-31T23:59:59Z");
/** RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the public key. */
const KEY_IDENTIFIER_BYTES = 20;
/** The length of each of r and s in a P-256 signature. */
const P256_SCALAR_BYTES = 32;

/** A Name with one common name, the only shape Aspen issues. */
export function commonName(text: string): Uint8Array<ArrayBuffer> {
  assert(text.length > 0 && text.length <= 64, "a common name has 1..64 characters");
  return derSequence([derSet([derSequence([derOid(OID_COMMON_NAME), derUtf8String(text)])])]);
}

/** Issues a certificate for `subjectSpki`, signed by the issuer's key, and returns its DER. */
export async function issueCertificate(options: {
  readonly profile: CertificateProfile;
  readonly subjectName: Uint8Array;
  readonly subjectSpki: Uint8Array;
  readonly issuer: CertificateIssuer;
}): Promise<Uint8Array<ArrayBuffer>> {
  const subjectKeyId = await keyIdentifier(options.subjectSpki);
  const extensions = options.profile.kind === "ca" ? caExtensions(subjectKeyId) : leafExtensions({
    subjectKeyId,
    issuerKeyId: await keyIdentifier(options.issuer.spki),
    listenHost: options.profile.listenHost,
  });
  const tbs = derSequence([
    derContext(0, derSmallInteger(2), { isConstructed: true }), // version v3
    derUnsignedInteger(randomSerial()),
    signatureAlgorithm(),
    options.issuer.name,
    derSequence([
      derGeneralizedTime(CERTIFICATE_NOT_BEFORE),
      derGeneralizedTime(CERTIFICATE_NOT_AFTER),
    ]),
    options.subjectName,
    options.subjectSpki,
    derContext(3, derSequence(extensions), { isConstructed: true }),
  ]);
  const rawSignature = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, options.issuer.privateKey, tbs),
  );
  assert(rawSignature.length === 2 * P256_SCALAR_BYTES, "a P-256 signature is r||s, 64 bytes");
  const signature = derSequence([
    derUnsignedInteger(rawSignature.subarray(0, P256_SCALAR_BYTES)),
    derUnsignedInteger(rawSignature.subarray(P256_SCALAR_BYTES)),
  ]);
  return derSequence([tbs, signatureAlgorithm(), derBitString(signature)]);
}

/**
 * Reads the fields Aspen checks from certificate DER; null when it is not a certificate of the
 * shape X.509 v1..v3 prescribes (the fields are not validated beyond their position and tag).
 */
export function parseCertificate(der: Uint8Array): CertificateFields | null {
  const outer = derRead(der, 0, der.length);
  if (outer === null || outer.tag !== 0x30 || outer.end !== der.length) return null;
  const parts = derChildren(der, outer);
  if (parts === null || parts.length !== 3) return null;
  const [tbs, algorithm, signature] = parts as [DerElement, DerElement, DerElement];
  if (tbs.tag !== 0x30 || algorithm.tag !== 0x30 || signature.tag !== 0x03) return null;
  const fields = derChildren(der, tbs);
  if (fields === null) return null;
  const first = fields[0]?.tag === 0xa0 ? 1 : 0; // the version is optional (v1)
  const issuer = fields[first + 2];
  const subject = fields[first + 4];
  const spki = fields[first + 5];
  if (issuer?.tag !== 0x30 || subject?.tag !== 0x30 || spki?.tag !== 0x30) return null;
  const bits = derContent(der, signature);
  if (bits.length < 1 || bits[0] !== 0) return null; // a signature has no unused bits
  return {
    tbs: derWhole(der, tbs),
    issuerName: derWhole(der, issuer),
    subjectName: derWhole(der, subject),
    spki: derWhole(der, spki),
    signatureAlgorithm: derWhole(der, algorithm),
    signature: bits.subarray(1),
  };
}

/**
 * True when `certificate` names `issuer` as its issuer and the issuer's key signed it with
 * ECDSA P-256 and SHA-256, the only algorithm Aspen uses.
 */
export async function isIssuedBy(
  certificate: CertificateFields,
  issuer: CertificateFields,
): Promise<boolean> {
  if (!bytesEqual(certificate.issuerName, issuer.subjectName)) return false;
  if (!bytesEqual(certificate.signatureAlgorithm, signatureAlgorithm())) return false;
  const rawSignature = rawEcdsaSignature(certificate.signature);
  if (rawSignature === null) return false;
  const publicKey = await importP256PublicKey(issuer.spki);
  if (publicKey === null) return false;
  return await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    publicKey,
    rawSignature,
    certificate.tbs.slice(),
  );
}

/** Imports an SPKI as a P-256 verification key; null when it is not one. */
async function importP256PublicKey(spki: Uint8Array): Promise<CryptoKey | null> {
  try {
    return await crypto.subtle.importKey("spki", spki.slice(), ECDSA_P256, false, ["verify"]);
  } catch (error) {
    // Another key type or curve cannot have signed an Aspen certificate: not issued by it.
    if (error instanceof DOMException) return null;
    throw error;
  }
}

/** Converts a DER Ecdsa-Sig-Value to WebCrypto's r||s; null when it is not a P-256 one. */
function rawEcdsaSignature(der: Uint8Array): Uint8Array<ArrayBuffer> | null {
  const outer = derRead(der, 0, der.length);
  if (outer === null || outer.tag !== 0x30 || outer.end !== der.length) return null;
  const parts = derChildren(der, outer);
  if (parts === null || parts.length !== 2) return null;
  const raw = new Uint8Array(2 * P256_SCALAR_BYTES);
  for (const [index, part] of parts.entries()) {
    if (part.tag !== 0x02) return null;
    let value = derContent(der, part);
    if (value.length === P256_SCALAR_BYTES + 1 && value[0] === 0) value = value.subarray(1);
    if (value.length < 1 || value.length > P256_SCALAR_BYTES) return null;
    raw.set(value, (index + 1) * P256_SCALAR_BYTES - value.length);
  }
  return raw;
}

function caExtensions(subjectKeyId: Uint8Array): Uint8Array<ArrayBuffer>[] {
  return [
    // cA TRUE, pathLenConstraint 0: the CA signs node certificates, never another CA.
    extension(OID_BASIC_CONSTRAINTS, true, derSequence([derBoolean(true), derSmallInteger(0)])),
    // keyCertSign (bit 5) and cRLSign (bit 6): 0b0000_0110 with 1 unused bit.
    extension(OID_KEY_USAGE, true, derTlv(0x03, Uint8Array.of(1, 0x06))),
    extension(OID_SUBJECT_KEY_IDENTIFIER, false, derOctetString(subjectKeyId)),
  ];
}

function leafExtensions(options: {
  subjectKeyId: Uint8Array;
  issuerKeyId: Uint8Array;
  listenHost: string;
}): Uint8Array<ArrayBuffer>[] {
  return [
    extension(OID_BASIC_CONSTRAINTS, true, derSequence([])), // cA defaults to false
    // digitalSignature (bit 0): 0b1000_0000 with 7 unused bits.
    extension(OID_KEY_USAGE, true, derTlv(0x03, Uint8Array.of(7, 0x80))),
    extension(
      OID_EXTENDED_KEY_USAGE,
      false,
      derSequence([derOid(OID_SERVER_AUTH), derOid(OID_CLIENT_AUTH)]),
    ),
    extension(OID_SUBJECT_ALT_NAME, false, subjectAltNames(options.listenHost)),
    extension(OID_SUBJECT_KEY_IDENTIFIER, false, derOctetString(options.subjectKeyId)),
    extension(
      OID_AUTHORITY_KEY_IDENTIFIER,
      false,
      derSequence([derContext(0, options.issuerKeyId, { isConstructed: false })]),
    ),
  ];
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

/** The key identifier of an SPKI: a hash of its subjectPublicKey bits (RFC 7093 method 1). */
async function keyIdentifier(spki: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const outer = derRead(spki, 0, spki.length);
  assert(outer !== null && outer.tag === 0x30, "an SPKI is a SEQUENCE");
  const parts = derChildren(spki, outer);
  assert(parts !== null && parts.length === 2, "an SPKI has an algorithm and a key");
  const key = parts[1]!;
  assert(key.tag === 0x03, "the subjectPublicKey is a BIT STRING");
  const bits = derContent(spki, key).subarray(1); // past the unused-bits byte
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bits.slice()));
  return digest.slice(0, KEY_IDENTIFIER_BYTES);
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

/** True when two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

function randomSerial(): Uint8Array<ArrayBuffer> {
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and never zero
  return serial;
}
