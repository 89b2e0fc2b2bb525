/**
 * A minimal DER (X.690) encoder and reader, and PEM helpers, private to the peer folder.
 *
 * The encoder writes exactly the ASN.1 shapes that Aspen's X.509 v3 certificates need (a CA
 * certificate and the node certificates it issues) and nothing else, which is why it is small
 * enough to read in one sitting. Every encoder returns a fresh `Uint8Array` holding one
 * complete TLV (tag, length, value).
 *
 * The reader ({@linkcode derRead}, {@linkcode derChildren}) walks certificates read back from
 * disk or from configuration. It accepts single-byte tags and definite lengths up to
 * DER_LENGTH_MAX, checks every bound, and returns null for anything else: it never throws on
 * bad input and never reads past the element it was given.
 */

import { assert } from "../raft/mod.ts";

/** The largest DER length we ever write or read; certificates are a few hundred bytes. */
const DER_LENGTH_MAX = 0xffff;
/** The most children {@linkcode derChildren} reads from one element (a TBSCertificate has 10). */
const DER_CHILDREN_MAX = 64;

/** Where one TLV lies inside a byte array: `[start, end)` is the whole element. */
export interface DerElement {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset just past the element. */
  readonly end: number;
}

/** Concatenates byte arrays into one fresh array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  assert(offset === length, "concatBytes() filled the output exactly");
  return out;
}

/** Encodes one TLV with the given tag byte and content. */
export function derTlv(tag: number, content: Uint8Array): Uint8Array<ArrayBuffer> {
  assert(Number.isInteger(tag) && tag >= 0 && tag <= 0xff, "DER tag is one byte");
  assert(content.length <= DER_LENGTH_MAX, "DER content fits the length limit");
  let header: number[];
  if (content.length < 0x80) header = [tag, content.length];
  else if (content.length <= 0xff) header = [tag, 0x81, content.length];
  else header = [tag, 0x82, content.length >> 8, content.length & 0xff];
  return concatBytes([Uint8Array.from(header), content]);
}

/** A SEQUENCE of already-encoded elements. */
export function derSequence(elements: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  return derTlv(0x30, concatBytes(elements));
}

/** A SET of already-encoded elements (callers pass one element, so no sorting is needed). */
export function derSet(elements: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  assert(elements.length === 1, "derSet() is only used with one element");
  return derTlv(0x31, concatBytes(elements));
}

/** An INTEGER from an unsigned big-endian magnitude (minimal, with a sign pad if needed). */
export function derUnsignedInteger(magnitude: Uint8Array): Uint8Array<ArrayBuffer> {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start += 1;
  const trimmed = magnitude.subarray(start);
  assert(trimmed.length > 0, "INTEGER has at least one byte");
  const needsPad = (trimmed[0]! & 0x80) !== 0;
  const content = needsPad ? concatBytes([Uint8Array.of(0), trimmed]) : trimmed;
  return derTlv(0x02, content);
}

/** A small non-negative INTEGER. */
export function derSmallInteger(value: number): Uint8Array<ArrayBuffer> {
  assert(Number.isInteger(value) && value >= 0 && value < 0x80, "small INTEGER is 0..127");
  return derTlv(0x02, Uint8Array.of(value));
}

/** A BOOLEAN. */
export function derBoolean(value: boolean): Uint8Array<ArrayBuffer> {
  return derTlv(0x01, Uint8Array.of(value ? 0xff : 0x00));
}

/** An OBJECT IDENTIFIER from dotted notation, such as "1.2.840.10045.4.3.2". */
export function derOid(dotted: string): Uint8Array<ArrayBuffer> {
  const arcs = dotted.split(".").map(Number);
  assert(arcs.length >= 2, "OID has at least two arcs");
  for (const arc of arcs) assert(Number.isSafeInteger(arc) && arc >= 0, "OID arc is a number");
  const bytes: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const groups: number[] = [arc & 0x7f];
    let rest = Math.floor(arc / 128);
    while (rest > 0) {
      groups.unshift((rest & 0x7f) | 0x80);
      rest = Math.floor(rest / 128);
    }
    bytes.push(...groups);
  }
  return derTlv(0x06, Uint8Array.from(bytes));
}

/** A UTF8String. */
export function derUtf8String(text: string): Uint8Array<ArrayBuffer> {
  return derTlv(0x0c, new TextEncoder().encode(text));
}

/** A BIT STRING with no unused bits. */
export function derBitString(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return derTlv(0x03, concatBytes([Uint8Array.of(0), bytes]));
}

/** An OCTET STRING. */
export function derOctetString(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return derTlv(0x04, bytes);
}

/** A GeneralizedTime "YYYYMMDDHHMMSSZ" (UTC, whole seconds). */
export function derGeneralizedTime(date: Date): Uint8Array<ArrayBuffer> {
  const iso = date.toISOString(); // 2025-01-02T03:04:05.678Z
  const text = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) +
    iso.slice(14, 16) + iso.slice(17, 19) + "Z";
  assert(text.length === 15, "GeneralizedTime has 15 characters");
  return derTlv(0x18, new TextEncoder().encode(text));
}

/** A context-specific tag [number], constructed (explicit) or primitive (implicit). */
export function derContext(
  number: number,
  content: Uint8Array,
  options: { isConstructed: boolean },
): Uint8Array<ArrayBuffer> {
  assert(Number.isInteger(number) && number >= 0 && number < 31, "context tag is 0..30");
  const tag = 0x80 | (options.isConstructed ? 0x20 : 0) | number;
  return derTlv(tag, content);
}

/**
 * Reads the TLV that starts at `offset` and ends at or before `limit`; null when the bytes there
 * are not one (multi-byte tag, indefinite or over-long length, or running past `limit`).
 */
export function derRead(bytes: Uint8Array, offset: number, limit: number): DerElement | null {
  assert(limit <= bytes.length, "derRead() stays inside the array");
  if (offset + 2 > limit) return null;
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) return null; // a multi-byte tag: never in our certificates
  const first = bytes[offset + 1]!;
  let length = first;
  let contentStart = offset + 2;
  if (first >= 0x80) {
    const lengthBytes = first & 0x7f;
    if (lengthBytes < 1 || lengthBytes > 2 || contentStart + lengthBytes > limit) return null;
    length = 0;
    for (let i = 0; i < lengthBytes; i += 1) length = length * 256 + bytes[contentStart + i]!;
    contentStart += lengthBytes;
  }
  const end = contentStart + length;
  if (end > limit) return null;
  assert(length <= DER_LENGTH_MAX, "two length bytes hold at most DER_LENGTH_MAX");
  return { tag, start: offset, contentStart, end };
}

/**
 * Reads the children of a constructed element, which must fill its content exactly; null when
 * one does not parse or there are more than DER_CHILDREN_MAX.
 */
export function derChildren(bytes: Uint8Array, parent: DerElement): DerElement[] | null {
  const children: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    if (children.length === DER_CHILDREN_MAX) return null;
    const child = derRead(bytes, offset, parent.end);
    if (child === null) return null;
    children.push(child);
    offset = child.end;
  }
  assert(offset === parent.end, "the children fill the parent exactly");
  return children;
}

/** The content bytes of an element (a view, not a copy). */
export function derContent(bytes: Uint8Array, element: DerElement): Uint8Array {
  return bytes.subarray(element.contentStart, element.end);
}

/** The whole element, tag and length included (a view, not a copy). */
export function derWhole(bytes: Uint8Array, element: DerElement): Uint8Array {
  return bytes.subarray(element.start, element.end);
}

/** Wraps DER bytes in a PEM block with 64-column base64 lines. */
export function pemEncode(label: string, der: Uint8Array): string {
  let binary = "";
  for (const byte of der) binary += String.fromCharCode(byte);
  const base64 = btoa(binary);
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Extracts the DER bytes of the first PEM block with `label`, or null when there is none. */
export function pemDecode(label: string, pem: string): Uint8Array<ArrayBuffer> | null {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const beginIndex = pem.indexOf(begin);
  if (beginIndex < 0) return null;
  const endIndex = pem.indexOf(end, beginIndex);
  if (endIndex < 0) return null;
  const base64 = pem.slice(beginIndex + begin.length, endIndex).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) return null;
  const binary = atob(base64);
  const der = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) der[i] = binary.charCodeAt(i);
  return der;
}
