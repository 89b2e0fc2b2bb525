/**
 * Parsing of "host:port" peer addresses, including bracketed IPv6 ("[::1]:7000").
 */

import { AspenError } from "../shard/mod.ts";

/** A parsed address. */
export interface HostPort {
  /** The host without brackets. */
  readonly hostname: string;
  readonly port: number;
}

/** The largest UDP port. */
export const PORT_MAX = 65_535;

/**
 * Parses "host:port". Port 0 (an ephemeral port) is allowed only when `isListen` is true.
 *
 * @throws {AspenError} `bad_config` naming `what` and the value when it does not parse.
 */
export function parseHostPort(
  text: string,
  options: { what: string; isListen: boolean },
): HostPort {
  const bad = (reason: string) =>
    new AspenError(
      "bad_config",
      `Cannot use ${options.what} "${text}": ${reason}`,
      { value: text },
    );
  const colon = text.lastIndexOf(":");
  if (colon <= 0) throw bad('expected "host:port"');
  let hostname = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (hostname.startsWith("[")) {
    if (!hostname.endsWith("]")) throw bad("an IPv6 host needs a closing bracket");
    hostname = hostname.slice(1, -1);
  } else if (hostname.includes(":")) {
    throw bad('an IPv6 host must be in brackets, as in "[::1]:7000"');
  }
  if (hostname.length === 0 || hostname.length > 253) throw bad("the host is empty or too long");
  if (!/^\d{1,5}$/.test(portText)) throw bad("the port is not a number");
  const port = Number(portText);
  const portMin = options.isListen ? 0 : 1;
  if (port < portMin || port > PORT_MAX) throw bad(`the port must be ${portMin}..${PORT_MAX}`);
  return { hostname, port };
}

/** Formats an address back to "host:port", bracketing IPv6 hosts. */
export function formatHostPort(address: HostPort): string {
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return `${host}:${address.port}`;
}
