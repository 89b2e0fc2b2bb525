/**
 * Checks the X.509 reader on certificates Aspen did not make with `@peculiar/x509`: fixtures in
 * testdata/x509 made by the hand-written DER encoder Aspen used before (a CA and a node
 * certificate it issued, as a node upgraded in place finds them on disk) and by the openssl
 * command line (self-signed: Ed25519 with DNS, IPv6 and IPv4 subjectAltNames, and P-256 signed
 * with SHA-256 and with SHA-384). Each parses; only a P-256 signature over SHA-256 counts as
 * issued, so the Ed25519 and SHA-384 ones are refused even by their own key. The fixtures are
 * also read with node:crypto, an independent parser, so that a fixture cannot rot unnoticed.
 */

import assert from "node:assert/strict";
import { X509Certificate as NodeX509Certificate } from "node:crypto";
import { isIssuedBy, parseCertificate, pemDecode, spkiOf } from "./_x509.ts";
import { createPeerIdentity, isCertificateIssuedBy } from "./identity.ts";

const legacyCa = {
  keyPem: await fixture("legacy_ca_key.pem"),
  certificatePem: await fixture("legacy_ca_cert.pem"),
};

Deno.test("parseCertificate() reads certificates from other encoders", async (t) => {
  const cases = [
    { file: "legacy_ca_cert.pem", subject: "CN=aspen-cluster-ca", isSelfIssued: true },
    { file: "legacy_node_cert.pem", subject: "CN=aspen-node-9", isSelfIssued: false },
    {
      file: "openssl_ed25519_cert.pem",
      subject: "O=Foreign, CN=foreign-ed25519",
      isSelfIssued: false,
    },
    { file: "openssl_p256_sha256_cert.pem", subject: "CN=foreign-p256", isSelfIssued: true },
    { file: "openssl_p256_sha384_cert.pem", subject: "CN=foreign-p256-sha384" },
  ];
  for (const testCase of cases) {
    await t.step(testCase.file, async () => {
      const pem = await fixture(testCase.file);
      const certificate = parseCertificate(pemDecode("CERTIFICATE", pem)!);
      assert.notEqual(certificate, null);
      assert.equal(certificate!.subject, testCase.subject);
      const reference = new NodeX509Certificate(pem);
      const referenceSpki = reference.publicKey.export({ type: "spki", format: "der" });
      assert.deepEqual(spkiOf(certificate!), new Uint8Array(referenceSpki));
      const isSelfIssued = await isIssuedBy(certificate!, certificate!);
      assert.equal(isSelfIssued, testCase.isSelfIssued ?? false, "self-issued check");
    });
  }
});

Deno.test("a node certificate from before @peculiar/x509 still verifies with its CA", async () => {
  const legacyNode = await fixture("legacy_node_cert.pem");
  assert.equal(await isCertificateIssuedBy(legacyNode, legacyCa.certificatePem), true);
  const foreign = await fixture("openssl_p256_sha256_cert.pem");
  assert.equal(await isCertificateIssuedBy(legacyNode, foreign), false);
});

Deno.test("a CA from before @peculiar/x509 issues certificates naming it as it is", async () => {
  const identity = await createPeerIdentity({ nodeId: 4, listenHost: "[fd00::4]", ca: legacyCa });
  const certificate = new NodeX509Certificate(identity.certificatePem);
  const caCertificate = new NodeX509Certificate(legacyCa.certificatePem);
  assert.ok(certificate.checkIssued(caCertificate), "node:crypto sees the legacy CA as issuer");
  assert.ok(certificate.verify(caCertificate.publicKey), "the legacy CA's key signed it");
  assert.equal(
    certificate.subjectAltName,
    "DNS:localhost, DNS:node-4.aspen.invalid, URI:aspen://node/4, IP Address:fd00::4",
  );
  // The legacy CA's name is a UTF8String, the library's own choice a PrintableString: the
  // issuer must keep the CA's encoding, or webpki, which compares names as bytes, would not
  // chain the two.
  const caDer = pemDecode("CERTIFICATE", legacyCa.certificatePem)!;
  const der = pemDecode("CERTIFICATE", identity.certificatePem)!;
  const caName = parseCertificate(caDer)!.subjectName.toArrayBuffer();
  const issuerName = parseCertificate(der)!.issuerName.toArrayBuffer();
  assert.deepEqual(new Uint8Array(issuerName), new Uint8Array(caName));
  assert.ok(new Uint8Array(caName).includes(0x0c), "the fixture's name is a UTF8String");
});

async function fixture(file: string): Promise<string> {
  return await Deno.readTextFile(new URL(`./testdata/x509/${file}`, import.meta.url));
}
