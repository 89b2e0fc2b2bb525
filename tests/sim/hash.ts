/**
 * Small deterministic hashes for the simulator: a 32-bit mix for numbers and FNV-1a for bytes.
 * They fingerprint logs, state machines and traces; collisions only weaken a check.
 */

/** Mixes `value` (any safe integer) into the 32-bit hash `hash`. */
export function mix(hash: number, value: number): number {
  let h = hash ^ (value >>> 0);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= Math.floor(value / 0x1_0000_0000) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x27d4eb2d);
  return (h ^ (h >>> 15)) >>> 0;
}

/** FNV-1a over bytes. */
export function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h = Math.imul(h ^ (bytes[i] ?? 0), 0x01000193);
  }
  return h >>> 0;
}
