/**
 * @module
 * The HTTP client of the Aspen API, shared by the CLI (cli/) and the end-to-end tests.
 *
 * Allowed dependencies: none beyond the web platform (`fetch`).
 *
 * @example
 * ```ts
 * import { AspenClient } from "./mod.ts";
 * const client = new AspenClient({ endpoints: ["http://127.0.0.1:8001"], token: null });
 * ```
 */
export {
  ApiError,
  type ApiRequest,
  AspenClient,
  base64Of,
  bytesOfBase64,
  type ClientOptions,
  type Kv,
} from "./http_client.ts";
