/**
 * The logger the peer channel writes to. The node runtime passes its own; the default writes
 * warnings and errors to stderr with a `[peer n]` prefix and drops info lines, so that a
 * library never prints to stdout (the tidy test bans `console.log` in production code).
 */

/** Structured fields attached to a log line. */
export type LogFields = Readonly<Record<string, string | number | boolean | null>>;

/** A minimal structured logger. */
export interface PeerLogger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/**
 * The default logger: one line per warning (`console.warn`) or error (`console.error`), both on
 * stderr; info lines (connects and disconnects) are dropped.
 */
export function createConsoleLogger(nodeId: number): PeerLogger {
  const format = (message: string, fields?: LogFields) =>
    fields === undefined ? `[peer ${nodeId}] ${message}` : `[peer ${nodeId}] ${message} ` +
      JSON.stringify(fields);
  return {
    info: dropLine,
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

function dropLine(_message: string, _fields?: LogFields): void {
  // Info lines are for the node runtime's own logger; the default keeps stderr for problems.
}
