/**
 * Checks node identities: the self-signed certificate has the fields rustls needs (SAN
 * DNS:localhost and the listen IP, not a CA, ECDSA P-256) as read back by node:crypto's X.509
 * parser; the identity is stored once and reused on restart (same fingerprint, key file mode
 * 0600); missing or mismatched files are storage_corrupt; IP literals parse as expected.
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { AspenError } from "../../shard/mod.ts";
import {
  certificateFingerprint,
  createPeerIdentity,
  loadOrCreatePeerIdentity,
  parseIpAddress,
  PEER_CERTIFICATE_FILE,
  PEER_KEY_FILE,
} from "./identity.ts";

Deno.test("createPeerIdentity() makes a self-signed end-entity certificate", async () => {
  const identity = await createPeerIdentity({ nodeId: 7, listenHost: "10.1.2.3" });
  const certificate = new X509Certificate(identity.certificatePem);
  assert.equal(certificate.ca, false);
  assert.equal(certificate.subject, "CN=aspen-node-7");
  assert.equal(certificate.issuer, certificate.subject);
  assert.equal(certificate.subjectAltName, "DNS:localhost, IP Address:10.1.2.3");
  assert.ok(certificate.verify(certificate.publicKey), "the signature verifies with its own key");
  assert.equal(certificate.checkPrivateKey(await privateKeyObject(identity.keyPem)), true);
  assert.equal(identity.fingerprint, await certificateFingerprint(identity.certificatePem));
  assert.match(identity.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
});

Deno.test("createPeerIdentity() puts the right subjectAltNames for each listen host", async (t) => {
  const cases = [
    { host: "0.0.0.0", names: "DNS:localhost" },
    { host: "[::1]", names: "DNS:localhost, IP Address:::1" },
    { host: "db1.example.com", names: "DNS:localhost, DNS:db1.example.com" },
    { host: "localhost", names: "DNS:localhost" },
  ];
  for (const testCase of cases) {
    await t.step(testCase.host, async () => {
      const identity = await createPeerIdentity({ nodeId: 1, listenHost: testCase.host });
      const certificate = new X509Certificate(identity.certificatePem);
      assert.equal(certificate.subjectAltName, testCase.names);
    });
  }
});

Deno.test("loadOrCreatePeerIdentity() creates once and reuses the files on restart", async () => {
  const directory = await Deno.makeTempDir();
  try {
    const options = { directory: `${directory}/peer`, nodeId: 1, listenHost: "127.0.0.1" };
    const first = await loadOrCreatePeerIdentity(options);
    const keyInfo = await Deno.stat(`${directory}/peer/${PEER_KEY_FILE}`);
    assert.equal((keyInfo.mode ?? 0) & 0o777, 0o600);
    const second = await loadOrCreatePeerIdentity({ ...options, listenHost: "10.0.0.1" });
    assert.deepEqual(second, first, "a restart (even on another host) keeps the identity");
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("loadOrCreatePeerIdentity() reports broken files as storage_corrupt", async (t) => {
  const directory = await Deno.makeTempDir();
  const options = { directory, nodeId: 1, listenHost: "127.0.0.1" };
  const isCorrupt = (error: unknown) =>
    error instanceof AspenError && error.code === "storage_corrupt";
  try {
    await loadOrCreatePeerIdentity(options);
    const keyPem = await Deno.readTextFile(`${directory}/${PEER_KEY_FILE}`);
    await t.step("a missing key file", async () => {
      await Deno.remove(`${directory}/${PEER_KEY_FILE}`);
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
    await t.step("a key that belongs to another certificate", async () => {
      const other = await createPeerIdentity({ nodeId: 2, listenHost: "127.0.0.1" });
      await Deno.writeTextFile(`${directory}/${PEER_KEY_FILE}`, other.keyPem);
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
    await t.step("a certificate file with no PEM in it", async () => {
      await Deno.writeTextFile(`${directory}/${PEER_KEY_FILE}`, keyPem);
      await Deno.writeTextFile(`${directory}/${PEER_CERTIFICATE_FILE}`, "garbage");
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("parseIpAddress() parses IPv4 and IPv6 literals and nothing else", async (t) => {
  const cases: { text: string; expected: number[] | null }[] = [
    { text: "127.0.0.1", expected: [127, 0, 0, 1] },
    { text: "256.0.0.1", expected: null },
    { text: "::1", expected: [...Array(15).fill(0), 1] },
    { text: "::", expected: Array(16).fill(0) },
    { text: "fe80::1:2", expected: [0xfe, 0x80, ...Array(10).fill(0), 0, 1, 0, 2] },
    { text: "1:2:3:4:5:6:7:8", expected: [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8] },
    { text: "1:2:3:4:5:6:7", expected: null },
    { text: "1::2::3", expected: null },
    { text: "localhost", expected: null },
  ];
  for (const testCase of cases) {
    await t.step(testCase.text, () => {
      const parsed = parseIpAddress(testCase.text);
      assert.deepEqual(parsed === null ? null : Array.from(parsed), testCase.expected);
    });
  }
});

async function privateKeyObject(keyPem: string) {
  const { createPrivateKey } = await import("node:crypto");
  return createPrivateKey(keyPem);
}
