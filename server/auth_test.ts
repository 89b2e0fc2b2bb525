/**
 * Credentials and tokens: created tokens verify with their role, anything else does not, the
 * file round-trips, and a damaged or foreign file is refused with a message naming the problem.
 */
import { equal, match, notEqual, throws } from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  createCredentials,
  createTokenVerifier,
  formatCredentials,
  hashToken,
  parseCredentials,
  VERIFIED_TOKENS_MAX,
  verifyToken,
  withoutCaKey,
} from "./auth.ts";

const random = (count: number) => new Uint8Array(randomBytes(count));
/** A stand-in CA: these tests check the file format, not certificates (see tests/peer_*). */
const fakeCa = () =>
  Promise.resolve({
    certificatePem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    keyPem: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
  });

Deno.test("createCredentials() tokens verify with their roles, stored as hashes", async () => {
  const { credentials, rootToken, readToken } = await createCredentials(random, fakeCa);
  equal(verifyToken(credentials, rootToken), "root");
  equal(verifyToken(credentials, readToken), "read");
  notEqual(rootToken, readToken);
  const file = formatCredentials(credentials);
  equal(file.includes(rootToken), false);
  equal(file.includes(hashToken(rootToken)), true);
});

Deno.test("verifyToken() rejects wrong, empty, truncated and foreign tokens", async () => {
  const { credentials, rootToken } = await createCredentials(random, fakeCa);
  const other = await createCredentials(random, fakeCa);
  for (const token of ["", "aspen_", rootToken.slice(0, -1), rootToken + "x", other.rootToken]) {
    equal(verifyToken(credentials, token), null, JSON.stringify(token));
  }
});

Deno.test("createTokenVerifier() answers like verifyToken(), again and again", async () => {
  const { credentials, rootToken, readToken } = await createCredentials(random, fakeCa);
  const other = await createCredentials(random, fakeCa);
  const verify = createTokenVerifier(credentials);
  const bad = ["", "aspen_", rootToken.slice(0, -1), rootToken + "x", other.rootToken];
  for (let round = 0; round < 3; round++) {
    equal(verify(rootToken), "root");
    equal(verify(readToken), "read");
    for (const token of bad) equal(verify(token), null, JSON.stringify(token));
  }
});

Deno.test("createTokenVerifier() stays right past its memory bound", async () => {
  const { credentials } = await createCredentials(random, fakeCa);
  // More valid tokens than the verifier remembers: it starts over when full, answers the same.
  const tokens = Array.from({ length: VERIFIED_TOKENS_MAX + 6 }, (_, i) => `aspen_token${i}`);
  const verify = createTokenVerifier({
    ...credentials,
    tokens: tokens.map((token, i) => ({ hash: hashToken(token), role: i % 2 ? "read" : "root" })),
  });
  for (let round = 0; round < 2; round++) {
    tokens.forEach((token, i) => equal(verify(token), i % 2 ? "read" : "root"));
    equal(verify("aspen_token"), null);
  }
});

Deno.test("withoutCaKey() credentials round-trip without the key in the file", async () => {
  const { credentials } = await createCredentials(random, fakeCa);
  const text = formatCredentials(withoutCaKey(credentials));
  equal(text.includes("caKeyPem"), false);
  const parsed = parseCredentials("c.json", text);
  equal(parsed.caKeyPem, null);
  equal(parsed.caCertificatePem, credentials.caCertificatePem);
  equal(parsed.secret, credentials.secret);
});

Deno.test("parseCredentials() round-trips and refuses damaged files", async (t) => {
  const { credentials } = await createCredentials(random, fakeCa);
  const text = formatCredentials(credentials);
  equal(JSON.stringify(parseCredentials("c.json", text)), JSON.stringify(credentials));
  const cases: [string, string, RegExp][] = [
    ["not JSON", "{", /not valid JSON/],
    ["wrong format", '{"format": 2}', /not an Aspen credentials file/],
    ["short secret", text.replace(credentials.secret, "abcd"), /secret must be 64 hex/],
    ["bad role", text.replace('"root"', '"admin"'), /role "root" or "read"/],
    ["no CA", text.replace("BEGIN CERTIFICATE", "BEGIN NOTHING"), /CA certificate in PEM/],
    ["a CA key that is not PEM", text.replace("BEGIN PRIVATE KEY", "BEGIN X"), /CA key in PEM/],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => {
      throws(() => parseCredentials("c.json", input), (error: Error) => {
        match(error.message, /Cannot read cluster credentials "c\.json"/);
        match(error.message, expected);
        return true;
      });
    });
  }
});
