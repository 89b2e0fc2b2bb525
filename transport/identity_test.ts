/**
 * Checks the cluster CA and the node identities it issues, reading every certificate back with
 * node:crypto's X.509 parser (an independent implementation): the CA is a self-signed CA:TRUE
 * certificate with keyCertSign/cRLSign; a node certificate is CA:FALSE, names the CA as issuer,
 * verifies with the CA's key and not another's, and has the subjectAltNames rustls needs. An
 * identity is stored once and reused on restart while the same CA issued it, and re-issued
 * under a new CA; broken files are storage_corrupt and a broken CA is bad_config. (What rustls
 * accepts over real QUIC, and forged certificates, are checked in _x509_test.ts.)
 */

import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { AspenError } from "../shard/mod.ts";
import { pemEncode } from "./_x509.ts";
import {
  type ClusterCa,
  createClusterCa,
  createPeerIdentity,
  isCertificateIssuedBy,
  loadOrCreatePeerIdentity,
  PEER_CERTIFICATE_FILE,
  PEER_KEY_FILE,
} from "./identity.ts";

const ca = await createClusterCa();
const otherCa = await createClusterCa();

Deno.test("createClusterCa() makes a self-signed CA certificate for signing certificates", () => {
  const certificate = new X509Certificate(ca.certificatePem);
  assert.equal(certificate.ca, true);
  assert.equal(certificate.subject, "CN=aspen-cluster-ca");
  assert.equal(certificate.issuer, certificate.subject);
  assert.deepEqual(certificate.keyUsage, ["KeyCertSign", "CRLSign"]);
  assert.ok(certificate.verify(certificate.publicKey), "the signature verifies with its own key");
  assert.equal(certificate.checkPrivateKey(createPrivateKey(ca.keyPem)), true);
  assert.ok(new Date(certificate.validTo).getUTCFullYear() >= 9999, "a long validity");
  assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.notEqual(ca.certificatePem, otherCa.certificatePem);
});

Deno.test("createPeerIdentity() has the CA issue an end-entity certificate", async () => {
  const identity = await createPeerIdentity({ nodeId: 7, listenHost: "10.1.2.3", ca });
  const certificate = new X509Certificate(identity.certificatePem);
  const caCertificate = new X509Certificate(ca.certificatePem);
  assert.equal(certificate.ca, false);
  assert.equal(certificate.subject, "CN=aspen-node-7");
  assert.equal(certificate.issuer, caCertificate.subject);
  assert.equal(
    certificate.subjectAltName,
    "DNS:localhost, DNS:node-7.aspen.invalid, URI:aspen://node/7, IP Address:10.1.2.3",
  );
  assert.ok(certificate.checkIssued(caCertificate), "node:crypto sees the CA as the issuer");
  assert.ok(certificate.verify(caCertificate.publicKey), "the CA's key signed it");
  const otherKey = new X509Certificate(otherCa.certificatePem).publicKey;
  assert.equal(certificate.verify(otherKey), false, "another CA's key did not");
  assert.equal(certificate.checkPrivateKey(createPrivateKey(identity.keyPem)), true);
  assert.equal(await isCertificateIssuedBy(identity.certificatePem, ca.certificatePem), true);
  assert.equal(await isCertificateIssuedBy(identity.certificatePem, otherCa.certificatePem), false);
});

Deno.test("createPeerIdentity() puts the right subjectAltNames for each listen host", async (t) => {
  const node = "DNS:localhost, DNS:node-1.aspen.invalid, URI:aspen://node/1";
  const cases = [
    { host: "0.0.0.0", names: node },
    { host: "[::1]", names: `${node}, IP Address:::1` },
    { host: "[fd00:0:0::2]", names: `${node}, IP Address:fd00::2` },
    { host: "[::]", names: node },
    { host: "[::ffff:10.0.0.1]", names: `${node}, IP Address:::ffff:10.0.0.1` },
    { host: "[fe80::1%eth0]", names: node },
    { host: "db1.example.com", names: `${node}, DNS:db1.example.com` },
    { host: "localhost", names: node },
    // A listen host may not claim another node's reserved name.
    { host: "node-2.aspen.invalid", names: node },
    { host: "NODE-2.Aspen.Invalid.", names: node },
  ];
  for (const testCase of cases) {
    await t.step(testCase.host, async () => {
      const identity = await createPeerIdentity({ nodeId: 1, listenHost: testCase.host, ca });
      const certificate = new X509Certificate(identity.certificatePem);
      assert.equal(certificate.subjectAltName, testCase.names);
    });
  }
});

Deno.test("createPeerIdentity() refuses a broken CA with bad_config", async (t) => {
  const cases: { name: string; ca: ClusterCa }[] = [
    { name: "a key of another CA", ca: { ...ca, keyPem: otherCa.keyPem } },
    { name: "no certificate", ca: { ...ca, certificatePem: "garbage" } },
    { name: "a certificate that does not parse", ca: { ...ca, certificatePem: pem([1, 2]) } },
    { name: "no key", ca: { ...ca, keyPem: "garbage" } },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, async () => {
      await assert.rejects(
        () => createPeerIdentity({ nodeId: 1, listenHost: "127.0.0.1", ca: testCase.ca }),
        (error) => error instanceof AspenError && error.code === "bad_config",
      );
    });
  }
});

Deno.test("loadOrCreatePeerIdentity() reuses its files while the same CA issued them", async () => {
  const directory = await Deno.makeTempDir();
  try {
    const options = { directory: `${directory}/peer`, nodeId: 1, listenHost: "127.0.0.1", ca };
    const first = await loadOrCreatePeerIdentity(options);
    const keyInfo = await Deno.stat(`${directory}/peer/${PEER_KEY_FILE}`);
    assert.equal((keyInfo.mode ?? 0) & 0o777, 0o600);
    const second = await loadOrCreatePeerIdentity({ ...options, listenHost: "10.0.0.1" });
    assert.deepEqual(second, first, "a restart (even on another host) keeps the identity");
    const third = await loadOrCreatePeerIdentity({ ...options, ca: otherCa });
    assert.notEqual(third.fingerprint, first.fingerprint, "a new CA means a new certificate");
    assert.notEqual(third.keyPem, first.keyPem, "and a new key");
    assert.equal(await isCertificateIssuedBy(third.certificatePem, otherCa.certificatePem), true);
    const stored = await Deno.readTextFile(`${directory}/peer/${PEER_CERTIFICATE_FILE}`);
    assert.equal(stored, third.certificatePem, "the re-issued certificate is stored");
    assert.deepEqual(await loadOrCreatePeerIdentity({ ...options, ca: otherCa }), third);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("loadOrCreatePeerIdentity() reports broken files as storage_corrupt", async (t) => {
  const directory = await Deno.makeTempDir();
  const options = { directory, nodeId: 1, listenHost: "127.0.0.1", ca };
  const isCorrupt = (error: unknown) =>
    error instanceof AspenError && error.code === "storage_corrupt";
  try {
    const identity = await loadOrCreatePeerIdentity(options);
    await t.step("a missing key file", async () => {
      await Deno.remove(`${directory}/${PEER_KEY_FILE}`);
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
    await t.step("a key that belongs to another certificate", async () => {
      const other = await createPeerIdentity({ nodeId: 2, listenHost: "127.0.0.1", ca });
      await Deno.writeTextFile(`${directory}/${PEER_KEY_FILE}`, other.keyPem);
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
    await t.step("a key file with no PEM in it", async () => {
      await Deno.writeTextFile(`${directory}/${PEER_KEY_FILE}`, "garbage");
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
    await t.step("a certificate file with no PEM in it", async () => {
      await Deno.writeTextFile(`${directory}/${PEER_KEY_FILE}`, identity.keyPem);
      await Deno.writeTextFile(`${directory}/${PEER_CERTIFICATE_FILE}`, "garbage");
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
    await t.step("a certificate file whose PEM is not a certificate", async () => {
      await Deno.writeTextFile(`${directory}/${PEER_CERTIFICATE_FILE}`, pem([0x30, 0]));
      await assert.rejects(() => loadOrCreatePeerIdentity(options), isCorrupt);
    });
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

function pem(bytes: number[]): string {
  return pemEncode("CERTIFICATE", Uint8Array.from(bytes));
}
