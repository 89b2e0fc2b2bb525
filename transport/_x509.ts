/**
 * X.509 v3 certificates for the peer channel, private to the peer folder: issuing one (ECDSA
 * P-256 with SHA-256) and reading back the few things Aspen checks (who issued a certificate,
 * and whether the issuer's key signed it). The ASN.1 work is done by `@peculiar/x509`, on
 * WebCrypto; this file only chooses what goes into a certificate.
 *
 * Two profiles, both shaped by what rustls (under Deno's QUIC) and webpki accept:
 * - `ca`: the cluster CA. BasicConstraints cA true with pathLen 0 (it issues node certificates
 *   only), keyUsage keyCertSign and cRLSign, both critical, and a SubjectKeyIdentifier.
 * - `leaf`: a node certificate. BasicConstraints cA false (a CA certificate fails as an end
 *   entity), keyUsage digitalSignature, EKU serverAuth and clientAuth, a subjectAltName with
 *   the node's names (below) plus the listen host when concrete, and the Subject and Authority
 *   key identifiers that RFC 5280 asks for (webpki chains by name).
 *
 * A leaf names its node id twice, both derived from the id the CA was asked to certify:
 * `URI:aspen://node/<id>` (the peer handshake reads the node id from it, see
 * {@linkcode nodeIdsOf}) and `DNS:node-<id>.aspen.invalid` (a dialer asks TLS for exactly that
 * name, so TLS itself refuses a listener that holds another node's certificate). `.invalid` is
 * reserved (RFC 6761): no public CA issues for it and no listen host can claim it. The leaf
 * also keeps `DNS:localhost`, the name dialers verified before node-bound certificates.
 */

import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  type Extension,
  type JsonGeneralName,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  PemConverter,
  PublicKey,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from "@peculiar/x509";
import { isIPv4, isIPv6 } from "node:net";
import { assert, AssertionError } from "../raft/mod.ts";

export { X509Certificate };

/** Which kind of certificate to issue. */
export type CertificateProfile =
  | { readonly kind: "ca" }
  | { readonly kind: "leaf"; readonly listenHost: string; readonly nodeId: number };

/** The reserved DNS suffix of node names: `node-<id>.aspen.invalid`. */
export const NODE_DNS_SUFFIX = ".aspen.invalid";
/** The prefix of a node's URI subjectAltName: `aspen://node/<id>`. */
export const NODE_URI_PREFIX = "aspen://node/";

/** The DNS name a dialer asks TLS for when it dials node `nodeId`. */
export function nodeDnsName(nodeId: number): string {
  return `node-${nodeId}${NODE_DNS_SUFFIX}`;
}

/** The signer of a certificate; for a self-signed one, the subject itself. */
export interface CertificateIssuer {
  /** The issuer's subject Name; copied into the new certificate as its issuer. */
  readonly name: Name;
  /** The issuer's SubjectPublicKeyInfo, DER, for the AuthorityKeyIdentifier. */
  readonly spki: Uint8Array<ArrayBuffer>;
  /** The issuer's ECDSA P-256 private key. */
  readonly privateKey: CryptoKey;
}

/** ECDSA over P-256, the only key type Aspen makes or accepts. */
export const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
/** The one signature algorithm Aspen makes or accepts. */
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;
/** Fixed and far in the past, so that clock skew between nodes never fails a handshake. */
const CERTIFICATE_NOT_BEFORE = new Date("2020-01-01T00:00:00Z");
/** RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration date". */
const CERTIFICATE_NOT_AFTER = new Date("9999-12-31T23:59:59Z");
/** RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the public key. */
const KEY_IDENTIFIER_BYTES = 20;
/** The longest common name we issue (RFC 5280's ub-common-name). */
const COMMON_NAME_LENGTH_MAX = 64;
/** The longest DNS name put in a subjectAltName (RFC 1035). */
const DNS_NAME_LENGTH_MAX = 253;

/** A Name with one common name, the only shape Aspen issues. */
export function commonName(text: string): Name {
  assert(text.length > 0, "a common name is not empty");
  assert(text.length <= COMMON_NAME_LENGTH_MAX, "a common name has at most 64 characters");
  assert(/^[A-Za-z0-9-]+$/.test(text), "a common name needs no escaping");
  return new Name(`CN=${text}`);
}

/** Issues a certificate for `subjectSpki`, signed by the issuer's key. */
export async function issueCertificate(options: {
  readonly profile: CertificateProfile;
  readonly subjectName: Name;
  readonly subjectSpki: Uint8Array<ArrayBuffer>;
  readonly issuer: CertificateIssuer;
}): Promise<X509Certificate> {
  const subjectKeyId = await keyIdentifier(options.subjectSpki);
  const extensions = options.profile.kind === "ca" ? caExtensions(subjectKeyId) : leafExtensions({
    subjectKeyId,
    issuerKeyId: await keyIdentifier(options.issuer.spki),
    listenHost: options.profile.listenHost,
    nodeId: options.profile.nodeId,
  });
  const certificate = await X509CertificateGenerator.create({
    subject: options.subjectName,
    issuer: options.issuer.name,
    notBefore: CERTIFICATE_NOT_BEFORE,
    notAfter: CERTIFICATE_NOT_AFTER,
    publicKey: options.subjectSpki,
    signingKey: options.issuer.privateKey,
    signingAlgorithm: ECDSA_SHA256,
    extensions,
  }, crypto);
  assert(
    bytesEqual(nameBytes(certificate.issuerName), nameBytes(options.issuer.name)),
    "an issued certificate names its issuer byte for byte",
  );
  return certificate;
}

/**
 * Reads a certificate from DER; null when the bytes are not one. The library parses the whole
 * structure; nothing beyond its shape is checked here (the signature check always follows).
 */
export function parseCertificate(der: Uint8Array<ArrayBuffer>): X509Certificate | null {
  try {
    const certificate = new X509Certificate(der);
    // The library parses fields lazily; read the ones we use so that a damaged one fails here.
    void certificate.subjectName;
    void certificate.issuerName;
    void certificate.publicKey;
    void certificate.signatureAlgorithm;
    return certificate;
  } catch (error) {
    // The parser throws plain Errors of several kinds on bad input; a bug of ours still crashes.
    if (error instanceof AssertionError) throw error;
    return null;
  }
}

/**
 * True when `certificate` names `issuer` as its issuer and the issuer's key signed it with
 * ECDSA P-256 and SHA-256, the only algorithm Aspen uses. Validity dates are not checked:
 * Aspen's certificates are valid from 2020 to 9999 on purpose.
 */
export async function isIssuedBy(
  certificate: X509Certificate,
  issuer: X509Certificate,
): Promise<boolean> {
  if (!bytesEqual(nameBytes(certificate.issuerName), nameBytes(issuer.subjectName))) return false;
  if (!isEcdsaSha256(certificate.signatureAlgorithm)) return false;
  const publicKey = await importP256PublicKey(spkiOf(issuer));
  if (publicKey === null) return false;
  try {
    return await certificate.verify({ publicKey, signatureOnly: true }, crypto);
  } catch (error) {
    // A signature value that is not an ECDSA-Sig-Value makes the library throw: not signed.
    if (error instanceof AssertionError) throw error;
    return false;
  }
}

/**
 * The node ids a certificate names in `URI:aspen://node/<id>` subjectAltNames, in order; empty
 * for a certificate issued before node-bound certificates (or not for a node). A caller that
 * trusts the issuer requires exactly one.
 */
export function nodeIdsOf(certificate: X509Certificate): number[] {
  let extension: SubjectAlternativeNameExtension | null;
  try {
    extension = certificate.getExtension(SubjectAlternativeNameExtension);
  } catch (error) {
    // A damaged extension makes the library throw: the certificate names no node.
    if (error instanceof AssertionError) throw error;
    return [];
  }
  if (extension === null) return [];
  const ids: number[] = [];
  for (const name of extension.names.items) {
    if (name.type !== "url" || !name.value.startsWith(NODE_URI_PREFIX)) continue;
    const digits = name.value.slice(NODE_URI_PREFIX.length);
    if (!/^[1-9][0-9]{0,9}$/.test(digits)) continue;
    ids.push(Number(digits));
  }
  return ids;
}

/** True when `at` lies within the certificate's notBefore..notAfter. */
export function isWithinValidity(certificate: X509Certificate, at: Date): boolean {
  return certificate.notBefore.getTime() <= at.getTime() &&
    at.getTime() <= certificate.notAfter.getTime();
}

/** The certificate's SubjectPublicKeyInfo, DER. */
export function spkiOf(certificate: X509Certificate): Uint8Array<ArrayBuffer> {
  return new Uint8Array(certificate.publicKey.rawData);
}

/** The certificate's DER bytes. */
export function derOf(certificate: X509Certificate): Uint8Array<ArrayBuffer> {
  return new Uint8Array(certificate.rawData);
}

/** Wraps DER bytes in a PEM block with 64-column base64 lines and a final newline. */
export function pemEncode(label: string, der: Uint8Array<ArrayBuffer>): string {
  return `${PemConverter.encode(der, label)}\n`;
}

/** Extracts the DER bytes of the first PEM block with `label`, or null when there is none. */
export function pemDecode(label: string, pem: string): Uint8Array<ArrayBuffer> | null {
  let blocks: ReturnType<typeof PemConverter.decodeWithHeaders>;
  try {
    blocks = PemConverter.decodeWithHeaders(pem);
  } catch (error) {
    // Malformed PEM headers make the library throw: there is no usable block.
    if (error instanceof AssertionError) throw error;
    return null;
  }
  const block = blocks.find((candidate) => candidate.type === label);
  return block === undefined ? null : new Uint8Array(block.rawData);
}

/** True when two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/**
 * The listen host as a canonical IP literal for an iPAddress subjectAltName ("10.0.0.1",
 * "fd00::2"); null when it is not an IP literal. IPv6 goes through the URL parser, which also
 * rewrites an embedded IPv4 tail ("::ffff:1.2.3.4") into hex groups the library can encode.
 */
export function ipLiteral(host: string): string | null {
  if (isIPv4(host)) return host;
  if (!isIPv6(host)) return null;
  if (host.includes("%")) return null; // a zone id names an interface, not an address
  const bracketed = new URL(`http://[${host}]/`).hostname;
  assert(bracketed.startsWith("[") && bracketed.endsWith("]"), "URL keeps IPv6 in brackets");
  return bracketed.slice(1, -1);
}

/** Imports an SPKI as a P-256 verification key; null when it is not one. */
async function importP256PublicKey(spki: Uint8Array<ArrayBuffer>): Promise<CryptoKey | null> {
  try {
    return await crypto.subtle.importKey("spki", spki, ECDSA_P256, false, ["verify"]);
  } catch (error) {
    // Another key type or curve cannot have signed an Aspen certificate: not issued by it.
    if (error instanceof DOMException) return null;
    throw error;
  }
}

function isEcdsaSha256(algorithm: Algorithm): boolean {
  if (algorithm.name !== ECDSA_SHA256.name) return false;
  const hash = (algorithm as EcdsaParams).hash;
  const hashName = typeof hash === "string" ? hash : hash?.name;
  return hashName === ECDSA_SHA256.hash;
}

function nameBytes(name: Name): Uint8Array<ArrayBuffer> {
  return new Uint8Array(name.toArrayBuffer());
}

function caExtensions(subjectKeyId: string): Extension[] {
  return [
    // cA TRUE, pathLenConstraint 0: the CA signs node certificates, never another CA.
    new BasicConstraintsExtension(true, 0, true),
    new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
    new SubjectKeyIdentifierExtension(subjectKeyId, false),
  ];
}

function leafExtensions(options: {
  subjectKeyId: string;
  issuerKeyId: string;
  listenHost: string;
  nodeId: number;
}): Extension[] {
  return [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
    new SubjectAlternativeNameExtension(
      subjectAltNames(options.listenHost, options.nodeId),
      false,
    ),
    new SubjectKeyIdentifierExtension(options.subjectKeyId, false),
    new AuthorityKeyIdentifierExtension(options.issuerKeyId, false),
  ];
}

/**
 * The key identifier of an SPKI as hex: a hash of its subjectPublicKey bits (RFC 7093
 * method 1).
 */
async function keyIdentifier(spki: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await new PublicKey(spki).getKeyIdentifier("SHA-256", crypto);
  const identifier = new Uint8Array(digest).subarray(0, KEY_IDENTIFIER_BYTES);
  return Array.from(identifier, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * DNS:localhost, the node's DNS and URI names, plus the listen host as an IP or DNS name unless
 * it is a wildcard or under the reserved node suffix.
 */
function subjectAltNames(listenHost: string, nodeId: number): JsonGeneralName[] {
  assert(Number.isSafeInteger(nodeId) && nodeId >= 1, "a node id is a positive integer");
  const names: JsonGeneralName[] = [
    { type: "dns", value: "localhost" },
    { type: "dns", value: nodeDnsName(nodeId) },
    { type: "url", value: `${NODE_URI_PREFIX}${nodeId}` },
  ];
  const host = listenHost.replace(/^\[|\]$/g, "");
  const ip = ipLiteral(host);
  if (ip !== null) {
    const isWildcard = ip === "0.0.0.0" || ip === "::";
    if (!isWildcard) names.push({ type: "ip", value: ip });
  } else if (host !== "localhost" && isDnsName(host) && !isReservedNodeName(host)) {
    names.push({ type: "dns", value: host });
  }
  return names;
}

function isReservedNodeName(host: string): boolean {
  const lower = host.toLowerCase().replace(/\.$/, "");
  return lower.endsWith(NODE_DNS_SUFFIX) || lower === NODE_DNS_SUFFIX.slice(1);
}

function isDnsName(host: string): boolean {
  if (host.length > DNS_NAME_LENGTH_MAX) return false;
  return /^[A-Za-z0-9.-]+$/.test(host);
}
