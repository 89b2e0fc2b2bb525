/**
 * The error half of the contract: every code has a 4xx or 5xx status, isErrorCode() knows the
 * list and nothing else (not even Object's own keys), and apiErrorOf() reads an error body of
 * the API into an ApiError with its details, and anything else as `bad_response`.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  apiErrorOf,
  ERROR_CODES,
  ERROR_STATUS,
  INTERNAL_ERROR_CODE,
  isErrorCode,
} from "./errors.ts";

Deno.test("every error code has an error status, and isErrorCode() knows only them", () => {
  for (const code of ERROR_CODES) {
    ok(ERROR_STATUS[code] >= 400 && ERROR_STATUS[code] <= 599, code);
    ok(isErrorCode(code), code);
  }
  equal(ERROR_STATUS.key_not_found, 404);
  equal(ERROR_STATUS.no_space, 507);
  equal(isErrorCode(INTERNAL_ERROR_CODE), false, "internal is raised by no component");
  equal(isErrorCode("toString"), false, "an Object key is no code");
  equal(isErrorCode("nope"), false);
});

Deno.test("apiErrorOf() reads error bodies and names anything else bad_response", async (t) => {
  const cases: { name: string; httpStatus: number; body: unknown; want: unknown[] }[] = [
    {
      name: "an error body with details",
      httpStatus: 503,
      body: { error: { code: "shard_unavailable", message: "No leader", shard: 2 } },
      want: ["shard_unavailable", 503, "No leader", { shard: 2 }],
    },
    {
      name: "a body without an error",
      httpStatus: 502,
      body: { status: "bad gateway" },
      want: ["bad_response", 502, "The node answered 502 without an error body of the API", {}],
    },
    {
      name: "an error without a message",
      httpStatus: 400,
      body: { error: { code: "bad_request" } },
      want: ["bad_response", 400, "The node answered 400 without an error body of the API", {}],
    },
    {
      name: "no body",
      httpStatus: 500,
      body: null,
      want: ["bad_response", 500, "The node answered 500 without an error body of the API", {}],
    },
  ];
  for (const item of cases) {
    await t.step(item.name, () => {
      const error = apiErrorOf({ httpStatus: item.httpStatus, body: item.body });
      deepEqual([error.code, error.httpStatus, error.message, error.details], item.want);
    });
  }
});
