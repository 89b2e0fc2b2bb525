/**
 * Pure formatting of the numbers the console shows. Every function returns "—" for a value
 * that is unknown (null), so that an absent number never looks like a zero. Numbers are
 * formatted the same way in every locale, so that screenshots and tests are stable.
 */

/** What the console shows for an unknown value. */
export const UNKNOWN = "—";

/** Formats an integer with comma thousands separators: `1234567` -> "1,234,567". */
export function formatInteger(value: number | null): string {
  if (value === null) return UNKNOWN;
  const rounded = Math.round(value);
  const digits = String(Math.abs(rounded));
  let out = "";
  for (let i = 0; i < digits.length; i++) {
    const fromEnd = digits.length - i;
    out += digits[i];
    if (fromEnd > 1 && fromEnd % 3 === 1) out += ",";
  }
  return rounded < 0 ? `-${out}` : out;
}

/**
 * Formats a rate or a count compactly: one decimal under 10, whole numbers under 1000, then
 * "k" and "M" with one decimal under 100 of the unit.
 */
export function formatCompact(value: number | null): string {
  if (value === null) return UNKNOWN;
  const size = Math.abs(value);
  if (size === 0) return "0";
  if (size < 10) return trimZero(value.toFixed(1));
  if (size < 1_000) return String(Math.round(value));
  if (size < 1_000_000) return withUnit(value / 1_000, "k");
  return withUnit(value / 1_000_000, "M");
}

function withUnit(scaled: number, unit: string): string {
  const text = Math.abs(scaled) < 100 ? trimZero(scaled.toFixed(1)) : String(Math.round(scaled));
  return `${text}${unit}`;
}

function trimZero(text: string): string {
  return text.endsWith(".0") ? text.slice(0, -2) : text;
}

/** Formats a ratio as a percentage: 0.125 -> "12.5%"; tiny non-zero ratios -> "<0.1%". */
export function formatPercent(ratio: number | null): string {
  if (ratio === null) return UNKNOWN;
  if (ratio === 0) return "0%";
  const percent = ratio * 100;
  if (percent < 0.1) return "<0.1%";
  if (percent >= 99.95) return "100%";
  return `${trimZero(percent.toFixed(1))}%`;
}

/** Formats a latency: "0.42 ms", "4.2 ms", "42 ms", "1.2 s". */
export function formatLatencyMs(ms: number | null): string {
  if (ms === null) return UNKNOWN;
  if (ms === 0) return "0 ms";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${trimZero(ms.toFixed(1))} ms`;
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  return `${trimZero((ms / 1_000).toFixed(1))} s`;
}

/** Formats a duration in its two largest units: "42 s", "12 m 5 s", "3 h 12 m", "4 d 3 h". */
export function formatDuration(ms: number | null): string {
  if (ms === null) return UNKNOWN;
  const seconds = Math.floor(Math.max(0, ms) / 1_000);
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const days = Math.floor(hours / 24);
  if (days > 0) return `${days} d ${hours % 24} h`;
  if (hours > 0) return `${hours} h ${minutes % 60} m`;
  if (minutes > 0) return `${minutes} m ${seconds % 60} s`;
  return `${seconds} s`;
}

/** Formats how long ago something happened: "just now", "12 s ago", "3 m 5 s ago". */
export function formatAgo(ms: number): string {
  if (ms < 1_000) return "just now";
  return `${formatDuration(ms)} ago`;
}

/** Formats a time of day in local time with seconds: "09:05:07". */
export function formatClock(atMs: number): string {
  const date = new Date(atMs);
  const parts = [date.getHours(), date.getMinutes(), date.getSeconds()];
  return parts.map((part) => String(part).padStart(2, "0")).join(":");
}

/** Cuts `text` to at most `charsMax` characters, ending with "…" when it was cut. */
export function truncate(text: string, charsMax: number): string {
  const chars = Array.from(text);
  if (chars.length <= charsMax) return text;
  return `${chars.slice(0, Math.max(0, charsMax - 1)).join("")}…`;
}

/** Formats a byte count: "512 B", "1.5 KiB", "2 MiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1_024) return `${bytes} B`;
  if (bytes < 1_048_576) return `${trimZero((bytes / 1_024).toFixed(1))} KiB`;
  return `${trimZero((bytes / 1_048_576).toFixed(1))} MiB`;
}

/** Formats the size of a value as the server counts it, in UTF-8 bytes. */
export function formatValueSize(value: string): string {
  return formatBytes(new TextEncoder().encode(value).length);
}
