/**
 * Request parsing at the edge (STYLE §7, kind 3): bodies are limited in size by
 * {@linkcode limitBody} (Hono's body-limit middleware), parsed as JSON objects, and every field
 * is checked for presence, type and unknown names before anything reaches a shard. Each failure
 * is a `bad_request` (or `request_too_large`) naming the field.
 */
import type { Context, MiddlewareHandler, Next } from "hono";
import { bodyLimit } from "hono/body-limit";
import { assert } from "../../raft/mod.ts";
import { AspenError, REQUEST_BYTES_MAX } from "../../shard/mod.ts";

/**
 * The largest request body, in bytes. A command is bounded once encoded (REQUEST_BYTES_MAX),
 * but JSON may spell one byte of a string in up to six (`\u001f` for a control character), so a
 * body must be allowed six times that, plus room for the JSON around the strings: every value
 * within VALUE_BYTES_MAX can then be written, whatever its characters.
 */
export const HTTP_BODY_BYTES_MAX = 6 * REQUEST_BYTES_MAX + 64 * 1024;

assert(HTTP_BODY_BYTES_MAX >= 6 * REQUEST_BYTES_MAX, "any string JSON escapes must fit a body");

/**
 * The body limit of every API route: Hono's body-limit middleware with HTTP_BODY_BYTES_MAX.
 * It refuses a body whose Content-Length is over the limit before reading it, and reads a
 * chunked body (no Content-Length) only up to the limit. What it cannot express is kept here:
 * the refusal is our `request_too_large` error (a 413 with the JSON body the API promises, not
 * Hono's plain text), and a body that breaks off or breaks the chunked encoding while it is
 * read is the client's fault, a 400 `bad_request`, not a 500.
 *
 * @example
 * ```ts
 * app.use("/v1/*", limitBody());
 * ```
 */
export function limitBody(): MiddlewareHandler {
  const limit = bodyLimit({
    maxSize: HTTP_BODY_BYTES_MAX,
    onError: (c) => {
      throw tooLarge(`accept the body of ${c.req.method} ${c.req.path}`);
    },
  });
  return async function limitBodySize(c: Context, next: Next) {
    let isPastBody = false;
    try {
      return await limit(c, () => {
        isPastBody = true;
        return next();
      });
    } catch (error) {
      // Later handlers' errors reach the app's error handler inside next(); only the body's
      // own read failures are turned into a 400 here.
      if (isPastBody || error instanceof AspenError) throw error;
      throw unreadable(`accept the body of ${c.req.method} ${c.req.path}`, error);
    }
  };
}

/** A JSON object from a request body. */
export type JsonObject = Readonly<Record<string, unknown>>;

/**
 * Reads a request body of at most {@linkcode HTTP_BODY_BYTES_MAX} bytes as a JSON object (the
 * command it becomes is bounded by REQUEST_BYTES_MAX when it is encoded).
 *
 * @throws {AspenError} `request_too_large` past the limit, `bad_request` for non-JSON or a
 * non-object, or a field not in `allowed`.
 */
export async function readJsonObject(
  request: Request,
  action: string,
  allowed: readonly string[],
): Promise<JsonObject> {
  const text = await readText(request, action);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AspenError("bad_request", `Cannot ${action}: the body is not valid JSON`, {}, {
      cause: error,
    });
  }
  return asObject(value, action, "the body", allowed);
}

/** Checks that `value` is a plain object with only `allowed` fields. */
export function asObject(
  value: unknown,
  action: string,
  what: string,
  allowed: readonly string[],
): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AspenError("bad_request", `Cannot ${action}: ${what} must be a JSON object`);
  }
  for (const field of Object.keys(value)) {
    if (!allowed.includes(field)) {
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: ${what} has an unknown field "${field}"; expected ` +
          allowed.map((name) => `"${name}"`).join(", "),
        { field },
      );
    }
  }
  return value as JsonObject;
}

/** A required string field. */
export function stringField(object: JsonObject, field: string, action: string): string {
  const value = object[field];
  if (typeof value !== "string") {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: field "${field}" must be a string` +
        (value === undefined ? " and is missing" : ""),
      { field },
    );
  }
  return value;
}

/** An optional non-negative integer field, with a default. */
export function integerField(
  object: JsonObject,
  field: string,
  action: string,
  defaultValue: number,
): number {
  const value = object[field];
  if (value === undefined) return defaultValue;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: field "${field}" must be a non-negative integer`,
      { field },
    );
  }
  return value;
}

/** An optional non-negative integer field: null when absent. */
export function nullableCountField(
  object: JsonObject,
  field: string,
  action: string,
): number | null {
  if (object[field] === undefined) return null;
  return integerField(object, field, action, 0);
}

/** An optional boolean field, default false. */
export function booleanField(object: JsonObject, field: string, action: string): boolean {
  const value = object[field];
  if (value === undefined) return false;
  if (typeof value !== "boolean") {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: field "${field}" must be true or false`,
      {
        field,
      },
    );
  }
  return value;
}

/** An optional array field with at most `max` items. */
export function arrayField(
  object: JsonObject,
  field: string,
  action: string,
  max: number,
): readonly unknown[] {
  const value = object[field];
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new AspenError("bad_request", `Cannot ${action}: field "${field}" must be a list`, {
      field,
    });
  }
  if (value.length > max) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: field "${field}" has ${value.length} items but the limit is ${max}`,
      { field, limit: max },
    );
  }
  return value;
}

/** Parses a query flag: absent or "false" is false, "true" (or empty) is true. */
export function queryFlag(value: string | undefined, name: string, action: string): boolean {
  if (value === undefined || value === "false") return false;
  if (value === "true" || value === "") return true;
  throw new AspenError(
    "bad_request",
    `Cannot ${action}: query parameter "${name}" must be true or false, not "${value}"`,
    { parameter: name },
  );
}

/** Parses an integer query parameter within [min, max]. */
export function queryInteger(
  value: string | undefined,
  name: string,
  action: string,
  range: { readonly min: number; readonly max: number; readonly defaultValue: number },
): number {
  if (value === undefined) return range.defaultValue;
  const number = Number(value);
  if (!/^[0-9]+$/.test(value) || number < range.min || number > range.max) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: query parameter "${name}" is "${value}" but must be an integer from ` +
        `${range.min} to ${range.max}`,
      { parameter: name },
    );
  }
  return number;
}

/**
 * Reads a body that {@linkcode limitBody} let through. The size check stays as a backstop for
 * a request that reached a handler without it (or whose Content-Length understated its body).
 */
async function readText(request: Request, action: string): Promise<string> {
  if (request.body === null) return "";
  let bytes: Uint8Array;
  try {
    bytes = await request.bytes();
  } catch (error) {
    throw unreadable(action, error);
  }
  if (bytes.byteLength > HTTP_BODY_BYTES_MAX) throw tooLarge(action);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new AspenError("bad_request", `Cannot ${action}: the body is not valid UTF-8`, {}, {
      cause: error,
    });
  }
}

/**
 * The error for a body that could not be read: the stream fails when the client sends less
 * than its Content-Length or breaks the chunked encoding, the client's fault, so a 400.
 */
function unreadable(action: string, error: unknown): AspenError {
  const reason = error instanceof Error ? error.message : String(error);
  return new AspenError(
    "bad_request",
    `Cannot ${action}: the body could not be read (cut short?): ${reason}`,
    {},
    { cause: error },
  );
}

function tooLarge(action: string): AspenError {
  return new AspenError(
    "request_too_large",
    `Cannot ${action}: the body is over ${HTTP_BODY_BYTES_MAX} bytes (HTTP_BODY_BYTES_MAX)`,
    { limit: HTTP_BODY_BYTES_MAX, name: "HTTP_BODY_BYTES_MAX" },
  );
}
