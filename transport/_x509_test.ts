/**
 * Checks the X.509 layer against the real consumer, rustls under Deno's QUIC: a PeerTransport
 * that trusts the cluster CA dials a bare QUIC listener presenting each kind of certificate.
 * The CA-issued node certificate passes TLS (the listener's accept() resolves); a certificate
 * issued by another CA of the same name (BadSignature), a self-signed node certificate
 * (UnknownIssuer), a forgery that names the CA as issuer but was signed by another key
 * (BadSignature) and the CA certificate itself (CaUsedAsEndEntity) are refused, and the
 * listener's accept() fails. A CA made by the hand-written encoder Aspen used before
 * `@peculiar/x509` (a fixture) still issues node certificates that rustls accepts.
 * `isCertificateIssuedBy()` refuses the same certificates without a network;
 * parseCertificate() returns null, never throws, on every truncation and byte flip; IP
 * literals are recognised and made canonical for the subjectAltName.
 */

import assert from "node:assert/strict";
import {
  commonName,
  derOf,
  ECDSA_P256,
  ipLiteral,
  issueCertificate,
  parseCertificate,
  pemDecode,
  pemEncode,
  spkiOf,
} from "./_x509.ts";
import { ALPN_SHARDED } from "./frame_codec.ts";
import {
  type ClusterCa,
  createClusterCa,
  createPeerIdentity,
  isCertificateIssuedBy,
} from "./identity.ts";
import type { LogFields } from "./logger.ts";
import { PeerTransport } from "./peer_transport.ts";

/** A wait that is not over within this long is a failure, not a hang. */
const HANG_GUARD_MS = 20_000;
const SECRET = "x509-test-cluster-secret-0123456789";

const ca = await createClusterCa();
const otherCa = await createClusterCa();
/** A CA made by the hand-written DER encoder that Aspen used before `@peculiar/x509`. */
const legacyCa: ClusterCa = {
  keyPem: await Deno.readTextFile(new URL("./testdata/x509/legacy_ca_key.pem", import.meta.url)),
  certificatePem: await Deno.readTextFile(
    new URL("./testdata/x509/legacy_ca_cert.pem", import.meta.url),
  ),
};

/** A key and a certificate a listener presents. */
interface Presented {
  readonly keyPem: string;
  readonly certificatePem: string;
}

Deno.test("the dialer's TLS accepts only a certificate that the cluster CA issued", async (t) => {
  const selfSigned = await selfSignedLeaf();
  const cases: {
    name: string;
    presented: Presented;
    refusal: string | null;
    trust?: ClusterCa;
  }[] = [
    {
      name: "a node certificate the CA issued",
      presented: await createPeerIdentity({ nodeId: 2, listenHost: "127.0.0.1", ca }),
      refusal: null,
    },
    {
      name: "a node certificate another CA of the same name issued",
      presented: await createPeerIdentity({ nodeId: 2, listenHost: "127.0.0.1", ca: otherCa }),
      refusal: "BadSignature",
    },
    { name: "a self-signed node certificate", presented: selfSigned, refusal: "UnknownIssuer" },
    {
      name: "a forgery naming the CA as issuer, signed by another key",
      presented: { keyPem: selfSigned.keyPem, certificatePem: await forgedLeaf(selfSigned) },
      refusal: "BadSignature",
    },
    {
      name: "a node certificate the CA issued for another node",
      presented: await createPeerIdentity({ nodeId: 3, listenHost: "127.0.0.1", ca }),
      refusal: 'not valid for name "node-2.aspen.invalid"',
    },
    { name: "the CA certificate itself", presented: ca, refusal: "CaUsedAsEndEntity" },
    {
      name: "a node certificate issued today by a CA made before @peculiar/x509",
      presented: await createPeerIdentity({ nodeId: 2, listenHost: "127.0.0.1", ca: legacyCa }),
      refusal: null,
      trust: legacyCa,
    },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, async () => {
      const outcome = await dialOnce(testCase.presented, testCase.trust ?? ca);
      if (testCase.refusal === null) {
        assert.equal(outcome.accepted, true, "the listener finished TLS");
        assert.doesNotMatch(outcome.dialError, /invalid peer certificate/);
      } else {
        assert.equal(outcome.accepted, false, "the listener's accept() failed");
        const pattern = new RegExp(`invalid peer certificate: .*${testCase.refusal}`);
        assert.match(outcome.dialError, pattern);
      }
    });
  }
});

Deno.test("isCertificateIssuedBy() refuses what the CA did not sign", async (t) => {
  const genuine = await createPeerIdentity({ nodeId: 3, listenHost: "127.0.0.1", ca });
  const foreign = await createPeerIdentity({ nodeId: 3, listenHost: "127.0.0.1", ca: otherCa });
  const selfSigned = await selfSignedLeaf();
  const cases = [
    { name: "a certificate the CA issued", pem: genuine.certificatePem, expected: true },
    { name: "the CA itself (self-signed)", pem: ca.certificatePem, expected: true },
    { name: "one another CA of the same name issued", pem: foreign.certificatePem },
    { name: "a self-signed node certificate", pem: selfSigned.certificatePem },
    { name: "one naming the CA as issuer, signed by another key", pem: await forgedLeaf() },
    { name: "garbage", pem: pem([0x30, 3, 2, 1, 0]) },
    { name: "no PEM at all", pem: "" },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, async () => {
      const isIssued = await isCertificateIssuedBy(testCase.pem, ca.certificatePem);
      assert.equal(isIssued, testCase.expected ?? false);
    });
  }
});

Deno.test("parseCertificate() returns null, never throws, on damaged certificates", async () => {
  const identity = await createPeerIdentity({ nodeId: 3, listenHost: "127.0.0.1", ca });
  const der = pemDecode("CERTIFICATE", identity.certificatePem)!;
  assert.notEqual(parseCertificate(der), null);
  for (let length = 0; length < der.length; length += 1) {
    assert.equal(parseCertificate(der.subarray(0, length)), null, `cut at ${length}`);
  }
  let parsedCount = 0;
  for (let i = 0; i < der.length; i += 1) {
    const damaged = der.slice();
    damaged[i] = damaged[i]! ^ 0xff;
    // Any result but a throw is fine: a damaged certificate that still parses fails the
    // signature check that always follows.
    if (parseCertificate(damaged) !== null) parsedCount += 1;
  }
  assert.ok(parsedCount < der.length, "some flips break the structure");
});

Deno.test("ipLiteral() gives IP literals in canonical form and nothing else", async (t) => {
  const cases: { text: string; expected: string | null }[] = [
    { text: "127.0.0.1", expected: "127.0.0.1" },
    { text: "256.0.0.1", expected: null },
    { text: "::1", expected: "::1" },
    { text: "::", expected: "::" },
    { text: "0:0:0:0:0:0:0:0", expected: "::" },
    { text: "FE80:0:0:0:0:0:1:2", expected: "fe80::1:2" },
    { text: "1:2:3:4:5:6:7:8", expected: "1:2:3:4:5:6:7:8" },
    { text: "::ffff:10.0.0.1", expected: "::ffff:a00:1" },
    { text: "1:2:3:4:5:6:7", expected: null },
    { text: "1::2::3", expected: null },
    { text: "1:2:3:4:5:6:7:8g", expected: null },
    { text: "fe80::1%eth0", expected: null },
    { text: "localhost", expected: null },
    { text: "db1.example.com", expected: null },
  ];
  for (const testCase of cases) {
    await t.step(testCase.text, () => {
      assert.equal(ipLiteral(testCase.text), testCase.expected);
    });
  }
});

/**
 * Lets a transport that trusts `trust` dial a bare QUIC listener presenting `presented`, once.
 * Resolves with whether the listener finished TLS and the error the dialer logged (a TLS
 * refusal, or for an accepted certificate the handshake failure after the listener hangs up).
 */
async function dialOnce(
  presented: Presented,
  trust: ClusterCa,
): Promise<{ accepted: boolean; dialError: string }> {
  const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1", port: 0 });
  const listener = endpoint.listen({
    alpnProtocols: [ALPN_SHARDED],
    key: presented.keyPem,
    cert: presented.certificatePem,
  });
  const accepted = listener.incoming().then((incoming) => incoming.accept()).then(
    (conn) => {
      conn.close({ closeCode: 0, reason: "test listener" });
      return conn.closed.then(() => true, () => true);
    },
    () => false,
  );
  const dialError = Promise.withResolvers<string>();
  const log = (_message: string, fields?: LogFields) => dialError.resolve(String(fields?.error));
  const dialer = await PeerTransport.start({
    nodeId: 1,
    listen: "127.0.0.1:0",
    identity: await createPeerIdentity({ nodeId: 1, listenHost: "127.0.0.1", ca: trust }),
    trust: { caCertificatePem: trust.certificatePem },
    clusterSecret: SECRET,
    peers: new Map([[2, { address: `127.0.0.1:${endpoint.addr.port}` }]]),
    handlers: {
      hostsShard: () => true,
      onRaftMessage: () => {},
      onRequest: () => Promise.resolve(new Uint8Array(0)),
    },
    // One dial only: the retry would come long after the test has finished.
    limits: { reconnectDelayMsMin: HANG_GUARD_MS, reconnectDelayMsMax: HANG_GUARD_MS },
    logger: { info: () => {}, warn: log, error: log },
  });
  const guard = setTimeout(() => dialError.reject(new Error("no dial outcome")), HANG_GUARD_MS);
  try {
    return { accepted: await accepted, dialError: await dialError.promise };
  } finally {
    clearTimeout(guard);
    await dialer.close();
    listener.stop();
    endpoint.close();
  }
}

/** A node certificate that signs itself: what a node of no cluster would present. */
async function selfSignedLeaf(): Promise<Presented & { privateKey: CryptoKey }> {
  const keyPair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keyPair.publicKey));
  const name = commonName("aspen-node-2");
  const certificate = await issueCertificate({
    profile: { kind: "leaf", listenHost: "127.0.0.1", nodeId: 2 },
    subjectName: name,
    subjectSpki: spki,
    issuer: { name, spki, privateKey: keyPair.privateKey },
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey));
  return {
    keyPem: pemEncode("PRIVATE KEY", pkcs8),
    certificatePem: pemEncode("CERTIFICATE", derOf(certificate)),
    privateKey: keyPair.privateKey,
  };
}

/**
 * A node certificate whose issuer is the CA's name (and key identifier), signed by another key:
 * by default a fresh one, or the key of `subject` so that it can be served by a listener.
 */
async function forgedLeaf(subject?: { keyPem: string; privateKey: CryptoKey }): Promise<string> {
  let privateKey = subject?.privateKey;
  if (privateKey === undefined) {
    const keyPair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
    privateKey = keyPair.privateKey;
  }
  const caCertificate = parseCertificate(pemDecode("CERTIFICATE", ca.certificatePem)!)!;
  const certificate = await issueCertificate({
    profile: { kind: "leaf", listenHost: "127.0.0.1", nodeId: 2 },
    subjectName: commonName("aspen-node-2"),
    subjectSpki: await publicSpkiOf(privateKey),
    issuer: { name: caCertificate.subjectName, spki: spkiOf(caCertificate), privateKey },
  });
  return pemEncode("CERTIFICATE", derOf(certificate));
}

async function publicSpkiOf(privateKey: CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const publicJwk = { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! };
  const publicKey = await crypto.subtle.importKey("jwk", publicJwk, ECDSA_P256, true, ["verify"]);
  return new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
}

function pem(bytes: number[]): string {
  return pemEncode("CERTIFICATE", Uint8Array.from(bytes));
}
