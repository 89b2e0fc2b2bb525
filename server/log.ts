/**
 * Structured logging to a line sink (stderr in production), as text or JSON lines.
 *
 * The logger never reads a clock or writes to a stream itself: `main.ts` injects both, so that
 * tests can capture lines and compare them exactly.
 */
import type { LogFormat, LogLevel } from "./config.ts";

/** Extra fields attached to a log line. */
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

/** What a logger needs from its owner. */
export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Receives one complete line, without the trailing newline. */
  readonly write: (line: string) => void;
  /** Wall-clock milliseconds since the epoch, for the timestamp. */
  readonly nowMs: () => number;
  readonly fields?: LogFields;
}

const LEVEL_RANK: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * A leveled logger; {@linkcode Logger.child} adds fields such as `node` or `shard` to every
 * line it writes.
 *
 * @example
 * ```ts
 * const write = (line: string) => console.log(line);
 * const logger = new Logger({ level: "info", format: "json", write, nowMs: () => 0 });
 * logger.child({ shard: 2 }).info("Elected leader", { term: 5 });
 * ```
 */
export class Logger {
  readonly #options: LoggerOptions;

  constructor(options: LoggerOptions) {
    this.#options = options;
  }

  /** Returns a logger that writes through this one with `fields` added to every line. */
  child(fields: LogFields): Logger {
    return new Logger({ ...this.#options, fields: { ...this.#options.fields, ...fields } });
  }

  /** Whether lines of `level` are written; lets callers skip building costly fields. */
  isEnabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= LEVEL_RANK[this.#options.level];
  }

  debug(message: string, fields?: LogFields): void {
    this.#log("debug", message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.#log("info", message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.#log("warn", message, fields);
  }

  error(message: string, fields?: LogFields): void {
    this.#log("error", message, fields);
  }

  #log(level: LogLevel, message: string, fields: LogFields | undefined): void {
    if (!this.isEnabled(level)) return;
    const time = new Date(this.#options.nowMs()).toISOString();
    const all: Record<string, unknown> = {};
    for (const [key, value] of Object.entries({ ...this.#options.fields, ...fields })) {
      if (value !== undefined) all[key] = value;
    }
    this.#options.write(
      this.#options.format === "json"
        ? JSON.stringify({ time, level, msg: message, ...all })
        : formatText(time, level, message, all),
    );
  }
}

function formatText(
  time: string,
  level: LogLevel,
  message: string,
  fields: Record<string, unknown>,
): string {
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${message}`;
  for (const [key, value] of Object.entries(fields)) {
    const text = String(value);
    line += /^[^\s"=]+$/.test(text) ? ` ${key}=${text}` : ` ${key}=${JSON.stringify(text)}`;
  }
  return line;
}
