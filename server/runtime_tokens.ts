/**
 * Runtime tokens: client tokens created, listed and revoked while the cluster runs, beside the
 * bootstrap tokens of the credentials file (auth.ts), which stay as they are.
 *
 * The list is one replicated record (the meta record {@linkcode TOKENS_META} of shard 0, where
 * the shard map lives too): meta records are kept apart from user keys, so no KV request can
 * read or change it, and every node reads the same list. Like the bootstrap tokens, a runtime
 * token is stored only as its SHA-256 hash, with an id, a role, an optional name, when it was
 * created and when it expires.
 *
 * This file holds the pure parts: validating a create request, the record's text form, and the
 * list changes (add with the limit, remove). The node's copy and its refresh are in
 * node/token_registry.ts.
 */
import { AspenError } from "../shard/mod.ts";
import type { TokenInfo } from "../api/mod.ts";
import type { TokenRole } from "./auth.ts";

/** The meta record (in shard 0) that holds the runtime tokens. */
export const TOKENS_META = "authTokens";
/** The most runtime tokens that are not expired; creating one more is refused. */
export const RUNTIME_TOKENS_MAX = 100;
/**
 * How long an expired token stays in the list, so that using it is answered "expired" rather
 * than "not valid". It is dropped at the next change after that, and at most
 * {@linkcode RUNTIME_TOKENS_MAX} expired tokens are kept (the longest expired go first).
 */
export const EXPIRED_TOKENS_RETAIN_MS = 24 * 60 * 60 * 1000;
/** The longest token name, in characters. */
export const TOKEN_NAME_CHARS_MAX = 64;
/** The longest token lifetime: five years, in seconds. */
export const TOKEN_TTL_SECONDS_MAX = 5 * 365 * 24 * 60 * 60;

/** One runtime token as replicated: never the token itself, only its hash. */
export interface RuntimeToken {
  /** 16 hex digits, random. */
  readonly id: string;
  /** SHA-256 of the token, 64 hex digits. */
  readonly hash: string;
  readonly role: TokenRole;
  readonly name: string | null;
  /** Wall-clock milliseconds. */
  readonly createdAtMs: number;
  /** Wall-clock milliseconds; null: it never expires. */
  readonly expiresAtMs: number | null;
}

/** A validated `POST /v1/auth/tokens` body. */
export interface TokenCreateRequest {
  readonly role: TokenRole;
  readonly name: string | null;
  readonly ttlSeconds: number | null;
}

/** A runtime token as the API lists it: no hash, times as ISO 8601 strings. */
export type TokenView = TokenInfo;

/** The fields of a `POST /v1/auth/tokens` body. */
export const TOKEN_CREATE_FIELDS: readonly string[] = ["role", "name", "ttlSeconds"];
const ID_PATTERN = /^[0-9a-f]{16}$/;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const CONTROL_PATTERN = /\p{Cc}/u;

/**
 * Checks a `POST /v1/auth/tokens` body.
 *
 * @throws {AspenError} `bad_request` naming the field that is wrong.
 */
export function parseTokenCreateRequest(body: unknown): TokenCreateRequest {
  const fail = (what: string, field: string) =>
    new AspenError("bad_request", `Cannot create a token: ${what}`, { field });
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw fail("the body must be a JSON object", "body");
  }
  const fields = body as Record<string, unknown>;
  for (const field of Object.keys(fields)) {
    if (!TOKEN_CREATE_FIELDS.includes(field)) {
      throw fail(`unknown field "${field}"; expected ${TOKEN_CREATE_FIELDS.join(", ")}`, field);
    }
  }
  const { role, name, ttlSeconds } = fields;
  if (role !== "root" && role !== "read") {
    throw fail(
      `"role" is ${JSON.stringify(role) ?? "missing"} but must be "root" or "read"`,
      "role",
    );
  }
  return { role, name: checkedName(name, fail), ttlSeconds: checkedTtl(ttlSeconds, fail) };
}

function checkedName(
  name: unknown,
  fail: (what: string, field: string) => AspenError,
): string | null {
  if (name === undefined || name === null) return null;
  if (typeof name !== "string") throw fail('"name" must be a string', "name");
  const chars = [...name].length;
  if (chars === 0 || chars > TOKEN_NAME_CHARS_MAX) {
    throw fail(
      `"name" has ${chars} characters but must have 1 to ${TOKEN_NAME_CHARS_MAX}`,
      "name",
    );
  }
  if (CONTROL_PATTERN.test(name)) throw fail('"name" must not hold control characters', "name");
  return name;
}

function checkedTtl(
  ttlSeconds: unknown,
  fail: (what: string, field: string) => AspenError,
): number | null {
  if (ttlSeconds === undefined || ttlSeconds === null) return null;
  const isValid = typeof ttlSeconds === "number" && Number.isSafeInteger(ttlSeconds) &&
    ttlSeconds >= 1 && ttlSeconds <= TOKEN_TTL_SECONDS_MAX;
  if (!isValid) {
    throw fail(
      `"ttlSeconds" is ${JSON.stringify(ttlSeconds)} but must be a whole number of seconds ` +
        `from 1 to ${TOKEN_TTL_SECONDS_MAX}`,
      "ttlSeconds",
    );
  }
  return ttlSeconds;
}

/** Whether `token` has expired at `nowMs` (wall clock). */
export function isExpired(token: RuntimeToken, nowMs: number): boolean {
  return token.expiresAtMs !== null && token.expiresAtMs <= nowMs;
}

/**
 * The list with `token` added, after dropping expired tokens past their retention.
 *
 * @throws {AspenError} `limit_exceeded` when {@linkcode RUNTIME_TOKENS_MAX} tokens are live.
 */
export function addToken(
  tokens: readonly RuntimeToken[],
  token: RuntimeToken,
  nowMs: number,
): RuntimeToken[] {
  const live = tokens.filter((item) => !isExpired(item, nowMs));
  if (live.length >= RUNTIME_TOKENS_MAX) {
    throw new AspenError(
      "limit_exceeded",
      `Cannot create a token: ${live.length} tokens exist and the limit is ` +
        `RUNTIME_TOKENS_MAX (${RUNTIME_TOKENS_MAX}); revoke one first`,
      { limit: RUNTIME_TOKENS_MAX },
    );
  }
  const retained = tokens
    .filter((item) =>
      isExpired(item, nowMs) && item.expiresAtMs! > nowMs - EXPIRED_TOKENS_RETAIN_MS
    )
    .sort((a, b) => b.expiresAtMs! - a.expiresAtMs!)
    .slice(0, RUNTIME_TOKENS_MAX);
  return [...live, ...retained, token].sort((a, b) => a.createdAtMs - b.createdAtMs);
}

/**
 * The list without the token `id`.
 *
 * @throws {AspenError} `token_not_found` when no token has that id.
 */
export function removeToken(tokens: readonly RuntimeToken[], id: string): RuntimeToken[] {
  const remaining = tokens.filter((token) => token.id !== id);
  if (remaining.length === tokens.length) {
    throw new AspenError("token_not_found", `Cannot revoke token "${id}": no such token`, { id });
  }
  return remaining;
}

/** The API view of a token at `nowMs`. */
export function tokenView(token: RuntimeToken, nowMs: number): TokenView {
  return {
    id: token.id,
    role: token.role,
    name: token.name,
    createdAt: new Date(token.createdAtMs).toISOString(),
    expiresAt: token.expiresAtMs === null ? null : new Date(token.expiresAtMs).toISOString(),
    isExpired: isExpired(token, nowMs),
  };
}

/** Whether `id` has the form of a token id (so that a path segment can be checked). */
export function isTokenId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** The record's text: `{"format": 1, "tokens": [...]}`. */
export function encodeRuntimeTokens(tokens: readonly RuntimeToken[]): string {
  return JSON.stringify({ format: 1, tokens });
}

/**
 * Reads the record's text; null (no record yet) is the empty list.
 *
 * @throws {AspenError} `storage_corrupt` when the record is not a token list.
 */
export function decodeRuntimeTokens(text: string | null): RuntimeToken[] {
  if (text === null) return [];
  const fail = (what: string) =>
    new AspenError("storage_corrupt", `Cannot read the runtime tokens: ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AspenError("storage_corrupt", "Cannot read the runtime tokens: not JSON", {}, {
      cause: error,
    });
  }
  const record = value as { format?: unknown; tokens?: unknown } | null;
  if (record?.format !== 1 || !Array.isArray(record.tokens)) throw fail("not format 1");
  if (record.tokens.length > 2 * RUNTIME_TOKENS_MAX + 1) throw fail("too many tokens");
  return record.tokens.map((token: unknown) => {
    if (!isRuntimeToken(token)) throw fail(`a malformed token ${JSON.stringify(token)}`);
    return token;
  });
}

function isRuntimeToken(value: unknown): value is RuntimeToken {
  const token = value as Partial<RuntimeToken> | null;
  if (typeof token !== "object" || token === null) return false;
  return typeof token.id === "string" && ID_PATTERN.test(token.id) &&
    typeof token.hash === "string" && HASH_PATTERN.test(token.hash) &&
    (token.role === "root" || token.role === "read") &&
    (token.name === null || typeof token.name === "string") &&
    isTime(token.createdAtMs) && (token.expiresAtMs === null || isTime(token.expiresAtMs));
}

function isTime(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
