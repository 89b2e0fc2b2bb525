/**
 * The pure parts of runtime tokens: a create request is checked field by field (each refusal
 * names its field), the list keeps RUNTIME_TOKENS_MAX live tokens and a bounded tail of
 * recently expired ones, revoking an unknown id is token_not_found, and the record's text
 * round-trips while a damaged one is refused.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { AspenError } from "../shard/mod.ts";
import {
  addToken,
  decodeRuntimeTokens,
  encodeRuntimeTokens,
  EXPIRED_TOKENS_RETAIN_MS,
  parseTokenCreateRequest,
  removeToken,
  RUNTIME_TOKENS_MAX,
  type RuntimeToken,
  TOKEN_NAME_CHARS_MAX,
  TOKEN_TTL_SECONDS_MAX,
  tokenView,
} from "./runtime_tokens.ts";

const NOW_MS = 1_700_000_000_000;

function token(index: number, expiresAtMs: number | null = null): RuntimeToken {
  return {
    id: index.toString(16).padStart(16, "0"),
    hash: index.toString(16).padStart(64, "0"),
    role: index % 2 === 0 ? "root" : "read",
    name: null,
    createdAtMs: NOW_MS - 1_000_000 + index,
    expiresAtMs,
  };
}

function isBadField(field: string) {
  return (error: unknown) =>
    error instanceof AspenError && error.code === "bad_request" &&
    error.details.field === field && error.message.includes(field);
}

Deno.test("parseTokenCreateRequest() accepts a role with an optional name and ttl", () => {
  deepEqual(parseTokenCreateRequest({ role: "read" }), {
    role: "read",
    name: null,
    ttlSeconds: null,
  });
  deepEqual(parseTokenCreateRequest({ role: "root", name: "ci", ttlSeconds: 60 }), {
    role: "root",
    name: "ci",
    ttlSeconds: 60,
  });
  equal(
    parseTokenCreateRequest({ role: "read", ttlSeconds: TOKEN_TTL_SECONDS_MAX }).ttlSeconds,
    TOKEN_TTL_SECONDS_MAX,
  );
});

Deno.test("parseTokenCreateRequest() names the field that is wrong", async (t) => {
  const cases: [string, unknown, string][] = [
    ["not an object", [], "body"],
    ["no role", {}, "role"],
    ["unknown role", { role: "admin" }, "role"],
    ["unknown field", { role: "read", scope: "x" }, "scope"],
    ["ttl zero", { role: "read", ttlSeconds: 0 }, "ttlSeconds"],
    ["ttl fraction", { role: "read", ttlSeconds: 1.5 }, "ttlSeconds"],
    ["ttl text", { role: "read", ttlSeconds: "24h" }, "ttlSeconds"],
    ["ttl too long", { role: "read", ttlSeconds: TOKEN_TTL_SECONDS_MAX + 1 }, "ttlSeconds"],
    ["name not text", { role: "read", name: 5 }, "name"],
    ["name empty", { role: "read", name: "" }, "name"],
    ["name too long", { role: "read", name: "x".repeat(TOKEN_NAME_CHARS_MAX + 1) }, "name"],
    ["name with a newline", { role: "read", name: "a\nb" }, "name"],
  ];
  for (const [name, body, field] of cases) {
    await t.step(name, () => throws(() => parseTokenCreateRequest(body), isBadField(field)));
  }
});

Deno.test("addToken() refuses past RUNTIME_TOKENS_MAX live tokens; expired do not count", () => {
  const full = Array.from({ length: RUNTIME_TOKENS_MAX }, (_, index) => token(index + 1));
  throws(
    () => addToken(full, token(1_000), NOW_MS),
    (error: unknown) =>
      error instanceof AspenError && error.code === "limit_exceeded" &&
      error.message.includes("RUNTIME_TOKENS_MAX"),
  );
  const withExpired = [...full.slice(1), token(2_000, NOW_MS - 1)];
  equal(addToken(withExpired, token(1_000), NOW_MS).length, RUNTIME_TOKENS_MAX + 1);
});

Deno.test("addToken() drops tokens expired longer than EXPIRED_TOKENS_RETAIN_MS", () => {
  const recent = token(1, NOW_MS - EXPIRED_TOKENS_RETAIN_MS + 1);
  const old = token(2, NOW_MS - EXPIRED_TOKENS_RETAIN_MS - 1);
  const live = token(3, NOW_MS + 1);
  const next = addToken([recent, old, live], token(4), NOW_MS);
  deepEqual(next.map((item) => item.id), [recent.id, live.id, token(4).id]);
});

Deno.test("addToken() keeps at most RUNTIME_TOKENS_MAX expired tokens, the latest", () => {
  const expired = Array.from(
    { length: RUNTIME_TOKENS_MAX + 5 },
    (_, index) => token(index + 1, NOW_MS - 1_000 + index),
  );
  const next = addToken(expired, token(9_999), NOW_MS);
  equal(next.length, RUNTIME_TOKENS_MAX + 1);
  equal(next.some((item) => item.id === token(1).id), false, "the longest expired went first");
});

Deno.test("removeToken() removes by id; an unknown id is token_not_found", () => {
  deepEqual(removeToken([token(1), token(2)], token(1).id), [token(2)]);
  throws(
    () => removeToken([token(1)], token(2).id),
    (error: unknown) => error instanceof AspenError && error.code === "token_not_found",
  );
});

Deno.test("tokenView() shows no hash and says whether the token expired", () => {
  const view = tokenView(token(1, NOW_MS), NOW_MS);
  equal("hash" in view, false);
  equal(view.isExpired, true);
  equal(view.expiresAt, new Date(NOW_MS).toISOString());
  equal(tokenView(token(1), NOW_MS).isExpired, false);
});

Deno.test("the record round-trips; a damaged one is storage_corrupt", async (t) => {
  const tokens = [token(1), token(2, NOW_MS)];
  deepEqual(decodeRuntimeTokens(encodeRuntimeTokens(tokens)), tokens);
  deepEqual(decodeRuntimeTokens(null), []);
  const damaged = [
    "not json",
    "{}",
    '{"format":2,"tokens":[]}',
    JSON.stringify({ format: 1, tokens: [{ ...token(1), hash: "xyz" }] }),
    JSON.stringify({ format: 1, tokens: [{ ...token(1), role: "admin" }] }),
    JSON.stringify({ format: 1, tokens: [{ ...token(1), expiresAtMs: -1 }] }),
  ];
  for (const text of damaged) {
    await t.step(text.slice(0, 40), () => {
      throws(
        () => decodeRuntimeTokens(text),
        (error: unknown) => error instanceof AspenError && error.code === "storage_corrupt",
      );
    });
  }
});
