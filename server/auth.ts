/**
 * Cluster credentials and client tokens.
 *
 * `aspen cluster init` creates a cluster id, a cluster secret (peers prove it on the QUIC
 * channel besides their node certificate; it is never sent), the cluster CA and tokens. A
 * credentials file may lack the CA key (`aspen cluster credentials --without-ca-key`): nodes
 * given such a file use the identity issued into their data dir (`aspen cluster issue-node`).
 * Tokens are shown once and kept only as SHA-256 hashes, so a stolen credentials file lets
 * nobody call the API. A token is either `root` (everything) or `read` (reads only: a write
 * with it is 403).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AspenError } from "../shard/mod.ts";

/** What a token may do. */
export type TokenRole = "root" | "read";

/** The stored form of one token: its hash and role, never the token itself. */
export interface TokenRecord {
  readonly hash: string;
  readonly role: TokenRole;
}

/** The contents of a cluster credentials file. */
export interface ClusterCredentials {
  readonly format: 1;
  readonly clusterId: string;
  /** 32 random bytes as hex; the peer channel's shared secret. */
  readonly secret: string;
  /** The cluster CA that issues every node's peer certificate (PEM). */
  readonly caCertificatePem: string;
  /**
   * The CA's private key (PKCS8 PEM), or null in a file made without it. Whoever holds it can
   * issue a certificate for any node id: keep it only where nodes are set up.
   */
  readonly caKeyPem: string | null;
  readonly tokens: readonly TokenRecord[];
}

/** Creates the cluster CA's key and certificate (injected: the peer layer implements it). */
export type CreateClusterCa = () => Promise<{ keyPem: string; certificatePem: string }>;

/** The most tokens one credentials file may hold. */
export const TOKENS_MAX = 64;
/** The largest credentials file read, in bytes. */
export const CREDENTIALS_FILE_BYTES_MAX = 64 * 1024;
const TOKEN_PREFIX = "aspen_";
/** The longest token looked at; longer ones are refused without hashing. */
export const TOKEN_CHARS_MAX = 200;
const SECRET_BYTES = 32;

/** A source of cryptographically secure random bytes, injected by the caller. */
export type RandomBytes = (count: number) => Uint8Array;

/** Creates new credentials with one root and one read-only token; tokens are returned once. */
export async function createCredentials(
  randomBytes: RandomBytes,
  createCa: CreateClusterCa,
): Promise<{
  readonly credentials: ClusterCredentials;
  readonly rootToken: string;
  readonly readToken: string;
}> {
  const rootToken = generateToken(randomBytes);
  const readToken = generateToken(randomBytes);
  const ca = await createCa();
  const credentials: ClusterCredentials = {
    format: 1,
    clusterId: toHex(randomBytes(8)),
    secret: toHex(randomBytes(SECRET_BYTES)),
    caCertificatePem: ca.certificatePem,
    caKeyPem: ca.keyPem,
    tokens: [{ hash: hashToken(rootToken), role: "root" }, {
      hash: hashToken(readToken),
      role: "read",
    }],
  };
  return { credentials, rootToken, readToken };
}

/** Returns the role of `token`, or null when it is not one of the cluster's tokens. */
export function verifyToken(credentials: ClusterCredentials, token: string): TokenRole | null {
  if (!isTokenShaped(token)) return null;
  const presented = Buffer.from(hashToken(token), "hex");
  let role: TokenRole | null = null;
  for (const record of credentials.tokens) {
    const stored = Buffer.from(record.hash, "hex");
    if (stored.length === presented.length && timingSafeEqual(stored, presented)) {
      role = record.role;
    }
  }
  return role;
}

/** Whether `token` looks like an Aspen token (the prefix, a bounded length); cheap, no hash. */
export function isTokenShaped(token: string): boolean {
  return token.startsWith(TOKEN_PREFIX) && token.length <= TOKEN_CHARS_MAX;
}

/** The most accepted tokens a {@linkcode createTokenVerifier} verifier remembers. */
export const VERIFIED_TOKENS_MAX = 64;

/**
 * A token check for the request path that remembers the tokens it accepted, so that a client
 * sending the same token on every request pays for one SHA-256 instead of one per request
 * (measured: hashing, hex decoding and the constant-time compares were 3-4% of a node's CPU
 * under load). Rejected tokens are never remembered; the memory is bounded by
 * {@linkcode VERIFIED_TOKENS_MAX} and starts over when full. Credentials are fixed for the
 * life of a node, so an accepted token stays valid.
 */
export function createTokenVerifier(
  credentials: ClusterCredentials,
): (token: string) => TokenRole | null {
  const accepted = new Map<string, TokenRole>();
  return function verifyCached(token: string): TokenRole | null {
    const known = accepted.get(token);
    if (known !== undefined) return known;
    const role = verifyToken(credentials, token);
    if (role === null) return null;
    if (accepted.size >= VERIFIED_TOKENS_MAX) accepted.clear();
    accepted.set(token, role);
    return role;
  };
}

/**
 * Parses and validates a credentials file.
 *
 * @throws {AspenError} `bad_config` naming the file and what is wrong with it.
 */
export function parseCredentials(path: string, text: string): ClusterCredentials {
  const fail = (what: string) =>
    new AspenError("bad_config", `Cannot read cluster credentials "${path}": ${what}`);
  if (text.length > CREDENTIALS_FILE_BYTES_MAX) throw fail("the file is too large");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw fail("it is not valid JSON");
  }
  const record = value as Partial<ClusterCredentials> | null;
  if (typeof record !== "object" || record === null || record.format !== 1) {
    throw fail("it is not an Aspen credentials file (format 1)");
  }
  if (typeof record.clusterId !== "string" || !/^[0-9a-f]{16}$/.test(record.clusterId)) {
    throw fail("clusterId must be 16 hex digits");
  }
  if (typeof record.secret !== "string" || !/^[0-9a-f]{64}$/.test(record.secret)) {
    throw fail("secret must be 64 hex digits");
  }
  if (!isPem(record.caCertificatePem, "CERTIFICATE")) {
    throw fail("caCertificatePem must hold the cluster CA certificate in PEM");
  }
  const caKeyPem = record.caKeyPem ?? null;
  if (caKeyPem !== null && !isPem(caKeyPem, "PRIVATE KEY")) {
    throw fail("caKeyPem, when present, must hold the cluster CA key in PEM");
  }
  if (!Array.isArray(record.tokens) || record.tokens.length > TOKENS_MAX) {
    throw fail(`tokens must be a list of at most ${TOKENS_MAX}`);
  }
  for (const token of record.tokens) {
    const isValid = typeof token?.hash === "string" && /^[0-9a-f]{64}$/.test(token.hash) &&
      (token.role === "root" || token.role === "read");
    if (!isValid) throw fail('each token needs a 64-hex-digit hash and a role "root" or "read"');
  }
  return {
    format: 1,
    clusterId: record.clusterId,
    secret: record.secret,
    caCertificatePem: record.caCertificatePem,
    caKeyPem,
    tokens: record.tokens.map((token) => ({ hash: token.hash, role: token.role })),
  };
}

/** Renders credentials as the file's JSON text; a missing CA key is left out. */
export function formatCredentials(credentials: ClusterCredentials): string {
  const { caKeyPem, ...rest } = credentials;
  return JSON.stringify(caKeyPem === null ? rest : credentials, null, 2) + "\n";
}

/** The same credentials without the CA key, for nodes that get an issued identity. */
export function withoutCaKey(credentials: ClusterCredentials): ClusterCredentials {
  return { ...credentials, caKeyPem: null };
}

/** The stored hash of a token: SHA-256, hex. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A new random token: the prefix and 32 random bytes, base64url (shown once, never stored). */
export function generateToken(randomBytes: RandomBytes): string {
  return TOKEN_PREFIX + Buffer.from(randomBytes(SECRET_BYTES)).toString("base64url");
}

/** Bytes as lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function isPem(value: unknown, label: string): value is string {
  return typeof value === "string" && value.includes(`-----BEGIN ${label}-----`) &&
    value.includes(`-----END ${label}-----`);
}
