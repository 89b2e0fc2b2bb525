/**
 * @module
 * The web console: a Preact single-page app (sources in ui/app/) that every node serves at `/`.
 * This module hands the server the built assets (ui/bundle/mod.ts, made by ui/build.ts); the
 * server needs nothing else to serve the console, and no file beside the executable.
 *
 * Allowed dependencies: ui/ files and the client contract (api/mod.ts, a leaf: its types, its
 * ApiError and its fetch-based client). The browser code talks to the server over HTTP only;
 * nothing in ui/ imports server, transport, shard or raft code.
 *
 * @example
 * ```ts
 * import { consoleAsset } from "./mod.ts";
 * function serveConsole(request: Request): Response | null {
 *   const asset = consoleAsset(new URL(request.url).pathname);
 *   return asset === null ? null : new Response(asset.body, { headers: asset.headers });
 * }
 * ```
 */
import { APP_CSS, APP_JS, ASSET_VERSION, INDEX_HTML } from "./bundle/mod.ts";

export { APP_CSS, APP_JS, INDEX_HTML } from "./bundle/mod.ts";

/** One file of the console, ready to send. */
export interface ConsoleAsset {
  readonly body: string;
  readonly contentType: string;
  /** Every header to send with it: content type, caching, and for the page, security. */
  readonly headers: Readonly<Record<string, string>>;
}

/** The version of the built assets (a hash), for logs and for an ETag if the server wants one. */
export const CONSOLE_ASSET_VERSION: string = ASSET_VERSION;

/**
 * What the page may load: only its own script, stylesheet and API, plus its inline icon. The
 * browser tests run the console under exactly this policy.
 */
export const CONSOLE_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function asset(body: string, contentType: string): ConsoleAsset {
  const headers: Record<string, string> = {
    "content-type": contentType,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
  };
  if (contentType.startsWith("text/html")) {
    headers["content-security-policy"] = CONSOLE_CONTENT_SECURITY_POLICY;
    headers["referrer-policy"] = "no-referrer";
  }
  return { body, contentType, headers };
}

const PAGE = asset(INDEX_HTML, "text/html; charset=utf-8");

const ASSETS: ReadonlyMap<string, ConsoleAsset> = new Map([
  ["/", PAGE],
  ["/index.html", PAGE],
  ["/app.js", asset(APP_JS, "text/javascript; charset=utf-8")],
  ["/app.css", asset(APP_CSS, "text/css; charset=utf-8")],
]);

/** The paths the console answers, for the server's router. */
export const CONSOLE_PATHS: readonly string[] = [...ASSETS.keys()];

/**
 * The console file at URL path `path` (without query string), or null if the console has none
 * there. Pages are chosen by the URL's hash, so `/` is the only page the server must serve.
 *
 * @example
 * ```ts
 * import { consoleAsset } from "./mod.ts";
 * consoleAsset("/app.js")?.contentType; // "text/javascript; charset=utf-8"
 * consoleAsset("/nope"); // null
 * ```
 */
export function consoleAsset(path: string): ConsoleAsset | null {
  return ASSETS.get(path) ?? null;
}
