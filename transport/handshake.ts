/**
 * The handshake that opens every peer connection: each side proves the cluster secret and its
 * node id.
 *
 * QUIC in Deno has no client certificates and does not expose the certificate the server
 * presented, so TLS only tells the dialer that the listener holds the CA-issued certificate for
 * the node name it asked for (see mod.ts). Both sides then prove themselves over a transcript
 * that binds the protocol version, the role of the prover, the negotiated ALPN, both node ids,
 * both fresh 32-byte nonces and the fingerprint of the cluster CA certificate, twice:
 * - an HMAC-SHA256 keyed by the cluster secret ({@linkcode computeProof}), checked first, so
 *   that nobody without the secret gets the verifier to parse a certificate;
 * - an ECDSA P-256 signature with the node's own key ({@linkcode signTranscript}), sent with
 *   the node's certificate: the verifier checks the certificate (issued by the cluster CA,
 *   valid now, naming exactly the claimed node id, not refused) and the signature with its key.
 * The two use different labels, so neither can stand in for the other.
 *
 * Why the CA's fingerprint and not the listener's certificate: the dialer cannot learn which
 * leaf TLS got, and nothing ties handshake bytes to the TLS session, so the transcript binds
 * the one certificate fact both sides know. A relay is kept out by TLS instead: a dialer asks
 * for the name of the node it dials, which only that node's certificate carries.
 *
 * ```text
 * dialer                                   listener
 *   hello {dialer id, listener id, Nd}  ->
 *                                       <-  challenge {listener id, Nl, hmac_L, sig_L, cert_L}
 *   check hmac_L, cert_L, sig_L
 *   proof {hmac_D, sig_D, cert_D}       ->
 *   (sends Raft traffic at once)            check hmac_D, cert_D, sig_D before reading more
 * ```
 *
 * The role label keeps a proof from being reflected back to its maker, and the fresh nonces
 * keep an old proof from being replayed. A dialer whose proof fails gets its connection closed
 * before any frame after it is read; a listener whose proof fails is never sent anything.
 */

import { assert } from "../raft/mod.ts";
import { AspenError } from "../shard/mod.ts";
import { NONCE_BYTES, PROOF_BYTES, PROTOCOL_VERSION, SIGNATURE_BYTES } from "./frame_codec.ts";
import { CLUSTER_SECRET_BYTES_MIN } from "./limits.ts";

/** Who computes a proof. */
export type HandshakeRole = "dialer" | "listener";

/** What a proof covers, besides the role. */
export interface HandshakeTranscript {
  readonly alpn: string;
  readonly dialerNodeId: number;
  readonly listenerNodeId: number;
  readonly dialerNonce: Uint8Array;
  readonly listenerNonce: Uint8Array;
  /** Lowercase hex SHA-256 of the cluster CA certificate that both sides trust. */
  readonly caFingerprint: string;
}

/**
 * Imports the cluster secret as an HMAC-SHA256 key that cannot be exported again.
 *
 * @throws {AspenError} `bad_config` when the secret is shorter than CLUSTER_SECRET_BYTES_MIN.
 */
export async function importClusterSecret(secret: string): Promise<CryptoKey> {
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < CLUSTER_SECRET_BYTES_MIN) {
    throw new AspenError(
      "bad_config",
      `Cannot use the cluster secret: it is ${bytes.length} bytes but at least ` +
        `${CLUSTER_SECRET_BYTES_MIN} are required`,
      { limit: CLUSTER_SECRET_BYTES_MIN },
    );
  }
  return await crypto.subtle.importKey(
    "raw",
    bytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** Returns a fresh random nonce. */
export function createNonce(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

/** Computes the proof of `role` over the transcript. */
export async function computeProof(
  key: CryptoKey,
  role: HandshakeRole,
  transcript: HandshakeTranscript,
): Promise<Uint8Array<ArrayBuffer>> {
  const data = encodeTranscript(role, transcript, "hmac");
  const proof = new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
  assert(proof.length === PROOF_BYTES, "an HMAC-SHA256 proof has PROOF_BYTES");
  return proof;
}

/** Signs the transcript of `role` with the node's P-256 key (ECDSA with SHA-256). */
export async function signTranscript(
  privateKey: CryptoKey,
  role: HandshakeRole,
  transcript: HandshakeTranscript,
): Promise<Uint8Array<ArrayBuffer>> {
  const data = encodeTranscript(role, transcript, "signature");
  const signature = new Uint8Array(await crypto.subtle.sign(ECDSA_SHA256, privateKey, data));
  assert(signature.length === SIGNATURE_BYTES, "a P-256 signature has SIGNATURE_BYTES");
  return signature;
}

/** True when `signature` is the signature of `role` over the transcript by `publicKey`. */
export async function verifyTranscriptSignature(
  publicKey: CryptoKey,
  role: HandshakeRole,
  transcript: HandshakeTranscript,
  signature: Uint8Array,
): Promise<boolean> {
  if (signature.length !== SIGNATURE_BYTES) return false;
  const data = encodeTranscript(role, transcript, "signature");
  return await crypto.subtle.verify(ECDSA_SHA256, publicKey, signature.slice(), data);
}

/** Checks a proof of `role` in constant time; true when it is valid. */
export async function verifyProof(
  key: CryptoKey,
  role: HandshakeRole,
  transcript: HandshakeTranscript,
  proof: Uint8Array,
): Promise<boolean> {
  if (proof.length !== PROOF_BYTES) return false;
  const data = encodeTranscript(role, transcript, "hmac");
  return await crypto.subtle.verify("HMAC", key, proof.slice(), data);
}

/** The two proofs sign the same transcript under different labels (domain separation). */
type ProofKind = "hmac" | "signature";

const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;

function encodeTranscript(
  role: HandshakeRole,
  transcript: HandshakeTranscript,
  kind: ProofKind,
): Uint8Array<ArrayBuffer> {
  assert(transcript.dialerNonce.length === NONCE_BYTES, "dialer nonce has NONCE_BYTES");
  assert(transcript.listenerNonce.length === NONCE_BYTES, "listener nonce has NONCE_BYTES");
  assert(/^[0-9a-f]{64}$/.test(transcript.caFingerprint), "fingerprint is SHA-256 hex");
  const label = new TextEncoder().encode(
    `aspen-peer-handshake-v${PROTOCOL_VERSION}\0${kind}\0${role}\0${transcript.alpn}\0` +
      `${transcript.caFingerprint}\0`,
  );
  const data = new Uint8Array(label.length + 8 + 2 * NONCE_BYTES);
  const view = new DataView(data.buffer);
  data.set(label, 0);
  view.setUint32(label.length, transcript.dialerNodeId);
  view.setUint32(label.length + 4, transcript.listenerNodeId);
  data.set(transcript.dialerNonce, label.length + 8);
  data.set(transcript.listenerNonce, label.length + 8 + NONCE_BYTES);
  return data;
}
