/**
 * @module
 * The web console: a Preact single-page app (sources in ui/app/) that every node serves at `/`.
 * This module hands the server the built assets; the server needs nothing else to serve the
 * console, and no file beside the executable.
 *
 * Allowed dependencies: ui/ files only. The browser code talks to the server over HTTP and may
 * `import type` from server/api_types.ts (the one contract file); nothing in ui/ imports server,
 * shard or raft code at run time.
 *
 * @example
 * ```ts
 * import { consoleAsset } from "./mod.ts";
 * const asset = consoleAsset("/app.js");
 * const response = asset === null
 *   ? new Response("Not found", { status: 404 })
 *   : new Response(asset.body, {
 *     headers: { "content-type": asset.contentType, "cache-control": asset.cacheControl },
 *   });
 * ```
 */
import { APP_CSS, APP_JS, ASSET_VERSION, INDEX_HTML } from "./bundle/mod.ts";

/** One file of the console, ready to send. */
export interface ConsoleAsset {
  readonly body: string;
  readonly contentType: string;
  readonly cacheControl: string;
}

/** The version of the built assets (a hash), for logs and for an ETag if the server wants one. */
export const CONSOLE_ASSET_VERSION: string = ASSET_VERSION;

const PAGE: ConsoleAsset = {
  body: INDEX_HTML,
  contentType: "text/html; charset=utf-8",
  cacheControl: "no-cache",
};

const ASSETS: ReadonlyMap<string, ConsoleAsset> = new Map([
  ["/", PAGE],
  ["/index.html", PAGE],
  ["/app.js", {
    body: APP_JS,
    contentType: "text/javascript; charset=utf-8",
    cacheControl: "no-cache",
  }],
  ["/app.css", {
    body: APP_CSS,
    contentType: "text/css; charset=utf-8",
    cacheControl: "no-cache",
  }],
]);

/** The paths the console answers, for the server's router. */
export const CONSOLE_PATHS: readonly string[] = [...ASSETS.keys()];

/**
 * The console file at URL path `path` (without query string), or null if the console has none
 * there. Pages are chosen by the URL's hash, so `/` is the only page the server must serve.
 */
export function consoleAsset(path: string): ConsoleAsset | null {
  return ASSETS.get(path) ?? null;
}
