/**
 * rawPath(), the request path the key routes decode keys from: it must equal what
 * `new URL(url).pathname` gives for the serialized URLs Deno.serve hands out (the oracle it
 * replaced), percent-encoding left as sent, query and fragment cut off.
 */
import { equal } from "node:assert/strict";
import { rawPath } from "./kv_routes.ts";

Deno.test("rawPath() matches URL.pathname on served URLs", async (t) => {
  const urls = [
    "http://127.0.0.1:8001/v1/kv/a",
    "http://127.0.0.1:8001/v1/kv/users%2F42",
    "http://127.0.0.1:8001/v1/kv/users/42?consistency=serializable",
    "http://localhost/v1/kv/%E2%82%AC%20x?prevKv=true&x=%3F",
    "http://[::1]:8001/v1/kv/a?b#c",
    "http://h/v1/kv/a%3Fb%23c",
    "http://h/v1/kv",
    "http://h/",
  ];
  for (const url of urls) {
    await t.step(url, () => equal(rawPath(url), new URL(url).pathname));
  }
});
