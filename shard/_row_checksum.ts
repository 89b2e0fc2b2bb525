/**
 * Row checksums (private to shard/): a CRC-32 stored with every kv and meta row.
 *
 * SQLite checks the structure of its pages (`quick_check`) but not the bytes of a row, so a
 * flipped byte inside a value would be served as if it were data. Every row therefore carries
 * a CRC-32 of its content, checked whenever the row is read with its value and, for every row,
 * when the database is opened or a snapshot restored. A mismatch is `storage_corrupt`.
 */

import { crc32 } from "node:zlib";
import { AspenError } from "./errors.ts";
import { type KeyValue, valueToBytes } from "./key_value.ts";

/** The checksum of a kv row: its key bytes, value and metadata. */
export function kvChecksum(keyBytes: Uint8Array, kv: KeyValue): number {
  const value = kv.value.isWellFormed() ? kv.value : valueToBytes(kv.value);
  // Text and its UTF-8 bytes have the same CRC, so text stored as a BLOB checks the same.
  return kvRowChecksum(keyBytes, value, [
    kv.version,
    kv.createRevision,
    kv.modRevision,
    kv.lease,
  ]);
}

/** The checksum of a kv row from its columns (also called from SQL, see verifyRows). */
export function kvRowChecksum(
  keyBytes: Uint8Array,
  value: string | Uint8Array,
  numbers: readonly [number, number, number, number],
): number {
  return crc32(`\u0000${numbers.join(",")}`, crc32(value, crc32(keyBytes)));
}

/** The checksum of a meta row. */
export function metaChecksum(name: string, value: string): number {
  return crc32(value, crc32(`${name}\u0000`));
}

/**
 * Throws unless `stored` equals `computed`.
 *
 * @throws {AspenError} `storage_corrupt` naming the damaged row.
 */
export function verifyChecksum(stored: unknown, computed: number, row: string): void {
  if (stored !== computed) throw damagedRow(row);
}

/** The error for a row whose content does not match its checksum. */
export function damagedRow(row: string): AspenError {
  return new AspenError(
    "storage_corrupt",
    `Cannot read ${row}: its content does not match its checksum`,
    { row },
  );
}
