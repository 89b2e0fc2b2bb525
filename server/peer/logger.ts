/**
 * The logger the peer channel writes to. The node runtime passes its own; the default writes
 * to the console with a `[peer n]` prefix.
 */

/** Structured fields attached to a log line. */
export type LogFields = Readonly<Record<string, string | number | boolean | null>>;

/** A minimal structured logger. */
export interface PeerLogger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** A logger that writes one line per event to the console. */
export function createConsoleLogger(nodeId: number): PeerLogger {
  const format = (message: string, fields?: LogFields) =>
    fields === undefined ? `[peer ${nodeId}] ${message}` : `[peer ${nodeId}] ${message} ` +
      JSON.stringify(fields);
  return {
    info: (message, fields) => console.log(format(message, fields)),
    warn: (message, fields) => console.warn(format(message, fields)),
    error: (message, fields) => console.error(format(message, fields)),
  };
}

/** Describes any thrown value in one line, for log fields. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : "";
    return `${error.name}: ${error.message}${cause}`;
  }
  return String(error);
}
