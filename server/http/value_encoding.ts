/**
 * Binary values over JSON (API.md, "Binary values"): a request carries a value as `value`
 * (UTF-8 text) or `valueBase64` (any bytes), and an answer adds `valueBase64` next to `value`
 * to every kv whose bytes are not UTF-8, or to every kv with `?encoding=base64`.
 *
 * A client that reads only `value` keeps working: text values are unchanged, and a binary
 * value's `value` is its bytes decoded with U+FFFD for each invalid sequence.
 */
import type { Context } from "hono";
import {
  AspenError,
  validateText,
  validateValue,
  VALUE_BYTES_MAX,
  valueFromBytes,
  valueToBytes,
} from "../../shard/mod.ts";
import type { JsonObject } from "./body.ts";

/** How an answer spells values: `value` only (plus `valueBase64` when binary), or both. */
export type ValueEncoding = "text" | "base64";

/** The longest base64 text of a value: VALUE_BYTES_MAX bytes, four characters per three. */
export const VALUE_BASE64_CHARS_MAX = Math.ceil(VALUE_BYTES_MAX / 3) * 4;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const lossyDecoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * The value of a request object that names it by `value` or by `valueBase64` (exactly one).
 *
 * @throws {AspenError} `bad_request` for both, neither, a non-string, lone surrogates in
 * `value` or invalid base64; `value_too_large` past VALUE_BYTES_MAX decoded bytes.
 */
export function valueField(object: JsonObject, action: string): string {
  const text = object.value;
  const base64 = object.valueBase64;
  if (text !== undefined && base64 !== undefined) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: give either "value" or "valueBase64", not both`,
      { field: "valueBase64" },
    );
  }
  if (base64 !== undefined) {
    const value = valueFromBytes(decodeBase64(base64, action));
    validateValue(value, action);
    return value;
  }
  if (typeof text !== "string") {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: field "value" (or "valueBase64") must be a string` +
        (text === undefined ? " and is missing" : ""),
      { field: "value" },
    );
  }
  validateText(text, `${action}: the value`);
  validateValue(text, action);
  return text;
}

/** The `encoding` query parameter: "text" (default) or "base64". */
export function valueEncoding(c: Context, action: string): ValueEncoding {
  const encoding = c.req.query("encoding");
  if (encoding === undefined || encoding === "text") return "text";
  if (encoding === "base64") return "base64";
  throw new AspenError(
    "bad_request",
    `Cannot ${action}: query parameter "encoding" must be "text" or "base64", not "${encoding}"`,
    { parameter: "encoding" },
  );
}

/** A 200 JSON answer whose kvs carry `valueBase64` as {@linkcode valueEncoding} says. */
export function kvJson(c: Context, body: unknown, encoding: ValueEncoding): Response {
  return c.body(kvJsonText(body, encoding), 200, { "content-type": "application/json" });
}

/**
 * `body` as JSON text with `valueBase64` added where needed. Lone surrogates (a binary value)
 * come out of JSON.stringify as `\udXXX` escapes, so text without one needs no second pass.
 */
export function kvJsonText(body: unknown, encoding: ValueEncoding): string {
  const text = JSON.stringify(body);
  if (encoding === "text" && !text.includes("\\ud")) return text;
  return JSON.stringify(body, function addValueBase64(_name: string, item: unknown) {
    if (!isKvLike(item)) return item;
    const isBinary = !item.value.isWellFormed();
    if (!isBinary && encoding === "text") return item;
    const bytes = valueToBytes(item.value);
    const value = isBinary ? lossyDecoder.decode(bytes) : item.value;
    return { ...item, value, valueBase64: encodeBase64(bytes) };
  });
}

/** Base64 (RFC 4648, padded) of `bytes`. */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

function decodeBase64(base64: unknown, action: string): Uint8Array {
  if (typeof base64 !== "string") {
    throw new AspenError("bad_request", `Cannot ${action}: field "valueBase64" must be a string`, {
      field: "valueBase64",
    });
  }
  if (base64.length > VALUE_BASE64_CHARS_MAX) {
    throw new AspenError(
      "value_too_large",
      `Cannot ${action}: "valueBase64" is ${base64.length} characters but the limit is ` +
        `${VALUE_BASE64_CHARS_MAX} (VALUE_BYTES_MAX = ${VALUE_BYTES_MAX} bytes)`,
      { limit: VALUE_BYTES_MAX },
    );
  }
  if (!BASE64.test(base64)) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: field "valueBase64" is not padded base64 (A-Z a-z 0-9 + /)`,
      { field: "valueBase64" },
    );
  }
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Whether `item` is a kv of an answer (a key, a value and revisions). */
function isKvLike(item: unknown): item is { readonly value: string } & Record<string, unknown> {
  if (typeof item !== "object" || item === null) return false;
  const record = item as Record<string, unknown>;
  if (typeof record.key !== "string") return false;
  if (typeof record.value !== "string") return false;
  return typeof record.modRevision === "number";
}
