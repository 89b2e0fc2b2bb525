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
  certificateDer,
  checkPeerCertificate,
  type ClusterCa,
  createClusterCa,
  createPeerIdentity,
  isCertificateIssuedBy,
  loadOrCreatePeerIdentity,
  parseCaCertificate,
  PEER_CERTIFICATE_FILE,
  PEER_KEY_FILE,
  writePeerIdentity,
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

/** The legacy CA and node 2's identity as a node made it before node-bound certificates. */
const testdata = (file: string) =>
  Deno.readTextFile(new URL(`./testdata/x509/${file}`, import.meta.url));
const legacyCa: ClusterCa = {
  keyPem: await testdata("legacy_ca_key.pem"),
  certificatePem: await testdata("legacy_ca_cert.pem"),
};
const preNodeId = {
  keyPem: await testdata("pre_node_id_peer_key.pem"),
  certificatePem: await testdata("pre_node_id_peer_cert.pem"),
};

async function withPreNodeIdDir(run: (directory: string) => Promise<void>): Promise<void> {
  const directory = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${directory}/${PEER_KEY_FILE}`, preNodeId.keyPem);
    await Deno.writeTextFile(`${directory}/${PEER_CERTIFICATE_FILE}`, preNodeId.certificatePem);
    await run(directory);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
}

const isBadConfig = (pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof AspenError && error.code === "bad_config", String(error));
  assert.match(error.message, pattern);
  return true;
};

Deno.test("loadOrCreatePeerIdentity() reissues a certificate without a node id", async () => {
  await withPreNodeIdDir(async (directory) => {
    const options = { directory, nodeId: 2, listenHost: "127.0.0.1", ca: legacyCa };
    const identity = await loadOrCreatePeerIdentity(options);
    assert.notEqual(identity.certificatePem, preNodeId.certificatePem);
    assert.match(new X509Certificate(identity.certificatePem).subjectAltName!, /aspen:\/\/node\/2/);
    const stored = await Deno.readTextFile(`${directory}/${PEER_CERTIFICATE_FILE}`);
    assert.equal(stored, identity.certificatePem, "the reissued certificate is stored");
    const keyless = { ...options, ca: { ...legacyCa, keyPem: null } };
    assert.deepEqual(await loadOrCreatePeerIdentity(keyless), identity, "then used keyless");
  });
});

Deno.test("loadOrCreatePeerIdentity() without the CA key names what is missing", async (t) => {
  const keyless = { certificatePem: legacyCa.certificatePem, keyPem: null };
  await t.step("a certificate from before node-bound certificates", async () => {
    await withPreNodeIdDir(async (directory) => {
      await assert.rejects(
        () => loadOrCreatePeerIdentity({ directory, nodeId: 2, listenHost: "::", ca: keyless }),
        isBadConfig(/names no node id .*no CA key.*aspen cluster issue-node --node-id 2/),
      );
    });
  });
  await t.step("another node's certificate", async () => {
    await withPreNodeIdDir(async (directory) => {
      const other = await createPeerIdentity({ nodeId: 3, listenHost: "::", ca: legacyCa });
      await writePeerIdentity(directory, other);
      await assert.rejects(
        () => loadOrCreatePeerIdentity({ directory, nodeId: 2, listenHost: "::", ca: keyless }),
        isBadConfig(/is for node 3, not 2/),
      );
    });
  });
  await t.step("no identity at all", async () => {
    const directory = await Deno.makeTempDir();
    try {
      await assert.rejects(
        () => loadOrCreatePeerIdentity({ directory, nodeId: 2, listenHost: "::", ca: keyless }),
        isBadConfig(/there is no peer identity/),
      );
      const issued = await createPeerIdentity({ nodeId: 2, listenHost: "::", ca: legacyCa });
      await writePeerIdentity(directory, issued);
      const loaded = await loadOrCreatePeerIdentity({
        directory,
        nodeId: 2,
        listenHost: "::",
        ca: keyless,
      });
      assert.deepEqual(loaded, issued, "an issued identity is used without the CA key");
    } finally {
      await Deno.remove(directory, { recursive: true });
    }
  });
});

Deno.test("checkPeerCertificate() accepts the CA's certificate for the id only", async () => {
  const caCertificate = parseCaCertificate(ca.certificatePem);
  const check = (certificatePem: string, nodeId: number) =>
    checkPeerCertificate(certificateDer(certificatePem)!, {
      ca: caCertificate,
      nodeId,
      now: new Date(),
    });
  const two = await createPeerIdentity({ nodeId: 2, listenHost: "::", ca });
  const accepted = await check(two.certificatePem, 2);
  assert.ok("publicKey" in accepted && accepted.fingerprint === two.fingerprint);
  const refusal = async (certificatePem: string, nodeId: number) => {
    const result = await check(certificatePem, nodeId);
    assert.ok("refused" in result, "refused");
    return result.refused;
  };
  assert.match(await refusal(two.certificatePem, 3), /names node 2, not node 3/);
  const foreign = await createPeerIdentity({ nodeId: 2, listenHost: "::", ca: otherCa });
  assert.match(await refusal(foreign.certificatePem, 2), /not issued by the cluster CA/);
  assert.match(await refusal(ca.certificatePem, 2), /names no node/);
  const legacy = parseCaCertificate(legacyCa.certificatePem);
  const old = await checkPeerCertificate(certificateDer(preNodeId.certificatePem)!, {
    ca: legacy,
    nodeId: 2,
    now: new Date(),
  });
  assert.ok("refused" in old && /names no node/.test(old.refused), "no node id, no entry");
  const past = await checkPeerCertificate(certificateDer(two.certificatePem)!, {
    ca: caCertificate,
    nodeId: 2,
    now: new Date("2019-06-01T00:00:00Z"),
  });
  assert.ok("refused" in past && /not valid now/.test(past.refused), "outside its validity");
});

function pem(bytes: number[]): string {
  return pemEncode("CERTIFICATE", Uint8Array.from(bytes));
}
