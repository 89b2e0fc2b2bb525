/**
 * The cluster-secret challenge-response that opens every peer connection.
 *
 * QUIC in Deno has no client certificates, so TLS only authenticates the listener (its
 * certificate must chain to the cluster CA, see mod.ts). Both sides then prove that they hold
 * the cluster secret without sending it: each proof is HMAC-SHA256 keyed by the secret over a
 * transcript that binds the protocol version, the role of the prover, the negotiated ALPN, both
 * node ids, both fresh 32-byte nonces and the fingerprint of the cluster CA certificate, the
 * root that the dialer's TLS verified the listener against.
 *
 * Why the CA's fingerprint and not the listener's own: Deno's `QuicConn` does not expose the
 * certificate the server presented (only ALPN, addresses and server name), so a dialer cannot
 * learn which leaf it got. A leaf sent inside the handshake would not help: nothing ties those
 * bytes to the TLS session, so a relay could forward a genuine listener's leaf and proof. The
 * CA is the one certificate fact that TLS verified and that both sides know.
 *
 * ```text
 * dialer                                   listener
 *   hello {dialer id, listener id, Nd}  ->
 *                                       <-  challenge {listener id, Nl, proof_L}
 *   check proof_L
 *   proof {proof_D}                     ->
 *   (sends Raft traffic at once)            check proof_D before reading anything else
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
