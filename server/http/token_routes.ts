/**
 * The runtime token routes, all root-only (a read token gets 403, even to list):
 * `POST /v1/auth/tokens` creates a token and shows it once, `GET /v1/auth/tokens` lists them
 * without secrets, `DELETE /v1/auth/tokens/{id}` revokes one cluster-wide.
 */
import type { Hono } from "hono";
import { AspenError } from "../../shard/mod.ts";
import type { TokenRegistry } from "../node/mod.ts";
import { isTokenId, parseTokenCreateRequest, TOKEN_CREATE_FIELDS } from "../runtime_tokens.ts";
import type { RequestAuth } from "./auth_middleware.ts";
import { readJsonObject } from "./body.ts";

/** Adds the token routes; `tokens` null (authentication off) answers them with 400. */
export function addTokenRoutes(
  app: Hono,
  options: {
    readonly tokens: Pick<TokenRegistry, "create" | "list" | "revoke"> | null;
    readonly auth: RequestAuth;
  },
): void {
  const registry = (action: string) => {
    if (options.tokens === null) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: authentication is off on this node (auth.enabled = false)`,
      );
    }
    return options.tokens;
  };
  app.post("/v1/auth/tokens", async function createToken(c) {
    const action = "create a token";
    options.auth.requireRoot(c, action);
    const tokens = registry(action);
    const body = await readJsonObject(c.req.raw, action, TOKEN_CREATE_FIELDS);
    return c.json(await tokens.create(parseTokenCreateRequest(body)));
  });
  app.get("/v1/auth/tokens", async function listTokens(c) {
    const action = "list tokens";
    options.auth.requireRoot(c, action);
    return c.json({ tokens: await registry(action).list() });
  });
  app.delete("/v1/auth/tokens/:id", async function revokeToken(c) {
    const id = c.req.param("id");
    const action = `revoke token "${id}"`;
    options.auth.requireRoot(c, action);
    if (!isTokenId(id)) {
      throw new AspenError("bad_request", `Cannot ${action}: a token id is 16 hex digits`, {
        field: "id",
      });
    }
    return c.json({ revoked: true, token: await registry(action).revoke(id) });
  });
}
