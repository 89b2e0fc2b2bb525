/**
 * admitNode() with a real cluster CA and an in-memory members record: a node's own public key
 * comes back certified for its node id (the certificate verifies with the CA and names only
 * that node), the answer's credentials lack the CA key, the node is recorded `joining`; a
 * member without the CA key, a used id and every malformed field are refused with their codes.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { AspenError } from "../../shard/mod.ts";
import {
  certificateDer,
  checkPeerCertificate,
  createClusterCa,
  createPeerKey,
  parseCaCertificate,
} from "../../transport/mod.ts";
import { createCredentials, parseCredentials, withoutCaKey } from "../auth.ts";
import { memberOf, type MembersRecord, seedMembers } from "./members.ts";
import { type AdmissionSources, admitNode } from "./node_admission.ts";

const random = (count: number) => new Uint8Array(randomBytes(count));
const codeIs = (code: string) => (error: unknown) =>
  error instanceof AspenError && error.code === code;

async function setup() {
  const { credentials } = await createCredentials(random, createClusterCa);
  const state = {
    record: seedMembers([1, 2, 3].map((id) => ({ id, address: `127.0.0.1:700${id}` })), {
      id: 1,
      httpAddress: "127.0.0.1:8001",
    }) as MembersRecord,
  };
  const sources: AdmissionSources = {
    credentials,
    update: (change) => {
      state.record = change(state.record);
      return Promise.resolve(state.record);
    },
    numShards: 4,
    replicationFactor: 3,
  };
  return { credentials, state, sources };
}

async function joinBody(nodeId: number) {
  const key = await createPeerKey();
  return {
    key,
    body: {
      nodeId,
      peerAddress: "127.0.0.1:7004",
      httpAddress: "127.0.0.1:8004",
      publicKey: btoa(String.fromCharCode(...key.spki)),
    },
  };
}

Deno.test("admitNode() certifies the node's own key and records it joining", async () => {
  const { credentials, state, sources } = await setup();
  const { body } = await joinBody(4);
  const answer = await admitNode(sources, body);
  equal(answer.clusterId, credentials.clusterId);
  equal(parseCredentials("answer", answer.credentials).caKeyPem, null);
  deepEqual(answer.members.map((member) => member.id), [1, 2, 3, 4]);
  equal(memberOf(state.record, 4)?.state, "joining");
  const der = certificateDer(answer.certificatePem);
  ok(der !== null, "the certificate is PEM");
  const ca = parseCaCertificate(credentials.caCertificatePem);
  const checked = await checkPeerCertificate(der, { ca, nodeId: 4, now: new Date() });
  ok(!("refused" in checked), JSON.stringify(checked));
  const other = await checkPeerCertificate(der, { ca, nodeId: 5, now: new Date() });
  ok("refused" in other, "it names node 4 only");
});

Deno.test("admitNode() refuses what it cannot admit, each with its code", async (t) => {
  const { sources } = await setup();
  await t.step("a member without the CA key", async () => {
    const keyless = { ...sources, credentials: withoutCaKey(sources.credentials) };
    await rejects(admitNode(keyless, (await joinBody(4)).body), codeIs("conflict"));
  });
  await t.step("a used id", async () => {
    const body = { ...(await joinBody(2)).body, peerAddress: "127.0.0.1:9999" };
    await rejects(admitNode(sources, body), codeIs("conflict"));
  });
  const { body } = await joinBody(5);
  const bad: [string, unknown][] = [
    ["not an object", [1]],
    ["an unknown field", { ...body, extra: 1 }],
    ["node id 0", { ...body, nodeId: 0 }],
    ["node id too large", { ...body, nodeId: 70_000 }],
    ["no port", { ...body, peerAddress: "localhost" }],
    ["not base64", { ...body, publicKey: "***" }],
    ["not a P-256 key", { ...body, publicKey: btoa("not a key") }],
  ];
  for (const [name, value] of bad) {
    await t.step(name, async () => {
      await rejects(admitNode(sources, value), codeIs("bad_request"));
    });
  }
});
