/**
 * Checks the cluster-secret proofs: a proof verifies only for the same secret, role and
 * transcript; changing any single field (ids, nonces, ALPN, CA fingerprint), swapping the role
 * (reflection) or using another secret makes it fail; short secrets are refused as config.
 */

import assert from "node:assert/strict";
import { AspenError } from "../shard/mod.ts";
import {
  computeProof,
  createNonce,
  type HandshakeTranscript,
  importClusterSecret,
  signTranscript,
  verifyProof,
  verifyTranscriptSignature,
} from "./handshake.ts";

const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

const SECRET = "a-cluster-secret-of-enough-length";

const transcript: HandshakeTranscript = {
  alpn: "aspen-raft-shard",
  dialerNodeId: 1,
  listenerNodeId: 2,
  dialerNonce: new Uint8Array(32).fill(1),
  listenerNonce: new Uint8Array(32).fill(2),
  caFingerprint: "ab".repeat(32),
};

Deno.test("verifyProof() accepts the proof of the same secret, role and transcript", async () => {
  const key = await importClusterSecret(SECRET);
  const proof = await computeProof(key, "dialer", transcript);
  assert.equal(
    await verifyProof(await importClusterSecret(SECRET), "dialer", transcript, proof),
    true,
  );
});

Deno.test("verifyProof() rejects any change to the transcript, role or secret", async (t) => {
  const key = await importClusterSecret(SECRET);
  const proof = await computeProof(key, "dialer", transcript);
  const changed: { name: string; transcript: HandshakeTranscript }[] = [
    { name: "ALPN", transcript: { ...transcript, alpn: "aspen-raft" } },
    { name: "dialer id", transcript: { ...transcript, dialerNodeId: 3 } },
    { name: "listener id", transcript: { ...transcript, listenerNodeId: 3 } },
    { name: "dialer nonce", transcript: { ...transcript, dialerNonce: createNonce() } },
    { name: "listener nonce", transcript: { ...transcript, listenerNonce: createNonce() } },
    { name: "CA fingerprint", transcript: { ...transcript, caFingerprint: "cd".repeat(32) } },
  ];
  for (const testCase of changed) {
    await t.step(testCase.name, async () => {
      assert.equal(await verifyProof(key, "dialer", testCase.transcript, proof), false);
    });
  }
  await t.step("the listener role (no reflection)", async () => {
    assert.equal(await verifyProof(key, "listener", transcript, proof), false);
  });
  await t.step("another secret", async () => {
    const other = await importClusterSecret(SECRET + "!");
    assert.equal(await verifyProof(other, "dialer", transcript, proof), false);
  });
  await t.step("a truncated proof", async () => {
    assert.equal(await verifyProof(key, "dialer", transcript, proof.subarray(1)), false);
  });
});

Deno.test("importClusterSecret() refuses a secret shorter than the minimum", async () => {
  await assert.rejects(
    () => importClusterSecret("short"),
    (error) => error instanceof AspenError && error.code === "bad_config",
  );
});

Deno.test("createNonce() returns fresh 32-byte nonces", () => {
  const first = createNonce();
  assert.equal(first.length, 32);
  assert.notDeepEqual(first, createNonce());
});

Deno.test("verifyTranscriptSignature() needs the key, role and transcript", async (t) => {
  const pair = await crypto.subtle.generateKey(ECDSA_P256, false, ["sign", "verify"]);
  const other = await crypto.subtle.generateKey(ECDSA_P256, false, ["sign", "verify"]);
  const signature = await signTranscript(pair.privateKey, "listener", transcript);
  assert.equal(signature.length, 64);
  assert.equal(
    await verifyTranscriptSignature(pair.publicKey, "listener", transcript, signature),
    true,
  );
  await t.step("another key", async () => {
    assert.equal(
      await verifyTranscriptSignature(other.publicKey, "listener", transcript, signature),
      false,
    );
  });
  await t.step("the other role", async () => {
    assert.equal(
      await verifyTranscriptSignature(pair.publicKey, "dialer", transcript, signature),
      false,
    );
  });
  await t.step("another dialer id", async () => {
    const changed = { ...transcript, dialerNodeId: 3 };
    assert.equal(
      await verifyTranscriptSignature(pair.publicKey, "listener", changed, signature),
      false,
    );
  });
  await t.step("a truncated signature", async () => {
    const short = signature.subarray(1);
    assert.equal(
      await verifyTranscriptSignature(pair.publicKey, "listener", transcript, short),
      false,
    );
  });
});
