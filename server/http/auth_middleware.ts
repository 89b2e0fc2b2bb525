/**
 * Authentication of API requests: Hono's `bearer-auth` middleware reads and checks the
 * `Authorization: Bearer <token>` header, and this file adds what it cannot express.
 *
 * `bearer-auth` owns the header: a missing header, a malformed one (another scheme, characters
 * a bearer token cannot hold) and a rejected token each end the request with 401 and a
 * `WWW-Authenticate` challenge. Its `token` option compares plaintext tokens, but Aspen keeps
 * only SHA-256 hashes (a stolen credentials file or token record must let nobody in), so the
 * check itself is the `verifyToken` callback: the node's token registry, which compares hashes
 * in constant time. What stays here: roles (a read token may only read; some routes need root),
 * an expired token answered as expired, and our JSON error body on every refusal.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { AspenError } from "../../shard/mod.ts";
import type { TokenRole } from "../auth.ts";
import type { TokenVerdict } from "../node/mod.ts";
import { errorResponse } from "./errors.ts";

/** What checks tokens (the node's token registry). */
export interface TokenAuthority {
  /** @throws {AspenError} when the token cannot be checked now (`shard_unavailable`). */
  verify(token: string): Promise<TokenVerdict>;
}

/** Methods that only read; everything else needs a root token. */
const READ_METHODS = new Set(["GET", "HEAD"]);

/** The middleware and the role of each authenticated request. */
export interface RequestAuth {
  /** Runs in order on every authenticated route. */
  readonly middleware: readonly MiddlewareHandler[];
  /** The role of the request's token; `root` when authentication is off. */
  roleOf(c: Context): TokenRole;
  /**
   * Refuses a request whose token is not root.
   *
   * @throws {AspenError} `forbidden` naming `action`.
   */
  requireRoot(c: Context, action: string): void;
}

/** Builds request authentication over `authority`; null turns authentication off. */
export function createRequestAuth(authority: TokenAuthority | null): RequestAuth {
  // Keyed by the request's Context, not by c.req.raw: the body-limit middleware that runs after
  // authentication replaces the raw Request with one that counts the bytes of its body.
  const roles = new WeakMap<Context, TokenRole>();
  const refusals = new WeakMap<Context, AspenError>();
  const roleOf = (c: Context): TokenRole => {
    if (authority === null) return "root";
    const role = roles.get(c);
    if (role === undefined) throw new AspenError("unauthorized", "Cannot authorize: no token");
    return role;
  };
  const refuse = (c: Context) =>
    jsonError(
      refusals.get(c) ??
        new AspenError("unauthorized", "Cannot authorize: send Authorization: Bearer <token>"),
    );
  const bearer = bearerAuth({
    verifyToken: async function verifyBearer(token, c) {
      const verdict = await authority!.verify(token);
      if (verdict.kind === "accepted") {
        roles.set(c, verdict.role);
        return true;
      }
      refusals.set(c, refusalOf(verdict));
      return false;
    },
    noAuthenticationHeader: { message: refuse },
    invalidAuthenticationHeader: { message: refuse },
    invalidToken: { message: refuse },
  });
  const checkRole: MiddlewareHandler = async function checkRole(c, next) {
    if (roleOf(c) === "read" && !READ_METHODS.has(c.req.method)) {
      throw new AspenError("forbidden", `Cannot ${c.req.method}: this token is read-only`);
    }
    await next();
  };
  return {
    middleware: authority === null ? [] : [bearer, checkRole],
    roleOf,
    requireRoot(c, action) {
      if (roleOf(c) !== "root") {
        throw new AspenError("forbidden", `Cannot ${action}: this needs a root token`);
      }
    },
  };
}

function refusalOf(verdict: Exclude<TokenVerdict, { kind: "accepted" }>): AspenError {
  if (verdict.kind === "expired") {
    const expiresAt = new Date(verdict.expiresAtMs).toISOString();
    return new AspenError("unauthorized", `Cannot authorize: the token expired at ${expiresAt}`, {
      expiresAt,
    });
  }
  return new AspenError("unauthorized", "Cannot authorize: the token is not valid");
}

/** A JSON error response (bearer-auth adds its WWW-Authenticate challenge to it). */
function jsonError(error: AspenError): Response {
  const { status, body } = errorResponse(error);
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}
