/**
 * Benchmarks of the X.509 layer (`deno bench -A transport/identity_bench.ts`): making a cluster
 * CA (key pair plus self-signed certificate), issuing a node identity (key pair, certificate,
 * then parsing it back and checking the CA's signature), and checking a stored certificate
 * against the CA from PEM (parse both, verify one signature: what a restart does).
 *
 * Key generation and ECDSA are WebCrypto's in every case, so the difference between two X.509
 * implementations shows mostly in the last benchmark, which is parsing plus one verification.
 */

import { createClusterCa, createPeerIdentity, isCertificateIssuedBy } from "./identity.ts";

const ca = await createClusterCa();
const identity = await createPeerIdentity({ nodeId: 1, listenHost: "10.0.0.1", ca });

Deno.bench("createClusterCa()", async () => {
  await createClusterCa();
});

Deno.bench("createPeerIdentity() (issue, parse back, verify)", async () => {
  await createPeerIdentity({ nodeId: 2, listenHost: "[fd00::2]", ca });
});

Deno.bench("isCertificateIssuedBy() (parse two PEM certificates, verify)", async () => {
  const isIssued = await isCertificateIssuedBy(identity.certificatePem, ca.certificatePem);
  if (!isIssued) throw new Error("the node certificate no longer verifies");
});
